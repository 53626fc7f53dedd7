//! The PyPI tools some tests drive (`rocketchat-API`, `schemathesis`), in a pinned virtualenv
//! under `target/` created on first use, so `cargo test` runs every test on a fresh machine with
//! only `python3` (and its `venv` module) installed.
//!
//! Creating it is safe when test threads or test processes race: the first takes an exclusive
//! lock on `target/python-tools.lock`, builds the venv, and marks it ready by renaming a file
//! holding the pins into it; the others wait on the lock and find the mark. A venv without the
//! mark (a run interrupted halfway) is rebuilt. When it cannot be built (no `python3`, no
//! network), a test that needs it says so on the terminal, past cargo's output capture, and fails
//! under `CI`: it is never silently skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What the venv holds, pinned. Changing a pin rebuilds the venv.
const PINS: &[&str] = &["rocketchat-API==3.7.1", "schemathesis==4.32.5"];

/// A ready virtualenv.
pub struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// The venv's own program `name` (`python`, `schemathesis`, …).
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
}

/// The venv, built on first use; `Err` says why it cannot be.
pub fn venv() -> Result<&'static Venv, String> {
    static VENV: OnceLock<Result<Venv, String>> = OnceLock::new();
    VENV.get_or_init(provision).as_ref().map_err(Clone::clone)
}

/// The venv, or `None` after saying on the terminal that `test` did not run; under `CI` a venv
/// that cannot be built fails the test instead.
pub fn venv_or_not_run(test: &str) -> Option<&'static Venv> {
    match venv() {
        Ok(venv) => Some(venv),
        Err(why) => {
            not_run(test, &why);
            None
        }
    }
}

/// Says on the terminal that `test` did not run and why; under `CI` fails it instead. For every
/// test that needs a tool this machine may lack (Python tools, Chromium, systemd-analyze).
pub fn not_run(test: &str, why: &str) {
    assert!(std::env::var_os("CI").is_none(), "{test} cannot run: {why}");
    // Straight to the process's stderr: eprintln! output of a passing test is captured.
    let _ = writeln!(
        std::io::stderr(),
        "\nNOT RUN: {test}: {why}\n(it fails under CI=true)"
    );
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn provision() -> Result<Venv, String> {
    let target = target_dir();
    let dir = target.join("python-tools");
    let mark = dir.join("inquiryd-pins.txt");
    let pins = PINS.join("\n") + "\n";
    let ready = || std::fs::read_to_string(&mark).is_ok_and(|text| text == pins);
    if ready() {
        return Ok(Venv { dir });
    }
    std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    let lock_path = target.join("python-tools.lock");
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    // Another process may have built it while this one waited.
    if ready() {
        return Ok(Venv { dir });
    }
    let _ = writeln!(
        std::io::stderr(),
        "\ncreating the test virtualenv {} ({}); once per target directory",
        dir.display(),
        PINS.join(", ")
    );
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir))
        .map_err(|e| format!("python3 -m venv: {e} (install python3 and python3-venv)"))?;
    run(Command::new(dir.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PINS))
    .map_err(|e| format!("pip install {}: {e}", PINS.join(" ")))?;
    let pending = dir.join("inquiryd-pins.txt.new");
    std::fs::write(&pending, &pins)
        .and_then(|()| std::fs::rename(&pending, &mark))
        .map_err(|e| format!("{}: {e}", mark.display()))?;
    Ok(Venv { dir })
}

/// Runs `cmd`; `Err` holds its stderr (or why it did not start).
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
