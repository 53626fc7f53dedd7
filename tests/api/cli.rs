//! The real binary: commands, output, exit codes, start-up refusals, graceful stop.

use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

fn tmp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("x.sqlite3");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    (dir, db)
}

/// Writes `bad.ndjson` in `dir`: a good record (room `rb`), then on line 2 one without `rid`.
fn bad_ndjson(dir: &std::path::Path) -> std::path::PathBuf {
    let bad = dir.join("bad.ndjson");
    std::fs::write(&bad, "{\"_id\":\"b1\",\"rid\":\"rb\"}\n{\"_id\":\"b2\"}\n").unwrap();
    bad
}

#[test]
fn help_explains_every_command() {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    for cmd in ["serve", "user", "token", "permission", "inquiry", "plugins"] {
        assert!(text.contains(cmd), "--help lacks {cmd}: {text}");
    }
    let out = Command::new(bin())
        .args(["token", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("revoke"));
}

#[test]
fn bad_usage_exits_2() {
    let out = Command::new(bin())
        .args(["user", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let (_d, db) = tmp_db();
    let out = cli_with_stdin(&db, &["user", "add", "bad name"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn user_token_and_permission_commands() {
    let (_d, db) = tmp_db();
    let out = cli_with_stdin(
        &db,
        &[
            "user",
            "add",
            "zoe",
            "--name",
            "Zoe Z",
            "--role",
            "livechat-agent",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli_with_stdin(&db, &["user", "add", "zoe"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"));
    let out = cli_with_stdin(&db, &["user", "list"], None);
    let list = stdout(&out);
    assert!(
        list.contains("zoe") && list.contains("livechat-agent") && list.contains("Zoe Z"),
        "{list}"
    );
    let out = cli_with_stdin(&db, &["token", "create", "zoe"], None);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["userId", "authToken"]);
    let out = cli_with_stdin(&db, &["token", "create", "nobody"], None);
    assert_eq!(out.status.code(), Some(1));
    let out = cli_with_stdin(&db, &["token", "revoke", "zoe", "--all"], None);
    assert!(stdout(&out).contains("revoked 1"), "{}", stdout(&out));
    let out = cli_with_stdin(&db, &["permission", "list"], None);
    let perms = stdout(&out);
    let line = perms
        .lines()
        .find(|l| l.starts_with("view-l-room "))
        .expect("view-l-room listed");
    for role in [
        "livechat-manager",
        "livechat-monitor",
        "livechat-agent",
        "admin",
    ] {
        assert!(line.contains(role), "{line}");
    }
}

#[test]
fn password_stdin_must_not_be_empty() {
    let (_d, db) = tmp_db();
    let out = cli_with_stdin(&db, &["user", "add", "p", "--password-stdin"], Some(""));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn import_formats_and_all_or_nothing() {
    let (d, db) = tmp_db();
    let array = d.path().join("a.json");
    std::fs::write(
        &array,
        r#"[{"_id":"arr-1","rid":"r1","x":1},{"_id":"arr-2","rid":"r2"}]"#,
    )
    .unwrap();
    let mongo = d.path().join("m.json");
    std::fs::write(
        &mongo,
        concat!(
            r#"{"_id":{"$oid":"6560940c6a1ef5b1a2bf9399"},"rid":"r3","ts":{"$date":"2023-11-24T12:16:12.370Z"},"t2":{"$date":{"$numberLong":"1700828172370"}}}"#,
            "\n"
        ),
    )
    .unwrap();
    let bad = bad_ndjson(d.path());
    let out = import_files(&db, &[&array, &mongo]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = import_files(&db, &[&bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 2") && err.contains("\"/rid\""), "{err}");
    let out = cli_with_stdin(&db, &["inquiry", "list"], None);
    let list = stdout(&out);
    assert!(
        list.contains("r1") && list.contains("r2") && list.contains("r3"),
        "{list}"
    );
    assert!(!list.contains("rb"), "nothing from the bad file: {list}");
    // Upsert by _id.
    std::fs::write(&array, r#"[{"_id":"arr-1","rid":"r1","x":2}]"#).unwrap();
    assert!(import_files(&db, &[&array]).status.success());
    let out = cli_with_stdin(&db, &["inquiry", "list"], None);
    assert_eq!(stdout(&out).matches("arr-1").count(), 1);
}

#[test]
fn import_into_a_new_database_leaves_one_whole_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let (d, db) = tmp_db();
    let good = d.path().join("good.ndjson");
    std::fs::write(
        &good,
        "{\"_id\":\"g1\",\"rid\":\"rg1\"}\n{\"_id\":\"g2\",\"rid\":\"rg2\"}\n",
    )
    .unwrap();
    let bad = bad_ndjson(d.path());
    let out = import_files(&db, &[&good, &bad]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("good.ndjson: imported 2 inquiries"));
    assert!(stderr(&out).contains("bad.ndjson: nothing imported"));
    // Built beside it and moved into place: nothing else is left in the directory.
    let names: Vec<_> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["x.sqlite3"]);
    let meta = std::fs::metadata(&db).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // Header bytes 18 and 19 are 2 in WAL mode, as every database inquiryd opens.
    let header = std::fs::read(&db).unwrap();
    assert_eq!(header[18..20], [2, 2]);
    let list = stdout(&cli_with_stdin(&db, &["inquiry", "list"], None));
    assert!(list.contains("rg1") && list.contains("rg2"), "{list}");
    assert!(!list.contains("rb"), "nothing from the bad file: {list}");
    // It is an ordinary database from then on: users, and imports into it.
    let out = cli_with_stdin(
        &db,
        &["user", "add", "ann", "--role", "livechat-agent"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&good, "{\"_id\":\"g3\",\"rid\":\"rg3\"}\n").unwrap();
    let out = import_files(&db, &[&good]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&cli_with_stdin(&db, &["inquiry", "list"], None));
    assert!(list.contains("rg1") && list.contains("rg3"), "{list}");
}

/// Into an existing database nothing else has open, an import writes through a rollback journal
/// (each page once) and leaves the database in WAL mode with no journal beside it; with another
/// connection open (a server) it goes through the WAL without waiting for that one to close.
#[test]
fn import_into_an_existing_database_alone_or_shared_leaves_it_in_wal_mode() {
    let (d, db) = tmp_db();
    let out = cli_with_stdin(&db, &["inquiry", "list"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let header_mode = |db: &std::path::Path| std::fs::read(db).unwrap()[18..20].to_vec();
    let journal = d.path().join("data").join("x.sqlite3-journal");
    let good = d.path().join("good.ndjson");
    std::fs::write(&good, "{\"_id\":\"g1\",\"rid\":\"rg1\"}\n").unwrap();
    let bad = bad_ndjson(d.path());
    let out = import_files(&db, &[&good, &bad]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(header_mode(&db), [2, 2], "back in WAL mode");
    assert!(!journal.exists(), "no journal left beside it");
    let list = stdout(&cli_with_stdin(&db, &["inquiry", "list"], None));
    assert!(list.contains("rg1") && !list.contains("rb"), "{list}");

    // Another connection that has read, as a server's: the import must not wait for it.
    let other = rusqlite::Connection::open(&db).unwrap();
    let count = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT count(*) FROM inquiries", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&other), 1);
    std::fs::write(&good, "{\"_id\":\"g2\",\"rid\":\"rg2\"}\n").unwrap();
    let started = std::time::Instant::now();
    let out = import_files(&db, &[&good]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "waited for the other connection: {:?}",
        started.elapsed()
    );
    assert_eq!(count(&other), 2);
    assert_eq!(header_mode(&db), [2, 2]);
}

#[test]
fn config_errors_exit_2_naming_the_key() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.toml");
    std::fs::write(&cfg, "[server]\nbindd = \"x\"\n").unwrap();
    let out = Command::new(bin())
        .args(["--config", cfg.to_str().unwrap(), "user", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bindd"), "{}", stderr(&out));
    let out = Command::new(bin())
        .args(["serve", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent.toml"));
    let out = Command::new(bin())
        .args(["user", "list", "--config", cfg.to_str().unwrap()])
        .env("INQUIRYD_SERVER_BND", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn foreign_or_newer_database_is_refused_untouched() {
    let d = tempfile::tempdir().unwrap();
    let junk = d.path().join("junk.sqlite3");
    std::fs::write(
        &junk,
        b"this is not a database at all, just text. ".repeat(200),
    )
    .unwrap();
    let before = std::fs::read(&junk).unwrap();
    let out = cli_with_stdin(&junk, &["user", "list"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("junk.sqlite3"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&junk).unwrap(), before);
    let newer = d.path().join("newer.sqlite3");
    {
        let c = rusqlite::Connection::open(&newer).unwrap();
        c.execute_batch("CREATE TABLE t(x); PRAGMA user_version = 999;")
            .unwrap();
    }
    let out = cli_with_stdin(&newer, &["user", "list"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("newer"), "{}", stderr(&out));
}

#[test]
fn database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, db) = tmp_db();
    assert!(
        cli_with_stdin(&db, &["user", "list"], None)
            .status
            .success()
    );
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn sigterm_stops_gracefully_with_exit_0() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("plugins")).unwrap();
    let mut server = Server::start(d.path(), &["--db", "s.sqlite3"]);
    let r = reqwest::blocking::get(format!("{}/api/info", server.base)).unwrap();
    assert_eq!(r.status(), 200);
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exited within 10 s");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn missing_explicit_plugins_dir_is_refused_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--plugins",
            "/nonexistent-plugins",
            "--db",
        ])
        .arg(d.path().join("s.sqlite3"))
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent-plugins"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_plugin_at_start_exits_2() {
    let d = tempfile::tempdir().unwrap();
    let plugins = d.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::write(plugins.join("bad.json"), "{ \"name\": ").unwrap();
    let out = Command::new(bin())
        .args(["serve", "--bind", "127.0.0.1:0", "--db"])
        .arg(d.path().join("s.sqlite3"))
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.json"), "{}", stderr(&out));
}

#[test]
fn demo_start_warns_and_logs_no_secrets() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("plugins")).unwrap();
    let cfg = d.path().join("config.toml");
    std::fs::write(&cfg, "[demo]\nenabled = true\n").unwrap();
    let mut server = Server::start_with_env(
        d.path(),
        &["--config", cfg.to_str().unwrap()],
        &[("RUST_LOG", "debug")],
    );
    let r = server.get_one(DEMO_ROOM, demo());
    assert_eq!(r.status, 200);
    let _ = server
        .client()
        .post(format!("{}/api/v1/login", server.base))
        .body(r#"{"user":"demo.agent","password":"hunter2-secret"}"#)
        .send()
        .unwrap();
    server.signal("TERM");
    let _ = server.wait_exit(Duration::from_secs(10));
    let log = server.log();
    assert!(log.contains("WARN") && log.contains("demo"), "{log}");
    assert!(
        log.contains("GET /api/v1/livechat/inquiries.getOne\" 200"),
        "access line: {log}"
    );
    assert!(!log.contains(demo().unwrap().1), "token in log");
    assert!(!log.contains("hunter2-secret"), "password in log");
}

#[test]
fn a_token_starting_with_a_hyphen_can_be_revoked() {
    // base64url tokens start with '-' one time in 64; clap must not take one for a flag.
    let (_d, db) = tmp_db();
    assert!(
        cli_with_stdin(&db, &["user", "add", "hy"], None)
            .status
            .success()
    );
    let out = cli_with_stdin(
        &db,
        &["token", "revoke", "hy", "--token", "-8KUZSBzHTGiQ"],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no such token"), "{}", stderr(&out));
}
