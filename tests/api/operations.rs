//! Operations (issue 14): backup while the server writes, restore, export and delete, shell
//! completions and man pages, `config check`, and switching the shipped plugins on and off.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::helpers::*;

/// Every row of every table of the database at `path`, as text, sorted: two databases with the
/// same contents give the same dump. The `application_id` and schema version come first.
fn dump(path: &Path) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut out = Vec::new();
    for pragma in ["application_id", "user_version"] {
        let v: i64 = conn
            .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .unwrap();
        out.push(format!("{pragma} {v}"));
    }
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..n)
                    .map(|i| match r.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Text(t) => {
                            format!("{:?}", String::from_utf8_lossy(t))
                        }
                        other => format!("{other:?}"),
                    })
                    .collect();
                Ok(format!("{table}: {}", cells.join(" | ")))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.extend(rows);
    }
    out
}

/// How many stored inquiries have an id starting with `prefix`.
fn count_prefix(path: &Path, prefix: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT count(*) FROM inquiries WHERE substr(id, 1, length(?1)) = ?1",
        [prefix],
        |r| r.get(0),
    )
    .unwrap()
}

fn write_ndjson(path: &Path, prefix: &str, n: usize) {
    let text: String = (0..n)
        .map(|i| {
            format!(
                "{{\"_id\":\"{prefix}{i}\",\"rid\":\"room-{prefix}{i}\",\"status\":\"queued\",\"ts\":\"2023-11-24T12:16:12.370Z\"}}\n"
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

/// A directory with a demo config, its plugins directory and `data/`; the config and db paths.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, "[demo]\nenabled = true\n").unwrap();
    (cfg, dir.join("data").join("live.sqlite3"))
}

fn run(db: &Path, args: &[&str]) -> std::process::Output {
    cli_with_stdin(db, args, None)
}

const PER_IMPORT: usize = 300;

#[test]
fn backup_under_write_load_is_consistent_and_restores_elsewhere_with_the_same_contents() {
    let d = tempfile::tempdir().unwrap();
    let (cfg, db) = setup(d.path());
    let mut server = Server::start(d.path(), &config_args(&cfg, &db));
    let stop = AtomicBool::new(false);
    let (imports, users) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut backups = Vec::new();
    std::thread::scope(|s| {
        let _stop_on_drop = StopOnDrop(&stop);
        // Writers: whole-file imports, and users with tokens, through the CLI beside the server;
        // logins through the server.
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let file = d.path().join(format!("imp{i}.ndjson"));
                write_ndjson(&file, &format!("imp{i}-"), PER_IMPORT);
                let out = import_files(&db, &[&file]);
                assert!(out.status.success(), "{}", stderr(&out));
                imports.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("u{i}");
                let out = run(&db, &["user", "add", &name, "--role", "livechat-agent"]);
                assert!(out.status.success(), "{}", stderr(&out));
                let out = run(&db, &["token", "create", &name]);
                assert!(out.status.success(), "{}", stderr(&out));
                users.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let r = server.get_one(DEMO_ROOM, demo());
                assert_eq!(r.status, 200);
            }
        });
        // Backups while all that goes on, each once some writes have landed since the last.
        for n in 0..3 {
            let (i0, u0) = (
                imports.load(Ordering::Relaxed),
                users.load(Ordering::Relaxed),
            );
            poll_until(Duration::from_secs(60), || {
                imports.load(Ordering::Relaxed) > i0 && users.load(Ordering::Relaxed) > u0
            })
            .expect("writers make progress");
            let file = d.path().join(format!("backup-{n}.sqlite3"));
            let out = run(&db, &["backup", file.to_str().unwrap()]);
            assert!(out.status.success(), "{}", stderr(&out));
            eprintln!("under load: {}", stdout(&out).trim());
            backups.push(file);
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(imports.load(Ordering::Relaxed) >= 3 && users.load(Ordering::Relaxed) >= 3);
    for file in &backups {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
        // A snapshot: every import file wholly in or wholly out.
        for i in 0..imports.load(Ordering::Relaxed) {
            let n = count_prefix(file, &format!("imp{i}-"));
            assert!(
                n == 0 || n == PER_IMPORT as i64,
                "{}: import {i} has {n} records",
                file.display()
            );
        }
        // Restorable elsewhere (the restore runs SQLite's integrity check), with the same contents.
        let elsewhere = d.path().join(format!(
            "elsewhere-{}",
            file.file_name().unwrap().to_str().unwrap()
        ));
        let out = run(&elsewhere, &["restore", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(dump(&elsewhere), dump(file));
    }
    // Writers stopped, the server still up: a backup restored elsewhere equals the live database.
    let last = d.path().join("quiet.sqlite3");
    let out = run(&db, &["backup", last.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = d.path().join("restored.sqlite3");
    let out = run(&restored, &["restore", last.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let live = dump(&db);
    assert!(live.iter().any(|r| r.starts_with("inquiries:")));
    assert_eq!(dump(&restored), live);
    // and a server serves it
    assert_eq!(server.terminate(), Some(0));
    let mut again = Server::start(d.path(), &config_args(&cfg, &restored));
    let (user, token) = demo().unwrap();
    let r = again.get_one("room-imp0-7", Some((user, token)));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["inquiry"]["_id"], "imp0-7");
    assert_eq!(again.terminate(), Some(0));
}

#[test]
fn restore_is_refused_while_a_server_runs_and_keeps_the_previous_file_after() {
    let d = tempfile::tempdir().unwrap();
    let (cfg, db) = setup(d.path());
    let mut server = Server::start(d.path(), &config_args(&cfg, &db));
    let backup = d.path().join("b.sqlite3");
    let out = run(&db, &["backup", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run(&db, &["user", "add", "after-backup"]).status.success());
    let before = dump(&db);
    let out = run(&db, &["restore", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("running inquiryd server") && err.contains("stop the server"),
        "{err}"
    );
    assert_eq!(dump(&db), before, "nothing changed");
    assert_eq!(server.get_one(DEMO_ROOM, demo()).status, 200);
    assert_eq!(server.terminate(), Some(0));
    // Stopped: the restore goes through, and the previous file is kept whole.
    let out = run(&db, &["restore", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kept: Vec<PathBuf> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().contains(".before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        stdout(&out).contains(kept[0].to_str().unwrap()),
        "{}",
        stdout(&out)
    );
    assert_eq!(dump(&kept[0]), before);
    let list = stdout(&run(&db, &["user", "list"]));
    assert!(!list.contains("after-backup"), "{list}");
    assert_eq!(dump(&db), dump(&backup));
}

#[test]
fn restore_refuses_files_that_are_not_sound_inquiryd_databases() {
    let d = tempfile::tempdir().unwrap();
    let (_cfg, db) = setup(d.path());
    assert!(run(&db, &["user", "add", "keeper"]).status.success());
    let good = d.path().join("good.sqlite3");
    assert!(
        run(&db, &["backup", good.to_str().unwrap()])
            .status
            .success()
    );
    let before = dump(&db);

    let foreign = d.path().join("foreign.sqlite3");
    let c = rusqlite::Connection::open(&foreign).unwrap();
    c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(c);
    let text = d.path().join("text.sqlite3");
    std::fs::write(
        &text,
        "this is not a database, just some text\n".repeat(200),
    )
    .unwrap();
    let truncated = d.path().join("truncated.sqlite3");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let newer = d.path().join("newer.sqlite3");
    std::fs::copy(&good, &newer).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let corrupt = d.path().join("corrupt.sqlite3");
    let mut bad = bytes.clone();
    // Scribble over the middle of every page but the first: the header still reads, the b-trees do not.
    let page = 4096;
    for p in 1..bad.len() / page {
        for b in &mut bad[p * page + 100..p * page + 400] {
            *b = 0x5a;
        }
    }
    std::fs::write(&corrupt, &bad).unwrap();
    for (file, why) in [
        (&foreign, "not an inquiryd database"),
        (&text, "not a usable SQLite database"),
        (&truncated, ""),
        (&newer, "schema version 99 is newer"),
        (&corrupt, ""),
        (&d.path().join("missing.sqlite3"), "does not exist"),
    ] {
        let out = run(&db, &["restore", file.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {}",
            file.display(),
            stdout(&out)
        );
        assert!(
            stderr(&out).contains(why),
            "{}: {}",
            file.display(),
            stderr(&out)
        );
        assert_eq!(dump(&db), before, "{} changed the database", file.display());
    }
    let leftovers: Vec<_> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("partial") || n.contains("before-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn backup_never_replaces_a_file_unless_forced_and_needs_a_database() {
    let d = tempfile::tempdir().unwrap();
    let (_cfg, db) = setup(d.path());
    let out = run(&db, &["backup", d.path().join("x").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing to back up"),
        "{}",
        stderr(&out)
    );
    assert!(!db.exists(), "a backup created the database it was to copy");
    assert!(run(&db, &["user", "add", "ann"]).status.success());
    let file = d.path().join("b.sqlite3");
    std::fs::write(&file, "precious").unwrap();
    let out = run(&db, &["backup", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
    let out = run(&db, &["backup", "--force", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(dump(&file), dump(&db));
}

#[test]
fn export_round_trips_through_import_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    let (_cfg, db) = setup(d.path());
    // Documents as varied as imports make them: Extended JSON dates and ids, key order, numbers
    // of every kind, whitespace compacted, unicode and escapes.
    let source = d.path().join("source.ndjson");
    std::fs::write(
        &source,
        concat!(
            "{\"_id\":{\"$oid\":\"6560940c6a1ef5b1a2bf9324\"},\"rid\":\"r1\",\"ts\":{\"$date\":\"2023-11-24T12:16:12.370Z\"},\"n\":{\"$numberLong\":\"5\"}}\n",
            "{ \"z\": 1, \"_id\" : \"b\", \"rid\":\"r2\", \"f\": 1.5, \"big\": 12345678901234567, \"e\": 1e3, \"s\": \"é \\\" \\u0001 😀\" }\n",
            "{\"_id\":\"c\",\"rid\":\"r3\",\"when\":\"2023-11-24T12:16:12.370Z\",\"nested\":{\"a\":[{\"$date\":{\"$numberLong\":\"1700828172370\"}}]}}\n",
            "{\"_id\":\"d\",\"rid\":\"r3\",\"v\":null,\"t\":true,\"arr\":[]}\n",
        ),
    )
    .unwrap();
    assert!(import_files(&db, &[&source]).status.success());
    let strip = |rows: Vec<String>| -> Vec<String> {
        rows.into_iter()
            .filter(|r| r.starts_with("inquiries:"))
            .collect()
    };
    let stored = strip(dump(&db));
    assert_eq!(stored.len(), 4);
    for format in ["ndjson", "mongoexport"] {
        let file = d.path().join(format!("out-{format}.json"));
        let out = run(
            &db,
            &[
                "inquiry",
                "export",
                "--format",
                format,
                file.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("exported 4 inquiries"),
            "{}",
            stderr(&out)
        );
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let text = std::fs::read_to_string(&file).unwrap();
        if format == "mongoexport" {
            assert!(
                text.contains("{\"$date\":\"2023-11-24T12:16:12.370Z\"}"),
                "{text}"
            );
        } else {
            assert!(!text.contains("$date"), "{text}");
        }
        // The same to stdout.
        let out = run(&db, &["inquiry", "export", "--format", format]);
        assert_eq!(stdout(&out), text);
        // Into a new database: the same stored documents, byte for byte.
        let again = d.path().join(format!("again-{format}.sqlite3"));
        let out = import_files(&again, &[&file]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(strip(dump(&again)), stored, "{format}");
        // A database made by an import alone is marked as inquiryd's: it backs up.
        let copy = d.path().join(format!("again-{format}.backup"));
        let out = run(&again, &["backup", copy.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        // Into the database it came from: nothing changes.
        assert!(import_files(&db, &[&file]).status.success());
        assert_eq!(strip(dump(&db)), stored);
    }
    // An existing file is kept unless --force.
    let file = d.path().join("out-ndjson.json");
    let out = run(&db, &["inquiry", "export", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert!(
        run(
            &db,
            &["inquiry", "export", "--force", file.to_str().unwrap()]
        )
        .status
        .success()
    );
}

#[test]
fn inquiry_delete_by_room_or_id_says_what_it_deleted() {
    let d = tempfile::tempdir().unwrap();
    let (cfg, db) = setup(d.path());
    let file = d.path().join("x.ndjson");
    write_ndjson(&file, "x", 3);
    assert!(import_files(&db, &[&file]).status.success());
    let mut server = Server::start(d.path(), &config_args(&cfg, &db));
    let (user, token) = demo().unwrap();
    assert_eq!(
        server.get_one("room-x1", Some((user, token))).json()["inquiry"]["_id"],
        "x1"
    );

    let out = run(&db, &["inquiry", "delete", "--room", "room-x1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "deleted 1 inquiry of room room-x1 (id x1)"
    );
    let r = server.get_one("room-x1", Some((user, token)));
    assert_eq!(r.body, r#"{"inquiry":null,"success":true}"#);

    let out = run(&db, &["inquiry", "delete", "--id", "x2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "deleted inquiry x2 (room room-x2)");

    for (args, said) in [
        (
            &["inquiry", "delete", "--room", "room-x1"][..],
            "no inquiry in room \"room-x1\"",
        ),
        (
            &["inquiry", "delete", "--id", "nope"],
            "no inquiry with id \"nope\"",
        ),
    ] {
        let out = run(&db, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
    for args in [
        &["inquiry", "delete"][..],
        &["inquiry", "delete", "--room", "a", "--id", "b"],
    ] {
        assert_eq!(run(&db, args).status.code(), Some(2), "{args:?}");
    }
    let list = stdout(&run(&db, &["inquiry", "list"]));
    assert!(
        list.contains("room-x0") && !list.contains("room-x1") && !list.contains("room-x2"),
        "{list}"
    );
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn completions_and_man_pages_are_generated_from_the_commands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["backup", "restore", "inquiry", "config", "mongoexport"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    let out = Command::new(bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin()).arg("man").output().unwrap();
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(
        page.contains(".TH inquiryd 1") && page.contains("restore"),
        "{page}"
    );
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("man")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for page in [
        "inquiryd.1",
        "inquiryd-backup.1",
        "inquiryd-inquiry-export.1",
        "inquiryd-config-check.1",
    ] {
        let text = std::fs::read_to_string(d.path().join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
    // A shell that stops reading early is not an error.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' completions bash | head -c 10 >/dev/null",
            bin()
        ))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn config_check_prints_each_value_with_its_origin_and_exits_2_when_invalid() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("plugins")).unwrap();
    // The printed configuration names the database by its full path, which is no longer the
    // default one: its directory must exist for it to be read back.
    std::fs::create_dir(d.path().join("data")).unwrap();
    let cfg = d.path().join("config.toml");
    std::fs::write(&cfg, "[server]\nworkers = 3\n[auth]\ntoken_ttl_days = 30\n").unwrap();
    let out = Command::new(bin())
        .args([
            "config",
            "check",
            "--config",
            cfg.to_str().unwrap(),
            "--bind",
            "127.0.0.1:4567",
        ])
        .env("INQUIRYD_AUTH_TOKEN_TTL_DAYS", "7")
        .env_remove("INQUIRYD_CONFIG")
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |key: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key}: {text}"))
            .to_string()
    };
    assert!(text.starts_with("# config file: "), "{text}");
    let bind = line("bind");
    assert!(
        bind.contains("\"127.0.0.1:4567\"") && bind.ends_with("# flag --bind"),
        "{bind}"
    );
    assert!(
        line("workers").contains(&format!("# file {}", cfg.display())),
        "{text}"
    );
    assert!(
        line("token_ttl_days").starts_with("token_ttl_days = 7 "),
        "{text}"
    );
    assert!(
        line("token_ttl_days").ends_with("# environment INQUIRYD_AUTH_TOKEN_TTL_DAYS"),
        "{text}"
    );
    assert!(line("pool_size").ends_with("# default"), "{text}");
    // What it prints is a configuration inquiryd reads back, to the same settings.
    let printed = d.path().join("printed.toml");
    std::fs::write(&printed, &text).unwrap();
    let again = Command::new(bin())
        .args(["config", "check", "--config", printed.to_str().unwrap()])
        .current_dir(d.path())
        .env_remove("INQUIRYD_CONFIG")
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("token_ttl_days = 7 "));

    for (text, key) in [
        ("[server]\nbind = \"nowhere\"\n", "server.bind"),
        ("[server]\nbnd = 1\n", "bnd"),
        ("[database]\npath = \"dta/x.sqlite3\"\n", "database.path"),
        ("[plugins]\ndir = \"plugns\"\n", "plugins.dir"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(bin())
            .args(["config", "check", "--config", cfg.to_str().unwrap()])
            .env_remove("INQUIRYD_CONFIG")
            .current_dir(d.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(stderr(&out).contains(key), "{text}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn shipped_plugins_are_enabled_and_disabled_without_editing_tracked_files() {
    let d = tempfile::tempdir().unwrap();
    let (cfg, db) = setup(d.path());
    // A checkout's plugins directory, as shipped.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins");
    let plugins = d.path().join("plugins");
    std::fs::create_dir_all(plugins.join("examples")).unwrap();
    std::fs::create_dir_all(plugins.join("tables")).unwrap();
    for sub in ["examples", "tables"] {
        for e in std::fs::read_dir(repo.join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), plugins.join(sub).join(e.file_name())).unwrap();
        }
    }
    let example = plugins.join("examples").join("hide-visitor-token.json");
    let shipped = std::fs::read(&example).unwrap();
    let mut server = Server::start(d.path(), &config_args(&cfg, &db));
    let has_token = |server: &Server| -> bool {
        server.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]
            .get("token")
            .is_some()
    };
    assert!(has_token(&server));
    let plugins_cmd = |args: &[&str]| {
        Command::new(bin())
            .arg("plugins")
            .args(args)
            .args(["--config", cfg.to_str().unwrap()])
            .current_dir(d.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };

    let out = plugins_cmd(&["enable", "hide-visitor-token"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("copied"), "{}", stdout(&out));
    assert_eq!(
        std::fs::read(&example).unwrap(),
        shipped,
        "the example itself is untouched"
    );
    poll_until(Duration::from_secs(5), || !has_token(&server)).expect("enabled within a second");
    let out = plugins_cmd(&["check"]);
    assert!(
        stdout(&out).contains("hide-visitor-token.json") && stdout(&out).contains(": ok"),
        "{}",
        stdout(&out)
    );

    let out = plugins_cmd(&["enable", "hide-visitor-token"]);
    assert!(stdout(&out).contains("already enabled"), "{}", stdout(&out));
    let out = plugins_cmd(&["disable", "hide-visitor-token"]);
    assert!(out.status.success(), "{}", stderr(&out));
    poll_until(Duration::from_secs(5), || has_token(&server)).expect("disabled within a second");
    let out = plugins_cmd(&["enable", "hide-visitor-token"]);
    assert!(
        out.status.success() && !stdout(&out).contains("copied"),
        "{}",
        stdout(&out)
    );
    poll_until(Duration::from_secs(5), || !has_token(&server)).expect("enabled again");

    for (args, code, said) in [
        (&["enable", "no-such-plugin"][..], 1, "examples: crm-enrich"),
        (&["disable", "crm-enrich"], 1, "no plugin \"crm-enrich\""),
        (&["enable", "../etc/passwd"], 1, "file name without .json"),
    ] {
        let out = plugins_cmd(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(stderr(&out).contains(said), "{args:?}: {}", stderr(&out));
    }
    let left: Vec<_> = std::fs::read_dir(&plugins)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(server.terminate(), Some(0));
}
