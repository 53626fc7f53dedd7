//! Login, logout, me: Rocket.Chat's shapes, throttling, and equal answers for unknown users.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::helpers::*;

#[test]
fn login_with_plain_password_gives_a_working_token() {
    let app = spawn_app();
    app.user_with_token("alice", &["livechat-agent"]);
    let r = app.post(
        "/api/v1/login",
        r#"{"user":"alice","password":"pw-of-test"}"#,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "success");
    let uid = v["data"]["userId"].as_str().unwrap().to_string();
    let tok = v["data"]["authToken"].as_str().unwrap().to_string();
    assert!(tok.len() >= 43);
    assert_eq!(v["data"]["me"]["username"], "alice");
    assert_eq!(v["data"]["me"]["_id"], uid.as_str());
    let r = app.get_one(DEMO_ROOM, Some((&uid, &tok)));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fixture_compact("inquiries.getOne.200.json"));
}

#[test]
fn login_with_digest_and_username_field() {
    let app = spawn_app();
    app.user_with_token("bob", &["user"]);
    let body = format!(
        r#"{{"username":"bob","password":{{"digest":"{}","algorithm":"sha-256"}}}}"#,
        sha256_hex("pw-of-test")
    );
    let r = app.post("/api/v1/login", &body, None);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn resume_login_returns_the_same_token() {
    let app = spawn_app();
    let (_, tok) = demo().unwrap();
    let r = app.post("/api/v1/login", &format!(r#"{{"resume":"{tok}"}}"#), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["authToken"], tok);
    let r = app.post("/api/v1/login", r#"{"resume":"nope"}"#, None);
    assert_eq!(r.status, 401);
}

#[test]
fn wrong_password_and_unknown_user_answer_alike() {
    let app = spawn_app();
    app.user_with_token("carol", &["user"]);
    let a = app.post(
        "/api/v1/login",
        r#"{"user":"carol","password":"wrong"}"#,
        None,
    );
    let b = app.post(
        "/api/v1/login",
        r#"{"user":"nobody","password":"wrong"}"#,
        None,
    );
    assert_eq!(a.status, 401);
    assert_eq!((a.status, &a.body), (b.status, &b.body));
    assert_eq!(
        a.body,
        r#"{"status":"error","error":"Unauthorized","message":"Unauthorized"}"#
    );
}

#[test]
fn deactivated_user_cannot_log_in() {
    let app = spawn_app();
    app.user_with_token("dave", &["user"]);
    assert!(app.cli(&["user", "deactivate", "dave"]).status.success());
    let r = app.post(
        "/api/v1/login",
        r#"{"user":"dave","password":"pw-of-test"}"#,
        None,
    );
    assert_eq!(r.status, 401);
}

#[test]
fn malformed_login_bodies_are_400() {
    let app = spawn_app();
    for body in [
        "",
        "not json",
        "[1,2]",
        "{}",
        r#"{"user":"a"}"#,
        r#"{"user":5,"password":"x"}"#,
        r#"{"user":"a","password":{"digest":"abc"}}"#,
        r#"{"user":"a","password":null}"#,
        r#"{"user":{"$ne":null},"password":"x"}"#,
    ] {
        let r = app.post("/api/v1/login", body, None);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["success"], false);
    }
}

#[test]
fn logout_revokes_the_token_used() {
    let app = spawn_app();
    let (uid, tok) = app.user_with_token("erin", &["livechat-agent"]);
    assert_eq!(app.get_one(DEMO_ROOM, Some((&uid, &tok))).status, 200);
    let r = app.post("/api/v1/logout", "", Some((&uid, &tok)));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        r#"{"status":"success","data":{"message":"You've been logged out!"}}"#
    );
    assert_eq!(app.get_one(DEMO_ROOM, Some((&uid, &tok))).status, 401);
    assert_eq!(app.post("/api/v1/logout", "", None).status, 401);
}

#[test]
fn me_shows_the_profile() {
    let app = spawn_app();
    let r = app.get("/api/v1/me", demo());
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["_id"], demo().unwrap().0);
    assert_eq!(v["roles"], serde_json::json!(["livechat-agent"]));
    assert_eq!(v["active"], true);
    assert_eq!(v["success"], true);
    for key in ["username", "name", "status", "emails", "utcOffset"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(app.get("/api/v1/me", None).status, 401);
}

#[test]
fn repeated_failures_are_throttled_and_the_window_ends() {
    let app = spawn_app_with(|c| {
        c.auth.login_max_failures = 3;
        c.auth.login_window_secs = 3;
    });
    app.user_with_token("frank", &["user"]);
    for _ in 0..3 {
        let r = app.post(
            "/api/v1/login",
            r#"{"user":"frank","password":"bad"}"#,
            None,
        );
        assert_eq!(r.status, 401);
    }
    let r = app.post(
        "/api/v1/login",
        r#"{"user":"frank","password":"pw-of-test"}"#,
        None,
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["success"], false);
    assert!(r.headers.contains_key("retry-after"));
    let ok = poll_until(Duration::from_secs(10), || {
        app.post(
            "/api/v1/login",
            r#"{"user":"frank","password":"pw-of-test"}"#,
            None,
        )
        .status
            == 200
    });
    assert!(ok.is_some(), "right password works again after the window");
}

const THROTTLED: &str = r#"{"success":false,"error":"Too many requests","status":"error","message":"Too many requests"}"#;

#[test]
fn failures_from_one_address_are_throttled_across_usernames() {
    let app = spawn_app_with(|c| {
        c.auth.login_max_failures = 1000;
        c.auth.login_max_failures_per_address = 5;
        c.auth.login_window_secs = 3;
    });
    app.user_with_token("gus", &["user"]);
    for i in 0..5 {
        let r = app.post(
            "/api/v1/login",
            &format!(r#"{{"user":"nobody{i}","password":"bad"}}"#),
            None,
        );
        assert_eq!(r.status, 401, "attempt {i}");
    }
    // The address has used up its failures: any name, even the right password, waits.
    for body in [
        r#"{"user":"someone-else","password":"bad"}"#,
        r#"{"user":"gus","password":"pw-of-test"}"#,
    ] {
        let r = app.post("/api/v1/login", body, None);
        assert_eq!((r.status, r.body.as_str()), (429, THROTTLED), "{body}");
        assert_eq!(r.headers["content-type"], "application/json");
        let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3).contains(&wait), "Retry-After {wait}");
    }
    let ok = poll_until(Duration::from_secs(10), || {
        app.post(
            "/api/v1/login",
            r#"{"user":"gus","password":"pw-of-test"}"#,
            None,
        )
        .status
            == 200
    });
    assert!(ok.is_some(), "right password works again after the window");
}

#[test]
fn throttled_attempts_answer_in_rocketchat_shape_per_username() {
    let app = spawn_app_with(|c| {
        c.auth.login_max_failures = 2;
        c.auth.login_window_secs = 60;
    });
    app.user_with_token("hugo", &["user"]);
    for _ in 0..2 {
        let r = app.post("/api/v1/login", r#"{"user":"HUGO","password":"x"}"#, None);
        assert_eq!(r.status, 401);
    }
    // Usernames count case-insensitively, and another user is not affected.
    let r = app.post(
        "/api/v1/login",
        r#"{"user":"hugo","password":"pw-of-test"}"#,
        None,
    );
    assert_eq!((r.status, r.body.as_str()), (429, THROTTLED));
    app.user_with_token("iris", &["user"]);
    let r = app.post(
        "/api/v1/login",
        r#"{"user":"iris","password":"pw-of-test"}"#,
        None,
    );
    assert_eq!(r.status, 200);
}

/// The argon2 runs so far, by parameters (`inquiryd_password_verifications_total{params=…}`).
fn verifications(app: &TestApp) -> BTreeMap<String, f64> {
    crate::metrics::scrape(&app.base)
        .samples
        .into_iter()
        .filter(|(k, _)| k.starts_with("inquiryd_password_verifications_total{"))
        .collect()
}

/// What changed between two readings of [`verifications`].
fn ran(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// An unknown user must cost what a wrong password costs, or the answer's timing tells which
/// usernames exist. Timing it in a test flaked on a loaded machine, so this checks the structure
/// instead: each costs exactly one argon2 run, with the same parameters (counted per server by
/// the verification slots). The timing itself is measured by `bench/login_timing.py`.
#[test]
fn unknown_user_and_wrong_password_each_cost_one_argon2_run_with_the_same_parameters() {
    let app = spawn_app_with(|c| {
        c.auth.login_max_failures = 1000;
        c.auth.login_max_failures_per_address = 1000;
    });
    app.user_with_token("jude", &["user"]);
    let login = |body: &str, status: u16| {
        let before = verifications(&app);
        let r = app.post("/api/v1/login", body, None);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        ran(&before, &verifications(&app))
    };
    let wrong = login(r#"{"user":"jude","password":"not-the-password"}"#, 401);
    let unknown = login(
        r#"{"user":"nobody-at-all","password":"not-the-password"}"#,
        401,
    );
    let right = login(r#"{"user":"jude","password":"pw-of-test"}"#, 200);
    assert_eq!(wrong.len(), 1, "a wrong password: {wrong:?}");
    assert_eq!(wrong[0].1, 1.0, "a wrong password: {wrong:?}");
    assert_eq!(
        unknown, wrong,
        "an unknown user costs what a wrong password costs"
    );
    assert_eq!(right, wrong, "the right password costs the same");
    // Names longer than `user add` accepts fail without one (README, "Users and tokens").
    let long = format!(r#"{{"user":"{}","password":"x"}}"#, "n".repeat(200));
    assert_eq!(login(&long, 401), Vec::<(String, f64)>::new());
}

#[test]
fn failed_and_throttled_logins_are_logged_without_secrets() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("plugins")).unwrap();
    let db = d.path().join("data").join("t.sqlite3");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let cfg = d.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[auth]\nlogin_max_failures = 2\nlogin_window_secs = 2\n",
    )
    .unwrap();
    let out = cli_with_stdin(
        &db,
        &["user", "add", "kurt", "--password-stdin"],
        Some("kurts-right-password\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut server = Server::start(d.path(), &config_args(&cfg, &db));
    let client = server.client();
    let login = |password: &str| {
        client
            .post(format!("{}/api/v1/login", server.base))
            .body(format!(r#"{{"user":"kurt","password":"{password}"}}"#))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(login("kurts-wrong-password"), 401);
    assert_eq!(login("kurts-wrong-password"), 401);
    assert_eq!(login("kurts-right-password"), 429);
    let ok = poll_until(Duration::from_secs(10), || {
        login("kurts-right-password") == 200
    });
    assert!(ok.is_some(), "right password works again after the window");
    assert_eq!(server.terminate(), Some(0));
    let log = server.log();
    assert!(log.contains("login failed: user \"kurt\""), "{log}");
    assert!(log.contains("login throttled: user \"kurt\""), "{log}");
    assert!(log.contains("/api/v1/login\" 429"), "access line: {log}");
    assert!(!log.contains("kurts-right-password") && !log.contains("kurts-wrong-password"));
}
