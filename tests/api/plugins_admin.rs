//! The console's plugin and preview routes under `/api/v1/inquiryd/`: check order, one
//! validator, atomic saves that refuse bad names, paths, symlinks, oversized and invalid files
//! writing nothing, version checks, and previews rendered by the live endpoint's code.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{DEMO_ROOM, TestApp, demo, poll_until, spawn_app};

const MASK: &str = r#"{
  "name": "mask",
  "priority": 20,
  "hooks": [
    {
      "on": "inquiry.response",
      "when": { "caller": { "roles_none": ["admin", "livechat-manager"] } },
      "do": [
        { "op": "mask", "path": "/v/username", "keep_start": 2 }
      ]
    }
  ]
}
"#;

fn admin(app: &TestApp) -> (String, String) {
    app.user_with_token("plugin.admin", &["admin"])
}

fn post(app: &TestApp, route: &str, body: &Value, auth: (&str, &str)) -> crate::helpers::Resp {
    app.post(
        &format!("/api/v1/inquiryd/{route}"),
        &body.to_string(),
        Some(auth),
    )
}

/// The directory's entries, sorted: what a refused request must leave as it was.
fn listing(app: &TestApp) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&app.plugins)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn plugin_routes_answer_401_then_400_then_403() {
    let app = spawn_app();
    let body = json!({"name": "mask.json", "content": MASK}).to_string();
    let not_logged_in = app.post("/api/v1/inquiryd/plugins.save", "{", None);
    assert_eq!(not_logged_in.status, 401);
    assert_eq!(
        not_logged_in.json()["error"],
        "You must be logged in to do this."
    );
    // the demo agent lacks manage-apps: a bad body is still a 400 first
    let bad = app.post("/api/v1/inquiryd/plugins.save", "{", demo());
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["errorType"], "invalid-params");
    let unknown = app.post(
        "/api/v1/inquiryd/plugins.save",
        &json!({"name": "a.json", "content": "{}", "x": 1}).to_string(),
        demo(),
    );
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.json()["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `x`"),
        "{}",
        unknown.body
    );
    let forbidden = app.post("/api/v1/inquiryd/plugins.save", &body, demo());
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.body,
        r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#
    );
    for route in [
        "plugins.list",
        "plugins.get?name=mask.json",
        "rooms.search?q=k",
    ] {
        let r = app.get(&format!("/api/v1/inquiryd/{route}"), demo());
        assert_eq!(r.status, 403, "{route}");
    }
    assert_eq!(listing(&app), Vec::<String>::new(), "nothing written");
    let (uid, tok) = admin(&app);
    let ok = app.post("/api/v1/inquiryd/plugins.save", &body, Some((&uid, &tok)));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["success"], true);
    assert_eq!(
        app.get("/api/v1/inquiryd/plugins.list", Some((&uid, &tok)))
            .status,
        200
    );
    assert_eq!(
        app.get("/api/v1/inquiryd/plugins.save", Some((&uid, &tok)))
            .status,
        405
    );
}

#[test]
fn a_save_is_in_force_for_the_next_request() {
    let app = spawn_app();
    let (uid, tok) = admin(&app);
    let auth = (uid.as_str(), tok.as_str());
    assert_eq!(
        app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]["username"],
        "guest-51"
    );
    let r = post(
        &app,
        "plugins.save",
        &json!({"name": "mask.json", "content": MASK}),
        auth,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["plugin"]["state"]["state"], "ok");
    assert_eq!(r.json()["plugin"]["sha256"], sha256_hex(MASK.as_bytes()));
    // no wait: the save answered once the new version was in force
    assert_eq!(
        app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]["username"],
        "gu******"
    );
    assert_eq!(
        std::fs::read_to_string(app.plugins.join("mask.json")).unwrap(),
        MASK
    );
    assert_eq!(listing(&app), ["mask.json"], "no temporary file left");

    // disable, then enable: each in force at once, the rest of the file kept
    let r = post(
        &app,
        "plugins.setEnabled",
        &json!({"name": "mask.json", "enabled": false}),
        auth,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["plugin"]["state"]["state"], "disabled");
    assert_eq!(
        app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]["username"],
        "guest-51"
    );
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(app.plugins.join("mask.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["enabled"], false);
    assert_eq!(on_disk["priority"], 20);
    let r = post(
        &app,
        "plugins.setEnabled",
        &json!({"name": "mask.json", "enabled": true}),
        auth,
    );
    assert_eq!(r.json()["plugin"]["state"]["state"], "ok", "{}", r.body);
    assert_eq!(
        app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]["username"],
        "gu******"
    );

    // delete: its hooks leave force before the answer
    let r = post(&app, "plugins.delete", &json!({"name": "mask.json"}), auth);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]["username"],
        "guest-51"
    );
    assert!(listing(&app).is_empty());
    let again = post(&app, "plugins.delete", &json!({"name": "mask.json"}), auth);
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["errorType"], "error-plugin-not-found");
}

#[test]
fn bad_saves_name_the_problem_and_write_nothing() {
    let app = spawn_app();
    let (uid, tok) = admin(&app);
    let auth = (uid.as_str(), tok.as_str());
    std::fs::write(app.plugins.join("kept.json"), MASK).unwrap();
    let outside = app.dir.path().join("outside.json");
    std::fs::write(&outside, "{}").unwrap();
    std::os::unix::fs::symlink(&outside, app.plugins.join("link.json")).unwrap();
    std::fs::create_dir(app.plugins.join("dir.json")).unwrap();
    let before = listing(&app);

    for name in [
        "../escape.json",
        "sub/x.json",
        "/etc/x.json",
        ".hidden.json",
        "x.txt",
        "x.json.tmp",
        "plugin.schema.json",
        "",
        "a b.json",
    ] {
        let r = post(
            &app,
            "plugins.save",
            &json!({"name": name, "content": MASK}),
            auth,
        );
        assert_eq!(r.status, 400, "{name:?}: {}", r.body);
        assert_eq!(
            r.json()["errorType"],
            "error-invalid-plugin-name",
            "{name:?}"
        );
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("Invalid plugin file name"),
            "{}",
            r.body
        );
    }
    for (name, what) in [
        ("link.json", "a symlink"),
        ("dir.json", "not a regular file"),
    ] {
        let r = post(
            &app,
            "plugins.save",
            &json!({"name": name, "content": MASK}),
            auth,
        );
        assert_eq!(r.status, 400, "{name}: {}", r.body);
        assert_eq!(r.json()["errorType"], "error-plugin-not-regular");
        assert!(
            r.json()["error"].as_str().unwrap().contains(what),
            "{}",
            r.body
        );
    }
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        "{}",
        "the link's target is untouched"
    );

    // invalid JSON: a 400 naming line and column, nothing written
    let broken = MASK.replace("\"priority\": 20,", "\"priority\": 20");
    let r = post(
        &app,
        "plugins.save",
        &json!({"name": "kept.json", "content": broken}),
        auth,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    assert_eq!(v["errorType"], "error-invalid-plugin");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid plugin file: kept.json:4:"),
        "{}",
        r.body
    );
    assert_eq!(v["details"]["errors"][0]["line"], 4, "{}", r.body);
    // valid JSON, invalid plugin: the pointer, located at its line
    let typo = MASK.replace("\"op\": \"mask\"", "\"op\": \"maks\"");
    let r = post(
        &app,
        "plugins.save",
        &json!({"name": "new.json", "content": typo}),
        auth,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let e = &r.json()["details"]["errors"][0];
    assert_eq!(e["pointer"], "/hooks/0/do/0/op", "{e}");
    assert_eq!(e["line"], 9, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown op \"maks\""),
        "{e}"
    );

    // over the 1 MiB file limit, and over the body limit
    let big = format!(
        "{{\"name\":\"x\",\"hooks\":[],\"description\":\"{}\"}}",
        "a".repeat(1 << 20)
    );
    let r = post(
        &app,
        "plugins.save",
        &json!({"name": "big.json", "content": big}),
        auth,
    );
    assert_eq!(r.status, 413, "{}", &r.body[..r.body.len().min(200)]);
    assert_eq!(r.json()["errorType"], "error-plugin-too-large");
    let huge = json!({"name": "big.json", "content": "a".repeat(5 << 20)});
    let r = post(&app, "plugins.save", &huge, auth);
    assert_eq!(r.status, 413);
    assert!(
        r.json()["error"].as_str().unwrap().contains("4 MiB"),
        "{}",
        r.body
    );
    // the other routes keep the 64 KiB limit
    let r = post(
        &app,
        "plugins.delete",
        &json!({"name": "a".repeat(70_000)}),
        auth,
    );
    assert_eq!(r.status, 413);

    assert_eq!(
        listing(&app),
        before,
        "nothing written, no temporary file left"
    );
    assert_eq!(
        std::fs::read_to_string(app.plugins.join("kept.json")).unwrap(),
        MASK
    );
}

#[test]
fn a_stale_version_is_refused_and_concurrent_saves_never_mix() {
    let app = spawn_app();
    let (uid, tok) = admin(&app);
    let auth = (uid.as_str(), tok.as_str());
    // "" means: the file must not exist yet
    let r = post(
        &app,
        "plugins.save",
        &json!({"name": "mask.json", "content": MASK, "sha256": ""}),
        auth,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let opened = app
        .get("/api/v1/inquiryd/plugins.get?name=mask.json", Some(auth))
        .json();
    assert_eq!(opened["plugin"]["content"], MASK);
    let sha = opened["plugin"]["sha256"].as_str().unwrap().to_string();
    let first = MASK.replace("\"priority\": 20", "\"priority\": 21");
    let r = post(
        &app,
        "plugins.save",
        &json!({"name": "mask.json", "content": first, "sha256": sha}),
        auth,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // a second admin saving from the same opened version is refused
    let second = MASK.replace("\"priority\": 20", "\"priority\": 22");
    let r = post(
        &app,
        "plugins.save",
        &json!({"name": "mask.json", "content": second, "sha256": sha}),
        auth,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["errorType"], "error-plugin-changed");
    assert_eq!(
        std::fs::read_to_string(app.plugins.join("mask.json")).unwrap(),
        first
    );

    // without a version, concurrent saves: the file is always one of them, whole
    let versions: Vec<String> = (0..8)
        .map(|i| MASK.replace("\"priority\": 20", &format!("\"priority\": {}", 100 + i)))
        .collect();
    let app_ref = &app;
    std::thread::scope(|s| {
        for v in &versions {
            s.spawn(move || {
                let r = post(
                    app_ref,
                    "plugins.save",
                    &json!({"name": "mask.json", "content": v}),
                    auth,
                );
                assert_eq!(r.status, 200, "{}", r.body);
            });
        }
    });
    let now = std::fs::read_to_string(app.plugins.join("mask.json")).unwrap();
    assert!(versions.contains(&now), "a mix: {now}");
    assert_eq!(listing(&app), ["mask.json"]);
}

#[test]
fn validate_uses_the_servers_validator_and_writes_nothing() {
    let app = spawn_app();
    let (uid, tok) = admin(&app);
    let auth = (uid.as_str(), tok.as_str());
    let r = post(
        &app,
        "plugins.validate",
        &json!({"name": "mask.json", "content": MASK}),
        auth,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["valid"], true);
    assert_eq!(v["hooks"], 1);
    assert_eq!(v["enabled"], true);
    let bad = MASK.replace("\"keep_start\": 2", "\"keep_start\": -2");
    let v = post(
        &app,
        "plugins.validate",
        &json!({"name": "mask.json", "content": bad}),
        auth,
    )
    .json();
    assert_eq!(v["valid"], false, "{v}");
    let e = &v["errors"][0];
    assert!(e["text"].as_str().unwrap().starts_with("mask.json:"), "{e}");
    assert!(e["line"].is_u64(), "{e}");
    // the same problem, in the same words, as plugins check prints
    let check_dir = app.dir.path().join("check");
    std::fs::create_dir(&check_dir).unwrap();
    std::fs::write(check_dir.join("mask.json"), &bad).unwrap();
    let out = app.cli(&["plugins", "check", check_dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let printed = crate::helpers::stderr(&out);
    assert!(
        printed.contains(e["message"].as_str().unwrap()),
        "{printed} vs {e}"
    );
    assert!(listing(&app).is_empty());
}

#[test]
fn list_shows_an_error_at_its_place_with_the_last_good_version_in_force() {
    let app = spawn_app();
    let (uid, tok) = admin(&app);
    let auth = (uid.as_str(), tok.as_str());
    post(
        &app,
        "plugins.save",
        &json!({"name": "mask.json", "content": MASK}),
        auth,
    );
    std::fs::write(app.plugins.join("mask.json"), &MASK[..MASK.len() - 4]).unwrap();
    let entry = || {
        app.get("/api/v1/inquiryd/plugins.list", Some(auth)).json()["plugins"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["file"] == "mask.json").cloned())
            .unwrap_or(Value::Null)
    };
    poll_until(Duration::from_secs(10), || entry()["state"] == "error")
        .unwrap_or_else(|| panic!("never an error: {}", entry()));
    let f = entry();
    assert_eq!(f["serving_last_good"], true, "{f}");
    assert!(
        f["error"].as_str().unwrap().contains("mask.json:"),
        "file:line:column: {f}"
    );
    let list = app.get("/api/v1/inquiryd/plugins.list", Some(auth)).json();
    assert!(list["lastError"].is_string(), "{list}");
    assert!(list["lastReload"].is_string(), "{list}");
    // still masked: the last good version
    assert_eq!(
        app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]["username"],
        "gu******"
    );
}

#[test]
fn preview_renders_saved_and_draft_for_a_user_or_a_set_of_roles() {
    let app = spawn_app();
    let (uid, tok) = admin(&app);
    let auth = (uid.as_str(), tok.as_str());
    let draft = json!({"name": "mask.json", "content": MASK});
    let as_agent = post(
        &app,
        "plugins.preview",
        &json!({"roomId": DEMO_ROOM, "username": "demo.agent", "draft": draft}),
        auth,
    );
    assert_eq!(as_agent.status, 200, "{}", as_agent.body);
    let v = as_agent.json();
    assert_eq!(v["stored"]["v"]["username"], "guest-51");
    assert_eq!(v["saved"]["status"], 200);
    assert_eq!(v["saved"]["body"]["inquiry"]["v"]["username"], "guest-51");
    assert_eq!(v["draft"]["status"], 200);
    assert_eq!(v["draft"]["body"]["inquiry"]["v"]["username"], "gu******");
    assert_eq!(v["draft"]["body"]["success"], true);
    // the saved answer is byte for byte what the live endpoint sends
    let live: Value = app.get_one(DEMO_ROOM, demo()).json();
    assert_eq!(v["saved"]["body"], live);

    let as_manager = post(
        &app,
        "plugins.preview",
        &json!({"roomId": DEMO_ROOM, "roles": ["livechat-manager"], "draft": draft}),
        auth,
    )
    .json();
    assert_eq!(
        as_manager["draft"]["body"]["inquiry"]["v"]["username"],
        "guest-51"
    );
    // a caller without view-l-room gets the live endpoint's 403
    let as_nobody = post(
        &app,
        "plugins.preview",
        &json!({"roomId": DEMO_ROOM, "roles": []}),
        auth,
    )
    .json();
    assert_eq!(as_nobody["saved"]["status"], 403);
    // an invalid draft: its problems, no answer
    let bad = json!({"name": "mask.json", "content": "{"});
    let v = post(
        &app,
        "plugins.preview",
        &json!({"roomId": DEMO_ROOM, "username": "demo.agent", "draft": bad}),
        auth,
    )
    .json();
    assert_eq!(v["draft"]["valid"], false, "{v}");
    assert_eq!(v["draft"]["errors"][0]["line"], 1, "{v}");
    // an unknown room: the endpoint's null
    let v = post(
        &app,
        "plugins.preview",
        &json!({"roomId": "nope", "username": "demo.agent"}),
        auth,
    )
    .json();
    assert_eq!(v["stored"], Value::Null);
    assert_eq!(v["saved"]["body"]["inquiry"], Value::Null);
    // bad callers
    for body in [
        json!({"roomId": DEMO_ROOM}),
        json!({"roomId": DEMO_ROOM, "username": "demo.agent", "roles": []}),
    ] {
        let r = post(&app, "plugins.preview", &body, auth);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    let r = post(
        &app,
        "plugins.preview",
        &json!({"roomId": DEMO_ROOM, "username": "nobody"}),
        auth,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorType"], "error-invalid-user");
    assert!(listing(&app).is_empty(), "a preview writes nothing");

    // a draft takes its saved file's place: disabling it in the draft clears the mask
    post(&app, "plugins.save", &draft, auth);
    let off = json!({"name": "mask.json", "content": MASK.replace("\"priority\"", "\"enabled\": false, \"priority\"")});
    let v = post(
        &app,
        "plugins.preview",
        &json!({"roomId": DEMO_ROOM, "username": "demo.agent", "draft": off}),
        auth,
    )
    .json();
    assert_eq!(
        v["saved"]["body"]["inquiry"]["v"]["username"], "gu******",
        "{v}"
    );
    assert_eq!(
        v["draft"]["body"]["inquiry"]["v"]["username"], "guest-51",
        "{v}"
    );
}

#[test]
fn rooms_search_finds_a_room_by_id_or_inquiry_name() {
    let app = spawn_app();
    let (uid, tok) = admin(&app);
    let auth = Some((uid.as_str(), tok.as_str()));
    for q in ["KOOK", "yy8Sm"] {
        let v = app
            .get(&format!("/api/v1/inquiryd/rooms.search?q={q}"), auth)
            .json();
        assert_eq!(v["rooms"][0]["roomId"], DEMO_ROOM, "{q}: {v}");
        assert_eq!(v["rooms"][0]["name"], "kookie");
    }
    let v = app.get("/api/v1/inquiryd/rooms.search?q=%25", auth).json();
    assert_eq!(v["rooms"], json!([]), "% is matched literally: {v}");
    assert_eq!(
        app.get("/api/v1/inquiryd/rooms.search?x=1", auth).status,
        400
    );
}

/// The audit rows of plugin changes: actor, actor kind, kind, subject, before, after.
fn plugin_audit(app: &TestApp) -> Vec<(String, String, String, String, Value, Value)> {
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT actor, actor_kind, kind, subject, before, after FROM audit
             WHERE kind LIKE 'plugin.%' ORDER BY id",
        )
        .unwrap();
    let json =
        |text: Option<String>| text.map_or(Value::Null, |t| serde_json::from_str(&t).unwrap());
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            json(r.get(4)?),
            json(r.get(5)?),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn every_plugin_change_is_audited_with_the_rest_user_and_the_file_hashes() {
    let app = spawn_app();
    let (id, token) = admin(&app);
    let auth = (id.as_str(), token.as_str());
    let file = |r: crate::helpers::Resp| -> String {
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["plugin"]["sha256"].as_str().unwrap().to_string()
    };
    let created = file(post(
        &app,
        "plugins.save",
        &json!({"name": "mask.json", "content": MASK}),
        auth,
    ));
    assert_eq!(created, sha256_hex(MASK.as_bytes()));
    let disabled = file(post(
        &app,
        "plugins.setEnabled",
        &json!({"name": "mask.json", "enabled": false}),
        auth,
    ));
    let enabled = file(post(
        &app,
        "plugins.setEnabled",
        &json!({"name": "mask.json", "enabled": true}),
        auth,
    ));
    // refused changes record nothing: invalid JSON, a stale version, a delete of no file
    let invalid = post(
        &app,
        "plugins.save",
        &json!({"name": "mask.json", "content": "{"}),
        auth,
    );
    assert_eq!(invalid.status, 400, "{}", invalid.body);
    let stale = post(
        &app,
        "plugins.save",
        &json!({"name": "mask.json", "content": MASK, "sha256": created}),
        auth,
    );
    assert_eq!(stale.status, 409, "{}", stale.body);
    let missing = post(&app, "plugins.delete", &json!({"name": "none.json"}), auth);
    assert_eq!(missing.status, 400, "{}", missing.body);
    let deleted = post(&app, "plugins.delete", &json!({"name": "mask.json"}), auth);
    assert_eq!(deleted.status, 200, "{}", deleted.body);

    let rest = |kind: &str, before: Value, after: Value| {
        (
            "plugin.admin".to_string(),
            "rest".to_string(),
            kind.to_string(),
            "mask.json".to_string(),
            before,
            after,
        )
    };
    let watcher = |kind: &str, before: Value, after: Value| {
        let (_, _, kind, subject, before, after) = rest(kind, before, after);
        (
            "watcher".into(),
            "watcher".into(),
            kind,
            subject,
            before,
            after,
        )
    };
    let sha = |s: &str| json!({ "sha256": s });
    // Each change is then applied once, by the save's own rescan or by the watcher's (whichever
    // takes the lock first, so its entry may come just before the REST user's or just after).
    let (by_rest, by_watcher): (Vec<_>, Vec<_>) =
        plugin_audit(&app).into_iter().partition(|e| e.1 == "rest");
    assert_eq!(
        by_rest,
        vec![
            rest("plugin.save", Value::Null, sha(&created)),
            rest("plugin.disable", sha(&created), sha(&disabled)),
            rest("plugin.enable", sha(&disabled), sha(&enabled)),
            rest("plugin.delete", sha(&enabled), Value::Null),
        ]
    );
    assert_eq!(
        by_watcher,
        vec![
            watcher("plugin.applied", Value::Null, sha(&created)),
            watcher("plugin.applied", sha(&created), sha(&disabled)),
            watcher("plugin.applied", sha(&disabled), sha(&enabled)),
            watcher("plugin.removed", sha(&enabled), Value::Null),
        ]
    );
}
