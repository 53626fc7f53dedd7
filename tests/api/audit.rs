//! The audit trail's readers and its writers not covered elsewhere: `GET inquiryd/audit.list`
//! (paginated, filtered, newest first, `access-permissions`), `inquiryd audit` (table or JSON
//! lines, oldest first), plugin file changes seen by the watcher, imports, retention, and never a
//! secret in an entry.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const PATH: &str = "/api/v1/inquiryd/audit.list";

fn entries(v: &Value) -> &Vec<Value> {
    v["entries"].as_array().expect("entries")
}

fn kinds(v: &Value) -> Vec<&str> {
    entries(v)
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

/// Inserts a record `days_ago` days old straight into the database.
fn old_record(db: &std::path::Path, days_ago: i64, subject: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    conn.execute(
        "INSERT INTO audit (at_ms, actor, actor_kind, kind, subject) VALUES (?1, 'old', 'cli', 'role.add', ?2)",
        rusqlite::params![now_ms - days_ago * 86_400_000, subject],
    )
    .unwrap();
}

#[test]
fn audit_list_is_paginated_newest_first_and_needs_access_permissions() {
    let app = spawn_app();
    let root = admin(&app);
    for role in ["r1", "r2", "r3"] {
        let r = app.post(
            "/api/v1/roles.create",
            &json!({"name": role}).to_string(),
            auth(&root),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(app.get(PATH, None).status, 401);
    assert_eq!(
        app.get(&format!("{PATH}?x=1"), demo()).body,
        r#"{"success":false,"error":"must NOT have additional properties [invalid-params]","errorType":"invalid-params"}"#,
        "the query is checked before the permission"
    );
    assert_eq!(
        app.get(PATH, demo()).body,
        r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#
    );
    let r = app.get(&format!("{PATH}?since=yesterday"), auth(&root));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorType"], "error-invalid-since");

    let v = app.get(&format!("{PATH}?kind=role"), auth(&root)).json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["entries", "count", "offset", "total", "success"]);
    let subjects: Vec<&str> = entries(&v)
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["r3", "r2", "r1"], "newest first");
    let first = &entries(&v)[0];
    assert_eq!(
        (&first["actor"], &first["actorKind"], &first["kind"]),
        (&json!("root"), &json!("rest"), &json!("role.add"))
    );
    assert_eq!(first["before"], Value::Null);
    assert_eq!(first["after"]["scope"], "Users");
    assert!(first["at"].as_str().unwrap().ends_with('Z'));

    let v = app
        .get(&format!("{PATH}?kind=role&offset=1&count=1"), auth(&root))
        .json();
    assert_eq!(
        (
            entries(&v)[0]["subject"].as_str(),
            &v["count"],
            &v["offset"],
            &v["total"]
        ),
        (Some("r2"), &json!(1), &json!(1), &json!(3))
    );
    // The CLI's user add (by this OS user) is there too, apart by actor and by exact kind.
    let v = app
        .get(&format!("{PATH}?kind=user.add"), auth(&root))
        .json();
    assert_eq!(kinds(&v), ["user.add"]);
    assert_eq!(entries(&v)[0]["actorKind"], "cli");
    let v = app.get(&format!("{PATH}?actor=root"), auth(&root)).json();
    assert_eq!(v["total"], 3);
    let v = app
        .get(&format!("{PATH}?since=2999-01-01T00:00:00Z"), auth(&root))
        .json();
    assert_eq!(v["total"], 0);
    let v = app.get(&format!("{PATH}?since=1h"), auth(&root)).json();
    assert!(v["total"].as_i64().unwrap() >= 5, "{v}");
}

#[test]
fn the_cli_prints_the_trail_oldest_first_as_a_table_or_json_lines() {
    let app = spawn_app();
    for role in ["r1", "r2"] {
        assert!(app.cli(&["role", "add", role]).status.success());
    }
    let out = app.cli(&["audit", "--kind", "role"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TIME (UTC)"), "{text}");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].contains("role.add") && lines[1].contains("r1"));
    assert!(lines[2].contains("r2"), "newest last: {text}");

    let out = app.cli(&["audit", "--json", "--since", "1h", "--kind", "role.add"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["subject"], "r1");
    assert_eq!(records[0]["actorKind"], "cli");
    let os_user = records[0]["actor"].as_str().unwrap().to_string();
    let out = app.cli(&["audit", "--json", "--actor", &os_user]);
    assert_eq!(stdout(&out).lines().count(), 2);
    let out = app.cli(&["audit", "--actor", "someone-else", "--json"]);
    assert_eq!(stdout(&out), "");

    for bad in ["yesterday", "1y", "-1h"] {
        let out = app.cli(&["audit", &format!("--since={bad}")]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(stderr(&out).contains("--since"), "{}", stderr(&out));
    }
}

#[test]
fn plugin_file_changes_are_recorded_as_the_watcher() {
    let app = spawn_app();
    let root = admin(&app);
    let file = app.plugins.join("hide.json");
    let good = r#"{"name":"hide","hooks":[{"on":"inquiry.response","when":{"caller":{"roles_none":["admin"]}},"do":[{"op":"remove","path":"/v/token"}]}]}"#;
    std::fs::write(&file, good).unwrap();
    let seen = |kind: &str| {
        let mut found = None;
        poll_until(Duration::from_secs(10), || {
            let v = app.get(&format!("{PATH}?kind={kind}"), auth(&root)).json();
            found = entries(&v).first().cloned();
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {kind} record"))
    };
    let applied = seen("plugin.applied");
    assert_eq!(
        (
            &applied["actor"],
            &applied["actorKind"],
            &applied["subject"]
        ),
        (&json!("watcher"), &json!("watcher"), &json!("hide.json"))
    );
    assert_eq!(applied["before"], Value::Null);
    assert_eq!(applied["after"]["sha256"], sha256_hex(good));

    std::fs::write(&file, r#"{"name":"hide","hooks":[{"on":"nope"}]}"#).unwrap();
    let rejected = seen("plugin.rejected");
    assert_eq!(rejected["before"]["sha256"], sha256_hex(good));
    assert!(rejected["after"]["error"].is_string(), "{rejected}");

    std::fs::remove_file(&file).unwrap();
    let removed = seen("plugin.removed");
    assert_eq!(removed["before"]["sha256"], sha256_hex(good));
    assert_eq!(removed["after"], Value::Null);
}

#[test]
fn every_import_is_recorded_with_its_files_and_counts() {
    let app = spawn_app();
    let file = app.dir.path().join("two.ndjson");
    std::fs::write(
        &file,
        "{\"_id\":\"i1\",\"rid\":\"room1\",\"status\":\"queued\"}\n{\"_id\":\"i2\",\"rid\":\"room2\",\"status\":\"queued\"}\n",
    )
    .unwrap();
    let out = import_files(&app.db, &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = app.cli(&["audit", "--json", "--kind", "inquiry"]);
    let records: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{}", stdout(&out));
    assert_eq!(records[0]["kind"], "inquiry.import");
    assert_eq!(records[0]["actorKind"], "cli");
    assert!(
        records[0]["subject"]
            .as_str()
            .unwrap()
            .ends_with("two.ndjson")
    );
    assert_eq!(records[0]["after"], json!({"records": 2}));
    // A file refused as a whole changed nothing and is not recorded as an import.
    std::fs::write(&file, "{\"rid\":1}\n").unwrap();
    assert!(!import_files(&app.db, &[&file]).status.success());
    let out = app.cli(&["audit", "--json", "--kind", "inquiry"]);
    assert_eq!(stdout(&out).lines().count(), 1);
}

#[test]
fn readers_hide_records_past_retention_before_the_prune() {
    let app = spawn_app_with(|c| c.audit.retention_days = 2);
    old_record(&app.db, 1, "recent");
    old_record(&app.db, 3, "stale");
    let root = admin(&app);
    // The server pruned at start before these rows existed: the reader hides the stale one.
    let v = app.get(&format!("{PATH}?actor=old"), auth(&root)).json();
    let subjects: Vec<&str> = entries(&v)
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["recent"]);
    let config = app.dir.path().join("short.toml");
    std::fs::write(&config, "[audit]\nretention_days = 2\n").unwrap();
    let out = app.cli(&[
        "--config",
        config.to_str().unwrap(),
        "audit",
        "--json",
        "--actor",
        "old",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    // The default retention (90 days) shows both.
    let out = app.cli(&["audit", "--json", "--actor", "old"]);
    assert_eq!(stdout(&out).lines().count(), 2);
}

#[test]
fn a_server_start_prunes_records_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("test.sqlite3");
    {
        let _app = spawn_app_with(|c| c.database.path = db.clone());
        old_record(&db, 3, "stale");
        old_record(&db, 1, "recent");
    }
    let app = spawn_app_with(|c| {
        c.database.path = db.clone();
        c.audit.retention_days = 2;
    });
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut subjects = Vec::new();
    poll_until(Duration::from_secs(10), || {
        let mut stmt = conn
            .prepare("SELECT subject FROM audit WHERE actor = 'old' ORDER BY id")
            .unwrap();
        subjects = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        subjects == ["recent"]
    });
    assert_eq!(subjects, ["recent"]);
    drop(app);
}

#[test]
fn no_password_token_or_hash_ever_reaches_the_trail() {
    let app = spawn_app();
    let password = "correct-horse-battery-staple";
    let out = app.cli_stdin(
        &[
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--role",
            "admin",
        ],
        &format!("{password}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (uid, token) = token_create(&app, "carol");
    let carol = (uid, token.clone());
    poll_until(Duration::from_secs(3), || {
        app.get("/api/v1/me", auth(&carol)).status == 200
    });
    let login = app.post(
        "/api/v1/login",
        &json!({"user": "carol", "password": password}).to_string(),
        None,
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let login_token = login.json()["data"]["authToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        app.cli(&["token", "revoke", "carol", "--token", &token])
            .status
            .success()
    );
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let hash: String = conn
        .query_row(
            "SELECT password_hash FROM users WHERE username = 'carol'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut stmt = conn
        .prepare("SELECT actor || kind || subject || coalesce(before, '') || coalesce(after, '') FROM audit")
        .unwrap();
    let dump: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let dump = dump.join("\n");
    assert!(
        dump.contains("token.revoke") && dump.contains("user.add"),
        "{dump}"
    );
    for secret in [
        password,
        &token,
        &login_token,
        &hash,
        inquiryd::auth::tokens::hash(&token).as_str(),
        inquiryd::auth::tokens::hash(&login_token).as_str(),
        "$argon2",
    ] {
        assert!(!dump.contains(secret), "{secret:?} in the audit trail");
    }
}
