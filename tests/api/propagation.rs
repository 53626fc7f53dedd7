//! CLI changes reach the running server within one second, without restart.

use std::time::Duration;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(1);

fn within_a_second(what: &str, check: impl FnMut() -> bool) {
    let took = poll_until(Duration::from_secs(3), check)
        .unwrap_or_else(|| panic!("{what}: not visible after 3 s"));
    assert!(took < LIMIT, "{what}: took {took:?}");
}

#[test]
fn new_token_works_and_revoked_token_stops() {
    let app = spawn_app();
    let out = app.cli_stdin(
        &[
            "user",
            "add",
            "gina",
            "--role",
            "livechat-agent",
            "--password-stdin",
        ],
        "x\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (uid, tok) = token_create(&app, "gina");
    within_a_second("new token", || {
        app.get_one(DEMO_ROOM, Some((&uid, &tok))).status == 200
    });
    assert!(
        app.cli(&["token", "revoke", "gina", "--token", &tok])
            .status
            .success()
    );
    within_a_second("revoked token", || {
        app.get_one(DEMO_ROOM, Some((&uid, &tok))).status == 401
    });
}

#[test]
fn deactivation_and_activation_take_effect() {
    let app = spawn_app();
    let (uid, tok) = app.user_with_token("hank", &["livechat-manager"]);
    within_a_second("token", || {
        app.get_one(DEMO_ROOM, Some((&uid, &tok))).status == 200
    });
    assert!(app.cli(&["user", "deactivate", "hank"]).status.success());
    within_a_second("deactivated", || {
        app.get_one(DEMO_ROOM, Some((&uid, &tok))).status == 401
    });
    assert!(app.cli(&["user", "activate", "hank"]).status.success());
    // Deactivation revoked the old token (as Rocket.Chat does); a new one works at once.
    let (uid2, tok2) = token_create(&app, "hank");
    assert_eq!(uid2, uid);
    assert_eq!(app.get_one(DEMO_ROOM, Some((&uid, &tok2))).status, 200);
    assert_eq!(app.get_one(DEMO_ROOM, Some((&uid, &tok))).status, 401);
}

#[test]
fn permission_revoke_and_grant_take_effect() {
    let app = spawn_app();
    let out = app.cli(&["permission", "revoke", "view-l-room", "livechat-agent"]);
    assert!(out.status.success(), "{}", stderr(&out));
    within_a_second("revoked", || app.get_one(DEMO_ROOM, demo()).status == 403);
    assert!(
        app.cli(&["permission", "grant", "view-l-room", "livechat-agent"])
            .status
            .success()
    );
    within_a_second("granted", || app.get_one(DEMO_ROOM, demo()).status == 200);
}

#[test]
fn role_change_takes_effect() {
    let app = spawn_app();
    let (uid, tok) = app.user_with_token("ivy", &["user"]);
    within_a_second("no role", || {
        app.get_one(DEMO_ROOM, Some((&uid, &tok))).status == 403
    });
    assert!(
        app.cli(&["user", "set-roles", "ivy", "livechat-monitor"])
            .status
            .success()
    );
    within_a_second("monitor", || {
        app.get_one(DEMO_ROOM, Some((&uid, &tok))).status == 200
    });
}

#[test]
fn imported_inquiry_is_served_within_a_second() {
    let app = spawn_app();
    let file = app.dir.path().join("new.ndjson");
    std::fs::write(
        &file,
        "{\"_id\":\"n1\",\"rid\":\"room-new\",\"status\":\"queued\",\"n\":1.5}\n",
    )
    .unwrap();
    // Keep a worker busy so it holds a read snapshot while the import lands.
    assert_eq!(
        app.get_one("room-new", demo()).json()["inquiry"],
        serde_json::Value::Null
    );
    let out = app.cli(&["inquiry", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    within_a_second("imported inquiry", || {
        app.get_one("room-new", demo()).body
            == r#"{"inquiry":{"_id":"n1","rid":"room-new","status":"queued","n":1.5},"success":true}"#
    });
}

/// An import beside a running server goes through the WAL and leaves the copy into the database
/// file to the server, whose checkpointer also cuts the large WAL back to nothing afterwards.
#[test]
fn an_import_beside_the_server_is_checkpointed_and_its_wal_truncated_by_the_server() {
    let app = spawn_app();
    assert_eq!(app.get_one(DEMO_ROOM, demo()).status, 200);
    let file = app.dir.path().join("many.ndjson");
    let filler = "x".repeat(300);
    let lines: String = (0..40_000)
        .map(|i| format!("{{\"_id\":\"m{i}\",\"rid\":\"room-m{i}\",\"note\":\"{filler}\"}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let before = std::fs::metadata(&app.db).unwrap().len();
    let out = app.cli(&["inquiry", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wal = app.db.with_file_name("test.sqlite3-wal");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    // 40,000 documents of ~350 bytes: over 12 MB the file must grow by once checkpointed.
    let done = poll_until(Duration::from_secs(20), || {
        size(&app.db) >= before + 12_000_000 && size(&wal) == 0
    });
    assert!(
        done.is_some(),
        "database {} bytes (was {before}), WAL {} bytes",
        size(&app.db),
        size(&wal)
    );
    let body = app.get_one("room-m39999", demo()).json();
    assert_eq!(body["inquiry"]["_id"], "m39999");
}

#[test]
fn an_idle_server_holds_no_read_snapshot() {
    // Workers keep a read snapshot for a few milliseconds under load; idle, they must let it go,
    // or the WAL could never be checkpointed past it.
    let app = spawn_app();
    assert_eq!(app.get_one(DEMO_ROOM, demo()).status, 200);
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let released = poll_until(Duration::from_secs(3), || {
        // (busy, log frames, checkpointed frames): busy 0 and all frames backfilled.
        let (busy, log, done): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        busy == 0 && log == done
    });
    assert!(released.is_some(), "a worker still holds a read snapshot");
}
