//! Declarative JSON plugin hooks that enrich or redact the `inquiry` object of a getOne response.
//! Every `*.json` file directly in the plugins directory is one plugin (see [`format`] for the file
//! format, [`load`] for reading and validating it into the [`compiled`] form, [`input`] for reading
//! the files a plugin is made of as the untrusted input they are, [`engine`] for how hooks run, and
//! [`watcher`] for live reload). The server holds a [`PluginHost`] and, per request, applies
//! [`PluginHost::current`]; the CLI uses [`load_dir`], [`check_command`] and [`schema`].
//!
//! The one promise that shapes everything here: a redaction never fails open. Redactions run after
//! every enrichment, they replace values of unexpected types instead of skipping them, and a plugin
//! file that stops validating keeps its last good version in force.

pub mod compiled;
pub mod engine;
pub mod format;
pub mod input;
pub mod json;
pub mod load;
pub mod switch;
pub mod watcher;

use std::path::Path;
use std::sync::Arc;

use compiled::SetBudget;

pub use engine::PluginSet;
pub use format::{Location, PluginError};
pub use watcher::PluginHost;

/// Who is asking. `has_permission` answers whether the caller holds a permission id (e.g. "manage-apps").
pub struct Caller<'a> {
    /// The caller's user id (`${caller.id}` in templates).
    pub id: &'a str,
    /// The caller's username (`${caller.username}`, `caller.usernames`).
    pub username: &'a str,
    /// The caller's role ids (`caller.roles_any|roles_all|roles_none`).
    pub roles: &'a [String],
    /// Whether the caller holds a permission (`caller.permission|lacks_permission`).
    pub has_permission: &'a dyn Fn(&str) -> bool,
}

/// The outcome of loading one plugin file.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub name: String,
    pub inputs: load::Inputs,
    pub result: Result<Arc<compiled::CompiledPlugin>, Vec<PluginError>>,
    /// When the file was read.
    pub read_at: chrono::DateTime<chrono::Utc>,
}

/// Loads every plugin file in `dir`, in name order, each within what the files before it leave of
/// the set's budgets. `Err` means the directory itself could not be listed.
pub(crate) fn scan(dir: &Path) -> Result<Vec<Loaded>, PluginError> {
    let names = load::list_plugin_files(dir)
        .map_err(|e| PluginError::file(dir, format!("cannot read plugins directory: {e}")))?;
    let count = names.len();
    let mut budget = SetBudget::FULL;
    Ok(names
        .into_iter()
        .enumerate()
        // Past the limit only the first file is named (with how many follow it): a directory
        // of thousands costs one error, not one per file.
        .take(format::MAX_PLUGIN_FILES + 1)
        .map(|(i, name)| {
            if i >= format::MAX_PLUGIN_FILES {
                let error = too_many_files(dir, &name, i, count);
                return Loaded {
                    name,
                    inputs: load::Inputs::default(),
                    result: Err(vec![error]),
                    read_at: chrono::Utc::now(),
                };
            }
            let read_at = chrono::Utc::now();
            let (inputs, result) = load::load_file(dir, &name, budget);
            if let Ok(p) = &result {
                budget = budget.minus(p.cost);
            }
            Loaded {
                name,
                inputs,
                result: result.map(Arc::new),
                read_at,
            }
        })
        .collect())
}

/// The error of a plugin file past the [`format::MAX_PLUGIN_FILES`] first ones, in name order;
/// `index` is its place in that order. The first one past the limit also says how many follow it,
/// as they are not named one by one.
pub(crate) fn too_many_files(dir: &Path, name: &str, index: usize, count: usize) -> PluginError {
    let after = count.saturating_sub(index + 1);
    let nor = if index == format::MAX_PLUGIN_FILES && after > 0 {
        format!(" (nor the {after} plugin files after it by name)")
    } else {
        String::new()
    };
    PluginError::file(
        &dir.join(name),
        format!(
            "not loaded{nor}: the directory has {count} plugin files, over the limit of {}",
            format::MAX_PLUGIN_FILES
        ),
    )
}

/// Loads and validates every plugin file in `dir`, without watching.
/// `Ok` holds the set of enabled plugins; `Err` holds every problem in every file (or the reason the
/// directory could not be read), each displaying as `file:line:column: message` or
/// `file: /pointer: message`.
pub fn load_dir(dir: &Path) -> Result<PluginSet, Vec<PluginError>> {
    let loaded = scan(dir).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut plugins = Vec::new();
    for l in loaded {
        match l.result {
            Ok(p) => plugins.push(p),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(PluginSet::from_plugins(plugins))
    } else {
        Err(errors)
    }
}

/// The JSON Schema of a plugin file, generated from the [`format`] types, for editors.
pub fn schema() -> serde_json::Value {
    schemars::schema_for!(format::PluginFile).to_value()
}

/// The body of `inquiryd plugins check [DIR]`: prints which version of each file it read (one line
/// per file to stdout: `NAME: sha256 HEX[ (TABLE sha256 HEX)…], read TIME: ok|disabled|invalid`,
/// the hashes being what `sha256sum` prints and what the health route shows as `in_force`), then
/// every problem, one per line, to stderr and returns 1; or prints `ok: N plugins, M hooks` to
/// stdout and returns 0.
pub fn check_command(dir: &Path) -> i32 {
    let loaded = match scan(dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let mut failed = false;
    let (mut plugins, mut hooks, mut disabled) = (0usize, 0usize, 0usize);
    for l in &loaded {
        let verdict = match &l.result {
            Ok(p) if p.enabled => "ok",
            Ok(_) => "disabled",
            Err(_) => "invalid",
        };
        if l.inputs.0.is_empty() {
            // past the limit on the number of files: never read
            println!("{}: not read: {verdict}", l.name);
        } else {
            let tables: String = watcher::table_hashes(dir, &l.inputs)
                .iter()
                .map(|(file, sha)| format!(" ({file} sha256 {sha})"))
                .collect();
            println!(
                "{}: sha256 {}{tables}, read {}: {verdict}",
                l.name,
                watcher::sha256_of(&l.inputs),
                l.read_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
        }
        match &l.result {
            Ok(p) => {
                plugins += 1;
                if p.enabled {
                    hooks += p.hooks.len();
                } else {
                    disabled += 1;
                }
            }
            Err(errors) => {
                failed = true;
                for e in errors {
                    eprintln!("{e}");
                }
            }
        }
    }
    if failed {
        return 1;
    }
    if disabled > 0 {
        println!("ok: {plugins} plugins, {hooks} hooks ({disabled} disabled)");
    } else {
        println!("ok: {plugins} plugins, {hooks} hooks");
    }
    0
}
