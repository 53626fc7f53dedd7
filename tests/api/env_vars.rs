//! `INQUIRYD_DB` and `INQUIRYD_LOG` are honoured, not silently ignored: the first names the
//! database (as `INQUIRYD_DATABASE_PATH`), the second is the log filter (as `RUST_LOG`, and wins).

use crate::helpers::*;

#[test]
fn inquiryd_db_names_the_database_the_cli_edits() {
    let app = spawn_app();
    let other = app.dir.path().join("other.sqlite3");
    let out = std::process::Command::new(bin())
        .args(["user", "add", "olga"])
        .env("INQUIRYD_DB", &other)
        .current_dir(app.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let in_other = cli_with_stdin(&other, &["user", "list"], None);
    assert!(stdout(&in_other).contains("olga"));
    assert!(!stdout(&app.cli(&["user", "list"])).contains("olga"));
}

#[test]
fn serve_honours_inquiryd_db_and_inquiryd_log() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let db = dir.path().join("chosen.sqlite3");
    // RUST_LOG=error alone would hide the "listening" line the helper waits for.
    let mut server = Server::start_with_env(
        dir.path(),
        &[],
        &[
            ("RUST_LOG", "error"),
            ("INQUIRYD_LOG", "info"),
            ("INQUIRYD_DB", db.to_str().unwrap()),
        ],
    );
    assert!(db.exists(), "{}", server.log());
    assert!(!dir.path().join("data/inquiryd.sqlite3").exists());
    server.terminate();
}
