//! Login, logout, me: Rocket.Chat's shapes, throttling, and equal answers for unknown users.

use std::time::Duration;

use crate::helpers::*;

fn digest(p: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(p.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

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
        digest("pw-of-test")
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
