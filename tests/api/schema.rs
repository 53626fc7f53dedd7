//! Schema conformance: `schemathesis` (PyPI) drives inquiryd's OpenAPI description of every route
//! it serves (`openapi/inquiryd.yaml`) against the real binary, once with the demo agent's
//! credentials and once with an admin's, and checks that nothing answers a 5xx, that status codes
//! are documented ones and that bodies match the documented schemas.
//!
//! `openapi/inquiryd.yaml` uses Rocket.Chat's own descriptions where Rocket.Chat has them:
//! `tests/openapi/rocketchat-subset.yaml` is a verbatim copy of `shared/openapi/` (a test fails
//! when they drift), and another test checks that our file carries those paths unchanged but for
//! the blocks marked `# inquiryd:` (where Rocket.Chat's real answers, our fixtures, differ from its
//! description). A third test checks that every route the server mounts is described.
//!
//! schemathesis runs from the test virtualenv (`python_tools`), built on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use inquiryd::app::{DEMO_TOKEN, DEMO_USER_ID};

use crate::helpers::*;
use crate::python_tools::venv_or_not_run;

const RC_COPY: &str = "tests/openapi/rocketchat-subset.yaml";
const SPEC: &str = "openapi/inquiryd.yaml";

/// Described in the file (the admin console, from branch h4) but not mounted by this build: their
/// operations are left out of the runs while they answer 404 here, and
/// [`routes_described_but_not_served_here_are_the_consoles`] fails as soon as they are served, so
/// that this list is emptied then.
/// Routes described but not served by this build (none today: the console's routes are served).
const NOT_SERVED_HERE: &[&str] = &[];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The paths a description lists (its `  /…:` lines).
fn described_paths(spec: &str) -> Vec<String> {
    spec.lines()
        .filter_map(|l| l.strip_prefix("  /"))
        .filter_map(|l| l.strip_suffix(':'))
        .map(|p| format!("/{p}"))
        .collect()
}

/// One path's block (its line up to the next path or `components:`), as text.
fn path_block<'a>(spec: &'a str, path: &str) -> &'a str {
    let start = spec
        .find(&format!("\n  {path}:\n"))
        .unwrap_or_else(|| panic!("{path} not described"))
        + 1;
    let rest = &spec[start + 1..];
    let end = rest
        .find("\n  /")
        .into_iter()
        .chain(rest.find("\n  # ----"))
        .chain(rest.find("\ncomponents:"))
        .min()
        .unwrap_or(rest.len());
    &spec[start..start + 1 + end]
}

#[test]
fn openapi_copy_matches_the_shared_description() {
    let shared = repo("../shared/openapi/rocketchat-subset.yaml");
    let Ok(upstream) = std::fs::read_to_string(&shared) else {
        // Straight to stderr (eprintln! of a passing test is captured): outside a checkout beside
        // ../shared (a clean clone in CI) there is nothing to compare with.
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!("\nNOT RUN: {} not present\n", shared.display()),
        );
        return;
    };
    let copy = std::fs::read_to_string(repo(RC_COPY)).expect("tests/openapi copy");
    assert!(
        copy == upstream,
        "{RC_COPY} drifted from {}",
        shared.display()
    );
}

/// Rocket.Chat's paths are in our description as Rocket.Chat wrote them, but for the lines marked
/// between `# inquiryd: <why>` and `# end inquiryd`.
#[test]
fn rocketchat_descriptions_are_used_unchanged_but_for_marked_lines() {
    let rc = std::fs::read_to_string(repo(RC_COPY)).unwrap();
    let ours = std::fs::read_to_string(repo(SPEC)).unwrap();
    for path in described_paths(&rc) {
        let theirs: Vec<&str> = path_block(&rc, &path).lines().collect();
        let mut mine = Vec::new();
        let mut marked = false;
        for line in path_block(&ours, &path).lines() {
            match line.trim_start() {
                l if l.starts_with("# inquiryd:") => marked = true,
                "# end inquiryd" => marked = false,
                _ if !marked => mine.push(line),
                _ => {}
            }
        }
        assert!(!marked, "{path}: a `# inquiryd:` block is not closed");
        assert_eq!(
            mine, theirs,
            "{path} differs from Rocket.Chat's description"
        );
    }
}

/// Every route the server mounts is described.
#[test]
fn every_mounted_route_is_described() {
    let ours = std::fs::read_to_string(repo(SPEC)).unwrap();
    let described = described_paths(&ours);
    let mut mounted = Vec::new();
    let mut dirs = vec![repo("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).unwrap();
                for piece in source.split("resource(\"").skip(1) {
                    mounted.push(piece.split('"').next().unwrap().to_string());
                }
            }
        }
    }
    assert!(mounted.len() >= 15, "routes not found in src: {mounted:?}");
    for route in &mounted {
        assert!(
            described.contains(route),
            "{route} is served but not in {SPEC}"
        );
    }
}

#[test]
fn routes_described_but_not_served_here_are_the_consoles() {
    let app = spawn_app();
    let ours = std::fs::read_to_string(repo(SPEC)).unwrap();
    for path in described_paths(&ours) {
        let status = app.get(&path, demo()).status;
        let listed = NOT_SERVED_HERE.contains(&path.as_str());
        assert_eq!(
            status == 404,
            listed,
            "{path} answers {status}: update NOT_SERVED_HERE"
        );
    }
}

/// Runs schemathesis with `credentials` against `server`, over the operations `only` selects (a
/// path regex) or all but logout and what is not served here. Returns the report; panics on
/// findings.
fn run_schemathesis(
    schemathesis: &Path,
    server: &Server,
    dir: &Path,
    credentials: (&str, &str),
    only: Option<&str>,
    max_examples: u32,
) -> String {
    let mut cmd = Command::new(schemathesis);
    cmd.arg("run")
        .arg(repo(SPEC))
        .args(["--url", &server.base])
        .args(["-H", &format!("X-User-Id: {}", credentials.0)])
        .args(["-H", &format!("X-Auth-Token: {}", credentials.1)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &max_examples.to_string(), "--seed", "6"])
        .args(["--request-timeout", "10", "--generation-database", "none"])
        .arg("--no-color")
        .current_dir(dir);
    match only {
        Some(regex) => {
            cmd.args(["--include-path-regex", regex]);
        }
        None => {
            // Logging out would end the run's own session; it has a run of its own.
            let mut excluded = vec!["^/api/v1/logout$".to_string()];
            excluded.extend(
                NOT_SERVED_HERE
                    .iter()
                    .map(|p| format!("^{}$", regex_escape(p))),
            );
            cmd.args(["--exclude-path-regex", &excluded.join("|")]);
        }
    }
    let t = std::time::Instant::now();
    let out = cmd.output().expect("run schemathesis");
    let report = format!("{}\n{}", stdout(&out), stderr(&out));
    eprintln!("schemathesis ({:?}):\n{report}", t.elapsed());
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    report
}

fn regex_escape(path: &str) -> String {
    path.replace('.', "\\.")
}

#[test]
fn inquiryd_openapi_description_is_honoured() {
    let Some(venv) = venv_or_not_run("inquiryd_openapi_description_is_honoured") else {
        return;
    };
    let schemathesis = venv.program("schemathesis");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[demo]\nenabled = true\n").unwrap();
    let db = dir.path().join("inquiryd.sqlite3");
    let mut server = Server::start(dir.path(), &config_args(&config, &db));
    // An admin, seeded through the CLI as an operator would.
    let out = cli_with_stdin(&db, &["user", "add", "root", "--role", "admin"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = |user: &str| {
        let out = cli_with_stdin(&db, &["token", "create", user], None);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["userId"].as_str().unwrap().to_string(),
            v["authToken"].as_str().unwrap().to_string(),
        )
    };
    let root = token("root");

    run_schemathesis(
        &schemathesis,
        &server,
        dir.path(),
        (DEMO_USER_ID, DEMO_TOKEN),
        None,
        60,
    );
    run_schemathesis(
        &schemathesis,
        &server,
        dir.path(),
        (&root.0, &root.1),
        None,
        60,
    );
    let throwaway = token("root");
    run_schemathesis(
        &schemathesis,
        &server,
        dir.path(),
        (&throwaway.0, &throwaway.1),
        Some("^/api/v1/logout$"),
        20,
    );

    let log = server.log();
    assert!(
        !log.contains("internal error"),
        "the server logged internal errors:\n{log}"
    );
    server.terminate();
}
