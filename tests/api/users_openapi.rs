//! `tests/openapi/inquiryd-users.yaml` describes the users routes; schemathesis drives it against
//! the real binary with an admin's credentials (so every route is reached past its permission
//! check) and checks that nothing answers a 5xx, that status codes are documented ones and that
//! bodies match the documented schemas. Skipped with a note when schemathesis is missing locally;
//! under `CI` a missing schemathesis is a failure.

use std::process::Command;

use crate::helpers::*;

#[test]
fn users_routes_openapi_description_is_honoured_with_admin_credentials() {
    let Some(version) = Command::new("schemathesis")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| stdout(&o).trim().to_string())
    else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install the PyPI package schemathesis (see .ci/run)"
        );
        eprintln!("skipped: schemathesis is not installed (pip install schemathesis)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let db = dir.path().join("users.sqlite3");
    let out = cli_with_stdin(&db, &["user", "add", "root", "--role", "admin"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    // A second admin, so that requests demoting or deactivating one are not all refused.
    let out = cli_with_stdin(&db, &["user", "add", "root2", "--role", "admin"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli_with_stdin(
        &db,
        &["token", "create", "root", "--name", "schemathesis"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (uid, tok) = (
        v["userId"].as_str().unwrap(),
        v["authToken"].as_str().unwrap(),
    );
    let server = Server::start(dir.path(), &["--db", db.to_str().unwrap()]);
    let spec =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/inquiryd-users.yaml");

    let t = std::time::Instant::now();
    let out = Command::new("schemathesis")
        .arg("run")
        .arg(&spec)
        .args(["--url", &server.base])
        .args(["-H", &format!("X-User-Id: {uid}")])
        .args(["-H", &format!("X-Auth-Token: {tok}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "40", "--seed", "6"])
        .args(["--request-timeout", "10", "--generation-database", "none"])
        .arg("--no-color")
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis");
    let report = format!("{}\n{}", stdout(&out), stderr(&out));
    eprintln!("{version}, {:?}:\n{report}", t.elapsed());
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    let log = server.log();
    assert!(
        !log.contains("internal error"),
        "the server logged internal errors:\n{log}"
    );
}
