//! The admin console: its page and files (headers), and the end-to-end run in headless Chromium
//! (`tests/console/e2e.mjs`, driven by npm `playwright-core` with Debian's `chromium`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::helpers::{Server, cli_with_stdin, poll_until, spawn_app, stderr};

#[test]
fn console_page_and_files_carry_a_strict_policy() {
    let app = spawn_app();
    for (path, media_type) in [
        ("/admin", "text/html"),
        ("/admin/", "text/html"),
        ("/admin/app.js", "text/javascript"),
        ("/admin/style.css", "text/css"),
    ] {
        let r = app.get(path, None);
        assert_eq!(r.status, 200, "{path}");
        let header = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(media_type), "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert!(r.headers.get("set-cookie").is_none(), "{path}");
    }
    // no inline script or style for the policy to refuse
    let page = app.get("/admin", None).body;
    assert!(page.contains(r#"<script type="module" src="/admin/app.js">"#));
    assert!(!page.contains("<script>") && !page.contains("style="));
    assert_eq!(app.get("/admin/nope.js", None).status, 404);
    assert_eq!(app.post("/admin", "{}", None).status, 405);
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Debian's chromium, or why the e2e test cannot run.
fn chromium() -> Result<PathBuf, String> {
    let path = PathBuf::from(
        std::env::var("INQUIRYD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: install it (apt-get install -y chromium; .ci/run does) or point INQUIRYD_CHROMIUM at one",
            path.display()
        ))
    }
}

/// Installs playwright-core and axe-core into tests/console/node_modules (npm ci, from the
/// committed lock file) unless they are there.
fn node_modules() -> Result<(), String> {
    let dir = repo().join("tests/console");
    let ready = ["playwright-core", "axe-core"].iter().all(|p| {
        dir.join("node_modules")
            .join(p)
            .join("package.json")
            .exists()
    });
    if ready {
        return Ok(());
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("cannot run npm (install Node.js and npm): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("npm ci in tests/console failed:\n{}", stderr(&out)))
    }
}

/// The end-to-end run. Under CI a missing browser, Node or npm package fails it (`.ci/run`
/// installs them); locally it says NOT RUN on the terminal, as the Python-driven tests do.
#[test]
fn console_end_to_end_in_headless_chromium() {
    let provisioned = chromium().and_then(|c| node_modules().map(|()| c));
    let chromium = match provisioned {
        Ok(c) => c,
        Err(e) => {
            crate::python_tools::not_run("console_end_to_end_in_headless_chromium", &e);
            return;
        }
    };

    let d = tempfile::tempdir().expect("tempdir");
    let plugins = d.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    let plugin = "mask-visitor-for-agents.json";
    std::fs::copy(
        repo().join("plugins/examples").join(plugin),
        plugins.join(plugin),
    )
    .expect("plugin");
    std::fs::write(d.path().join("config.toml"), "[demo]\nenabled = true\n").expect("config");
    let db = d.path().join("console.sqlite3");
    let server = Server::start(
        d.path(),
        &[
            "--db",
            db.to_str().expect("UTF-8"),
            "--plugins",
            plugins.to_str().expect("UTF-8"),
        ],
    );
    for (user, role) in [
        ("console.admin", "admin"),
        ("console.agent", "livechat-agent"),
    ] {
        let out = cli_with_stdin(
            &db,
            &["user", "add", user, "--role", role, "--password-stdin"],
            Some("console e2e password\n"),
        );
        assert!(out.status.success(), "user add {user}: {}", stderr(&out));
    }
    // the server sees CLI changes within its poll interval: wait until the admin can log in
    let client = server.client();
    let can_login = poll_until(Duration::from_secs(5), || {
        client
            .post(format!("{}/api/v1/login", server.base))
            .header("Content-Type", "application/json")
            .body(r#"{"user":"console.admin","password":"console e2e password"}"#)
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    assert!(can_login.is_some(), "the admin never could log in");

    let shots = repo().join("target/console-screenshots");
    // a page renamed or gone must not leave an old screenshot behind to be looked at
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .arg(repo().join("tests/console/e2e.mjs"))
        .current_dir(repo().join("tests/console"))
        .env("BASE", &server.base)
        .env("ADMIN_USER", "console.admin")
        .env("ADMIN_PASSWORD", "console e2e password")
        .env("AGENT_USER", "console.agent")
        .env("AGENT_PASSWORD", "console e2e password")
        .env("DEMO_USER_ID", inquiryd::app::DEMO_USER_ID)
        .env("DEMO_TOKEN", inquiryd::app::DEMO_TOKEN)
        .env("ROOM", crate::helpers::DEMO_ROOM)
        .env("PLUGIN", plugin)
        .env("PLUGINS_DIR", &plugins)
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let report = format!(
        "{}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert!(out.status.success(), "console e2e failed:\n{report}");
    println!("{report}");
    for page in [
        "01-signin",
        "02-permissions",
        "02b-permissions-refused",
        "03-users",
        "03b-users-roles",
        "03c-users-list",
        "04-plugins",
        "06-editor-preview",
        "08-audit",
        "08b-audit-filtered",
        "09-no-access",
    ] {
        for width in [1280, 390] {
            let shot = shots.join(format!("{page}-{width}.png"));
            assert!(shot.exists(), "no screenshot {}", shot.display());
        }
    }
}
