//! Files on disk: bad database and configuration files are refused with a clear message and the
//! right exit code, without being touched; secrets never reach the database file, its WAL or the
//! log in the clear; expired tokens are refused.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use inquiryd::app::DEMO_TOKEN;

use crate::helpers::*;

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// A real, checkpointed database with users, tokens and a few thousand inquiries.
fn real_database(dir: &Path) -> PathBuf {
    let db = dir.join("real.sqlite3");
    for name in ["ann", "ben", "cat"] {
        let out = cli_with_stdin(
            &db,
            &[
                "user",
                "add",
                name,
                "--role",
                "livechat-agent",
                "--password-stdin",
            ],
            Some("a password\n"),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            cli_with_stdin(&db, &["token", "create", name], None)
                .status
                .success()
        );
    }
    let file = dir.join("many.ndjson");
    let lines: String = (0..3000)
        .map(|i| {
            format!(
                "{{\"_id\":\"i{i}\",\"rid\":\"r{i}\",\"msg\":\"{}\"}}\n",
                "x".repeat(100)
            )
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let out = import_files(&db, &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The last connection to close checkpoints and removes the WAL: the file is complete alone.
    assert!(!sidecar(&db, "-wal").exists(), "WAL left behind");
    db
}

#[test]
fn truncated_database_is_refused_with_exit_1_and_left_untouched() {
    let d = tempfile::tempdir().unwrap();
    let db = real_database(d.path());
    let full = std::fs::read(&db).unwrap();
    assert!(full.len() > 100_000, "{} bytes", full.len());
    let page = 4096;
    for cut in [
        0,
        50,
        100,
        page,
        full.len() / 2,
        full.len() - page,
        full.len() - 1,
    ] {
        let t = d.path().join(format!("cut-{cut}.sqlite3"));
        std::fs::write(&t, &full[..cut]).unwrap();
        let before = std::fs::read(&t).unwrap();
        let out = cli_with_stdin(&t, &["user", "list"], None);
        if cut == 0 {
            // An empty file is a new database: nothing to lose.
            assert!(out.status.success(), "{}", stderr(&out));
            continue;
        }
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "cut at {cut}: {err}");
        assert!(
            err.contains(t.to_str().unwrap()),
            "cut at {cut}: names the file: {err}"
        );
        assert!(
            err.contains("not a usable SQLite database") || err.contains("not a database"),
            "cut at {cut}: says why: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(
            std::fs::read(&t).unwrap(),
            before,
            "cut at {cut}: file modified"
        );
        // The server refuses it the same way.
        let out = Command::new(bin())
            .args(["serve", "--bind", "127.0.0.1:0", "--plugins"])
            .arg(d.path())
            .arg("--db")
            .arg(&t)
            .current_dir(d.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "serve, cut at {cut}: {}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read(&t).unwrap(),
            before,
            "serve, cut at {cut}: file modified"
        );
    }
    // The intact file still works.
    assert!(
        cli_with_stdin(&db, &["user", "list"], None)
            .status
            .success()
    );
}

#[test]
fn corrupted_pages_are_refused_or_reported_never_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let db = real_database(d.path());
    let full = std::fs::read(&db).unwrap();
    // Garbage over the header, over the schema page, and over a data page.
    for (at, len) in [(0, 100), (100, 3000), (full.len() / 2, 4096)] {
        let mut bytes = full.clone();
        for (i, b) in bytes[at..at + len].iter_mut().enumerate() {
            *b = (i * 7 + 13) as u8;
        }
        let t = d.path().join(format!("bad-{at}.sqlite3"));
        std::fs::write(&t, &bytes).unwrap();
        let out = cli_with_stdin(&t, &["inquiry", "list"], None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "garbage at {at}: {err}");
        assert!(err.contains("database"), "garbage at {at}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(
            std::fs::read(&t).unwrap(),
            bytes,
            "garbage at {at}: file modified"
        );
    }
}

#[test]
fn newer_schema_is_refused_untouched_by_cli_and_server() {
    let d = tempfile::tempdir().unwrap();
    let db = real_database(d.path());
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA user_version = 42;").unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let plugins = d.path().to_str().unwrap();
    let runs: [&[&str]; 2] = [
        &["user", "list"],
        &["serve", "--bind", "127.0.0.1:0", "--plugins", plugins],
    ];
    for args in runs {
        let out = Command::new(bin())
            .args(args)
            .arg("--db")
            .arg(&db)
            .current_dir(d.path())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("schema version 42") && err.contains("newer"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&db).unwrap(),
            before,
            "{args:?}: file modified"
        );
    }
}

fn run_with_config(dir: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn unreadable_or_wrong_config_exits_2_naming_it() {
    let d = tempfile::tempdir().unwrap();
    // A directory where the file should be (chmod 000 would not stop root).
    let as_dir = d.path().join("config-dir.toml");
    std::fs::create_dir(&as_dir).unwrap();
    let not_utf8 = d.path().join("latin1.toml");
    std::fs::write(
        &not_utf8,
        b"[server]\nbind = \"127.0.0.1:3000\" # caf\xe9\n",
    )
    .unwrap();
    for path in [&as_dir, &not_utf8] {
        for args in [&["user", "list"][..], &["serve"]] {
            let out = run_with_config(d.path(), path, args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{path:?} {args:?}: {err}");
            assert!(
                err.contains(path.to_str().unwrap()),
                "names the file: {err}"
            );
            assert!(err.contains("cannot read"), "says why: {err}");
        }
    }
    // Unknown keys, sections and wrong types name the key.
    for (text, key) in [
        ("[auth]\ntoken_ttl = 3\n", "token_ttl"),
        ("[servr]\nbind = \"127.0.0.1:1\"\n", "servr"),
        ("[server]\nworkers = \"many\"\n", "workers"),
        ("[plugins]\nwatch = true\nreload = 1\n", "reload"),
        ("[database]\npool_size = 0\n", "database.pool_size"),
    ] {
        let cfg = d.path().join("c.toml");
        std::fs::write(&cfg, text).unwrap();
        for args in [&["user", "list"][..], &["serve"]] {
            let out = run_with_config(d.path(), &cfg, args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{text:?} {args:?}: {err}");
            assert!(err.contains(key), "{text:?}: names {key}: {err}");
        }
    }
}

#[test]
fn missing_plugins_dir_is_created_only_when_it_is_the_default() {
    // Default (no configuration at all): created, and said so.
    let d = tempfile::tempdir().unwrap();
    let mut server = Server::start(d.path(), &["--db", "x.sqlite3"]);
    assert!(d.path().join("plugins").is_dir());
    assert_eq!(server.terminate(), Some(0));
    assert!(
        server.log().contains("plugins: created empty directory"),
        "{}",
        server.log()
    );

    // The default beside a config file elsewhere (`--config /etc/inquiryd/config.toml`, no
    // `[plugins] dir`): created there, not in the working directory.
    let d = tempfile::tempdir().unwrap();
    let etc = d.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let cfg = etc.join("config.toml");
    std::fs::write(&cfg, "[demo]\nenabled = false\n").unwrap();
    let run = d.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let mut server = Server::start(&run, &["--config", cfg.to_str().unwrap()]);
    assert!(etc.join("plugins").is_dir(), "{}", server.log());
    assert!(!run.join("plugins").exists());
    assert_eq!(server.terminate(), Some(0));

    // Configured in the file, from the environment, or by flag: refused, naming it, not created.
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("config.toml");
    std::fs::write(&cfg, "[plugins]\ndir = \"my-plugins\"\n").unwrap();
    let out = run_with_config(
        d.path(),
        &cfg,
        &["serve", "--bind", "127.0.0.1:0", "--db", "x.sqlite3"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("my-plugins") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!d.path().join("my-plugins").exists());
    let out = Command::new(bin())
        .args(["serve", "--bind", "127.0.0.1:0", "--db", "x.sqlite3"])
        .env("INQUIRYD_PLUGINS_DIR", "env-plugins")
        .current_dir(d.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("env-plugins"), "{err}");
    assert!(!d.path().join("env-plugins").exists());
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn no_password_or_token_in_the_database_its_wal_or_the_log() {
    const PASSWORD: &str = "Correct-Horse-Battery-Staple-42";
    const WRONG: &str = "Wrong-Horse-Battery-Staple-17";
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("plugins")).unwrap();
    let cfg = d.path().join("config.toml");
    std::fs::write(&cfg, "[demo]\nenabled = true\n").unwrap();
    let db = d.path().join("data").join("secret.sqlite3");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let out = cli_with_stdin(
        &db,
        &[
            "user",
            "add",
            "sue",
            "--role",
            "livechat-agent",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut server =
        Server::start_with_env(d.path(), &config_args(&cfg, &db), &[("RUST_LOG", "debug")]);
    let client = server.client();
    let login = |body: String| {
        let r = client
            .post(format!("{}/api/v1/login", server.base))
            .body(body)
            .send()
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().unwrap_or_default(),
        )
    };
    let mut tokens = Vec::new();
    let (status, v) = login(format!(r#"{{"user":"sue","password":"{PASSWORD}"}}"#));
    assert_eq!(status, 200);
    tokens.push(v["data"]["authToken"].as_str().unwrap().to_string());
    let (status, v) = login(format!(
        r#"{{"user":"sue","password":{{"digest":"{}","algorithm":"sha-256"}}}}"#,
        sha256_hex(PASSWORD)
    ));
    assert_eq!(status, 200);
    tokens.push(v["data"]["authToken"].as_str().unwrap().to_string());
    let uid = v["data"]["userId"].as_str().unwrap().to_string();
    assert_eq!(
        login(format!(r#"{{"user":"sue","password":"{WRONG}"}}"#)).0,
        401
    );
    assert_eq!(login(format!(r#"{{"resume":"{}"}}"#, tokens[0])).0, 200);
    let out = cli_with_stdin(&db, &["token", "create", "sue"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    tokens.push(v["authToken"].as_str().unwrap().to_string());
    // Tokens in headers, in a query string (as a careless client might) and at logout.
    let t = &tokens[2];
    let valid = poll_until(Duration::from_secs(3), || {
        server.get_one(DEMO_ROOM, Some((&uid, t))).status == 200
    });
    assert!(valid.is_some(), "CLI token never worked");
    let r = client
        .get(format!(
            "{}/api/v1/livechat/inquiries.getOne?roomId={DEMO_ROOM}&authToken={t}",
            server.base
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(format!("{}/api/v1/logout", server.base))
        .header("X-User-Id", &uid)
        .header("X-Auth-Token", &tokens[1])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // While serving: the database, its WAL and shared memory are private and hold no secret.
    let files = [db.clone(), sidecar(&db, "-wal"), sidecar(&db, "-shm")];
    let mut artefacts = Vec::new();
    for f in &files {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} mode {mode:o}", f.display());
        artefacts.push((
            format!("{} (serving)", f.display()),
            std::fs::read(f).unwrap(),
        ));
    }
    assert_eq!(server.terminate(), Some(0));
    for f in &files {
        if let Ok(bytes) = std::fs::read(f) {
            artefacts.push((format!("{} (stopped)", f.display()), bytes));
        }
    }
    let log = server.log();
    assert!(
        log.contains("login failed") && log.contains("/api/v1/logout"),
        "{log}"
    );
    artefacts.push(("server log".into(), log.into_bytes()));

    let mut secrets: Vec<(String, String)> = vec![
        ("password".into(), PASSWORD.into()),
        ("password digest".into(), sha256_hex(PASSWORD)),
        ("wrong password".into(), WRONG.into()),
        ("wrong password digest".into(), sha256_hex(WRONG)),
        ("demo token".into(), DEMO_TOKEN.into()),
    ];
    for (i, t) in tokens.iter().enumerate() {
        secrets.push((format!("token {i}"), t.clone()));
    }
    for (what, bytes) in &artefacts {
        assert!(
            !bytes.is_empty() || what.contains("-shm"),
            "{what} is empty"
        );
        for (name, secret) in &secrets {
            assert!(!contains(bytes, secret), "{name} found in {what}");
        }
    }
    eprintln!(
        "secrets: {} secrets × {} artefacts checked, none found",
        secrets.len(),
        artefacts.len()
    );
}

#[test]
fn expired_token_is_refused() {
    let app = spawn_app_with(|c| c.auth.token_ttl_days = 1);
    app.user_with_token("tess", &["livechat-agent"]);
    let r = app.post(
        "/api/v1/login",
        r#"{"user":"tess","password":"pw-of-test"}"#,
        None,
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    let uid = v["data"]["userId"].as_str().unwrap().to_string();
    let tok = v["data"]["authToken"].as_str().unwrap().to_string();
    let hashed = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(tok.as_bytes()))
    };
    let c = rusqlite::Connection::open(&app.db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let expires: i64 = c
        .query_row(
            "SELECT expires_at FROM tokens WHERE hashed_token = ?1",
            [&hashed],
            |r| r.get(0),
        )
        .unwrap();
    let now = inquiryd::db::now_secs();
    assert!(
        (expires - (now + 86_400)).abs() < 120,
        "token_ttl_days = 1 gives a day: expires {expires}, now {now}"
    );
    assert_eq!(app.get_one(DEMO_ROOM, Some((&uid, &tok))).status, 200);
    c.execute(
        "UPDATE tokens SET expires_at = ?1 WHERE hashed_token = ?2",
        rusqlite::params![now - 1, hashed],
    )
    .unwrap();
    let took = poll_until(Duration::from_secs(3), || {
        app.get_one(DEMO_ROOM, Some((&uid, &tok))).status == 401
    })
    .expect("expired token refused");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let (status, body) = error_fixture("401-not-logged-in");
    let r = app.get_one(DEMO_ROOM, Some((&uid, &tok)));
    assert_eq!((r.status, r.body.as_str()), (status, body.as_str()));
    assert_eq!(app.get("/api/v1/me", Some((&uid, &tok))).status, 401);
    let r = app.post("/api/v1/login", &format!(r#"{{"resume":"{tok}"}}"#), None);
    assert_eq!(r.status, 401);
}
