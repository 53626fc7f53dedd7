//! Login floods: what a client without a token can make the server do stays bounded. A flood of
//! logins from many addresses costs a fixed amount of memory and is answered quickly (429) while
//! getOne keeps answering; the per-address and per-username limits are exact under concurrency;
//! over-long usernames and throttled floods cannot flood the log.
//!
//! These run the real binary (its memory is what matters). `FLOOD_TEST_BIN=/path/to/inquiryd`
//! runs them against another build, to measure an older one; config keys it may not know
//! (`login_wait_ms`) are then left out.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::helpers::*;

const THROTTLED: &str = r#"{"success":false,"error":"Too many requests","status":"error","message":"Too many requests"}"#;
const UNAUTHORIZED: &str = r#"{"status":"error","error":"Unauthorized","message":"Unauthorized"}"#;

/// The binary under test, and whether it is another build than this one.
fn program() -> (String, bool) {
    match std::env::var("FLOOD_TEST_BIN") {
        Ok(p) if !p.is_empty() => (p, true),
        _ => (bin().to_string(), false),
    }
}

/// A server with the demo enabled and these `[auth]` lines; `new_keys` only for this build.
fn start(dir: &Path, auth: &str, new_keys: &str) -> Server {
    let (program, other) = program();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    let cfg = dir.join("config.toml");
    let db = dir.join("data").join("flood.sqlite3");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let new_keys = if other { "" } else { new_keys };
    std::fs::write(
        &cfg,
        format!("[demo]\nenabled = true\n[auth]\n{auth}\n{new_keys}\n"),
    )
    .unwrap();
    Server::start_program(
        &program,
        dir,
        &config_args(&cfg, &db),
        &[("RUST_LOG", "info")],
    )
}

/// A `/proc/PID/status` figure in KiB (`VmHWM`: peak resident memory; `VmRSS`: now).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

/// A client whose connections come from `127.0.0.N`.
fn client_from(n: u8) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// What a login got: status, body, Retry-After, time taken.
struct LoginAnswer {
    status: u16,
    body: String,
    retry_after: Option<String>,
    took: Duration,
}

fn login(c: &reqwest::blocking::Client, base: &str, body: String) -> Result<LoginAnswer, String> {
    let t = Instant::now();
    let r = c
        .post(format!("{base}/api/v1/login"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .map_err(|e| format!("login: {e}"))?;
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = r.text().map_err(|e| format!("login body: {e}"))?;
    Ok(LoginAnswer {
        status,
        body,
        retry_after,
        took: t.elapsed(),
    })
}

fn bad_login(user: &str) -> String {
    format!(r#"{{"user":"{user}","password":"not-the-password"}}"#)
}

/// Sequential demo getOne requests until `stop`; (answered 200 with the fixture, other answers).
fn get_one_loop(base: &str, stop: &AtomicBool) -> (u64, Vec<String>) {
    let c = client_from(1);
    let fixture = fixture_compact("inquiries.getOne.200.json");
    let (mut ok, mut bad) = (0, Vec::new());
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match demo_get_one(&c, base) {
            Ok((200, body)) if body == fixture => ok += 1,
            Ok((status, body)) => bad.push(format!("{status} {body}")),
            Err(e) => bad.push(e.to_string()),
        }
    }
    (ok, bad)
}

#[test]
fn a_login_flood_from_many_addresses_costs_bounded_memory_and_get_one_keeps_serving() {
    let d = tempfile::tempdir().unwrap();
    let server = start(
        d.path(),
        "login_max_failures_per_address = 1000",
        // A short wait, so that even on a machine fast enough to verify 32 waiting logins within
        // 100 ms, the excess is answered 429.
        "login_concurrency = 2\nlogin_wait_ms = 100",
    );
    let base = server.base.clone();
    let pid = server.child.id();
    let stop = AtomicBool::new(false);

    // getOne alone, then beside 32 clients from 32 addresses failing logins as fast as answered.
    let alone = std::thread::scope(|s| {
        let h = s.spawn(|| get_one_loop(&base, &stop));
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        h.join().unwrap()
    });
    stop.store(false, std::sync::atomic::Ordering::Relaxed);
    let flood_for = Duration::from_secs(4);
    let (answers, during) = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let floods: Vec<_> = (0..32u8)
            .map(|t| {
                let (base, stop) = (&base, &stop);
                s.spawn(move || {
                    let c = client_from(10 + t);
                    let mut seen = Vec::new();
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        i += 1;
                        seen.push(login(&c, base, bad_login(&format!("flood-{t}-{i}"))));
                    }
                    seen
                })
            })
            .collect();
        let get_one = s.spawn(|| get_one_loop(&base, &stop));
        std::thread::sleep(flood_for);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let answers: Vec<_> = floods.into_iter().flat_map(|h| h.join().unwrap()).collect();
        (answers, get_one.join().unwrap())
    });
    let peak_kib = proc_kib(pid, "VmHWM");

    let mut statuses = BTreeMap::new();
    let mut throttled_ms = Vec::new();
    for a in &answers {
        let a = a
            .as_ref()
            .unwrap_or_else(|e| panic!("a login got no answer: {e}"));
        *statuses.entry(a.status).or_insert(0) += 1;
        match a.status {
            401 => assert_eq!(a.body, UNAUTHORIZED),
            429 => {
                assert_eq!(a.body, THROTTLED);
                let wait: u64 = a.retry_after.as_deref().unwrap_or("").parse().unwrap_or(0);
                assert!(wait >= 1, "429 without a Retry-After");
                throttled_ms.push(a.took.as_millis());
            }
            other => panic!("a flooding login got {other}: {}", a.body),
        }
    }
    throttled_ms.sort_unstable();
    let alone_rate = alone.0 as f64;
    let during_rate = during.0 as f64 / flood_for.as_secs_f64();
    eprintln!(
        "login flood: {statuses:?}; 429 in {} ms (median); peak RSS {} MiB; getOne {alone_rate:.0}/s alone, {during_rate:.0}/s during ({:.2}x)",
        throttled_ms
            .get(throttled_ms.len() / 2)
            .copied()
            .unwrap_or(0),
        peak_kib / 1024,
        during_rate / alone_rate.max(1.0),
    );
    assert!(
        peak_kib < 200 * 1024,
        "peak RSS {} MiB during a 32-address login flood",
        peak_kib / 1024
    );
    assert!(
        !throttled_ms.is_empty(),
        "no excess login got a 429: {statuses:?}"
    );
    let median = throttled_ms[throttled_ms.len() / 2];
    assert!(median < 2000, "429s took {median} ms (median)");
    assert!(
        during.1.is_empty(),
        "getOne during the flood: {:?}",
        during.1
    );
    assert!(during.0 > 0, "getOne answered nothing during the flood");
}

#[test]
fn concurrent_failures_get_exactly_the_limit_per_address_and_per_username() {
    let d = tempfile::tempdir().unwrap();
    let server = start(
        d.path(),
        "login_max_failures = 5\nlogin_max_failures_per_address = 10\nlogin_window_secs = 300",
        // Long enough that no attempt gives up waiting for a slot on a loaded machine: every 429
        // here is the throttle's.
        "login_wait_ms = 10000",
    );
    let count = |answers: Vec<Result<LoginAnswer, String>>| {
        let mut by_status = BTreeMap::new();
        for a in answers {
            let a = a.unwrap_or_else(|e| panic!("no answer: {e}"));
            if a.status == 429 {
                assert_eq!(a.body, THROTTLED);
            }
            *by_status.entry(a.status).or_insert(0) += 1;
        }
        by_status
    };
    // 40 attempts at once from one address, each for another unknown user.
    let go = Barrier::new(40);
    let answers: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..40)
            .map(|i| {
                let (go, base) = (&go, &server.base);
                s.spawn(move || {
                    let c = client_from(2);
                    go.wait();
                    login(&c, base, bad_login(&format!("nobody-{i}")))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let per_address = count(answers);
    // 40 attempts at once for one user, each from another address.
    let go = Barrier::new(40);
    let answers: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..40u8)
            .map(|i| {
                let (go, base) = (&go, &server.base);
                s.spawn(move || {
                    let c = client_from(100 + i);
                    go.wait();
                    login(&c, base, bad_login("Target"))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let per_user = count(answers);
    assert_eq!(
        per_address,
        BTreeMap::from([(401, 10), (429, 30)]),
        "limit 10 per address"
    );
    assert_eq!(
        per_user,
        BTreeMap::from([(401, 5), (429, 35)]),
        "limit 5 per username"
    );
}

#[test]
fn long_usernames_and_throttled_floods_keep_the_log_small() {
    let d = tempfile::tempdir().unwrap();
    let mut server = start(
        d.path(),
        "login_max_failures = 3\nlogin_max_failures_per_address = 5\nlogin_window_secs = 300",
        "",
    );
    let long = "x".repeat(60_000);
    let c = client_from(2);
    let mut statuses = Vec::new();
    for i in 0..20 {
        // Another name each time: only the address limit (5) applies.
        let a = login(&c, &server.base, bad_login(&format!("{i:02}{long}"))).expect("answer");
        statuses.push(a.status);
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429; 15], "{statuses:?}");
    // A throttled username: one WARN when it is first refused, not one per attempt.
    let mut statuses = Vec::new();
    for i in 0..20u8 {
        let a = login(&client_from(30 + i), &server.base, bad_login("kurt")).expect("answer");
        statuses.push(a.status);
    }
    assert_eq!(statuses[..3], [401; 3], "{statuses:?}");
    assert_eq!(statuses[3..], [429; 17], "{statuses:?}");
    // The access log shows a bounded prefix of a long path or method, whatever the answer.
    let long_path = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "p".repeat(8_000));
    let long_method = format!("{} /health HTTP/1.1\r\nHost: x\r\n\r\n", "M".repeat(4_000));
    for request in [long_path, long_method] {
        let r = raw_exchange(server.addr(), request.as_bytes(), Duration::from_secs(10))
            .expect("an answer");
        assert!(r.status >= 400 && r.status < 500, "{}", r.head);
    }
    assert_eq!(server.terminate(), Some(0));
    let log = server.log();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(
        longest <= 400,
        "a log line of {longest} bytes (log is {} bytes)",
        log.len()
    );
    let throttled = log.matches("login throttled").count();
    assert_eq!(
        throttled, 2,
        "one WARN per throttled key (the long name's address, kurt): {log}"
    );
    assert!(log.contains("login throttled: user \"kurt\""), "{log}");
    assert!(log.contains("/pppp"), "the long path's access line: {log}");
}

/// Login requests answered per second with `body`, from `threads` keep-alive clients for `span`.
fn login_rate(base: &str, body: &str, threads: usize, span: Duration) -> f64 {
    let count = std::sync::atomic::AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let c = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap();
                while start.elapsed() < span {
                    let r = c
                        .post(format!("{base}/api/v1/login"))
                        .header("Content-Type", "application/json")
                        .body(body.to_string())
                        .send()
                        .expect("login answered");
                    assert_eq!(r.status(), 400);
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    count.into_inner() as f64 / start.elapsed().as_secs_f64()
}

#[test]
fn a_login_body_of_many_unknown_keys_costs_about_what_a_small_one_does() {
    // Parsed whole into a serde_json::Value, 6,000 keys (58 KB, within the 64 KiB limit) took
    // ~2 ms of a worker's thread: a flood of them from 64 connections cut getOne from 35,500 to
    // 45 requests/s. Uploading 58 KB costs something; parsing must not cost much more. (Debug
    // build, this body: 0.03 of the small bodies' rate before, 0.2 after.)
    let app = spawn_app();
    // Unknown keys, and an unknown member of many small objects (each a map to build).
    let keys: Vec<String> = (0..3000).map(|i| format!("\"k{i}\":1")).collect();
    let objects = vec![r#"{"a":1}"#; 3500].join(",");
    let big = format!("{{{},\"x\":[{objects}]}}", keys.join(","));
    assert!(big.len() > 50_000 && big.len() < 64 * 1024);
    let small = "{}";
    let (mut best_big, mut best_small) = (0f64, 0f64);
    // Interleaved rounds, best of each: robust to other load on the machine.
    for _ in 0..3 {
        best_small = best_small.max(login_rate(&app.base, small, 4, Duration::from_millis(700)));
        best_big = best_big.max(login_rate(&app.base, &big, 4, Duration::from_millis(700)));
    }
    assert!(
        best_big >= 0.08 * best_small,
        "many-key bodies: {best_big:.0}/s, small bodies: {best_small:.0}/s"
    );
}
