//! `GET /api/v1/livechat/inquiries.getOne`: bodies, status codes and headers as Rocket.Chat's.

use crate::helpers::*;

#[test]
fn demo_request_returns_the_fixture_byte_for_byte() {
    let app = spawn_app();
    let r = app.get_one(DEMO_ROOM, demo());
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fixture_compact("inquiries.getOne.200.json"));
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["pragma"], "no-cache");
}

#[test]
fn header_names_are_case_insensitive() {
    let app = spawn_app();
    let r = app
        .client
        .get(app.url(&format!(
            "/api/v1/livechat/inquiries.getOne?roomId={DEMO_ROOM}"
        )))
        .header("x-user-id", demo().unwrap().0)
        .header("X-AUTH-TOKEN", demo().unwrap().1)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn missing_or_bad_credentials_get_401_fixture() {
    let app = spawn_app();
    let (status, body) = error_fixture("401-not-logged-in");
    let (uid, tok) = demo().unwrap();
    let path = format!("/api/v1/livechat/inquiries.getOne?roomId={DEMO_ROOM}");
    let cases: Vec<Option<(&str, &str)>> = vec![
        None,
        Some((uid, "wrong-token")),
        Some(("someoneElse", tok)),
        Some((uid, "")),
    ];
    for auth in cases {
        let r = app.get(&path, auth);
        assert_eq!(
            (r.status, r.body.as_str()),
            (status, body.as_str()),
            "{auth:?}"
        );
        assert_eq!(r.headers["content-type"], "application/json");
    }
    // Only one of the two headers.
    for (name, value) in [("X-User-Id", uid), ("X-Auth-Token", tok)] {
        let r = app
            .client
            .get(app.url(&path))
            .header(name, value)
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.text().unwrap(), body);
    }
}

#[test]
fn authentication_is_checked_before_parameters() {
    let app = spawn_app();
    let r = app.get("/api/v1/livechat/inquiries.getOne", None);
    assert_eq!(r.status, 401);
}

#[test]
fn parameter_errors_match_rocketchat() {
    let app = spawn_app();
    let base = "/api/v1/livechat/inquiries.getOne";
    let cases = [
        ("", "400-missing-roomId"),
        ("?other=1", "400-missing-roomId"),
        ("?roomId=x&foo=bar", "400-additional-property"),
        ("?roomId=a&roomId=b", "400-roomId-twice"),
        ("?roomId[$ne]=x", "400-roomId-twice"),
        ("?roomId[]=x", "400-roomId-twice"),
    ];
    for (query, case) in cases {
        let (status, body) = error_fixture(case);
        let r = app.get(&format!("{base}{query}"), demo());
        assert_eq!(
            (r.status, r.body.as_str()),
            (status, body.as_str()),
            "{query}"
        );
    }
}

#[test]
fn parameters_are_checked_before_permission() {
    let app = spawn_app();
    let (uid, tok) = app.user_with_token("plain", &["user"]);
    let r = app.get("/api/v1/livechat/inquiries.getOne", Some((&uid, &tok)));
    assert_eq!(r.status, 400);
    let r = app.get_one(DEMO_ROOM, Some((&uid, &tok)));
    let (status, body) = error_fixture("403-permission");
    assert_eq!((r.status, r.body.as_str()), (status, body.as_str()));
}

#[test]
fn unknown_or_empty_room_is_null_inquiry() {
    let app = spawn_app();
    let (status, body) = error_fixture("200-no-inquiry");
    for room in ["nope", "", "%27%20OR%201%3D1%20--", "%ZZ%00", "x%00y"] {
        let r = app.get_one(room, demo());
        assert_eq!(
            (r.status, r.body.as_str()),
            (status, body.as_str()),
            "{room}"
        );
    }
}

#[test]
fn percent_encoded_room_id_is_decoded() {
    let app = spawn_app();
    let r = app.get(
        "/api/v1/livechat/inquiries.getOne?roomId=yy8SmYKfHQ6GZdnJ%70",
        demo(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["inquiry"]["rid"], DEMO_ROOM);
}

#[test]
fn unknown_route_is_json_404_and_wrong_method_json_405() {
    let app = spawn_app();
    let r = app.get("/api/v1/nope", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.body, r#"{"success":false,"error":"Resource not found"}"#);
    assert_eq!(r.headers["content-type"], "application/json");
    let r = app.post(
        &format!("/api/v1/livechat/inquiries.getOne?roomId={DEMO_ROOM}"),
        "{}",
        demo(),
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "GET");
    assert_eq!(r.json()["success"], false);
    let r = app.get("/api/v1/login", None);
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
}

#[test]
fn oversized_body_is_413_and_oversized_head_is_4xx() {
    let app = spawn_app();
    let big = "x".repeat(65 * 1024);
    let r = app.post("/api/v1/login", &big, None);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["success"], false);
    let long_room = "a".repeat(100 * 1024);
    let status = raw_status(
        &app,
        &format!(
            "GET /api/v1/livechat/inquiries.getOne?roomId={long_room} HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
    );
    assert!((400..500).contains(&status), "100 KB URL got {status}");
    let token = "t".repeat(8 * 1024);
    let r = app.get_one(DEMO_ROOM, Some((demo().unwrap().0, &token)));
    assert_eq!(r.status, 401);
    // Still serving.
    assert_eq!(app.get_one(DEMO_ROOM, demo()).status, 200);
}

#[test]
fn info_and_health_answer_without_auth() {
    let app = spawn_app();
    let r = app.get("/api/info", None);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["success"], true);
    assert!(v["version"].as_str().unwrap().split('.').count() == 3);
    let r = app.get("/health", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"status":"ok"}"#);
}

#[test]
fn health_details_only_for_manage_apps() {
    let app = spawn_app();
    let r = app.get("/health", demo());
    assert_eq!(r.body, r#"{"status":"ok"}"#);
    let (uid, tok) = app.user_with_token("boss", &["admin"]);
    let r = app.get("/health", Some((&uid, &tok)));
    assert_eq!(r.status, 200);
    assert!(r.json()["plugins"].is_object(), "{}", r.body);
}

#[test]
fn shipped_config_and_plugins_answer_the_documented_bytes() {
    // What `cargo run --release` uses: the repo's config.toml and its plugins directory.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = inquiryd::config::Config::load_with_env(
        &inquiryd::config::ConfigSource::Explicit(repo.join("config.toml")),
        &inquiryd::config::Overrides::default(),
        &[],
    )
    .expect("shipped config.toml loads");
    assert!(shipped.demo.enabled, "the shipped config enables the demo");
    let app = spawn_app_with(|c| {
        c.plugins.dir = shipped.plugins.dir.clone();
        c.plugins.watch = false;
        c.demo = shipped.demo.clone();
    });
    let r = app.get_one(DEMO_ROOM, demo());
    assert_eq!(r.body, fixture_compact("inquiries.getOne.200.json"));
}

#[test]
fn a_room_with_two_inquiries_answers_the_first_stored() {
    let app = spawn_app();
    let file = app.dir.path().join("two.ndjson");
    std::fs::write(
        &file,
        "{\"_id\":\"zz-first\",\"rid\":\"shared-room\"}\n{\"_id\":\"aa-second\",\"rid\":\"shared-room\"}\n",
    )
    .unwrap();
    let out = app.cli(&["inquiry", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let found = poll_until(std::time::Duration::from_secs(1), || {
        app.get_one("shared-room", demo()).json()["inquiry"]["_id"] == "zz-first"
    });
    assert!(
        found.is_some(),
        "{}",
        app.get_one("shared-room", demo()).body
    );
}
