//! Plugin hooks seen over HTTP: a hook written while serving is in force within a second, and
//! hooks never touch error or `null` answers.

use std::time::Duration;

use crate::helpers::*;

const HIDE_TOKEN: &str = r#"{
  "name": "hide-token",
  "hooks": [
    { "on": "inquiry.response",
      "when": { "caller": { "roles_none": ["admin", "livechat-manager"] } },
      "do": [ { "op": "remove", "path": "/v/token" } ] }
  ]
}"#;

#[test]
fn a_new_plugin_file_is_in_force_within_a_second() {
    let app = spawn_app();
    assert!(app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]["token"].is_string());
    std::fs::write(app.plugins.join("hide.json"), HIDE_TOKEN).unwrap();
    let took = poll_until(Duration::from_secs(3), || {
        app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]
            .get("token")
            .is_none()
    })
    .expect("plugin took effect");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // Managers still see it; the rest of the document is untouched and in order.
    let (uid, tok) = app.user_with_token("mgr", &["livechat-manager"]);
    let r = app.get_one(DEMO_ROOM, Some((&uid, &tok)));
    assert_eq!(r.body, fixture_compact("inquiries.getOne.200.json"));
    // Errors and null answers are not touched by hooks.
    assert_eq!(
        app.get_one("no-such-room", demo()).body,
        r#"{"inquiry":null,"success":true}"#
    );
    std::fs::remove_file(app.plugins.join("hide.json")).unwrap();
    let took = poll_until(Duration::from_secs(3), || {
        app.get_one(DEMO_ROOM, demo()).body == fixture_compact("inquiries.getOne.200.json")
    })
    .expect("deletion took effect");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn plugins_schema_prints_the_committed_schema() {
    let out = std::process::Command::new(bin())
        .args(["plugins", "schema"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/plugin.schema.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(printed, committed);
}

#[test]
fn plugins_check_lists_every_problem_and_fails() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("ok.json"), HIDE_TOKEN).unwrap();
    let out = std::process::Command::new(bin())
        .args(["plugins", "check"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(d.path().join("syntax.json"), "{\n  \"name\": \n").unwrap();
    std::fs::write(
        d.path().join("meaning.json"),
        r#"{"name":"m","hooks":[{"on":"inquiry.response","do":[{"op":"explode","path":"/a"}]}]}"#,
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["plugins", "check"])
        .arg(d.path())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("syntax.json:3:"), "line named: {err}");
    assert!(
        err.contains("meaning.json") && err.contains("explode"),
        "op named: {err}"
    );
}

#[test]
fn plugins_preview_shows_what_a_user_would_get() {
    let app = spawn_app();
    std::fs::write(app.plugins.join("hide.json"), HIDE_TOKEN).unwrap();
    let out = app.cli(&[
        "plugins",
        "preview",
        "--room",
        DEMO_ROOM,
        "--as",
        "demo.agent",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["success"], true);
    assert!(v["inquiry"]["v"].get("token").is_none());
    assert_eq!(v["inquiry"]["rid"], DEMO_ROOM);
    let out = app.cli(&["plugins", "preview", "--room", DEMO_ROOM, "--as", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn rendered_answers_follow_role_changes_and_the_clock() {
    let app = spawn_app();
    std::fs::write(app.plugins.join("hide.json"), HIDE_TOKEN).unwrap();
    std::fs::write(
        app.plugins.join("stamp.json"),
        r#"{"name":"stamp","hooks":[{"on":"inquiry.response","do":[{"op":"set","path":"/at","value":"${now}"}]}]}"#,
    )
    .unwrap();
    let stamp = || app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["at"].clone();
    poll_until(Duration::from_secs(3), || stamp().is_string()).expect("plugins in force");
    // `${now}` answers are never reused.
    let first = stamp();
    let changed = poll_until(Duration::from_secs(3), || stamp() != first);
    assert!(changed.is_some(), "the ${{now}} stamp never moved");
    std::fs::remove_file(app.plugins.join("stamp.json")).unwrap();
    poll_until(Duration::from_secs(3), || stamp().is_null()).expect("stamp removed");
    // Repeated identical requests, then a role change: the next answers follow it.
    for _ in 0..3 {
        assert!(
            app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]
                .get("token")
                .is_none()
        );
    }
    let out = app.cli(&["user", "set-roles", "demo.agent", "livechat-manager"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let took = poll_until(Duration::from_secs(3), || {
        app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]["token"].is_string()
    })
    .expect("manager sees the token");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The health entry of plugin file `name`, as a `manage-apps` caller sees it.
fn plugin_health(app: &TestApp, auth: (&str, &str), name: &str) -> serde_json::Value {
    let health = app.get("/health", Some(auth)).json();
    health["plugins"]["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["file"] == name).cloned())
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn health_and_plugins_check_name_the_version_in_force() {
    let app = spawn_app();
    let (uid, tok) = app.user_with_token("boss", &["admin"]);
    let auth = (uid.as_str(), tok.as_str());
    let path = app.plugins.join("hide.json");
    std::fs::write(&path, HIDE_TOKEN).unwrap();
    let good = sha256_hex(HIDE_TOKEN.as_bytes());
    poll_until(Duration::from_secs(10), || {
        plugin_health(&app, auth, "hide.json")["in_force"]["sha256"] == good.as_str()
    })
    .unwrap_or_else(|| panic!("never in force: {}", plugin_health(&app, auth, "hide.json")));
    let f = plugin_health(&app, auth, "hide.json");
    assert_eq!(f["state"], "ok", "{f}");
    assert_eq!(f["last_read"]["sha256"], good.as_str(), "{f}");
    assert_eq!(f["last_read"]["valid"], true, "{f}");
    assert_eq!(f["settling"], false, "{f}");
    let read_at = f["in_force"]["read_at"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(read_at).is_ok(),
        "read_at is a time: {f}"
    );

    // plugins check names the version it read, as the health route does
    let out = app.cli(&["plugins", "check", app.plugins.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!("hide.json: sha256 {good}, read ")) && printed.contains(": ok"),
        "{printed}"
    );

    // a broken save: the good version stays in force, and health says which one it is
    let broken = &HIDE_TOKEN[..HIDE_TOKEN.len() - 4];
    std::fs::write(&path, broken).unwrap();
    poll_until(Duration::from_secs(10), || {
        plugin_health(&app, auth, "hide.json")["state"] == "error"
    })
    .unwrap_or_else(|| panic!("never an error: {}", plugin_health(&app, auth, "hide.json")));
    let f = plugin_health(&app, auth, "hide.json");
    assert_eq!(f["in_force"]["sha256"], good.as_str(), "{f}");
    assert_eq!(f["in_force"]["read_at"], read_at, "{f}");
    assert_eq!(
        f["last_read"]["sha256"],
        sha256_hex(broken.as_bytes()).as_str(),
        "{f}"
    );
    assert_eq!(f["last_read"]["valid"], false, "{f}");
    assert_eq!(f["serving_last_good"], true, "{f}");
    assert!(
        app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]
            .get("token")
            .is_none()
    );
    let out = app.cli(&["plugins", "check", app.plugins.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let printed = stdout(&out);
    let bad = sha256_hex(broken.as_bytes());
    assert!(
        printed.contains(&format!("hide.json: sha256 {bad}, read "))
            && printed.contains(": invalid"),
        "{printed}"
    );
}

#[test]
fn the_version_in_force_names_its_table_files() {
    let app = spawn_app();
    let (uid, tok) = app.user_with_token("boss", &["admin"]);
    let auth = (uid.as_str(), tok.as_str());
    let plugin = r#"{"name":"crm","hooks":[{"on":"inquiry.response","do":[
  {"op":"lookup","path":"/v/crm","key":"/v/username","table_file":"tables/crm.json"}]}]}"#;
    let table_v1 = r#"{"guest-51":{"tier":"gold"}}"#;
    let table_v2 = r#"{"guest-51":{"tier":"silver"}}"#;
    std::fs::create_dir_all(app.plugins.join("tables")).unwrap();
    std::fs::write(app.plugins.join("tables/crm.json"), table_v1).unwrap();
    std::fs::write(app.plugins.join("crm.json"), plugin).unwrap();
    let in_force_table = || {
        plugin_health(&app, auth, "crm.json")["in_force"]["table_files"]["tables/crm.json"].clone()
    };
    poll_until(Duration::from_secs(10), || {
        in_force_table() == sha256_hex(table_v1.as_bytes()).as_str()
    })
    .unwrap_or_else(|| panic!("table v1: {}", plugin_health(&app, auth, "crm.json")));
    let f = plugin_health(&app, auth, "crm.json");
    assert_eq!(
        f["in_force"]["sha256"],
        sha256_hex(plugin.as_bytes()).as_str()
    );
    let out = app.cli(&["plugins", "check", app.plugins.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = format!(
        "crm.json: sha256 {} (tables/crm.json sha256 {}), read ",
        sha256_hex(plugin.as_bytes()),
        sha256_hex(table_v1.as_bytes())
    );
    assert!(stdout(&out).contains(&line), "{}", stdout(&out));

    // a new table alone is a new version of the plugin: same file hash, new table hash
    std::fs::write(app.plugins.join("tables/crm.json"), table_v2).unwrap();
    poll_until(Duration::from_secs(10), || {
        in_force_table() == sha256_hex(table_v2.as_bytes()).as_str()
    })
    .unwrap_or_else(|| panic!("table v2: {}", plugin_health(&app, auth, "crm.json")));
    let g = plugin_health(&app, auth, "crm.json");
    assert_eq!(g["in_force"]["sha256"], f["in_force"]["sha256"]);
    assert_ne!(g["in_force"]["read_at"], f["in_force"]["read_at"], "{g}");
    let served = app.get_one(DEMO_ROOM, demo()).json();
    assert_eq!(served["inquiry"]["v"]["crm"]["tier"], "silver", "{served}");
}
