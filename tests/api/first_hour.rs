//! A newcomer's first hour (issue 14): the traps a new user met, each closed.

use std::process::Command;

use crate::helpers::*;

/// A directory with an (existing) plugins directory and `config.toml` holding `text`.
fn with_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("plugins")).unwrap();
    let cfg = d.path().join("config.toml");
    std::fs::write(&cfg, text).unwrap();
    (d, cfg)
}

fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("INQUIRYD_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn serve_flags_work_without_the_serve_command_and_the_config_in_force_is_logged() {
    let (d, cfg) = with_config("[demo]\nenabled = true\n");
    let cfg = cfg.to_str().unwrap();
    let mut server = Server::start_command_line(
        bin(),
        d.path(),
        &["--bind", "127.0.0.1:0", "--config", cfg],
        &[("RUST_LOG", "info")],
    );
    let status = server.get_one(DEMO_ROOM, demo()).status;
    assert_eq!(status, 200, "{}", server.log());
    let canonical = std::fs::canonicalize(cfg).unwrap();
    assert!(
        server
            .log()
            .contains(&format!("config file: {}", canonical.display())),
        "{}",
        server.log()
    );
    assert_eq!(server.terminate(), Some(0));

    // Run from a directory without config.toml: it says so, and `--plugins` works too.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(elsewhere.path().join("my-plugins")).unwrap();
    let mut server = Server::start_command_line(
        bin(),
        elsewhere.path(),
        &["--bind", "127.0.0.1:0", "--plugins", "my-plugins"],
        &[("RUST_LOG", "info")],
    );
    assert!(
        server.log().contains("no config file: defaults"),
        "{}",
        server.log()
    );
    assert!(elsewhere.path().join("data/inquiryd.sqlite3").exists());
    assert!(
        !elsewhere.path().join("plugins").exists(),
        "--plugins was ignored"
    );
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn serve_flags_with_another_command_are_refused_not_ignored() {
    let (d, _cfg) = with_config("");
    let out = run(d.path(), &["--bind", "127.0.0.1:1", "user", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("apply to `serve` only"),
        "{}",
        stderr(&out)
    );
    // before or after `serve`, the same
    let out = run(d.path(), &["--workers", "0", "serve", "--bind", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("server.bind"), "{}", stderr(&out));
}

#[test]
fn a_database_path_in_a_missing_directory_is_refused_unless_it_is_the_default() {
    // In the config file, as an admin would mistype it.
    let (d, _cfg) = with_config("[database]\npath = \"dta/inquiryd.sqlite3\"\n");
    for args in [
        &["serve", "--bind", "127.0.0.1:0"][..],
        &["user", "list"],
        &["inquiry", "import", "x.ndjson"],
    ] {
        let out = run(d.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("database.path") && err.contains("dta") && err.contains("does not exist"),
            "{err}"
        );
        assert!(
            !d.path().join("dta").exists(),
            "{args:?} created the directory"
        );
    }
    // As a flag or from the environment.
    let out = run(d.path(), &["--db", "nowhere/x.sqlite3", "user", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = Command::new(bin())
        .args(["user", "list"])
        .current_dir(d.path())
        .env("INQUIRYD_DATABASE_PATH", "nowhere/x.sqlite3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!d.path().join("nowhere").exists());
    // The default path's directory is made, as before.
    let (d, _cfg) = with_config("[database]\npath = \"data/inquiryd.sqlite3\"\n");
    let out = run(d.path(), &["user", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.path().join("data/inquiryd.sqlite3").exists());
}

#[test]
fn toml_errors_are_laid_out_as_the_toml_crate_does_with_a_caret() {
    let (d, _cfg) = with_config("[server]\nbind = 127.0.0.1:3000\n");
    let out = run(d.path(), &["user", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 4, "flattened: {err}");
    assert!(
        lines[0].contains("config.toml") && lines[0].contains("line 2"),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("2 | bind = 127.0.0.1:3000")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with('|') && l.contains('^')),
        "{err}"
    );
}

#[test]
fn plugins_check_on_a_missing_directory_exits_2_like_serve() {
    let (d, _cfg) = with_config("");
    let out = run(d.path(), &["plugins", "check", "no-such-dir"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-dir"), "{}", stderr(&out));
    let out = run(
        d.path(),
        &["serve", "--bind", "127.0.0.1:0", "--plugins", "no-such-dir"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // The configured default directory, missing, is what serve would create: no error.
    std::fs::remove_dir(d.path().join("plugins")).unwrap();
    let out = run(d.path(), &["plugins", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("serve creates it"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn counts_are_worded_in_the_right_number() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.sqlite3");
    assert!(
        cli_with_stdin(&db, &["user", "add", "ann"], None)
            .status
            .success()
    );
    for (tokens, said) in [
        (2, "revoked 2 tokens of ann"),
        (1, "revoked 1 token of ann"),
        (0, "revoked 0 tokens of ann"),
    ] {
        for _ in 0..tokens {
            assert!(
                cli_with_stdin(&db, &["token", "create", "ann"], None)
                    .status
                    .success()
            );
        }
        let out = cli_with_stdin(&db, &["token", "revoke", "ann"], None);
        assert_eq!(stdout(&out).trim(), said);
    }
    let bad = d.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"_id\":\"a\"}\n").unwrap();
    let out = import_files(&db, &[&bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("nothing imported, 1 bad record:"), "{err}");
    assert!(err.contains("1 of 1 file not imported"), "{err}");
    assert!(!err.contains("(s)"), "{err}");
}
