//! Live reload of the plugins directory. A [`PluginHost`] loads the directory once at start (any error
//! refuses the start), then one background thread rescans it as soon as the watcher reports any
//! write, rename or deletion (events queued meanwhile are served by the same rescan), and every
//! [`RESCAN_EVERY`] as a safety net for lost events or a replaced directory.
//!
//! The promise about versions (docs/plugins.md, "Live reload"): every version of a file this module reads is
//! compiled at once, and the version in force is always the newest valid version it read (reads are
//! in order, so newest read is newest on disk). Events are not debounced, so each save the kernel
//! reports is followed by a read; a version replaced before that read (one that existed for a
//! millisecond in a burst) is never seen, and then the file's state says so: the hash and read time
//! of the version in force, of the latest bytes read, and whether the file is still settling.
//!
//! A rescan rebuilds only the files whose bytes (or table files' bytes) changed, then swaps the whole
//! [`PluginSet`] with arc-swap, so a request sees the old set or the new one, never a mix. A file that
//! no longer validates keeps its last good version in force and its error is logged; a deleted file, or
//! one with `"enabled": false`, loses its hooks. A file that disappears is only dropped once it has
//! stayed missing for [`MISSING_GRACE`], so an editor that deletes before writing never leaves a
//! window without its redactions. A file that fails to load within [`SETTLE`] of its last write is
//! read again before its error counts, so a save caught halfway is not reported. An unreadable
//! directory keeps the set in force.
//!
//! No request waits on this module's file I/O: requests read the set and the health details from
//! arc-swap snapshots published at the end of each rescan. The files' state sits behind a mutex that
//! only rescans take (the watcher thread, or [`PluginHost::reload`]), so a slow rescan delays the
//! next rescan and nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};
use chrono::{DateTime, SecondsFormat, Utc};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::compiled::{CompiledPlugin, SetBudget};
use super::format;
use super::load::{self, Inputs};
use super::{PluginError, PluginSet};

/// About how long after a save its version is in force on an idle machine: the watcher reads at
/// once, so this is the time an event and one rescan take, with room. Tests wait this long to let
/// the watcher look at a file (never as a synchronisation they depend on).
pub const READ_WITHIN: Duration = Duration::from_millis(100);
/// Period of the safety-net rescan.
pub const RESCAN_EVERY: Duration = Duration::from_secs(2);
/// How long a vanished file keeps its hooks before it counts as deleted.
pub const MISSING_GRACE: Duration = Duration::from_millis(250);
/// A file that fails to load while written less than this long ago is read again (every
/// [`MISSING_GRACE`]) before its error counts, so a save caught halfway is not reported. Its last
/// good version stays in force meanwhile; only the error shows later.
pub const SETTLE: Duration = Duration::from_millis(500);

enum Msg {
    Changed,
    Stop,
}

/// A change to a plugin file that a rescan acted on, for the audit trail: which file, the
/// SHA-256 of the version in force before (if any) and of the bytes read now (if any), and what
/// came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginChange {
    pub file: String,
    pub old_sha256: Option<String>,
    pub new_sha256: Option<String>,
    pub outcome: ChangeOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// The new version is in force.
    Applied,
    /// The new version is invalid (the errors, one line); the previous one, if any, stays.
    Rejected(String),
    /// The file is gone (past its grace period); it is no longer in force.
    Removed,
}

/// Told of the changes of each rescan that had any, on the rescanning thread, after the new set
/// is in force.
pub type ChangeSink = Box<dyn Fn(&[PluginChange]) + Send + Sync>;

/// Which version of a file was read: the SHA-256 of the plugin file's bytes (and of each table file
/// it read), and when it was read.
#[derive(Debug, Clone)]
struct ReadMark {
    sha256: String,
    tables: Vec<(String, String)>,
    at: DateTime<Utc>,
}

impl ReadMark {
    fn of(dir: &Path, inputs: &Inputs, at: DateTime<Utc>) -> ReadMark {
        ReadMark {
            sha256: sha256_of(inputs),
            tables: table_hashes(dir, inputs),
            at,
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "sha256": self.sha256,
            "read_at": self.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        if !self.tables.is_empty() {
            v["table_files"] = self
                .tables
                .iter()
                .map(|(file, sha)| (file.clone(), Value::String(sha.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        v
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Lowercase hex SHA-256 of the plugin file's bytes in `inputs` (what `sha256sum FILE` prints), or
/// of nothing when it could not be read.
pub fn sha256_of(inputs: &Inputs) -> String {
    let bytes = inputs
        .0
        .first()
        .and_then(|(_, b)| b.as_deref())
        .unwrap_or_default();
    hex_sha256(bytes)
}

/// The table files a plugin read (their paths relative to `dir`, as the plugin names them) and the
/// SHA-256 of the bytes read, in the order read.
pub fn table_hashes(dir: &Path, inputs: &Inputs) -> Vec<(String, String)> {
    inputs
        .0
        .iter()
        .skip(1)
        .filter_map(|(path, bytes)| {
            let rel = path.strip_prefix(dir).unwrap_or(path);
            Some((rel.display().to_string(), hex_sha256(bytes.as_deref()?)))
        })
        .collect()
}

/// Called after every read of a plugin file by a [`PluginHost`], in the order of the reads, with the
/// file's name, [`sha256_of`] its bytes and whether they compiled. For tests of the version promise.
pub type ReadObserver = Arc<dyn Fn(&str, &str, bool) + Send + Sync>;

#[derive(Debug)]
struct FileState {
    /// Bytes of the latest attempt, to skip unchanged files.
    inputs: Inputs,
    /// The version in force (when valid once).
    last_good: Option<Arc<CompiledPlugin>>,
    /// Which bytes `last_good` was built from, and when they were read.
    in_force: Option<ReadMark>,
    /// The latest read of the file, valid or not, and whether it compiled.
    last_read: Option<(ReadMark, bool)>,
    /// The latest read failed while the file had been written less than [`SETTLE`] ago: it is read
    /// again before its error counts (and before the state says `error`).
    settling: bool,
    /// Errors of the latest attempt, one line.
    error: Option<String>,
    /// When the file was first seen missing.
    missing_since: Option<Instant>,
    /// What the other files left of the set's budgets at the latest attempt: a failed file is
    /// tried again, unchanged, once they leave more (it may have failed for want of it).
    tried_with: SetBudget,
}

impl FileState {
    fn new() -> FileState {
        FileState {
            inputs: Inputs::default(),
            last_good: None,
            in_force: None,
            last_read: None,
            settling: false,
            error: None,
            missing_since: None,
            tried_with: SetBudget::FULL,
        }
    }
}

#[derive(Debug)]
struct State {
    files: BTreeMap<String, FileState>,
    last_reload: DateTime<Utc>,
    last_error: Option<String>,
    /// What the current rescan changed, handed to the [`ChangeSink`] when it ends.
    changes: Vec<PluginChange>,
}

struct Inner {
    dir: PathBuf,
    set: ArcSwap<PluginSet>,
    /// The health details, rebuilt at the end of each rescan: `/health` reads them without a lock.
    health: ArcSwap<Value>,
    /// Taken only by a rescan, which holds it across file I/O: never take it on a request's path.
    state: Mutex<State>,
    observer: Option<ReadObserver>,
    /// Rescans done since start.
    rescans: AtomicU64,
    /// The last rescan's outcome, for the metrics (see [`ReloadStatus`]).
    status: ArcSwap<ReloadStatus>,
    /// Who is told of changes (the server's audit trail), once set.
    sink: std::sync::OnceLock<ChangeSink>,
}

/// How the plugins directory last read (the metrics show it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadStatus {
    /// The last rescan read the directory and found every file valid.
    pub success: bool,
    /// Unix time of the last such rescan (or of the start).
    pub last_success: i64,
    /// Files whose current version is invalid (their last good version stays in force).
    pub files_in_error: usize,
}

impl ReloadStatus {
    fn after(state: &State, previous: Option<&ReloadStatus>) -> ReloadStatus {
        let files_in_error = state.files.values().filter(|f| f.error.is_some()).count();
        let success = files_in_error == 0 && state.last_error.is_none();
        ReloadStatus {
            success,
            last_success: match previous {
                Some(p) if !success => p.last_success,
                _ => Utc::now().timestamp(),
            },
            files_in_error,
        }
    }
}

/// The live plugin set of a running server. Dropping it stops the watcher without waiting.
pub struct PluginHost {
    inner: Arc<Inner>,
    stop: Option<Sender<Msg>>,
}

impl PluginHost {
    /// Loads every plugin in `dir`; any invalid file (or an unreadable directory) returns every problem
    /// and starts nothing. With `watch`, a background thread then keeps the set in step with the directory.
    pub fn start(dir: PathBuf, watch: bool) -> Result<Arc<PluginHost>, Vec<PluginError>> {
        PluginHost::start_observed(dir, watch, None)
    }

    /// [`PluginHost::start`], calling `observer` after every read of a plugin file (tests use it to
    /// know which versions were read).
    #[doc(hidden)]
    pub fn start_observed(
        dir: PathBuf,
        watch: bool,
        observer: Option<ReadObserver>,
    ) -> Result<Arc<PluginHost>, Vec<PluginError>> {
        let loaded = super::scan(&dir).map_err(|e| vec![e])?;
        let mut files = BTreeMap::new();
        let mut errors = Vec::new();
        for l in loaded {
            let mark = ReadMark::of(&dir, &l.inputs, l.read_at);
            if let Some(observe) = &observer {
                observe(&l.name, &mark.sha256, l.result.is_ok());
            }
            match l.result {
                Ok(p) => {
                    files.insert(
                        l.name,
                        FileState {
                            inputs: l.inputs,
                            last_good: Some(p),
                            in_force: Some(mark.clone()),
                            last_read: Some((mark, true)),
                            settling: false,
                            error: None,
                            missing_since: None,
                            // valid: never tried again for want of budget
                            tried_with: SetBudget::FULL,
                        },
                    );
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let state = State {
            files,
            last_reload: Utc::now(),
            last_error: None,
            changes: Vec::new(),
        };
        let set = build_set(&state);
        log_summary(&dir, &state, &set);
        let status = ReloadStatus::after(&state, None);
        let inner = Arc::new(Inner {
            health: ArcSwap::from_pointee(health_details(&dir, &state)),
            dir,
            set: ArcSwap::from_pointee(set),
            state: Mutex::new(state),
            observer,
            rescans: AtomicU64::new(0),
            status: ArcSwap::from_pointee(status),
            sink: std::sync::OnceLock::new(),
        });
        let stop = if watch {
            let (tx, rx) = mpsc::channel();
            // The watch is in place before `start` returns, so a write made right after it is seen
            // by the watcher, not only by the periodic rescan.
            let identity = dir_identity(&inner.dir);
            let watcher = make_watcher(&inner.dir, &tx);
            let thread_inner = inner.clone();
            let thread_tx = tx.clone();
            std::thread::Builder::new()
                .name("plugins-watch".into())
                .spawn(move || watch_loop(thread_inner, thread_tx, rx, watcher, identity))
                .map_err(|e| {
                    vec![PluginError::file(
                        &inner.dir,
                        format!("cannot start the watcher thread: {e}"),
                    )]
                })?;
            Some(tx)
        } else {
            None
        };
        Ok(Arc::new(PluginHost { inner, stop }))
    }

    /// The plugins directory this host keeps in force.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Tells `sink` of every change later rescans act on (the first sink set stays).
    pub fn on_change(&self, sink: ChangeSink) {
        let _ = self.inner.sink.set(sink);
    }

    /// The set in force now (an arc-swap load: no lock, no allocation).
    pub fn current(&self) -> Guard<Arc<PluginSet>> {
        self.inner.set.load()
    }

    /// Rescans the directory now, as the watcher would (useful after a manual edit when not watching).
    pub fn reload(&self) {
        self.inner.reload();
    }

    /// Rescans now, and again while a file is still settling or within its grace period, so the
    /// outcome is decided when it returns (at most about [`SETTLE`] + [`MISSING_GRACE`] later).
    /// SIGHUP's rescan: without a watcher, nothing else would rescan a settling file.
    pub fn reload_settled(&self) {
        let deadline = Instant::now() + SETTLE + MISSING_GRACE + Duration::from_secs(1);
        while self.inner.reload() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Rescans now after this server deleted `name` itself: the file counts as deleted at once,
    /// without the [`MISSING_GRACE`] an editor's delete-then-write is given.
    pub fn reload_after_delete(&self, name: &str) {
        {
            let mut state = self.inner.lock();
            if let Some(f) = state.files.get_mut(name) {
                f.missing_since = Instant::now().checked_sub(MISSING_GRACE);
            }
        }
        self.inner.reload();
    }

    /// Validates an unsaved draft of the plugin file `name` exactly as a rescan would validate it
    /// once saved: the same parser, checks and compiler ([`load::compile_bytes`]), within what the
    /// other files in force leave of the set's budgets, `table_file`s read from the directory.
    /// Nothing is written and nothing changes in force. `Ok` holds the compiled draft (enabled or
    /// not); `Err` every problem, as the watcher would log them.
    pub fn check_draft(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<CompiledPlugin, Vec<PluginError>> {
        let budget = {
            let state = self.inner.lock();
            state
                .files
                .iter()
                .filter(|(other, _)| other.as_str() != name)
                .filter_map(|(_, f)| f.last_good.as_ref())
                .fold(SetBudget::FULL, |b, p| b.minus(p.cost))
        };
        let path = self.inner.dir.join(name);
        let mut inputs = Inputs(vec![(path.clone(), Some(bytes.to_vec()))]);
        load::compile_bytes(&self.inner.dir, &path, name, bytes, &mut inputs, budget)
    }

    /// How many rescans were done since start (by the watcher or [`PluginHost::reload`]): with
    /// nothing changing, about one per [`RESCAN_EVERY`].
    pub fn rescans(&self) -> u64 {
        self.inner.rescans.load(Ordering::Relaxed)
    }

    /// How the last rescan went.
    pub fn reload_status(&self) -> ReloadStatus {
        **self.inner.status.load()
    }

    /// Health details: the directory, each plugin file's state (`ok`, `error` or `disabled`, its error,
    /// the number of hooks it has in force, which version is in force and which was read last, each
    /// as a SHA-256 of the file and the time it was read, and whether it is still settling), the time
    /// of the last reload and the current error, if any.
    /// A snapshot taken at the end of the last rescan: it never waits for a rescan in progress.
    pub fn health(&self) -> Value {
        Value::clone(&self.inner.health.load())
    }
}

/// The health details of `state` (see [`PluginHost::health`]).
fn health_details(dir: &Path, state: &State) -> Value {
    let files: Vec<Value> = state
        .files
        .iter()
        .map(|(name, f)| {
            let enabled = f.last_good.as_ref().is_some_and(|p| p.enabled);
            let hooks = if enabled {
                f.last_good.as_ref().map_or(0, |p| p.hooks.len())
            } else {
                0
            };
            let st = if f.error.is_some() {
                "error"
            } else if enabled {
                "ok"
            } else {
                "disabled"
            };
            json!({
                "file": name,
                "state": st,
                "error": f.error,
                "hooks": hooks,
                "serving_last_good": f.error.is_some() && f.last_good.is_some(),
                "in_force": f.in_force.as_ref().map(ReadMark::to_json),
                "last_read": f.last_read.as_ref().map(|(mark, valid)| {
                    let mut v = mark.to_json();
                    v["valid"] = Value::Bool(*valid);
                    v
                }),
                "settling": f.settling,
            })
        })
        .collect();
    json!({
        "dir": dir.display().to_string(),
        "files": files,
        "last_reload": state.last_reload.to_rfc3339_opts(SecondsFormat::Millis, true),
        "last_error": state.last_error,
    })
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            // the thread exits at its next wake-up; nothing here waits for it
            let _ = tx.send(Msg::Stop);
        }
    }
}

fn build_set(state: &State) -> PluginSet {
    PluginSet::from_plugins(state.files.values().filter_map(|f| f.last_good.clone()))
}

fn log_summary(dir: &Path, state: &State, set: &PluginSet) {
    let errors = state.files.values().filter(|f| f.error.is_some()).count();
    let disabled = state
        .files
        .values()
        .filter(|f| f.error.is_none() && f.last_good.as_ref().is_some_and(|p| !p.enabled))
        .count();
    let ok = state.files.len() - errors - disabled;
    log::info!(
        "plugins loaded from {}: {ok} ok, {errors} error, {disabled} disabled, {} hooks in force",
        dir.display(),
        set.hook_count()
    );
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // a panic while holding the lock cannot leave State half-updated in a way that matters here
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rescans and swaps in a new set when anything changed, then publishes the health details.
    /// Returns true while some vanished file is still within its grace period, or some failing file
    /// is still settling (the caller then rescans again soon).
    fn reload(&self) -> bool {
        let mut state = self.lock();
        let (pending, set) = self.rescan(&mut state);
        self.rescans.fetch_add(1, Ordering::Relaxed);
        let previous = **self.status.load();
        self.status
            .store(Arc::new(ReloadStatus::after(&state, Some(&previous))));
        // health first: whoever sees the new set, then asks for health, sees the new details
        self.health
            .store(Arc::new(health_details(&self.dir, &state)));
        if let Some(set) = set {
            self.set.store(Arc::new(set));
        }
        let changes = std::mem::take(&mut state.changes);
        drop(state);
        if !changes.is_empty()
            && let Some(sink) = self.sink.get()
        {
            sink(&changes);
        }
        pending
    }

    /// The rescan proper: updates `state`, and returns whether to rescan soon and the new set,
    /// if anything changed.
    fn rescan(&self, state: &mut State) -> (bool, Option<PluginSet>) {
        let names = match load::list_plugin_files(&self.dir) {
            Ok(n) => n,
            Err(e) => {
                let msg = format!("cannot read plugins directory {}: {e}", self.dir.display());
                if state.last_error.as_deref() != Some(msg.as_str()) {
                    log::error!("{msg} (keeping the plugins in force)");
                    state.last_error = Some(msg);
                }
                return (false, None);
            }
        };
        let mut changed = false;
        let mut pending = false;
        let now = Instant::now();
        let mut gone = Vec::new();
        for (name, f) in state.files.iter_mut() {
            if names.binary_search(name).is_ok() {
                continue;
            }
            let since = *f.missing_since.get_or_insert(now);
            if now.duration_since(since) >= MISSING_GRACE {
                gone.push(name.clone());
            } else {
                pending = true;
            }
        }
        for name in gone {
            if let Some(f) = state.files.remove(&name) {
                state.changes.push(PluginChange {
                    file: name,
                    old_sha256: f.in_force.map(|m| m.sha256),
                    new_sha256: None,
                    outcome: ChangeOutcome::Removed,
                });
            }
            changed = true;
        }
        let count = names.len();
        for (i, name) in names.into_iter().enumerate() {
            if i >= format::MAX_PLUGIN_FILES {
                // Only the first file past the limit is tracked (its error says how many follow
                // it), and those that had a version in force, which keep it: a redaction never
                // fails open. The rest cost nothing, so a directory of thousands of files costs
                // one entry and one log line per change, not one per file and per rescan.
                let keep = i == format::MAX_PLUGIN_FILES
                    || state
                        .files
                        .get(&name)
                        .is_some_and(|f| f.last_good.is_some());
                if !keep {
                    changed |= state.files.remove(&name).is_some();
                    continue;
                }
                let error = super::too_many_files(&self.dir, &name, i, count).to_string();
                let entry = state
                    .files
                    .entry(name.clone())
                    .or_insert_with(FileState::new);
                entry.missing_since = None;
                // read again once it is within the limit
                entry.inputs = Inputs(vec![(self.dir.join(&name), None)]);
                if entry.error.as_deref() != Some(error.as_str()) {
                    log::error!("plugin reload: {error}");
                    entry.error = Some(error);
                    changed = true;
                }
                continue;
            }
            // what the other files in force leave this one of the set's budgets
            let budget = state
                .files
                .iter()
                .filter(|(other, _)| **other != name)
                .filter_map(|(_, f)| f.last_good.as_ref())
                .fold(SetBudget::FULL, |b, p| b.minus(p.cost));
            if let Some(f) = state.files.get_mut(&name) {
                f.missing_since = None;
                let more_budget = budget.regex_bytes > f.tried_with.regex_bytes
                    || budget.input_bytes > f.tried_with.input_bytes
                    || budget.json_values > f.tried_with.json_values;
                if f.inputs.unchanged(&self.dir) && !(f.error.is_some() && more_budget) {
                    if f.settling {
                        // back to the bytes last decided on (no new version): settled as they were
                        f.settling = false;
                        let mark = ReadMark::of(&self.dir, &f.inputs, Utc::now());
                        f.last_read = Some((mark, f.error.is_none()));
                    }
                    continue;
                }
            }
            let read_at = Utc::now();
            let (inputs, result) = load::load_file(&self.dir, &name, budget);
            let mark = ReadMark::of(&self.dir, &inputs, read_at);
            if let Some(observe) = &self.observer {
                observe(&name, &mark.sha256, result.is_ok());
            }
            if result.is_err() && inputs.modified_within(SETTLE) {
                // Most likely caught mid-save (an in-place write truncates first): look again
                // once the file has been quiet for a while, and only then call it an error.
                // The version in force stays the newest valid one read; health says "settling".
                // (A new file appears once it validates or its error counts.)
                pending = true;
                if let Some(entry) = state.files.get_mut(&name) {
                    entry.settling = true;
                    entry.last_read = Some((mark, false));
                }
                continue;
            }
            changed = true;
            let entry = state
                .files
                .entry(name.clone())
                .or_insert_with(FileState::new);
            let old_sha256 = entry.in_force.as_ref().map(|m| m.sha256.clone());
            let new_sha256 = Some(mark.sha256.clone());
            entry.inputs = inputs;
            entry.tried_with = budget;
            entry.settling = false;
            entry.last_read = Some((mark.clone(), result.is_ok()));
            let outcome = match &result {
                Ok(_) => ChangeOutcome::Applied,
                Err(errors) => ChangeOutcome::Rejected(
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            };
            // A file read again unchanged (e.g. retried with more budget) and still failing the
            // same way is no new change.
            let repeat =
                matches!(&outcome, ChangeOutcome::Rejected(e) if entry.error.as_ref() == Some(e));
            if !repeat {
                state.changes.push(PluginChange {
                    file: name,
                    old_sha256,
                    new_sha256,
                    outcome,
                });
            }
            match result {
                Ok(p) => {
                    entry.last_good = Some(Arc::new(p));
                    entry.in_force = Some(mark);
                    entry.error = None;
                }
                Err(errors) => {
                    let line = errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    let keeping = if entry.last_good.is_some() {
                        "keeping its last good version"
                    } else {
                        "no version in force"
                    };
                    log::error!("plugin reload: {line} ({keeping})");
                    entry.error = Some(line);
                }
            }
        }
        if changed {
            let set = build_set(state);
            let errors: Vec<&str> = state
                .files
                .values()
                .filter_map(|f| f.error.as_deref())
                .collect();
            state.last_error = if errors.is_empty() {
                None
            } else {
                Some(errors.join("; "))
            };
            state.last_reload = Utc::now();
            log_summary(&self.dir, state, &set);
            return (pending, Some(set));
        } else if state
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("cannot read plugins directory"))
        {
            state.last_error = None;
        }
        (pending, None)
    }
}

/// Watches `dir` (recursively, so table files in subdirectories count); any write, creation,
/// rename, deletion or change of metadata asks for a rescan at once. Reads (the rescans' own
/// included) are not changes: of the access events only the close of a file written counts.
fn make_watcher(dir: &Path, tx: &Sender<Msg>) -> Option<notify::RecommendedWatcher> {
    let tx = tx.clone();
    // Not debounced, on purpose: a save is read as soon as the kernel reports it, so a valid
    // version followed within milliseconds by an invalid one is still seen (a debouncer waits for a
    // quiet moment and would read only the last). The watch loop coalesces queued events.
    let handler = move |result: notify::Result<notify::Event>| {
        match result {
            Ok(event) => match event.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
                EventKind::Access(_) => return,
                _ => {}
            },
            Err(e) => log::warn!("plugins watcher: {e} (rescanning)"),
        }
        // changes, errors and overflow ("rescan" flags) all lead to the same full rescan
        let _ = tx.send(Msg::Changed);
    };
    // Symlinks are not followed into: a link to `/` inside the directory would otherwise have the
    // watch walk (and add a watch for) every directory it reaches. Files read through a symlink
    // that stays inside are watched at their real place; the periodic rescan covers the rest.
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = match notify::RecommendedWatcher::new(handler, config) {
        Ok(w) => w,
        Err(e) => {
            log::error!("plugins watcher: cannot start: {e} (rescanning every {RESCAN_EVERY:?})");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::Recursive) {
        log::error!(
            "plugins watcher: cannot watch {}: {e} (rescanning every {RESCAN_EVERY:?})",
            dir.display()
        );
        return None;
    }
    Some(watcher)
}

/// Identity of the directory, to notice that it was replaced (the old watch then sees nothing).
fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(dir).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        meta.modified().ok().map(|_| (0, 0))
    }
}

fn watch_loop(
    inner: Arc<Inner>,
    tx: Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    mut watcher: Option<notify::RecommendedWatcher>,
    mut identity: Option<(u64, u64)>,
) {
    // `tx` stays alive here to build new watchers, so the channel never disconnects: Stop ends the loop
    let mut pending = false;
    let mut next_periodic = Instant::now() + RESCAN_EVERY;
    loop {
        let now = Instant::now();
        let wait = if pending {
            MISSING_GRACE
        } else {
            next_periodic.saturating_duration_since(now)
        };
        match rx.recv_timeout(wait) {
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Msg::Changed) => {
                // one rescan covers every message already queued
                loop {
                    match rx.try_recv() {
                        Ok(Msg::Changed) => {}
                        Ok(Msg::Stop) => return,
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= next_periodic {
            next_periodic = Instant::now() + RESCAN_EVERY;
            let id = dir_identity(&inner.dir);
            if id.is_some() && (id != identity || watcher.is_none()) {
                log::info!(
                    "plugins watcher: {} replaced or unwatched, watching it anew",
                    inner.dir.display()
                );
                drop(watcher.take());
                watcher = make_watcher(&inner.dir, &tx);
                identity = id;
            }
        }
        pending = inner.reload();
    }
}
