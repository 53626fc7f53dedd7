//! What each request leaves behind once answered: a count and a latency in the metrics
//! ([`crate::metrics::RequestStats`]), and an access line (target `inquiryd::access`, at info) as
//! `[log] access` chooses: every request (`all`, the default), only answers of 400 and above and
//! requests slower than `[log] slow_ms` (`errors`), or none (`off`).
//!
//! The access line is `ADDR "METHOD PATH" STATUS BYTES MSms`; method and path are the client's
//! text, escaped and bounded ([`crate::api::logged`]), and neither headers nor the query string
//! (where a token could travel) are logged. The middleware's future is a named type: nothing is
//! boxed per request.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};

use crate::api::logged::Logged;
use crate::config::AccessLog;
use crate::metrics::RequestStats;

/// The middleware's settings; see the module doc.
#[derive(Clone)]
pub struct Observe {
    inner: Arc<Settings>,
}

#[derive(Clone)]
struct Settings {
    stats: Option<Arc<RequestStats>>,
    access: AccessLog,
    /// `None`: no request is slow.
    slow: Option<Duration>,
}

impl Observe {
    /// Counts into `stats` (when metrics are on) and logs as `access` says.
    pub fn new(stats: Option<Arc<RequestStats>>, access: AccessLog, slow_ms: u64) -> Observe {
        Observe {
            inner: Arc::new(Settings {
                stats,
                access,
                slow: (slow_ms > 0).then(|| Duration::from_millis(slow_ms)),
            }),
        }
    }

    /// Whether it has anything to do (else the app leaves it out).
    pub fn is_needed(&self) -> bool {
        self.inner.stats.is_some() || self.inner.access != AccessLog::Off
    }
}

impl<S, B> Transform<S, ServiceRequest> for Observe
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = ObserveService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ObserveService {
            service,
            // Each worker its own copy: the per-request clone is then not an atomic operation.
            settings: Rc::new(Settings::clone(&self.inner)),
        }))
    }
}

pub struct ObserveService<S> {
    service: S,
    settings: Rc<Settings>,
}

impl<S, B> Service<ServiceRequest> for ObserveService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Observed<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        Observed {
            inner: self.service.call(req),
            start: Instant::now(),
            settings: self.settings.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Observed<F> {
        #[pin]
        inner: F,
        start: Instant,
        settings: Rc<Settings>,
    }
}

impl<F, B> std::future::Future for Observed<F>
where
    F: std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let elapsed = this.start.elapsed();
        if let Ok(res) = &result {
            let status = res.status();
            let req = res.request();
            if let Some(stats) = &this.settings.stats {
                stats.record(req.match_name(), status, elapsed);
            }
            let logged = match this.settings.access {
                AccessLog::All => true,
                AccessLog::Errors => {
                    status.as_u16() >= 400 || this.settings.slow.is_some_and(|s| elapsed >= s)
                }
                AccessLog::Off => false,
            };
            if logged {
                let size = match res.response().body().size() {
                    BodySize::Sized(n) => n.to_string(),
                    BodySize::None => "0".into(),
                    BodySize::Stream => "-".into(),
                };
                log::info!(
                    target: "inquiryd::access",
                    "{} \"{} {}\" {} {} {:.6}ms",
                    req.peer_addr().map_or("-".to_string(), |a| a.ip().to_string()),
                    Logged::path(req.method().as_str()),
                    Logged::path(req.path()),
                    status.as_u16(),
                    size,
                    elapsed.as_secs_f64() * 1000.0,
                );
            }
        }
        Poll::Ready(result)
    }
}
