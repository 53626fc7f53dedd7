//! Running as a service: `contrib/inquiryd.service` passes `systemd-analyze verify` and scores an
//! exposure of at most 2.0 in `systemd-analyze security`; SIGHUP (`systemctl reload`) rescans
//! the plugins directory and the server keeps serving.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

const UNIT: &str = "contrib/inquiryd.service";
/// `systemd-analyze security --threshold` counts tenths: 20 is an exposure of 2.0.
const EXPOSURE_THRESHOLD: &str = "20";

/// Whether `systemd-analyze` runs here. Without it the test cannot run: it says so, and under
/// `CI` (where `.ci/run` installs systemd) that is a failure.
fn systemd_analyze() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing: CI must install it (apt-get install systemd; see .ci/run)"
        );
        eprintln!(
            "NOT RUN: systemd-analyze is missing (apt-get install systemd); {UNIT} was not checked"
        );
    }
    found
}

/// The unit as shipped, with `ExecStart` pointing at this build (verify checks that the program
/// exists), in a directory of its own.
fn unit_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(UNIT))
        .expect("the unit file");
    assert!(
        text.contains("ExecStart=/usr/local/bin/inquiryd "),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inquiryd.service");
    std::fs::write(&path, text.replace("/usr/local/bin/inquiryd", bin())).unwrap();
    (dir, path)
}

#[test]
fn the_service_unit_verifies() {
    if !systemd_analyze() {
        return;
    }
    let (_dir, unit) = unit_copy();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "systemd-analyze verify:\n{said}");
    assert!(
        !said.contains("inquiryd.service:"),
        "systemd-analyze verify warns about the unit:\n{said}"
    );
}

#[test]
fn the_service_unit_is_hardened() {
    if !systemd_analyze() {
        return;
    }
    let (_dir, unit) = unit_copy();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--threshold={EXPOSURE_THRESHOLD}"))
        .arg(&unit)
        .output()
        .unwrap();
    let report = stdout(&out);
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("(no overall line)");
    eprintln!("{overall}");
    assert!(
        out.status.success(),
        "exposure above {EXPOSURE_THRESHOLD} tenths:\n{report}{}",
        stderr(&out)
    );
}

#[test]
fn sighup_rescans_the_plugins_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let config = dir.path().join("config.toml");
    // No watcher: only the signal can make the server notice the new file.
    std::fs::write(&config, "[plugins]\nwatch = false\n").unwrap();
    let mut server = Server::start(dir.path(), &["--config", config.to_str().unwrap()]);
    std::fs::write(dir.path().join("plugins/broken.json"), "{ not json").unwrap();
    server.signal("HUP");
    let seen = poll_until(Duration::from_secs(10), || {
        server
            .log()
            .contains("SIGHUP received: plugins rescanned, 1 file(s) in error")
    });
    assert!(seen.is_some(), "no rescan after SIGHUP:\n{}", server.log());
    std::fs::remove_file(dir.path().join("plugins/broken.json")).unwrap();
    server.signal("HUP");
    let seen = poll_until(Duration::from_secs(10), || {
        server
            .log()
            .contains("SIGHUP received: plugins rescanned, every file valid")
    });
    assert!(seen.is_some(), "no second rescan:\n{}", server.log());
    let info = server
        .client()
        .get(format!("{}/api/info", server.base))
        .send()
        .expect("the server still answers");
    assert_eq!(info.status().as_u16(), 200);
    assert_eq!(server.terminate(), Some(0), "{}", server.log());
}
