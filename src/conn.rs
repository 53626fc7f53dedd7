//! Every stage of a client connection is bounded in time, and the number of connections is bounded
//! by the descriptors the process may open. actix's HTTP/1 dispatcher times out only the headers of
//! a connection's *first* request, and an idle keep-alive connection; a body that trickles or stops,
//! the headers of a later request on a kept-alive connection, a chunked body it drains after the
//! answer and a client that never reads its answers were all held forever. So:
//!
//! - [`GuardedStream`] wraps each accepted socket: a request's head must arrive within
//!   `request_timeout` of its first byte (or of the accept), else the client gets a JSON 408 and
//!   the connection closes; once the head is in, an answer must start within `body_timeout +
//!   request_timeout`, else the connection closes (a backstop: [`ReadBodyFirst`] answers sooner); a
//!   write the client does not take for `send_timeout` closes it.
//! - [`ReadBodyFirst`] reads every request body, on every route, before routing, with one total
//!   deadline (`body_timeout`): a late body is a JSON 408, an oversized one a 413, and in both cases
//!   the connection closes after the answer instead of draining what the client still sends. When
//!   the server starts to stop, a body that stalls for a second is answered 503 (a graceful stop
//!   waits for requests in progress, and used to wait its whole timeout for stalled bodies).
//! - [`Descriptors`] raises the soft descriptor limit to the hard one and derives the connection
//!   limit from it, leaving room for SQLite, the plugins watcher and the log.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpMessage, ResponseError};
use futures_util::future::{Either, LocalBoxFuture};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::api::ApiError;
use crate::api::{body_limit, body_too_large};

/// The deadlines of one connection (`[server]` keys of the same names, in seconds there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A request's head (request line and headers), from its first byte.
    pub request: Duration,
    /// A request's body, from the end of its head, in total.
    pub body: Duration,
    /// A response write the client does not accept.
    pub send: Duration,
    /// An idle kept-alive connection.
    pub keep_alive: Duration,
}

/// The 408 written when a head does not arrive in time: the same bytes as [`ApiError::RequestTimeout`]
/// answers for a late body (the dispatcher has no request to answer here, so the guard writes it).
const HEAD_TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 56\r\n\
    connection: close\r\ncontent-type: application/json\r\ncache-control: no-store\r\n\
    pragma: no-cache\r\n\r\n{\"success\":false,\"error\":\"Request not received in time\"}";

/// Where a connection is in its current request, as far as the bytes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No byte of the next request yet. After the accept, a silent client gets the 408 at the
    /// head deadline; after an answer, the dispatcher's keep-alive timer closes an idle connection
    /// and the deadline is only a backstop for a request pipelined behind the answer whose head
    /// never completes (it may sit half in the dispatcher's buffer: nothing to answer it with).
    Waiting { answer_408: bool },
    /// Part of a head has arrived; `line` bytes of its current line so far, the last being `last`.
    Head { line: usize, last: u8 },
    /// The head is complete: the body and the handler run.
    Answering,
}

/// A socket with the deadlines the dispatcher lacks (see the module doc). Reads fail with
/// `TimedOut` once the current request is late, writes once the client has not taken one for
/// `send_timeout`; the dispatcher then drops the connection.
pub struct GuardedStream {
    io: TcpStream,
    timeouts: Timeouts,
    phase: Phase,
    /// When the current phase runs out.
    read_deadline: Instant,
    /// Set while the client is not taking what the server writes.
    write_deadline: Option<Instant>,
    /// The last write was cut short: a response is half-written.
    write_partial: bool,
    timer: Pin<Box<Sleep>>,
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl GuardedStream {
    pub fn new(io: TcpStream, timeouts: Timeouts) -> GuardedStream {
        let deadline = Instant::now() + timeouts.request;
        GuardedStream {
            io,
            timeouts,
            phase: Phase::Waiting { answer_408: true },
            read_deadline: deadline,
            write_deadline: None,
            write_partial: false,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    /// The earliest deadline in force.
    fn deadline(&self) -> Instant {
        match self.write_deadline {
            Some(w) if w < self.read_deadline => w,
            _ => self.read_deadline,
        }
    }

    /// Arms the timer for the earliest deadline, so the dispatcher is woken then. True when that
    /// deadline has already passed.
    fn arm(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.deadline();
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }

    /// Follows the head through newly read bytes (see [`scan_head`]).
    fn scan(&mut self, new: &[u8], now: Instant) {
        let (line, last) = match self.phase {
            Phase::Answering => return,
            Phase::Waiting { .. } => {
                self.read_deadline = now + self.timeouts.request;
                (0, 0)
            }
            Phase::Head { line, last } => (line, last),
        };
        match scan_head(line, last, new) {
            Some((line, last)) => self.phase = Phase::Head { line, last },
            None => {
                self.phase = Phase::Answering;
                self.read_deadline = now + self.timeouts.body + self.timeouts.request;
            }
        }
    }

    /// The read deadline has passed. A late head gets the JSON 408, written here once, when no
    /// response is half-written (best effort: the socket takes these few bytes unless the client
    /// stopped reading); then the read fails and the dispatcher drops the connection.
    fn read_timed_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let answer_408 = match self.phase {
            Phase::Waiting { answer_408 } => answer_408,
            Phase::Head { .. } => true,
            Phase::Answering => false,
        };
        if !answer_408 {
            log::debug!("connection: request not answered in time; closed");
            return Poll::Ready(Err(timed_out("request not answered in time")));
        }
        if !self.write_partial {
            self.phase = Phase::Answering;
            let _ = Pin::new(&mut self.io).poll_write(cx, HEAD_TIMEOUT_RESPONSE);
            log::debug!("connection: request head not received in time; answered 408");
        }
        Poll::Ready(Err(timed_out("request head not received in time")))
    }
}

/// Follows a request head through `new` bytes, given the length of its unfinished line so far and
/// that line's last byte: `None` once an empty line (CRLF CRLF, or a bare LF LF as httparse also
/// accepts) ends the head, else the unfinished line's length and last byte.
fn scan_head(mut line: usize, mut last: u8, new: &[u8]) -> Option<(usize, u8)> {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', new) {
        let len = line + (nl - start);
        let before = if nl > start { new[nl - 1] } else { last };
        if len == 0 || (len == 1 && before == b'\r') {
            return None;
        }
        line = 0;
        start = nl + 1;
    }
    if start < new.len() {
        line += new.len() - start;
        last = new[new.len() - 1];
    }
    Some((line, last))
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let now = Instant::now();
        if now >= this.read_deadline {
            return this.read_timed_out(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                if filled.len() > before {
                    this.scan(&filled[before..], now);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.arm(cx) {
                    // A deadline passed meanwhile: poll again to act on it.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let now = Instant::now();
        if this.write_deadline.is_some_and(|d| now >= d) {
            return Poll::Ready(Err(timed_out("client did not read the response in time")));
        }
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n == data.len() {
                    this.write_deadline = None;
                    this.write_partial = false;
                } else {
                    this.write_deadline.get_or_insert(now + this.timeouts.send);
                    this.write_partial = true;
                }
                if n > 0 && !data.starts_with(b"HTTP/1.1 100 ") {
                    // An answer went out (not a 100 Continue, after which the body follows): what
                    // the client sends next is a new request, with its own head deadline from its first byte.
                    this.phase = Phase::Waiting { answer_408: false };
                    this.read_deadline =
                        now + this.timeouts.keep_alive + this.timeouts.request + this.timeouts.body;
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                this.write_partial = true;
                this.write_deadline.get_or_insert(now + this.timeouts.send);
                if this.arm(cx) {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Through poll_write, so the deadlines see every write.
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// Middleware: reads a request's whole body (up to [`body_limit`] of its path) before routing, within
/// `timeout` in total, so no route, handler or error answer can leave a body half-read. A request
/// without a body (or whose "body" is an upgraded stream) passes straight through. A body declared or found too large is a 413, one not in
/// by the deadline a 408, a broken one a 400; those answers close the connection (see `Held`).
#[derive(Clone)]
pub struct ReadBodyFirst {
    pub timeout: Duration,
    /// Resolves when the server starts to stop.
    pub stopping: actix_server::GracefulShutdownSignal,
}

impl<S> Transform<S, ServiceRequest> for ReadBodyFirst
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>
        + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = ReadBodyFirstService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(ReadBodyFirstService {
            service: Rc::new(service),
            timeout: self.timeout,
            stopping: self.stopping.clone(),
        }))
    }
}

pub struct ReadBodyFirstService<S> {
    service: Rc<S>,
    timeout: Duration,
    stopping: actix_server::GracefulShutdownSignal,
}

type Answer = Result<ServiceResponse<BoxBody>, actix_web::Error>;

impl<S> Service<ServiceRequest> for ReadBodyFirstService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>
        + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = Either<S::Future, LocalBoxFuture<'static, Answer>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let payload = req.take_payload();
        if matches!(payload, Payload::None) {
            return Either::Left(self.service.call(req));
        }
        // A WebSocket upgrade or a CONNECT makes the rest of the connection the "body": nothing
        // to read to its end. Handlers ignore it, and the dispatcher closes the connection after
        // the answer because it is unread (the guard bounds the time until then).
        let headers = req.headers();
        let framed = req.chunked().unwrap_or(false)
            || (headers.contains_key(actix_web::http::header::CONTENT_LENGTH)
                && !headers.contains_key(actix_web::http::header::UPGRADE));
        if !framed {
            req.set_payload(payload);
            return Either::Left(self.service.call(req));
        }
        let limit = body_limit(req.path());
        let declared_too_large = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > limit as u64);
        if declared_too_large {
            return Either::Right(Box::pin(std::future::ready(Ok(refuse(
                req,
                body_too_large(limit),
                payload,
            )))));
        }
        let service = self.service.clone();
        let deadline = Instant::now() + self.timeout;
        let stopping = self.stopping.clone();
        Either::Right(Box::pin(async move {
            let mut payload = payload;
            match read_within(&mut payload, limit, deadline, &stopping).await {
                Ok(body) => {
                    req.set_payload(Payload::from(body));
                    service.call(req).await
                }
                Err(e) => Ok(refuse(req, e, payload)),
            }
        }))
    }
}

/// Once the server starts to stop, a body still arriving must keep arriving: a gap this long
/// between its pieces is a 503 (the stop finishes in-flight requests, not stalled ones).
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The whole body, or why not: 408 past `deadline`, 413 over `limit` bytes, 400 when the client's
/// framing is broken or it hung up, 503 when the server is stopping and the body stalls for
/// [`STOP_GRACE`].
async fn read_within(
    payload: &mut Payload,
    limit: usize,
    deadline: Instant,
    stopping: &actix_server::GracefulShutdownSignal,
) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut body = BytesMut::new();
    let mut stop = std::pin::pin!(stopping.notified());
    let mut stopped = false;
    loop {
        let until = if stopped {
            deadline.min(Instant::now() + STOP_GRACE)
        } else {
            deadline
        };
        let next = std::pin::pin!(tokio::time::timeout_at(until, payload.next()));
        let next = if stopped {
            next.await
        } else {
            match futures_util::future::select(next, stop.as_mut()).await {
                Either::Left((next, _)) => next,
                Either::Right(((), _)) => {
                    stopped = true;
                    continue;
                }
            }
        };
        match next {
            Err(_) if stopped && Instant::now() < deadline => {
                log::debug!("request body: stalled while the server stops; answered 503");
                return Err(ApiError::Stopping);
            }
            Err(_) => return Err(ApiError::RequestTimeout),
            Ok(None) => return Ok(body.freeze()),
            Ok(Some(Err(e))) => {
                log::debug!("request body: {e}");
                return Err(ApiError::BadRequest(
                    "Could not read the request body".into(),
                ));
            }
            Ok(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > limit {
                    return Err(body_too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

/// Answers `err` with the unread `payload` kept alive in the answer's body: the dispatcher then
/// sees a body nobody finished and closes the connection after the answer. Dropping it instead
/// would make the dispatcher drain a chunked body for as long as the client sends one.
fn refuse(req: ServiceRequest, err: ApiError, payload: Payload) -> ServiceResponse<BoxBody> {
    let res = err.error_response().map_body(|_, body| {
        BoxBody::new(Held {
            body,
            _payload: payload,
        })
    });
    req.into_response(res)
}

/// A response body that keeps the request's unread payload alive until the body is sent.
struct Held {
    body: BoxBody,
    _payload: Payload,
}

impl MessageBody for Held {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// The descriptor limit in force and the connection limit derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptors {
    /// The soft `RLIMIT_NOFILE` after raising it.
    pub limit: u64,
    /// The soft limit before, when it was raised.
    pub raised_from: Option<u64>,
    /// Concurrent connections per worker (actix counts per worker).
    pub per_worker: usize,
    /// The limit leaves too little for SQLite and the rest beside a few connections per worker.
    pub starved: bool,
}

/// Descriptors kept back from connections: the standard streams, the listener, each worker's and
/// the acceptor's event loop, the plugins watcher and the files it reads, and slack.
const RESERVED: u64 = 64;
/// Per SQLite connection (pooled or a worker's reader): the database, its -wal and -shm.
const PER_DB_CONNECTION: u64 = 3;
/// Fewest connections a worker takes, however low the limit.
const MIN_PER_WORKER: usize = 8;

impl Descriptors {
    /// Raises the soft descriptor limit to the hard one (as far as the kernel allows), and divides
    /// what is left after SQLite and the rest (`RESERVED`) among the workers. `configured` (total,
    /// 0 for none) lowers the result, never raises it past what the descriptors allow.
    pub fn settle(workers: usize, db_connections: u32, configured: usize) -> Descriptors {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let before = getrlimit(Resource::Nofile);
        let mut raised_from = None;
        let mut limit = before.current.unwrap_or(u64::MAX);
        if let (Some(current), maximum) = (before.current, before.maximum) {
            // The kernel caps an "unlimited" hard limit at fs.nr_open; ask for a sane figure.
            let target = maximum.unwrap_or(1 << 20).min(1 << 20);
            if target > current
                && setrlimit(
                    Resource::Nofile,
                    Rlimit {
                        current: Some(target),
                        maximum,
                    },
                )
                .is_ok()
            {
                raised_from = Some(current);
                limit = target;
            }
        }
        let per_worker = Self::per_worker(limit, workers, db_connections, configured);
        Descriptors {
            limit,
            raised_from,
            per_worker,
            starved: Self::reserved(db_connections) + (MIN_PER_WORKER * workers.max(1)) as u64
                > limit,
        }
    }

    /// Descriptors kept back from connections.
    pub fn reserved(db_connections: u32) -> u64 {
        RESERVED + PER_DB_CONNECTION * u64::from(db_connections)
    }

    /// The connection limit per worker for a descriptor `limit` (see [`Descriptors::settle`]).
    pub fn per_worker(limit: u64, workers: usize, db_connections: u32, configured: usize) -> usize {
        let workers = workers.max(1);
        let spare = limit.saturating_sub(Self::reserved(db_connections));
        let derived = usize::try_from(spare / workers as u64).unwrap_or(usize::MAX);
        let wanted = if configured > 0 {
            configured.div_ceil(workers).min(derived)
        } else {
            derived
        };
        // actix's own default, 25,000 per worker, is the ceiling.
        wanted.clamp(MIN_PER_WORKER, 25_000)
    }
}

/// A logger that passes everything to `inner` except two kinds of actix records about connections:
/// - the accept error, logged every 500 ms while it lasts (for "Too many open files": until a
///   descriptor frees up), is written once and then at most once a minute, with how often it
///   recurred meanwhile;
/// - the HTTP/1 dispatcher's "stream error" (a request it cannot parse: too many headers, a bad
///   request line, garbage; or a connection reset or timed out by the guard) is the client's doing,
///   not the server's: it goes to the log at debug level instead of error, so a client cannot fill
///   the operator's log with ERROR lines.
pub struct QuietConnectionErrors<L> {
    inner: L,
    state: std::sync::Mutex<AcceptErrors>,
}

#[derive(Default)]
struct AcceptErrors {
    last_written: Option<std::time::Instant>,
    suppressed: u64,
}

/// Where actix-http's HTTP/1 dispatcher logs (through `tracing`'s `log` records).
const DISPATCHER_TARGET: &str = "actix_http::h1::dispatcher";

/// How often a recurring accept error is written.
const ACCEPT_ERROR_EVERY: Duration = Duration::from_secs(60);

impl<L: log::Log> QuietConnectionErrors<L> {
    pub fn new(inner: L) -> Self {
        QuietConnectionErrors {
            inner,
            state: std::sync::Mutex::new(AcceptErrors::default()),
        }
    }

    /// Whether to write this accept error now, and how many were held back before it.
    fn admit(&self, now: std::time::Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state
            .last_written
            .is_some_and(|t| now.duration_since(t) < ACCEPT_ERROR_EVERY)
        {
            state.suppressed += 1;
            return None;
        }
        state.last_written = Some(now);
        Some(std::mem::take(&mut state.suppressed))
    }
}

impl<L: log::Log> log::Log for QuietConnectionErrors<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() != log::Level::Error {
            return self.inner.log(record);
        }
        if record.target() == DISPATCHER_TARGET {
            let text = record.args().to_string();
            if let Some(cause) = text.strip_prefix("stream error: ") {
                return self.inner.log(
                    &log::Record::builder()
                        .args(format_args!("client connection closed: {cause}"))
                        .level(log::Level::Debug)
                        .target(record.target())
                        .build(),
                );
            }
        }
        if record.target() != "actix_server::accept" {
            return self.inner.log(record);
        }
        let Some(suppressed) = self.admit(std::time::Instant::now()) else {
            return;
        };
        let more = if suppressed > 0 {
            format!(" ({suppressed} more since the last such line)")
        } else {
            String::new()
        };
        self.inner.log(
            &log::Record::builder()
                .args(format_args!(
                    "{}{more}; retrying every 0.5 s, this line at most once a minute",
                    record.args()
                ))
                .level(record.level())
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recurring_accept_error_is_written_once_a_minute_with_a_count() {
        struct Sink(std::sync::Mutex<Vec<String>>);
        impl log::Log for Sink {
            fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                true
            }
            fn log(&self, record: &log::Record<'_>) {
                self.0.lock().unwrap().push(record.args().to_string());
            }
            fn flush(&self) {}
        }
        let quiet = QuietConnectionErrors::new(Sink(std::sync::Mutex::new(Vec::new())));
        let t0 = std::time::Instant::now();
        assert_eq!(quiet.admit(t0), Some(0));
        for i in 1..120 {
            assert_eq!(quiet.admit(t0 + Duration::from_millis(500 * i)), None);
        }
        assert_eq!(quiet.admit(t0 + Duration::from_secs(60)), Some(119));
        let emfile = format_args!("Error accepting connection: Too many open files (os error 24)");
        let record = |args| {
            log::Record::builder()
                .args(args)
                .level(log::Level::Error)
                .target("actix_server::accept")
                .build()
        };
        log::Log::log(&quiet, &record(emfile));
        let other = format_args!("other");
        log::Log::log(
            &quiet,
            &log::Record::builder()
                .args(other)
                .level(log::Level::Info)
                .target("inquiryd::access")
                .build(),
        );
        let written = quiet.inner.0.lock().unwrap().clone();
        assert_eq!(written, vec!["other".to_string()], "{written:?}");
    }

    #[test]
    fn a_request_actix_cannot_parse_is_logged_at_debug_not_as_a_server_error() {
        struct Sink(std::sync::Mutex<Vec<(log::Level, String)>>);
        impl log::Log for Sink {
            fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                true
            }
            fn log(&self, record: &log::Record<'_>) {
                let line = (record.level(), record.args().to_string());
                self.0.lock().unwrap().push(line);
            }
            fn flush(&self) {}
        }
        let quiet = QuietConnectionErrors::new(Sink(std::sync::Mutex::new(Vec::new())));
        let error = |target: &'static str, args: std::fmt::Arguments<'_>| {
            log::Log::log(
                &quiet,
                &log::Record::builder()
                    .args(args)
                    .level(log::Level::Error)
                    .target(target)
                    .build(),
            )
        };
        error(
            DISPATCHER_TARGET,
            format_args!("stream error: request parse error: too many headers"),
        );
        error(
            DISPATCHER_TARGET,
            format_args!("Response payload stream error: x"),
        );
        error("inquiryd::db", format_args!("stream error: not actix's"));
        let written = quiet.inner.0.lock().unwrap().clone();
        assert_eq!(
            written,
            vec![
                (
                    log::Level::Debug,
                    "client connection closed: request parse error: too many headers".into()
                ),
                (log::Level::Error, "Response payload stream error: x".into()),
                (log::Level::Error, "stream error: not actix's".into()),
            ]
        );
    }

    #[test]
    fn a_head_ends_at_its_empty_line_however_the_reads_split_it() {
        let head = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        for split in 0..head.len() {
            let (a, b) = head.split_at(split);
            let carry = scan_head(0, 0, a);
            let carry = carry.unwrap_or_else(|| panic!("ended early at split {split}"));
            assert_eq!(scan_head(carry.0, carry.1, b), None, "split {split}");
        }
        // One byte at a time.
        let mut state = Some((0, 0));
        for (i, byte) in head.iter().enumerate() {
            let (line, last) = state.unwrap_or_else(|| panic!("ended early at byte {i}"));
            state = scan_head(line, last, std::slice::from_ref(byte));
        }
        assert_eq!(state, None);
        assert_eq!(scan_head(0, 0, b"GET / HTTP/1.1\n\n"), None);
        assert!(scan_head(0, 0, b"GET / HTTP/1.1\r\nA: b\r\n").is_some());
        assert!(scan_head(0, 0, b"GET / HTTP/1.1\r\nA: \r\r\n").is_some());
    }

    #[test]
    fn raw_408_is_the_api_error_408() {
        let text = std::str::from_utf8(HEAD_TIMEOUT_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, crate::api::errors::REQUEST_TIMEOUT_BODY);
        assert!(
            head.contains(&format!("content-length: {}\r\n", body.len())),
            "{head}"
        );
        let res = ApiError::RequestTimeout.error_response();
        assert_eq!(res.status().as_u16(), 408);
        for (name, value) in res.headers() {
            let line = format!("{}: {}", name, value.to_str().unwrap());
            assert!(head.contains(&line), "{line} missing from {head}");
        }
    }

    #[test]
    fn connection_limit_leaves_room_for_sqlite_and_the_rest() {
        // systemd's default 1,024 with 2 workers, 8 pooled and 2 reader connections: 930 left.
        assert_eq!(Descriptors::per_worker(1024, 2, 10, 0), 465);
        // A configured total lowers it, never raises it past the descriptors.
        assert_eq!(Descriptors::per_worker(1024, 2, 10, 100), 50);
        assert_eq!(Descriptors::per_worker(1024, 2, 10, 100_000), 465);
        // A limit below the reserve still serves a few.
        assert_eq!(Descriptors::per_worker(50, 2, 10, 0), MIN_PER_WORKER);
        assert_eq!(Descriptors::per_worker(u64::MAX, 2, 10, 0), 25_000);
    }
}
