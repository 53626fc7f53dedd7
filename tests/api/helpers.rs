//! Test harness: the real `Application` on a random port in its own actix system, a temp database
//! and plugins directory, and the real binary for CLI checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use inquiryd::app::{Application, DEMO_TOKEN, DEMO_USER_ID};
use inquiryd::config::Config;

pub const DEMO_ROOM: &str = "yy8SmYKfHQ6GZdnJp";

pub struct TestApp {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub plugins: PathBuf,
    pub client: reqwest::blocking::Client,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let _ = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(false));
        })
        .join();
    }
}

/// The demo-enabled app with an empty plugins directory.
pub fn spawn_app() -> TestApp {
    spawn_app_with(|_| {})
}

/// As [`spawn_app`], after `tweak` has adjusted the configuration.
pub fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("data").join("test.sqlite3");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".into();
    config.server.workers = 2;
    config.database.path = db.clone();
    config.plugins.dir = plugins.clone();
    config.demo.enabled = true;
    tweak(&mut config);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match Application::build(&config) {
                Ok(app) => {
                    let _ = tx.send(Ok((app.port(), app.handle())));
                    let _ = app.run_until_stopped().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        })
    });
    let (port, handle) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("app started in time")
        .expect("app built");
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        dir,
        db,
        plugins,
        client: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
        handle,
    }
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

fn to_resp(r: reqwest::blocking::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.text().expect("body");
    Resp {
        status,
        headers,
        body,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str, auth: Option<(&str, &str)>) -> Resp {
        let mut req = self.client.get(self.url(path));
        if let Some((user, token)) = auth {
            req = req.header("X-User-Id", user).header("X-Auth-Token", token);
        }
        to_resp(req.send().expect("request"))
    }

    pub fn post(&self, path: &str, body: &str, auth: Option<(&str, &str)>) -> Resp {
        let mut req = self
            .client
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some((user, token)) = auth {
            req = req.header("X-User-Id", user).header("X-Auth-Token", token);
        }
        to_resp(req.send().expect("request"))
    }

    pub fn get_one(&self, room: &str, auth: Option<(&str, &str)>) -> Resp {
        self.get(
            &format!("/api/v1/livechat/inquiries.getOne?roomId={room}"),
            auth,
        )
    }

    /// Runs the real binary against this app's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_with_stdin(&self.db, args, None)
    }

    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> Output {
        cli_with_stdin(&self.db, args, Some(stdin))
    }

    /// Adds a user with a password through the CLI; returns (userId, authToken) of a fresh token.
    pub fn user_with_token(&self, username: &str, roles: &[&str]) -> (String, String) {
        let mut args = vec!["user", "add", username, "--password-stdin"];
        for r in roles {
            args.push("--role");
            args.push(r);
        }
        let out = self.cli_stdin(&args, "pw-of-test\n");
        assert!(out.status.success(), "user add: {}", stderr(&out));
        let (uid, tok) = token_create(self, username);
        // The server sees CLI changes within its poll interval; wait for it rather than race.
        let seen = poll_until(Duration::from_secs(3), || {
            self.get("/api/v1/me", Some((&uid, &tok))).status == 200
        });
        assert!(seen.is_some(), "token of {username} never became valid");
        (uid, tok)
    }
}

pub fn token_create(app: &TestApp, username: &str) -> (String, String) {
    let out = app.cli(&["token", "create", username]);
    assert!(out.status.success(), "token create: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("token JSON");
    (
        v["userId"].as_str().expect("userId").to_string(),
        v["authToken"].as_str().expect("authToken").to_string(),
    )
}

/// A user `root` with the `admin` role and a fresh token: (userId, authToken).
pub fn admin(app: &TestApp) -> (String, String) {
    app.user_with_token("root", &["admin"])
}

/// Credentials as the request helpers take them.
pub fn auth(c: &(String, String)) -> Option<(&str, &str)> {
    Some((c.0.as_str(), c.1.as_str()))
}

pub fn demo() -> Option<(&'static str, &'static str)> {
    Some((DEMO_USER_ID, DEMO_TOKEN))
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_inquiryd")
}

/// Runs the binary with `--db` (and no config file unless the args give one).
pub fn cli_with_stdin(db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .arg("--db")
        .arg(db)
        .env_remove("RUST_LOG")
        .current_dir(db.parent().and_then(Path::parent).unwrap_or(Path::new("/")))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn inquiryd");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait inquiryd")
}

/// `inquiryd inquiry import FILE…` against `db`.
pub fn import_files(db: &Path, files: &[&Path]) -> Output {
    let mut args = vec!["inquiry", "import"];
    args.extend(files.iter().map(|f| f.to_str().expect("UTF-8 path")));
    cli_with_stdin(db, &args, None)
}

/// Makes a FIFO at `path` (nobody ever writes to it: a blocking open of it never returns).
pub fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo {}", path.display());
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `check` until it holds or `deadline` passes; returns how long it took.
pub fn poll_until(deadline: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The compact form of a fixture file in `tests/fixtures/`.
pub fn fixture_compact(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
            .expect("fixture JSON");
    serde_json::to_string(&v).expect("compact")
}

/// The body of one case of `inquiries.getOne.errors.json`, compact, and its status.
pub fn error_fixture(case: &str) -> (u16, String) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inquiries.getOne.errors.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
            .expect("fixture JSON");
    let case = &v[case];
    (
        case["status"].as_u64().expect("status") as u16,
        serde_json::to_string(&case["body"]).expect("compact"),
    )
}

/// Sends raw bytes and returns the status code of the answer (0 when the server closed without one).
pub fn raw_status(app: &TestApp, request: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = app.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may answer and close before reading everything; a write error is fine then.
    let _ = stream.write_all(request.as_bytes());
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `--config CFG --db DB`, the arguments that point a server at a test's own files.
pub fn config_args<'a>(cfg: &'a Path, db: &'a Path) -> [&'a str; 4] {
    let s = |p: &'a Path| p.to_str().expect("UTF-8 test path");
    ["--config", s(cfg), "--db", s(db)]
}

/// A real `inquiryd serve` process on a free port, with its log (stderr) captured line by line.
/// Dropping it kills the process if it still runs.
pub struct Server {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `inquiryd serve --bind 127.0.0.1:0 ARGS…` in `dir` with `RUST_LOG=info`, and waits for
    /// the `inquiryd listening on ADDR` line. Panics with the log when it does not start.
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        Server::start_with_env(dir, args, &[("RUST_LOG", "info")])
    }

    /// As [`Server::start`], with extra environment variables.
    pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_program(bin(), dir, args, env)
    }

    /// As [`Server::start_with_env`], running `program` (another build of inquiryd) instead.
    pub fn start_program(program: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut all = vec!["serve", "--bind", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Server::start_command_line(program, dir, &all, env)
    }

    /// As [`Server::start_program`], with the whole command line given (no `serve --bind` put
    /// in front of it).
    pub fn start_command_line(
        program: &str,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        use std::io::{BufRead, BufReader};
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn inquiryd serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("inquiryd listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            log,
        };
        let start = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => {
                    server.base = format!("http://{addr}");
                    return server;
                }
                Err(_) if start.elapsed() > Duration::from_secs(30) => {
                    panic!("server did not start in 30 s:\n{}", server.log())
                }
                Err(_) => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        std::thread::sleep(Duration::from_millis(100));
                        panic!(
                            "server exited with {status} before listening:\n{}",
                            server.log()
                        );
                    }
                }
            }
        }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// Sends a signal (`"TERM"`, `"INT"`, …) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} failed");
    }

    /// SIGTERM, then the exit code once it has exited (within 10 s; `None` if it did not, or
    /// died by a signal).
    pub fn terminate(&mut self) -> Option<i32> {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(10))
            .and_then(|s| s.code())
    }

    /// SIGKILL, and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit; kills it and returns `None` when it does not.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        poll_until(limit, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_none() {
            self.kill9();
        }
        // Let the log reader drain the last lines.
        std::thread::sleep(Duration::from_millis(100));
        status
    }

    /// A blocking client with a timeout, for this server.
    pub fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client")
    }

    /// `GET getOne?roomId=ROOM` with the given credentials.
    pub fn get_one(&self, room: &str, auth: Option<(&str, &str)>) -> Resp {
        let mut req = self.client().get(format!(
            "{}/api/v1/livechat/inquiries.getOne?roomId={room}",
            self.base
        ));
        if let Some((user, token)) = auth {
            req = req.header("X-User-Id", user).header("X-Auth-Token", token);
        }
        to_resp(req.send().expect("request"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Sends `request` as is on a new connection and reads one answer (head, then `Content-Length`
/// bytes of body, or up to EOF). `status` is 0 when the server closed without answering. An error
/// means no answer within `timeout`: a hang.
pub fn raw_exchange(addr: &str, request: &[u8], timeout: Duration) -> std::io::Result<RawResp> {
    use std::io::{ErrorKind, Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // The server may answer (413, 400) and close before reading everything: a write error is fine.
    let _ = stream.write_all(request);
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + timeout;
    let mut head_end = None;
    loop {
        if let Some(end) = head_end {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let no_body = request.starts_with(b"HEAD ")
                || head.starts_with("http/1.1 204")
                || head.starts_with("http/1.1 304");
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if no_body || len.is_some_and(|n| data.len() >= end + n) {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(std::io::Error::new(
                ErrorKind::TimedOut,
                "no complete answer",
            ));
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(e);
            }
            // A reset after (or instead of) the answer: keep what arrived.
            Err(_) => break,
        }
        if head_end.is_none() {
            head_end = data
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| p + 4);
        }
    }
    let Some(end) = head_end else {
        return Ok(RawResp {
            status: 0,
            head: String::from_utf8_lossy(&data).into_owned(),
            body: Vec::new(),
        });
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(RawResp {
        status,
        head,
        body: data[end..].to_vec(),
    })
}

/// A small deterministic generator (splitmix64), so generated cases replay from their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded from the environment variable `name` when set (to replay a run), else from the clock;
    /// prints the seed either way.
    pub fn from_env_or_clock(name: &str) -> Rng {
        let seed = std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{name}={seed}");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Counts of what a load thread saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub requests: u64,
    pub failures: Vec<String>,
}

impl Tally {
    /// Records a failure, keeping the first few for the report.
    pub fn fail(&mut self, what: String) {
        if self.failures.len() < 20 {
            self.failures.push(what);
        } else if self.failures.len() == 20 {
            self.failures.push("…".into());
        }
    }
}

/// Runs `threads` copies of `request` in a loop until `stop` is set; each call returns `Err` with
/// a description for a failed request. Returns the merged tally.
pub fn hammer(
    threads: usize,
    stop: &std::sync::atomic::AtomicBool,
    request: impl Fn(&reqwest::blocking::Client) -> Result<(), String> + Sync,
) -> Tally {
    use std::sync::atomic::Ordering;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .expect("client");
                    let mut tally = Tally::default();
                    while !stop.load(Ordering::Relaxed) {
                        tally.requests += 1;
                        if let Err(e) = request(&client) {
                            tally.fail(e);
                        }
                    }
                    tally
                })
            })
            .collect();
        let mut total = Tally::default();
        for h in handles {
            let t = h.join().expect("load thread");
            total.requests += t.requests;
            for f in t.failures {
                total.fail(f);
            }
        }
        total
    })
}

/// Sets the flag when dropped: load threads stop even when the test body panics inside a
/// `thread::scope` (which would otherwise wait for them forever).
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Lowercase hex SHA-256, as Rocket.Chat clients send a password `digest`.
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The demo user's request for the demo room on the server at `base`: (status, body).
pub fn demo_get_one(c: &reqwest::blocking::Client, base: &str) -> reqwest::Result<(u16, String)> {
    let r = c
        .get(format!(
            "{base}/api/v1/livechat/inquiries.getOne?roomId={DEMO_ROOM}"
        ))
        .header("X-User-Id", DEMO_USER_ID)
        .header("X-Auth-Token", DEMO_TOKEN)
        .send()?;
    let status = r.status().as_u16();
    Ok((status, r.text()?))
}
