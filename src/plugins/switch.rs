//! `plugins enable|disable NAME`: switch a plugin on or off without editing a tracked file.
//!
//! The shipped examples live in `DIR/examples/` (not read by the server: only `*.json` directly
//! in the plugins directory is a plugin). Enabling one copies it into `DIR/NAME.json` switched on
//! (git ignores that copy); enabling or disabling a plugin already in `DIR` rewrites its
//! `"enabled"` member. Either way the file is written beside its name and renamed over it, so the
//! watcher reads the old file or the new one, never half of one, and a running server has the
//! change in force within a second.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::newfile::NewFile;

/// What [`switch`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Switched {
    /// The file in the plugins directory was changed.
    Changed(PathBuf),
    /// The example was copied in, switched on.
    CopiedIn { from: PathBuf, to: PathBuf },
    /// It already was as asked; nothing written.
    Already(PathBuf),
}

/// Switches plugin `name` (its file name without `.json`) in `dir` on or off. Fails, changing
/// nothing, when there is no such plugin (or, to enable, example), when its file is not a JSON
/// object, or when it cannot be written.
pub fn switch(dir: &Path, name: &str, enabled: bool) -> Result<Switched, String> {
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!(
            "plugin name {name:?}: use the file name without .json (letters, digits, '.', '-', '_')"
        ));
    }
    let name = name.strip_suffix(".json").unwrap_or(name);
    if !dir.is_dir() {
        return Err(format!(
            "plugins directory {}: does not exist",
            dir.display()
        ));
    }
    let file = dir.join(format!("{name}.json"));
    let example = dir.join("examples").join(format!("{name}.json"));
    let (from, copied) = if file.exists() {
        (file.clone(), false)
    } else if enabled && example.exists() {
        (example, true)
    } else {
        return Err(format!(
            "no plugin {name:?} in {}{}",
            dir.display(),
            available(dir, enabled)
        ));
    };
    let text = read(&from)?;
    let mut plugin: Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not JSON: {e}; fix it first (inquiryd plugins check)",
            from.display()
        )
    })?;
    let Some(members) = plugin.as_object_mut() else {
        return Err(format!("{}: not a JSON object", from.display()));
    };
    if !copied && members.get("enabled") == Some(&Value::Bool(enabled)) {
        return Ok(Switched::Already(file));
    }
    members.insert("enabled".into(), Value::Bool(enabled));
    if copied && members.contains_key("$schema") {
        members.insert("$schema".into(), Value::from("./plugin.schema.json"));
    }
    let mut out = serde_json::to_string_pretty(&plugin).map_err(|e| e.to_string())?;
    out.push('\n');
    let written = |e: std::io::Error| format!("{}: {e}", file.display());
    // 0644, not NewFile's 0600: a plugin holds no secret, and the server may run as another user
    // than the admin who switched it (the systemd unit's `inquiryd`).
    let mut new = NewFile::create_with_mode(&file, !copied, 0o644).map_err(written)?;
    std::io::Write::write_all(&mut new, out.as_bytes()).map_err(written)?;
    new.place().map_err(written)?;
    Ok(if copied {
        Switched::CopiedIn {
            from: dir.join("examples").join(format!("{name}.json")),
            to: file,
        }
    } else {
        Switched::Changed(file)
    })
}

fn read(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    crate::regular::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    Ok(text)
}

/// "; plugins: a, b; examples: c" for an error message.
fn available(dir: &Path, with_examples: bool) -> String {
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = super::load::list_plugin_files(d)
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.trim_end_matches(".json").to_string())
            .collect();
        v.sort();
        v
    };
    let mut out = String::new();
    let here = names(dir);
    if !here.is_empty() {
        out.push_str(&format!("; plugins: {}", here.join(", ")));
    }
    if with_examples {
        let examples = names(&dir.join("examples"));
        if !examples.is_empty() {
            out.push_str(&format!("; examples: {}", examples.join(", ")));
        }
    }
    out
}
