//! Loading plugin files: listing the plugin files of a directory, reading one file (and the table
//! files it names), and validating and compiling it into a [`CompiledPlugin`], with every problem
//! reported as a [`PluginError`].
//!
//! Loading is strict: unknown keys, unknown ops, bad pointers, bad regexes, bad templates, a file over
//! 1 MiB and a file with more than 1,000 operations are all errors.
//!
//! A plugin file is untrusted input. Every file is read through [`super::input`] (confined to the
//! plugins directory, regular files only, never waited on, size-capped), and what validating a file
//! costs is bounded by budgets, not by what it expands to: hooks, conditions and list values per
//! file, compiled regex heap per regex, per file and per set (see the limits in
//! [`super::format`]). Each refusal names the pointer where the budget was crossed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex_automata::meta::Regex;
use serde_json::{Map, Value};

use super::compiled::{
    CompiledHook, CompiledOp, CompiledPlugin, CompiledTest, CompiledWhen, Cost, Pointer, SetBudget,
    ValueSource, parse_template,
};
use super::format::{
    Hook, Location, MAX_CONDITIONS_PER_FILE, MAX_FILE_BYTES, MAX_HOOKS_PER_FILE,
    MAX_LIST_VALUES_PER_FILE, MAX_OPS_PER_FILE, MAX_REGEX_BYTES, MAX_REGEX_BYTES_PER_FILE,
    MAX_REGEX_PATTERN_BYTES, MAX_TABLE_BYTES, OP_NAMES, Op, PluginError, PluginFile,
    REGEX_CACHE_BYTES, When,
};
use super::input::{self, ReadError};
use super::json;

/// True when `name` (a file name directly in the plugins directory) is a plugin file: `*.json`, not a
/// dotfile, not an editor backup/swap/temp file, not the committed `plugin.schema.json`.
pub fn is_plugin_file_name(name: &str) -> bool {
    name.ends_with(".json")
        && !name.starts_with('.')
        && name != "plugin.schema.json"
        && !name.ends_with('~')
        && !name.ends_with(".swp")
        && !name.ends_with(".tmp")
}

/// Lists the plugin files directly in `dir`, sorted by name. Subdirectories and dangling symlinks
/// are left out; anything else with a plugin file name is listed, so that a FIFO, socket or device
/// named `*.json` is reported by [`load_file`] instead of silently ignored.
pub fn list_plugin_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_plugin_file_name(&name) {
            continue;
        }
        // follows symlinks, so a link to a plugin file counts (stat never blocks, even on a FIFO)
        match std::fs::metadata(entry.path()) {
            Ok(m) if !m.is_dir() => names.push(name),
            _ => {}
        }
    }
    names.sort();
    Ok(names)
}

/// The bytes a compiled plugin was built from (the file and every table file it read), used by the
/// watcher to tell whether a rebuild is needed. Paths are the plugins directory joined with the
/// name the plugin (or the directory listing) gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inputs(pub Vec<(PathBuf, Option<Vec<u8>>)>);

impl Inputs {
    /// True when every input still reads (through the same checks as at load) as the same bytes.
    pub fn unchanged(&self, dir: &Path) -> bool {
        self.0
            .iter()
            .all(|(path, bytes)| input::read(dir, path, MAX_TABLE_BYTES).ok() == *bytes)
    }

    /// True when some input was modified less than `age` ago (by its mtime).
    pub fn modified_within(&self, age: std::time::Duration) -> bool {
        let now = std::time::SystemTime::now();
        self.0.iter().any(|(path, _)| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d < age))
        })
    }
}

/// Reads, validates and compiles `dir/name`, within what `budget` (the rest of the set) leaves.
/// `Err` holds every problem found in the file. The `Inputs` are returned either way.
pub fn load_file(
    dir: &Path,
    name: &str,
    budget: SetBudget,
) -> (Inputs, Result<CompiledPlugin, Vec<PluginError>>) {
    let path = dir.join(name);
    let bytes = match input::read(dir, &path, MAX_FILE_BYTES) {
        Ok(b) => b,
        Err(e) => {
            let msg = match e {
                ReadError::TooLarge(_) => {
                    format!("file is over the 1 MiB limit ({MAX_FILE_BYTES} bytes)")
                }
                e => e.to_string(),
            };
            return (
                Inputs(vec![(path.clone(), None)]),
                Err(vec![PluginError::file(&path, msg)]),
            );
        }
    };
    let mut inputs = Inputs(vec![(path.clone(), Some(bytes.clone()))]);
    let result = compile_bytes(dir, &path, name, &bytes, &mut inputs, budget);
    (inputs, result)
}

/// Parses and compiles one plugin from its bytes, within what `budget` (the rest of the set)
/// leaves; `path` is used in messages, `dir` resolves `table_file`.
pub fn compile_bytes(
    dir: &Path,
    path: &Path,
    name: &str,
    bytes: &[u8],
    inputs: &mut Inputs,
    budget: SetBudget,
) -> Result<CompiledPlugin, Vec<PluginError>> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(vec![PluginError::file(
            path,
            format!("file is over the 1 MiB limit ({MAX_FILE_BYTES} bytes)"),
        )]);
    }
    if bytes.len() as u64 > budget.input_bytes {
        return Err(vec![PluginError::file(path, input_budget_message(budget))]);
    }
    let (value, json_values) = match json::parse(bytes, budget.json_values) {
        Ok(v) => v,
        Err(e) => {
            return Err(vec![PluginError {
                file: path.to_path_buf(),
                location: Location::LineColumn(e.line(), e.column()),
                message: json_message(&e),
            }]);
        }
    };
    let ops = count_ops(&value);
    if ops > MAX_OPS_PER_FILE {
        return Err(vec![PluginError::file(
            path,
            format!("{ops} operations, over the limit of {MAX_OPS_PER_FILE} per file"),
        )]);
    }
    let hooks = value
        .get("hooks")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if hooks > MAX_HOOKS_PER_FILE {
        return Err(vec![PluginError::at(
            path,
            format!("/hooks/{MAX_HOOKS_PER_FILE}"),
            format!("{hooks} hooks, over the limit of {MAX_HOOKS_PER_FILE} per file"),
        )]);
    }
    let mut budget = Budget::new(budget, bytes.len() as u64, json_values);
    let mut ctx = Compiler {
        dir,
        path,
        errors: Vec::new(),
        tables: HashMap::new(),
        inputs,
        budget: &mut budget,
    };
    let file = match deserialize_file(path, &value) {
        Ok(f) => f,
        Err(mut errors) => {
            // the ops that did parse may have errors of meaning too: report them in the same pass
            for (at, op) in parsed_ops(path, &value) {
                ctx.op(&op, &at);
            }
            errors.append(&mut ctx.errors);
            errors.sort_by_key(pointer_order);
            return Err(errors);
        }
    };
    let hooks = file
        .hooks
        .iter()
        .enumerate()
        .map(|(i, h)| ctx.hook(h, &format!("/hooks/{i}")))
        .collect();
    if ctx.errors.is_empty() {
        Ok(CompiledPlugin {
            file: name.to_owned(),
            name: file.name,
            enabled: file.enabled,
            priority: file.priority,
            hooks,
            cost: budget.cost,
        })
    } else {
        Err(ctx.errors)
    }
}

/// The ops of a file that deserialize, with their pointers (used only to report more errors).
fn parsed_ops(path: &Path, value: &Value) -> Vec<(String, Op)> {
    let mut out = Vec::new();
    for (i, hook) in value
        .get("hooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, op) in hook
            .get("do")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("/hooks/{i}/do/{j}");
            if let Ok(op) = deserialize_op(path, &at, op) {
                out.push((at, op));
            }
        }
    }
    out
}

/// Sort key putting errors in document order (hook, then op, numerically).
fn pointer_order(e: &PluginError) -> Vec<(u64, String)> {
    match &e.location {
        Location::Pointer(p) => p
            .split('/')
            .map(|seg| (seg.parse::<u64>().unwrap_or(u64::MAX), seg.to_owned()))
            .collect(),
        _ => Vec::new(),
    }
}

fn syntax_message(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the location is already in front of the message
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    }
}

fn count_ops(value: &Value) -> usize {
    value
        .get("hooks")
        .and_then(Value::as_array)
        .map(|hooks| {
            hooks
                .iter()
                .filter_map(|h| h.get("do").and_then(Value::as_array))
                .map(Vec::len)
                .sum()
        })
        .unwrap_or(0)
}

/// Escapes one JSON Pointer token.
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn path_to_pointer(prefix: &str, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = prefix.to_owned();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&escape_token(key));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// Rewrites serde's messages into ours: backquotes become double quotes, and an unknown field moves
/// into the pointer so the error points at the offending key.
fn serde_error(file: &Path, pointer: String, message: String) -> PluginError {
    let message = message.replace('`', "\"");
    if let Some(rest) = message.strip_prefix("unknown field \"")
        && let Some(end) = rest.find('"')
    {
        let field = &rest[..end];
        let expected = rest[end + 1..].trim_start_matches(", ");
        let token = format!("/{}", escape_token(field));
        // serde_path_to_error already ends the path with the key; be safe if it stops at the parent
        let pointer = if pointer.ends_with(&token) {
            pointer
        } else {
            format!("{pointer}{token}")
        };
        let msg = if expected.is_empty() {
            format!("unknown key \"{field}\"")
        } else {
            format!("unknown key \"{field}\" ({expected})")
        };
        return PluginError::at(file, pointer, msg);
    }
    PluginError::at(file, pointer, message)
}

fn de_at<T: serde::de::DeserializeOwned>(
    file: &Path,
    prefix: &str,
    value: &Value,
) -> Result<T, PluginError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let pointer = path_to_pointer(prefix, e.path());
        serde_error(file, pointer, e.into_inner().to_string())
    })
}

/// Deserializes one op by its tag, so errors point inside the op and name an unknown op.
fn deserialize_op(file: &Path, pointer: &str, value: &Value) -> Result<Op, PluginError> {
    let Some(obj) = value.as_object() else {
        return Err(PluginError::at(
            file,
            pointer,
            "an operation must be an object with an \"op\" key",
        ));
    };
    let Some(tag) = obj.get("op") else {
        return Err(PluginError::at(file, pointer, "missing key \"op\""));
    };
    let Some(tag) = tag.as_str() else {
        return Err(PluginError::at(
            file,
            format!("{pointer}/op"),
            "\"op\" must be a string",
        ));
    };
    let mut rest = obj.clone();
    rest.shift_remove("op");
    let rest = Value::Object(rest);
    Ok(match tag {
        "set" => Op::Set(de_at(file, pointer, &rest)?),
        "remove" => Op::Remove(de_at(file, pointer, &rest)?),
        "rename" => Op::Rename(de_at(file, pointer, &rest)?),
        "move" => Op::Move(de_at(file, pointer, &rest)?),
        "copy" => Op::Copy(de_at(file, pointer, &rest)?),
        "append" => Op::Append(de_at(file, pointer, &rest)?),
        "mask" => Op::Mask(de_at(file, pointer, &rest)?),
        "hash" => Op::Hash(de_at(file, pointer, &rest)?),
        "truncate" => Op::Truncate(de_at(file, pointer, &rest)?),
        "lookup" => Op::Lookup(de_at(file, pointer, &rest)?),
        other => {
            return Err(PluginError::at(
                file,
                format!("{pointer}/op"),
                format!(
                    "unknown op {other:?} (expected one of {})",
                    OP_NAMES.join(", ")
                ),
            ));
        }
    })
}

/// Deserializes the ops one by one (so every bad op is reported, with a pointer inside it), then the
/// rest of the file. Returns the file with its ops, or every error found.
fn deserialize_file(path: &Path, value: &Value) -> Result<PluginFile, Vec<PluginError>> {
    let mut errors = Vec::new();
    let mut stripped = value.clone();
    let mut ops: Vec<Vec<(String, Op)>> = Vec::new();
    if let Some(hooks) = stripped.get_mut("hooks").and_then(Value::as_array_mut) {
        for (i, hook) in hooks.iter_mut().enumerate() {
            let mut parsed = Vec::new();
            if let Some(list) = hook.get_mut("do").and_then(Value::as_array_mut) {
                for (j, op) in list.iter().enumerate() {
                    let at = format!("/hooks/{i}/do/{j}");
                    match deserialize_op(path, &at, op) {
                        Ok(op) => parsed.push((at, op)),
                        Err(e) => errors.push(e),
                    }
                }
                list.clear();
            }
            ops.push(parsed);
        }
    }
    let file = de_at::<PluginFile>(path, "", &stripped);
    match file {
        Ok(mut file) if errors.is_empty() => {
            for (hook, parsed) in file.hooks.iter_mut().zip(ops) {
                hook.ops = parsed.into_iter().map(|(_, op)| op).collect();
            }
            Ok(file)
        }
        file => {
            if let Err(e) = file {
                errors.push(e);
            }
            Err(errors)
        }
    }
}

struct Compiler<'a> {
    dir: &'a Path,
    path: &'a Path,
    errors: Vec<PluginError>,
    tables: HashMap<String, Arc<Map<String, Value>>>,
    inputs: &'a mut Inputs,
    budget: &'a mut Budget,
}

/// What one file has used of its budgets, and what the rest of the set leaves it. Each limit is
/// reported once, at the pointer where it was crossed; past it, nothing more is compiled for it.
struct Budget {
    set: SetBudget,
    cost: Cost,
    conditions: usize,
    list_values: usize,
    /// Set once a regex budget is spent: later regexes are not compiled.
    regex_spent: bool,
    conditions_spent: bool,
    list_values_spent: bool,
}

impl Budget {
    fn new(set: SetBudget, file_bytes: u64, json_values: usize) -> Budget {
        Budget {
            set,
            cost: Cost {
                regex_bytes: 0,
                input_bytes: file_bytes,
                json_values,
            },
            conditions: 0,
            list_values: 0,
            regex_spent: false,
            conditions_spent: false,
            list_values_spent: false,
        }
    }
}

/// A JSON error's message, without serde_json's location suffix; a spent value budget says whose.
fn json_message(e: &serde_json::Error) -> String {
    let message = syntax_message(e);
    if message.starts_with("over the budget of") {
        format!(
            "{message} (what the other files in force leave of the plugin set's {})",
            super::format::MAX_JSON_VALUES_PER_SET
        )
    } else {
        message
    }
}

fn input_budget_message(budget: SetBudget) -> String {
    format!(
        "over the budget of {} bytes of plugin and table files for the whole plugin set \
         (the other files in force leave {})",
        super::format::MAX_INPUT_BYTES_PER_SET,
        budget.input_bytes
    )
}

impl Compiler<'_> {
    fn err(&mut self, pointer: String, message: impl Into<String>) {
        self.errors
            .push(PluginError::at(self.path, pointer, message));
    }

    /// Parses a pointer at `at`; `root_ok` allows `""`, `wild_ok` allows `*`.
    fn pointer(&mut self, text: &str, at: String, root_ok: bool, wild_ok: bool) -> Pointer {
        match Pointer::parse(text) {
            Ok(p) if p.segs.is_empty() && !root_ok => {
                self.err(
                    at,
                    "the whole inquiry (\"\") cannot be a target; name a path such as \"/v/token\"",
                );
                p
            }
            Ok(p) if p.has_wildcard() && !wild_ok => {
                self.err(at, format!("\"*\" is not allowed here: {text:?}"));
                p
            }
            Ok(p) => p,
            Err(e) => {
                self.err(at, e);
                Pointer {
                    segs: Vec::new(),
                    text: text.to_owned(),
                }
            }
        }
    }

    fn hook(&mut self, hook: &Hook, at: &str) -> CompiledHook {
        let when = hook
            .when
            .as_ref()
            .map(|w| self.when(w, format!("{at}/when")));
        let ops = hook
            .ops
            .iter()
            .enumerate()
            .map(|(j, op)| self.op(op, &format!("{at}/do/{j}")))
            .collect();
        CompiledHook { when, ops }
    }

    /// Counts one condition at `at`; false (and one error) once the file is over the limit.
    fn condition(&mut self, at: &str) -> bool {
        if self.budget.conditions_spent {
            return false;
        }
        self.budget.conditions += 1;
        if self.budget.conditions > MAX_CONDITIONS_PER_FILE {
            self.budget.conditions_spent = true;
            self.err(
                at.to_owned(),
                format!(
                    "over the limit of {MAX_CONDITIONS_PER_FILE} conditions (inquiry tests and \
                     \"any\" branches) per file"
                ),
            );
            return false;
        }
        true
    }

    /// Counts the `n` values of the list at `at` against the file's limit.
    fn list_values(&mut self, n: usize, at: String) {
        if self.budget.list_values_spent {
            return;
        }
        self.budget.list_values += n;
        if self.budget.list_values > MAX_LIST_VALUES_PER_FILE {
            self.budget.list_values_spent = true;
            self.err(
                at,
                format!(
                    "over the limit of {MAX_LIST_VALUES_PER_FILE} values in the condition lists \
                     (in, roles_any, roles_all, roles_none, usernames) of one file"
                ),
            );
        }
    }

    /// Compiles the regex at `at` within the budgets per regex, per file and per set.
    fn regex(&mut self, re: &str, at: String) -> Option<Regex> {
        if self.budget.regex_spent {
            return None;
        }
        if re.len() > MAX_REGEX_PATTERN_BYTES {
            self.err(
                at,
                format!(
                    "regex is {} bytes long, over the limit of {MAX_REGEX_PATTERN_BYTES} bytes per \
                     regex (to test a value against a list, use \"in\")",
                    re.len()
                ),
            );
            return None;
        }
        let config = Regex::config()
            .nfa_size_limit(Some(MAX_REGEX_BYTES))
            .onepass_size_limit(Some(MAX_REGEX_BYTES))
            .hybrid_cache_capacity(REGEX_CACHE_BYTES);
        let built = Regex::builder().configure(config).build(re);
        // a regex refused for its size took about the budget to find out: charge that
        let (regex, charge) = match built {
            Ok(r) => {
                let used = r.memory_usage();
                if used > MAX_REGEX_BYTES {
                    (Err(format!("compiles to {used} bytes")), used)
                } else {
                    (Ok(r), used)
                }
            }
            Err(e) if e.size_limit().is_some() => (
                Err("compiles to more than that".to_owned()),
                MAX_REGEX_BYTES,
            ),
            Err(e) => {
                let text = e
                    .syntax_error()
                    .map_or_else(|| e.to_string(), ToString::to_string);
                let first = text.lines().last().unwrap_or("").trim();
                let first = first.trim_start_matches("error: ").to_owned();
                self.err(at, format!("invalid regex {re:?}: {first}"));
                return None;
            }
        };
        let file_total = self.budget.cost.regex_bytes + charge;
        self.budget.cost.regex_bytes = file_total;
        let regex = match regex {
            Ok(r) => r,
            Err(size) => {
                self.err(
                    at,
                    format!(
                        "regex {re:?} is over the budget of {MAX_REGEX_BYTES} bytes per regex: it \
                         {size} (Unicode classes such as \\w are large; (?-u:\\w) is ASCII only)"
                    ),
                );
                if file_total > MAX_REGEX_BYTES_PER_FILE {
                    self.budget.regex_spent = true;
                }
                return None;
            }
        };
        if file_total > MAX_REGEX_BYTES_PER_FILE {
            self.budget.regex_spent = true;
            self.err(
                at,
                format!(
                    "regexes of this file compile to {file_total} bytes here, over the budget \
                     of {MAX_REGEX_BYTES_PER_FILE} bytes per file"
                ),
            );
            return None;
        }
        if file_total > self.budget.set.regex_bytes {
            self.budget.regex_spent = true;
            self.err(
                at,
                format!(
                    "regexes compile to over the budget of {} bytes for the whole plugin set \
                     (the other files in force leave {}, this file needs {file_total} here)",
                    super::format::MAX_REGEX_BYTES_PER_SET,
                    self.budget.set.regex_bytes
                ),
            );
            return None;
        }
        Some(regex)
    }

    fn when(&mut self, when: &When, at: String) -> CompiledWhen {
        let mut inquiry = Vec::new();
        if let Some(c) = &when.caller {
            for (key, list) in [
                ("roles_any", &c.roles_any),
                ("roles_all", &c.roles_all),
                ("roles_none", &c.roles_none),
                ("usernames", &c.usernames),
            ] {
                if let Some(list) = list {
                    self.list_values(list.len(), format!("{at}/caller/{key}"));
                }
            }
        }
        for (ptr, test) in when.inquiry.iter().flatten() {
            let at_test = format!("{at}/inquiry/{}", escape_token(ptr));
            if !self.condition(&at_test) {
                break;
            }
            if let Some(list) = &test.in_ {
                self.list_values(list.len(), format!("{at_test}/in"));
            }
            let pointer = self.pointer(ptr, at_test.clone(), true, true);
            let matches = match &test.matches {
                Some(re) => self.regex(re, format!("{at_test}/matches")),
                None => None,
            };
            if test.equals.is_none()
                && test.in_.is_none()
                && test.exists.is_none()
                && test.matches.is_none()
                && test.gt.is_none()
                && test.lt.is_none()
            {
                self.err(
                    at_test.clone(),
                    "empty test: give equals, in, exists, matches, gt or lt",
                );
            }
            if test.exists == Some(false)
                && (test.equals.is_some()
                    || test.in_.is_some()
                    || test.matches.is_some()
                    || test.gt.is_some()
                    || test.lt.is_some())
            {
                self.err(
                    at_test.clone(),
                    "\"exists\": false cannot be combined with a value test",
                );
            }
            inquiry.push(CompiledTest {
                pointer,
                equals: test.equals.clone(),
                in_: test.in_.clone(),
                exists: test.exists,
                matches,
                gt: test.gt.clone(),
                lt: test.lt.clone(),
            });
        }
        let any = when.any.as_ref().map(|list| {
            if list.is_empty() {
                self.err(
                    format!("{at}/any"),
                    "\"any\" must list at least one condition",
                );
            }
            let mut branches = Vec::new();
            for (k, w) in list.iter().enumerate() {
                let at_branch = format!("{at}/any/{k}");
                if !self.condition(&at_branch) {
                    break;
                }
                branches.push(self.when(w, at_branch));
            }
            branches
        });
        CompiledWhen {
            caller: when.caller.clone(),
            inquiry,
            any,
        }
    }

    fn value_source(&mut self, value: &Value, at: String) -> ValueSource {
        match value {
            Value::String(s) if s.contains("${") => match parse_template(s) {
                Ok(pieces) => ValueSource::Template(pieces),
                Err(e) => {
                    self.err(at, e);
                    ValueSource::Literal(Value::Null)
                }
            },
            other => ValueSource::Literal(other.clone()),
        }
    }

    fn op(&mut self, op: &Op, at: &str) -> CompiledOp {
        let p = |field: &str| format!("{at}/{field}");
        match op {
            Op::Set(o) => CompiledOp::Set {
                path: self.pointer(&o.path, p("path"), false, true),
                value: self.value_source(&o.value, p("value")),
            },
            Op::Append(o) => CompiledOp::Append {
                path: self.pointer(&o.path, p("path"), false, true),
                value: self.value_source(&o.value, p("value")),
            },
            Op::Copy(o) => CompiledOp::Copy {
                from: self.pointer(&o.from, p("from"), false, false),
                path: self.pointer(&o.path, p("path"), false, false),
            },
            Op::Move(o) | Op::Rename(o) => {
                let from = self.pointer(&o.from, p("from"), false, false);
                let path = self.pointer(&o.path, p("path"), false, false);
                if !from.segs.is_empty() && path.is_within(&from) {
                    self.err(p("path"), format!("cannot move {:?} into itself", o.from));
                }
                CompiledOp::Move { from, path }
            }
            Op::Remove(o) => CompiledOp::Remove {
                path: self.pointer(&o.path, p("path"), false, true),
            },
            Op::Hash(o) => CompiledOp::Hash {
                path: self.pointer(&o.path, p("path"), false, true),
            },
            Op::Truncate(o) => CompiledOp::Truncate {
                path: self.pointer(&o.path, p("path"), false, true),
                max_chars: o.max_chars,
            },
            Op::Mask(o) => {
                let mut chars = o.char.chars();
                let mask = match (chars.next(), chars.next()) {
                    (Some(c), None) => c,
                    _ => {
                        self.err(
                            p("char"),
                            format!("\"char\" must be exactly one character, not {:?}", o.char),
                        );
                        '*'
                    }
                };
                CompiledOp::Mask {
                    path: self.pointer(&o.path, p("path"), false, true),
                    keep_start: o.keep_start,
                    keep_end: o.keep_end,
                    mask,
                }
            }
            Op::Lookup(o) => {
                let path = self.pointer(&o.path, p("path"), false, true);
                let key = self.pointer(&o.key, p("key"), true, false);
                let table = match (&o.table, &o.table_file) {
                    (Some(t), None) => Arc::new(t.clone()),
                    (None, Some(f)) => self.table_file(f, p("table_file")),
                    (Some(_), Some(_)) => {
                        self.err(at.to_owned(), "give \"table\" or \"table_file\", not both");
                        Arc::new(Map::new())
                    }
                    (None, None) => {
                        self.err(at.to_owned(), "missing \"table\" or \"table_file\"");
                        Arc::new(Map::new())
                    }
                };
                CompiledOp::Lookup {
                    path,
                    key,
                    table,
                    default: o.default.clone(),
                }
            }
        }
    }

    fn table_file(&mut self, rel: &str, at: String) -> Arc<Map<String, Value>> {
        if let Some(t) = self.tables.get(rel) {
            return t.clone();
        }
        let rel_path = Path::new(rel);
        if rel_path.is_absolute() || rel.is_empty() {
            self.err(
                at,
                format!("table_file {rel:?} must be a path relative to the plugins directory"),
            );
            return Arc::new(Map::new());
        }
        let full = self.dir.join(rel_path);
        let bytes = match input::read(self.dir, &full, MAX_TABLE_BYTES) {
            Ok(b) => b,
            Err(e) => {
                self.inputs.0.push((full, None));
                self.err(at, format!("table_file {rel:?}: {e}"));
                return Arc::new(Map::new());
            }
        };
        self.inputs.0.push((full, Some(bytes.clone())));
        self.budget.cost.input_bytes += bytes.len() as u64;
        if self.budget.cost.input_bytes > self.budget.set.input_bytes {
            let message = input_budget_message(self.budget.set);
            self.err(at, format!("table_file {rel:?}: {message}"));
            return Arc::new(Map::new());
        }
        let left = self
            .budget
            .set
            .json_values
            .saturating_sub(self.budget.cost.json_values);
        let table = match json::parse(&bytes, left) {
            Ok((Value::Object(m), values)) => {
                self.budget.cost.json_values += values;
                Arc::new(m)
            }
            Ok(_) => {
                self.err(at, format!("table_file {rel:?}: must hold a JSON object"));
                Arc::new(Map::new())
            }
            Err(e) => {
                self.err(
                    at,
                    format!(
                        "table_file {rel}:{}:{}: {}",
                        e.line(),
                        e.column(),
                        json_message(&e)
                    ),
                );
                Arc::new(Map::new())
            }
        };
        self.tables.insert(rel.to_owned(), table.clone());
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_file_names() {
        for ok in ["a.json", "crm-enrich.json"] {
            assert!(is_plugin_file_name(ok), "{ok}");
        }
        for no in [
            ".a.json",
            "a.json~",
            "a.json.swp",
            "a.tmp",
            "a.txt",
            "plugin.schema.json",
        ] {
            assert!(!is_plugin_file_name(no), "{no}");
        }
    }
}
