//! The access log is the operator's choice: `[log] access = "all"` (the default) logs every
//! request, `"errors"` only answers of 400 and above and requests slower than `slow_ms`, `"off"`
//! none; no line ever holds a query string or a header.

use std::time::Duration;

use crate::helpers::*;

/// A server with `config` (TOML) as its config file, the demo on.
fn server_with(config: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, format!("[demo]\nenabled = true\n{config}")).unwrap();
    let server = Server::start(dir.path(), &["--config", path.to_str().unwrap()]);
    (dir, server)
}

fn access_lines(server: &Server) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|l| l.contains("inquiryd::access"))
        .map(str::to_string)
        .collect()
}

/// Waits for an access line containing `needle` (an answer's line is written before the answer
/// is sent, so lines of earlier requests are in by then).
fn wait_for_line(server: &Server, needle: &str) {
    let seen = poll_until(Duration::from_secs(10), || {
        access_lines(server).iter().any(|l| l.contains(needle))
    });
    assert!(
        seen.is_some(),
        "no access line with {needle:?}:\n{}",
        server.log()
    );
}

/// A 200, then a 401 whose query carries a secret, then a 404 (the marker).
fn three_requests(server: &Server) {
    assert_eq!(server.get_one(DEMO_ROOM, demo()).status, 200);
    assert_eq!(server.get_one("room-SECRET-42", None).status, 401);
    let marker = server
        .client()
        .get(format!("{}/marker-path", server.base))
        .send()
        .unwrap();
    assert_eq!(marker.status().as_u16(), 404);
}

#[test]
fn all_mode_logs_every_request_without_query_strings() {
    let (_dir, server) = server_with("");
    three_requests(&server);
    wait_for_line(&server, "\"GET /marker-path\" 404");
    let lines = access_lines(&server);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"GET /api/v1/livechat/inquiries.getOne\" 200")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"GET /api/v1/livechat/inquiries.getOne\" 401")),
        "{lines:#?}"
    );
    assert!(!server.log().contains("SECRET"), "{}", server.log());
    assert!(
        !server.log().contains(inquiryd::app::DEMO_TOKEN),
        "{}",
        server.log()
    );
}

#[test]
fn errors_mode_logs_only_error_answers() {
    let (_dir, server) = server_with("[log]\naccess = \"errors\"\nslow_ms = 0\n");
    three_requests(&server);
    wait_for_line(&server, "\"GET /marker-path\" 404");
    let lines = access_lines(&server);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"GET /api/v1/livechat/inquiries.getOne\" 401")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("\" 200 ")), "{lines:#?}");
}

#[test]
fn errors_mode_logs_slow_successes_too() {
    // A login runs one argon2 verification (tens of milliseconds at least): slower than 1 ms.
    let (dir, server) = server_with("[log]\naccess = \"errors\"\nslow_ms = 1\n");
    let out = std::process::Command::new(bin())
        .args(["--config"])
        .arg(dir.path().join("config.toml"))
        .args(["user", "add", "slowpoke", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"pw-of-test\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "user add: {}", stderr(&out));
    let login = server
        .client()
        .post(format!("{}/api/v1/login", server.base))
        .header("Content-Type", "application/json")
        .body(r#"{"user":"slowpoke","password":"pw-of-test"}"#)
        .send()
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    wait_for_line(&server, "\"POST /api/v1/login\" 200");
    assert!(!server.log().contains("pw-of-test"));
}

#[test]
fn off_mode_logs_no_request() {
    let (_dir, server) = server_with("[log]\naccess = \"off\"\n");
    three_requests(&server);
    // The server's own lines still come: a SIGHUP's answer marks "later than the requests".
    server.signal("HUP");
    let seen = poll_until(Duration::from_secs(10), || {
        server.log().contains("SIGHUP received")
    });
    assert!(seen.is_some(), "{}", server.log());
    assert_eq!(access_lines(&server), Vec::<String>::new());
}
