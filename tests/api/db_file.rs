//! The database file is the truth: deleted, moved, replaced or overwritten under a running server
//! (or its `-wal`/`-shm` deleted), the server says so on `/health` (503 with a reason), refuses
//! writes that would be lost (503), answers getOne 503 alike, and serves again when the file is
//! back; no CLI command creates or writes another database beside it. A failed import gives its
//! WAL space back while the server runs; read-only and unwritable databases are refused at start
//! with the cause named.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Rows in `table` of the database at `path`.
fn rows(path: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(path)
        .expect("open")
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

const PASSWORD_LOGIN: &str = r#"{"user":"alice","password":"pw-of-test"}"#;

#[derive(Debug, Clone, Copy)]
enum Change {
    Remove,
    MoveAside,
    MoveOver,
    CopyOver,
    RemoveSidecars,
}

/// Does `change` to the database of `app`; returns where the original went, if it still exists.
fn make(app: &TestApp, change: Change) -> Option<PathBuf> {
    let other = || {
        let other = app.dir.path().join("other.sqlite3");
        let out = cli_with_stdin(&other, &["user", "list"], None);
        assert!(out.status.success(), "{}", stderr(&out));
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(sidecar(&other, suffix));
        }
        other
    };
    match change {
        Change::Remove => std::fs::remove_file(&app.db).expect("rm"),
        Change::MoveAside => {
            let aside = app.dir.path().join("aside.sqlite3");
            std::fs::rename(&app.db, &aside).expect("mv aside");
            return Some(aside);
        }
        Change::MoveOver => std::fs::rename(other(), &app.db).expect("mv over"),
        Change::CopyOver => {
            std::fs::copy(other(), &app.db).expect("cp over");
        }
        Change::RemoveSidecars => {
            std::fs::remove_file(sidecar(&app.db, "-wal")).expect("rm -wal");
            std::fs::remove_file(sidecar(&app.db, "-shm")).expect("rm -shm");
        }
    }
    None
}

fn health_status(app: &TestApp) -> (u16, serde_json::Value) {
    let r = app.get("/health", None);
    (r.status, r.json())
}

#[test]
fn a_database_file_changed_under_the_server_is_reported_and_no_write_is_lost() {
    for (change, reason) in [
        (Change::Remove, "deleted or moved away"),
        (Change::MoveAside, "deleted or moved away"),
        (Change::MoveOver, "replaced by another file"),
        (Change::CopyOver, "overwritten with other contents"),
        (Change::RemoveSidecars, "-wal file"),
    ] {
        let app = spawn_app();
        app.user_with_token("alice", &["livechat-agent"]);
        let login = app.post("/api/v1/login", PASSWORD_LOGIN, None);
        assert_eq!(login.status, 200, "{change:?}: {}", login.body);
        assert_eq!(health_status(&app).0, 200);

        let original = make(&app, change);
        let mut last = (0, serde_json::Value::Null);
        let seen = poll_until(Duration::from_secs(5), || {
            last = health_status(&app);
            last.0 == 503
        });
        assert!(seen.is_some(), "{change:?}: /health still {last:?}");
        assert_eq!(last.1["status"], "error", "{change:?}");
        let said = last.1["reason"].as_str().unwrap_or_default();
        assert!(said.contains(reason), "{change:?}: reason {said:?}");

        // Writes that would be lost are refused, clearly; reads answer alike, every time.
        let login = app.post("/api/v1/login", PASSWORD_LOGIN, None);
        assert_eq!(login.status, 503, "{change:?}: login {}", login.body);
        assert_eq!(login.json()["success"], false);
        for _ in 0..4 {
            let r = app.get_one(DEMO_ROOM, demo());
            assert_eq!(r.status, 503, "{change:?}: getOne {}", r.body);
        }

        // No CLI command writes or creates a database the server does not see.
        // SQLite's own `-wal`/`-shm` beside the file are left out: the server's connections may
        // recreate them as they read (seen under load once the test removed them); what must not
        // appear is another database or a file of the CLI's.
        let names = |dir: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
                .collect();
            v.sort();
            v
        };
        let files_before = names(app.db.parent().unwrap());
        for args in [
            &["token", "create", "alice"][..],
            &["user", "add", "bob"],
            &["user", "list"],
        ] {
            let out = app.cli(args);
            assert_eq!(out.status.code(), Some(1), "{change:?}: {args:?} succeeded");
            let err = stderr(&out);
            assert!(
                err.contains("running inquiryd server") && err.contains(reason),
                "{change:?}: {args:?}: {err}"
            );
        }
        // Nor does a second server.
        let second = output_within(
            Command::new(bin())
                .args(["serve", "--bind", "127.0.0.1:0", "--plugins"])
                .arg(&app.plugins)
                .arg("--db")
                .arg(&app.db)
                .current_dir(app.dir.path())
                .env_remove("RUST_LOG"),
            Duration::from_secs(20),
        );
        assert_eq!(second.status.code(), Some(1), "{change:?}: a second server");
        assert!(stderr(&second).contains("running inquiryd server"));
        let ndjson = app.dir.path().join("one.ndjson");
        std::fs::write(&ndjson, "{\"_id\":\"i1\",\"rid\":\"r1\"}\n").unwrap();
        let out = import_files(&app.db, &[&ndjson]);
        assert_eq!(out.status.code(), Some(1), "{change:?}: import succeeded");
        let files_after = names(app.db.parent().unwrap());
        assert_eq!(files_before, files_after, "{change:?}: a file was created");
        if let Change::Remove = change {
            assert!(!app.db.exists(), "no new database at the path");
        }

        // Put back, the file serves again, and what was acknowledged is in it.
        if let Some(original) = original {
            std::fs::rename(&original, &app.db).expect("mv back");
            let back = poll_until(Duration::from_secs(5), || health_status(&app).0 == 200);
            assert!(
                back.is_some(),
                "{change:?}: /health not ok after the move back"
            );
            assert_eq!(app.get_one(DEMO_ROOM, demo()).status, 200);
            let login = app.post("/api/v1/login", PASSWORD_LOGIN, None);
            assert_eq!(login.status, 200, "{change:?}: {}", login.body);
            // The CLI token and the two password logins, read from the file at the path.
            assert_eq!(
                rusqlite::Connection::open(&app.db)
                    .unwrap()
                    .query_row(
                        "SELECT count(*) FROM tokens JOIN users ON users.id = tokens.user_id
                         WHERE username = 'alice'",
                        [],
                        |r| r.get::<_, i64>(0)
                    )
                    .unwrap(),
                3,
                "{change:?}: an acknowledged login was lost"
            );
        }
    }
}

/// `n` NDJSON inquiries, about 230 bytes each.
fn write_ndjson(path: &Path, n: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(
            out,
            r#"{{"_id":"big-{i:07}","rid":"room-{i:07}","status":"queued","v":{{"username":"guest-{i}","token":"{}"}},"message":"{}"}}"#,
            "t".repeat(40),
            "hello ".repeat(16)
        )
        .unwrap();
    }
}

/// An import that fails part way through its commit (here at a file size limit, as on a full
/// disk) leaves a WAL of rolled-back frames no commit counted: the server cuts it back anyway.
#[test]
fn a_failed_import_beside_the_server_gives_its_wal_space_back() {
    let app = spawn_app();
    let file = app.dir.path().join("big.ndjson");
    write_ndjson(&file, 100_000);
    let inquiries_before = rows(&app.db, "inquiries");
    // SIGXFSZ ignored, so the write fails (EFBIG) instead of killing the import; 16384 blocks
    // is 8 MiB (dash) or 16 MiB (bash), both short of the ~25 MiB the import writes.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 16384 && exec "$0" inquiry import "$1" --db "$2""#)
        .arg(bin())
        .arg(&file)
        .arg(&app.db)
        .env_remove("RUST_LOG")
        .output()
        .expect("run import");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("nothing imported") && err.contains("nothing of this file was stored"),
        "{err}"
    );
    assert_eq!(rows(&app.db, "inquiries"), inquiries_before);
    let wal = sidecar(&app.db, "-wal");
    let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let limit = 4 * 1024 * 1024;
    let shrunk = poll_until(Duration::from_secs(10), || size() <= limit);
    assert!(
        shrunk.is_some(),
        "the WAL is still {} bytes 10 s after the failed import",
        size()
    );
    assert_eq!(app.get("/health", None).status, 200);
    assert_eq!(app.get_one(DEMO_ROOM, demo()).status, 200);
}

/// Runs `cmd` to its end; a command still running after `limit` (a server that started when it
/// should have refused to) is killed, and its output returned with the failure to see.
fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let ended = poll_until(limit, || child.try_wait().ok().flatten().is_some());
    if ended.is_none() {
        let _ = child.kill();
    }
    child.wait_with_output().expect("wait")
}

/// Whether this test may skip what the machine cannot do; under CI it must not.
fn cannot(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what}: required under CI");
    }
    // Straight to the process's stderr: eprintln! output of a passing test is captured.
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("\nNOT RUN: {what} (it fails under CI=true)\n"),
    );
}

/// A read-only bind mount of a directory, unmounted when dropped.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(source: &Path, target: &Path) -> Option<ReadOnlyMount> {
        std::fs::create_dir_all(target).unwrap();
        let run = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let (s, t) = (source.to_str().unwrap(), target.to_str().unwrap());
        if !run(&["--bind", s, t]) {
            return None;
        }
        let mount = ReadOnlyMount(target.to_path_buf());
        run(&["-o", "remount,bind,ro", t]).then_some(mount)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A healthy database on a read-only mount is said to be on a read-only file system (before:
/// "not a usable SQLite database"), by the server and the CLI alike.
#[test]
fn a_database_on_a_read_only_mount_is_said_to_be_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("rw");
    std::fs::create_dir_all(&source).unwrap();
    let db = source.join("db.sqlite3");
    let out = cli_with_stdin(&db, &["user", "add", "carol"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sidecar(&db, suffix));
    }
    let target = dir.path().join("ro");
    let Some(_mount) = ReadOnlyMount::new(&source, &target) else {
        return cannot("a read-only bind mount (needs root)");
    };
    let ro_db = target.join("db.sqlite3");
    let serve = output_within(
        Command::new(bin())
            .args(["serve", "--bind", "127.0.0.1:0", "--plugins"])
            .arg(&target)
            .arg("--db")
            .arg(&ro_db)
            .current_dir(dir.path())
            .env_remove("RUST_LOG"),
        Duration::from_secs(20),
    );
    for (what, out) in [
        ("serve", serve),
        ("user list", cli_with_stdin(&ro_db, &["user", "list"], None)),
    ] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains("is on a read-only file system") && !err.contains("not a usable"),
            "{what}: {err}"
        );
    }
}

/// The uid and gid `nobody` runs as, when `setpriv` can switch to it (as root).
fn as_nobody(cmd: &mut Command) -> Option<Command> {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if !root {
        return None;
    }
    let probe = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return None;
    }
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    Some(wrapped)
}

/// A database file the server's user cannot write (mode 0400), or whose directory it cannot
/// create the `-wal`/`-shm` files in, stops the start with the cause (before: it started and
/// answered every login 500). Runs the server as `nobody`, since root writes anything.
#[test]
fn a_database_this_user_cannot_write_is_refused_at_start() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let owned = dir.path().join("owned");
    std::fs::create_dir_all(&owned).unwrap();
    let db = owned.join("db.sqlite3");
    let out = cli_with_stdin(&db, &["user", "add", "dave"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sidecar(&db, suffix));
    }
    let serve = || {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--plugins"])
            .arg(&plugins)
            .arg("--db")
            .arg(&db)
            .env_remove("RUST_LOG");
        cmd
    };
    if as_nobody(&mut serve()).is_none() {
        return cannot("running the server as nobody (needs root and setpriv)");
    }
    for (case, file_mode, dir_owner, unwritable) in [
        ("file mode 0400", 0o400, 65534, &db),
        ("directory not writable", 0o600, 0, &owned),
    ] {
        chown(&owned, Some(dir_owner), None).unwrap();
        chown(&db, Some(65534), None).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(file_mode)).unwrap();
        let mut cmd = as_nobody(serve().current_dir(dir.path())).unwrap();
        let out = output_within(&mut cmd, Duration::from_secs(20));
        let err = stderr(&out);
        let expect = format!("uid 65534 may not write {}", unwritable.display());
        assert_eq!(out.status.code(), Some(1), "{case}: {err}");
        assert!(
            err.contains(&expect) && err.contains("writable by the user inquiryd runs as"),
            "{case}: {err}"
        );
    }
}

/// A write that fails in SQLite for want of space (here a file size limit on the server, so the
/// WAL cannot take a frame: SQLITE_IOERR, as SQLITE_FULL on a full disk) answers 503 with a log
/// line naming the cause, not a bare 500.
#[test]
fn a_write_failing_for_want_of_space_answers_503_and_says_why() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    let out = cli_with_stdin(
        &db,
        &["user", "add", "erin", "--password-stdin"],
        Some("pw-of-test\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Held open, so the -shm and -wal exist and the server need not grow them past the limit.
    let keep = rusqlite::Connection::open(&db).unwrap();
    let _: i64 = keep
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    // 8 blocks: 4 or 8 KiB, less than the WAL header and one 4 KiB page.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 8 && exec "$0" serve --bind 127.0.0.1:0 --plugins plugins --db "$1""#)
        .arg(bin())
        .arg(&db)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    let reader = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("inquiryd listening on ").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30));
    let logged = || log.lock().unwrap().clone();
    let Ok(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("server did not start:\n{}", logged());
    };
    let client = reqwest::blocking::Client::new();
    let login = client
        .post(format!("http://{addr}/api/v1/login"))
        .header("Content-Type", "application/json")
        .body(r#"{"user":"erin","password":"pw-of-test"}"#)
        .send()
        .unwrap();
    let status = login.status().as_u16();
    let body = login.text().unwrap();
    let said = poll_until(Duration::from_secs(5), || {
        logged().contains("service unavailable (503): database:")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 503, "{body}\n{}", logged());
    assert!(body.contains("Service unavailable"), "{body}");
    assert!(said.is_some(), "no log line:\n{}", logged());
    drop(keep);
}

/// A database copied over the file under a running server (the wrong way to restore a backup)
/// is left as copied when the server stops: none of the server's WAL is checkpointed into it or
/// left beside it to be applied at the next open (before: the stop wrote the old database's
/// pages into it, users and all).
#[test]
fn a_database_copied_over_the_file_is_left_intact_by_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("db.sqlite3");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let out = cli_with_stdin(
        &db,
        &["user", "add", "frank", "--password-stdin"],
        Some("pw-of-test\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let other = dir.path().join("other.sqlite3");
    let out = cli_with_stdin(&other, &["user", "list"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sidecar(&other, suffix));
    }
    let copied = std::fs::read(&other).unwrap();

    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (db_arg, plugins_arg) = (s(&db), s(&plugins));
    let mut server = Server::start(dir.path(), &["--db", &db_arg, "--plugins", &plugins_arg]);
    let client = server.client();
    let login = client
        .post(format!("{}/api/v1/login", server.base))
        .header("Content-Type", "application/json")
        .body(r#"{"user":"frank","password":"pw-of-test"}"#)
        .send()
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    // Once the login is checkpointed into the file: a checkpoint already under way when the copy
    // lands would write into it, which no check made before it can prevent.
    let before = std::fs::read(&db).unwrap();
    let checkpointed = poll_until(Duration::from_secs(5), || {
        std::fs::read(&db).unwrap() != before
    });
    assert!(checkpointed.is_some(), "the login never reached the file");

    std::fs::copy(&other, &db).unwrap();
    let noticed = poll_until(Duration::from_secs(5), || {
        client
            .get(format!("{}/health", server.base))
            .send()
            .is_ok_and(|r| r.status().as_u16() == 503)
    });
    assert!(noticed.is_some(), "/health never 503:\n{}", server.log());
    assert_eq!(server.terminate(), Some(0), "{}", server.log());
    assert!(
        std::fs::read(&db).unwrap() == copied,
        "the copied-in database was changed by the stop:\n{}",
        server.log()
    );
    assert!(
        !sidecar(&db, "-wal").exists(),
        "the old WAL is left beside it:\n{}",
        server.log()
    );
    assert_eq!(rows(&db, "users"), 0);
}

/// No command waits on a file that is not a regular one where it reads a file: a FIFO with no
/// writer as the file to import, the configuration file, the database or any file beside it
/// (lock, journal, WAL, shm), or `/dev/zero` to import, is refused at once with what it is. Before,
/// each of these but the `-wal`/`-shm` ones hung until killed (the import of `/dev/zero` reading
/// without end), `serve` included.
#[test]
fn a_fifo_or_a_device_where_a_file_is_read_is_refused_at_once_by_every_command() {
    const LIMIT: Duration = Duration::from_secs(20);
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path();
    let db = dir.join("data/inquiryd.sqlite3");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("mkdir");
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    assert!(
        cli_with_stdin(&db, &["inquiry", "list"], None)
            .status
            .success()
    );
    let run = |args: &[&str], expected: &str| {
        let started = std::time::Instant::now();
        let out = output_within(Command::new(bin()).args(args).current_dir(dir), LIMIT);
        let err = stderr(&out);
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{args:?}: refused, not waited on (after {:?}): {:?} {err}",
            started.elapsed(),
            out.status
        );
        assert!(err.contains(expected), "{args:?}: says {expected:?}: {err}");
    };
    let db_arg = db.to_str().expect("UTF-8");
    let fifo = dir.join("in.json");
    mkfifo(&fifo);
    let fifo_arg = fifo.to_str().expect("UTF-8");
    run(
        &["--db", db_arg, "inquiry", "import", fifo_arg],
        "in.json: cannot read: is a FIFO, not a regular file",
    );
    run(
        &["--db", db_arg, "inquiry", "import", "/dev/zero"],
        "is a device, not a regular file",
    );
    run(
        &["--config", fifo_arg, "--db", db_arg, "inquiry", "list"],
        "is a FIFO, not a regular file",
    );
    run(
        &["--db", fifo_arg, "inquiry", "list"],
        "is a FIFO, not a regular file",
    );
    let plugins_arg = plugins.to_str().expect("UTF-8");
    for suffix in [".lock", "-journal", "-wal", "-shm"] {
        let side = sidecar(&db, suffix);
        let _ = std::fs::remove_file(&side);
        mkfifo(&side);
        let expected = format!("inquiryd.sqlite3{suffix}: is a FIFO, not a regular file");
        run(&["--db", db_arg, "inquiry", "list"], &expected);
        run(
            &["--db", db_arg, "user", "add", "probe", "--password-stdin"],
            &expected,
        );
        run(
            &[
                "--db",
                db_arg,
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--plugins",
                plugins_arg,
            ],
            &expected,
        );
        std::fs::remove_file(&side).expect("rm fifo");
    }
    // and the database, with nothing in the way, still serves the CLI
    assert!(
        cli_with_stdin(&db, &["inquiry", "list"], None)
            .status
            .success()
    );
}

/// The lock file deleted under a running server (a tmp cleaner, or someone who read that it is
/// safe to delete and missed that a server ran) is made again within a check round, so CLI
/// commands still see the server: with the database then moved away, a command is refused
/// instead of creating a fresh database the server does not see. Before, the lock stayed gone
/// (this test failed there), so a command found no server to guard against.
#[test]
fn a_lock_file_deleted_under_the_server_is_made_again_and_still_guards_the_cli() {
    let app = spawn_app();
    let lock = sidecar(&app.db, ".lock");
    assert!(lock.exists(), "the server holds its lock file");
    std::fs::remove_file(&lock).expect("rm lock");
    let back = poll_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("inquiryd server"))
    });
    assert!(
        back.is_some(),
        "the lock file is made again, with its record"
    );
    let aside = app.db.with_extension("aside");
    std::fs::rename(&app.db, &aside).expect("move the database aside");
    let out = app.cli(&["inquiry", "list"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "refused: {err}");
    assert!(err.contains("still has the old one open"), "{err}");
    assert!(!app.db.exists(), "no new database at the path");
    std::fs::rename(&aside, &app.db).expect("put it back");
}
