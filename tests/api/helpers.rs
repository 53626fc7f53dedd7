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
