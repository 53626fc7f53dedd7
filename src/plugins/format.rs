//! The plugin file format: the serde types that describe a plugin file (they also generate the JSON
//! Schema), the loader that turns the bytes of one file into a [`CompiledPlugin`], and the
//! [`PluginError`] that says precisely what is wrong with a file. Everything a hook needs at request
//! time (parsed JSON Pointers, regexes, templates, lookup tables) is built here, once, at load; the
//! engine never parses anything per request.
//!
//! Loading is strict: unknown keys, unknown ops, bad pointers, bad regexes, bad templates, a file over
//! 1 MiB and a file with more than 1,000 operations are all errors. Syntax errors are reported as
//! `file:line:column: message`; errors of meaning as `file: /json/pointer/into/the/file: message`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Largest plugin file accepted, in bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Largest lookup table file accepted, in bytes (tables can be bigger than plugins).
pub const MAX_TABLE_BYTES: u64 = 16 * 1024 * 1024;
/// Most operations (summed over all hooks) accepted in one plugin file.
pub const MAX_OPS_PER_FILE: usize = 1000;
/// Most segments accepted in one JSON Pointer; keeps every walk shallow and the output nestable.
pub const MAX_POINTER_SEGMENTS: usize = 32;
/// The only hook event there is today.
pub const EVENT_INQUIRY_RESPONSE: &str = "inquiry.response";

// ---------------------------------------------------------------------------------------------
// The file format (serde + schemars). These types are the single source of the JSON Schema.
// ---------------------------------------------------------------------------------------------

/// One plugin file: a named, prioritised list of hooks run on the `inquiry` object of a getOne response.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "inquiryd plugin")]
pub struct PluginFile {
    /// Where editors find this schema (e.g. `./plugin.schema.json`); ignored by the server.
    #[serde(default, rename = "$schema")]
    pub schema: Option<String>,
    /// Short name, shown in health details and logs.
    pub name: String,
    /// What the plugin does and why, for the next admin.
    #[serde(default)]
    pub description: Option<String>,
    /// `false` keeps the file but removes its hooks from force.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Lower runs first (within each phase); ties are broken by file name, then order in the file.
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// The hooks, in order.
    pub hooks: Vec<Hook>,
}

/// One hook: when `on` fires and every `when` condition holds, run `do`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// The event; only `inquiry.response` exists.
    pub on: HookEvent,
    /// Conditions, all of which must hold. They are evaluated on the inquiry as stored, before any hook runs.
    #[serde(default)]
    pub when: Option<When>,
    /// The operations. Enriching ones run in the first phase, redacting ones in the second.
    #[serde(rename = "do")]
    pub ops: Vec<Op>,
}

/// The event a hook listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum HookEvent {
    /// The `inquiry` object of a successful `livechat/inquiries.getOne` response.
    #[serde(rename = "inquiry.response")]
    InquiryResponse,
}

/// Conditions; every one given must hold.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Tests on the caller.
    #[serde(default)]
    pub caller: Option<CallerCondition>,
    /// Tests on the inquiry, keyed by JSON Pointer (a `*` segment: any element or member matches).
    #[serde(default)]
    pub inquiry: Option<BTreeMap<String, ValueTest>>,
    /// Holds when at least one of these nested conditions holds (an OR).
    #[serde(default)]
    pub any: Option<Vec<When>>,
}

/// Tests on the caller; every one given must hold.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerCondition {
    /// The caller holds at least one of these roles.
    #[serde(default)]
    pub roles_any: Option<Vec<String>>,
    /// The caller holds every one of these roles.
    #[serde(default)]
    pub roles_all: Option<Vec<String>>,
    /// The caller holds none of these roles.
    #[serde(default)]
    pub roles_none: Option<Vec<String>>,
    /// The caller holds this permission (e.g. `view-l-room`).
    #[serde(default)]
    pub permission: Option<String>,
    /// The caller does not hold this permission.
    #[serde(default)]
    pub lacks_permission: Option<String>,
    /// The caller's username is one of these.
    #[serde(default)]
    pub usernames: Option<Vec<String>>,
}

/// Tests on the value(s) at one pointer; every one given must hold (on the same value).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueTest {
    /// The value equals this (numbers compare by value: `1` equals `1.0`).
    #[serde(default, deserialize_with = "present")]
    pub equals: Option<Value>,
    /// The value equals one of these.
    #[serde(default, rename = "in")]
    pub in_: Option<Vec<Value>>,
    /// `true`: the pointer resolves; `false`: it does not.
    #[serde(default)]
    pub exists: Option<bool>,
    /// The value is a string (numbers and booleans: their JSON text) matching this regex (`regex` crate syntax, unanchored).
    #[serde(default)]
    pub matches: Option<String>,
    /// The value is greater than this (number with number, or string with string, lexicographic).
    #[serde(default)]
    pub gt: Option<Bound>,
    /// The value is less than this (number with number, or string with string, lexicographic).
    #[serde(default)]
    pub lt: Option<Bound>,
}

/// A bound for `gt`/`lt`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Bound {
    /// Compared with numbers.
    Number(f64),
    /// Compared with strings.
    Text(String),
}

/// One operation. Enriching: `set`, `copy`, `move`, `rename`, `append`, `lookup`.
/// Redacting: `remove`, `mask`, `hash`, `truncate`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Set the value at `path`, creating missing intermediate objects.
    Set(SetOp),
    /// Remove the value at `path`.
    Remove(PathOp),
    /// Move the value at `from` to `path` (same as `move`).
    Rename(FromOp),
    /// Move the value at `from` to `path`.
    Move(FromOp),
    /// Copy the value at `from` to `path`.
    Copy(FromOp),
    /// Push `value` onto the array at `path` (created when missing; other types are left alone).
    Append(SetOp),
    /// Replace every hidden character of the string at `path` with `char`.
    Mask(MaskOp),
    /// Replace the value at `path` with the SHA-256 hex of the string (other types: of their compact JSON).
    Hash(PathOp),
    /// Cut the string at `path` to `max_chars` characters.
    Truncate(TruncateOp),
    /// Set `path` to `table[value at key]`, or to `default`.
    Lookup(LookupOp),
}

/// An op on one path.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathOp {
    /// JSON Pointer; a `*` segment means every element/member.
    pub path: String,
}

/// `set` and `append`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOp {
    /// JSON Pointer; a `*` segment means every element/member.
    pub path: String,
    /// Any JSON. A string containing `${/pointer}`, `${caller.id}`, `${caller.username}` or `${now}` is a
    /// template (`$${` writes a literal `${`).
    pub value: Value,
}

/// `move`, `rename` and `copy`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FromOp {
    /// JSON Pointer of the source (no `*`).
    pub from: String,
    /// JSON Pointer of the destination (no `*`).
    pub path: String,
}

/// `mask`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskOp {
    /// JSON Pointer; a `*` segment means every element/member.
    pub path: String,
    /// Characters left visible at the start.
    #[serde(default)]
    pub keep_start: usize,
    /// Characters left visible at the end.
    #[serde(default)]
    pub keep_end: usize,
    /// The one character that replaces each hidden one.
    #[serde(default = "default_mask_char")]
    pub char: String,
}

/// `truncate`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TruncateOp {
    /// JSON Pointer; a `*` segment means every element/member.
    pub path: String,
    /// Characters (Unicode scalar values) kept.
    pub max_chars: usize,
}

/// `lookup`: exactly one of `table` and `table_file`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupOp {
    /// JSON Pointer of the destination.
    pub path: String,
    /// JSON Pointer of the key (a string; numbers and booleans use their JSON text). No `*`.
    pub key: String,
    /// Inline table: key → value.
    #[serde(default)]
    pub table: Option<Map<String, Value>>,
    /// A JSON object file, relative to the plugins directory. Keep tables in a subdirectory
    /// (e.g. `tables/crm.json`) so they are not loaded as plugins.
    #[serde(default)]
    pub table_file: Option<String>,
    /// Used when the key is missing or not in the table; without it, nothing is set.
    #[serde(default, deserialize_with = "present")]
    pub default: Option<Value>,
}

fn default_true() -> bool {
    true
}

fn default_priority() -> i64 {
    100
}

fn default_mask_char() -> String {
    "*".to_owned()
}

/// Keeps an explicit `null` as `Some(Value::Null)`, so `"default": null` differs from no default.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Op {
    /// The op's name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Set(_) => "set",
            Op::Remove(_) => "remove",
            Op::Rename(_) => "rename",
            Op::Move(_) => "move",
            Op::Copy(_) => "copy",
            Op::Append(_) => "append",
            Op::Mask(_) => "mask",
            Op::Hash(_) => "hash",
            Op::Truncate(_) => "truncate",
            Op::Lookup(_) => "lookup",
        }
    }
}

/// Every op name, in the order errors list them.
pub const OP_NAMES: &[&str] = &[
    "set", "remove", "rename", "move", "copy", "append", "mask", "hash", "truncate", "lookup",
];

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Where in a file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole (size, reading, limits).
    File,
    /// A syntax error at a 1-based line and column.
    LineColumn(usize, usize),
    /// An error of meaning at this JSON Pointer into the plugin file.
    Pointer(String),
}

/// One problem with one plugin file. Displays as `file:line:column: message` (syntax),
/// `file: /pointer: message` (meaning) or `file: message` (the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// The plugin file (or the directory, when it cannot be listed).
    pub file: PathBuf,
    /// Where in the file.
    pub location: Location,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

impl PluginError {
    pub(crate) fn file(file: &Path, message: impl Into<String>) -> Self {
        PluginError {
            file: file.to_path_buf(),
            location: Location::File,
            message: message.into(),
        }
    }

    pub(crate) fn at(file: &Path, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        PluginError {
            file: file.to_path_buf(),
            location: Location::Pointer(pointer.into()),
            message: message.into(),
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match &self.location {
            Location::File => write!(f, "{file}: {}", self.message),
            Location::LineColumn(line, column) => {
                write!(f, "{file}:{line}:{column}: {}", self.message)
            }
            Location::Pointer(p) if p.is_empty() => write!(f, "{file}: {}", self.message),
            Location::Pointer(p) => write!(f, "{file}: {p}: {}", self.message),
        }
    }
}

impl std::error::Error for PluginError {}

// ---------------------------------------------------------------------------------------------
// Compiled form
// ---------------------------------------------------------------------------------------------

/// One segment of a compiled JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// An object key, or an array index when the container is an array (`-`: one past the end).
    Key(String),
    /// `*`: every element of an array / member of an object.
    Any,
}

/// A parsed JSON Pointer (RFC 6901, plus `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// The segments, unescaped.
    pub segs: Vec<Seg>,
    /// The pointer as written, for messages.
    pub text: String,
}

impl Pointer {
    /// Parses a JSON Pointer. Errors say what is wrong, lowercase.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer {
                segs: Vec::new(),
                text: String::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "invalid JSON Pointer {text:?}: must be empty or start with \"/\""
            ));
        };
        let mut segs = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                segs.push(Seg::Any);
                continue;
            }
            let mut key = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => key.push('~'),
                        Some('1') => key.push('/'),
                        _ => {
                            return Err(format!(
                                "invalid JSON Pointer {text:?}: \"~\" must be followed by 0 or 1"
                            ));
                        }
                    }
                } else {
                    key.push(c);
                }
            }
            segs.push(Seg::Key(key));
        }
        if segs.len() > MAX_POINTER_SEGMENTS {
            return Err(format!(
                "JSON Pointer {text:?} has {} segments, over the limit of {MAX_POINTER_SEGMENTS}",
                segs.len()
            ));
        }
        Ok(Pointer {
            segs,
            text: text.to_owned(),
        })
    }

    /// True when the pointer has a `*` segment.
    pub fn has_wildcard(&self) -> bool {
        self.segs.contains(&Seg::Any)
    }

    /// True when `self` is `other` or inside it.
    pub fn is_within(&self, other: &Pointer) -> bool {
        self.segs.len() >= other.segs.len() && self.segs[..other.segs.len()] == other.segs[..]
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// `${/pointer}`: the value there (strings as-is, others as compact JSON, missing as empty).
    Pointer(Pointer),
    /// `${caller.id}`.
    CallerId,
    /// `${caller.username}`.
    CallerUsername,
    /// `${now}`: RFC 3339 UTC with milliseconds.
    Now,
}

/// A value to write: a literal, or a string template.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    /// Written as is.
    Literal(Value),
    /// Rendered per request.
    Template(Vec<Piece>),
}

/// A compiled operation.
#[derive(Debug, Clone)]
pub enum CompiledOp {
    /// `set`.
    Set { path: Pointer, value: ValueSource },
    /// `append`.
    Append { path: Pointer, value: ValueSource },
    /// `copy`.
    Copy { from: Pointer, path: Pointer },
    /// `move` / `rename`.
    Move { from: Pointer, path: Pointer },
    /// `lookup`.
    Lookup {
        path: Pointer,
        key: Pointer,
        table: Arc<Map<String, Value>>,
        default: Option<Value>,
    },
    /// `remove`.
    Remove { path: Pointer },
    /// `mask`.
    Mask {
        path: Pointer,
        keep_start: usize,
        keep_end: usize,
        mask: char,
    },
    /// `hash`.
    Hash { path: Pointer },
    /// `truncate`.
    Truncate { path: Pointer, max_chars: usize },
}

impl CompiledOp {
    /// True for `remove`, `mask`, `hash` and `truncate`, which run in the second phase.
    pub fn is_redaction(&self) -> bool {
        matches!(
            self,
            CompiledOp::Remove { .. }
                | CompiledOp::Mask { .. }
                | CompiledOp::Hash { .. }
                | CompiledOp::Truncate { .. }
        )
    }
}

/// A compiled value test.
#[derive(Debug, Clone)]
pub struct CompiledTest {
    pub pointer: Pointer,
    pub equals: Option<Value>,
    pub in_: Option<Vec<Value>>,
    pub exists: Option<bool>,
    pub matches: Option<Regex>,
    pub gt: Option<Bound>,
    pub lt: Option<Bound>,
}

/// A compiled `when`.
#[derive(Debug, Clone, Default)]
pub struct CompiledWhen {
    pub caller: Option<CallerCondition>,
    pub inquiry: Vec<CompiledTest>,
    pub any: Option<Vec<CompiledWhen>>,
}

/// A compiled hook.
#[derive(Debug, Clone)]
pub struct CompiledHook {
    pub when: Option<CompiledWhen>,
    pub ops: Vec<CompiledOp>,
}

/// A plugin file, validated and compiled.
#[derive(Debug, Clone)]
pub struct CompiledPlugin {
    /// File name inside the plugins directory (the tie-breaker after priority).
    pub file: String,
    pub name: String,
    pub enabled: bool,
    pub priority: i64,
    pub hooks: Vec<CompiledHook>,
}

impl CompiledPlugin {
    /// Number of operations over all hooks.
    pub fn op_count(&self) -> usize {
        self.hooks.iter().map(|h| h.ops.len()).sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

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

/// Lists the plugin files directly in `dir` (regular files only), sorted by name.
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
        // follows symlinks, so a link to a plugin file counts
        match std::fs::metadata(entry.path()) {
            Ok(m) if m.is_file() => names.push(name),
            _ => {}
        }
    }
    names.sort();
    Ok(names)
}

/// The bytes a compiled plugin was built from (the file and every table file it read), used by the
/// watcher to tell whether a rebuild is needed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inputs(pub Vec<(PathBuf, Option<Vec<u8>>)>);

impl Inputs {
    /// True when every input still has the same bytes on disk.
    pub fn unchanged(&self) -> bool {
        self.0
            .iter()
            .all(|(path, bytes)| read_limited(path, MAX_TABLE_BYTES).ok() == *bytes)
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

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    // read one byte past the limit to tell "at the limit" from "over it" without trusting metadata
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("file is over the limit of {limit} bytes"));
    }
    Ok(bytes)
}

/// Reads, validates and compiles `dir/name`. `Err` holds every problem found in the file.
/// The `Inputs` are returned either way (empty when the file could not be read).
pub fn load_file(dir: &Path, name: &str) -> (Inputs, Result<CompiledPlugin, Vec<PluginError>>) {
    let path = dir.join(name);
    let bytes = match read_limited(&path, MAX_FILE_BYTES) {
        Ok(b) => b,
        Err(e) => {
            let msg = if e.starts_with("file is over") {
                format!("file is over the 1 MiB limit ({MAX_FILE_BYTES} bytes)")
            } else {
                e
            };
            return (
                Inputs(vec![(path.clone(), None)]),
                Err(vec![PluginError::file(&path, msg)]),
            );
        }
    };
    let mut inputs = Inputs(vec![(path.clone(), Some(bytes.clone()))]);
    let result = compile_bytes(dir, &path, name, &bytes, &mut inputs);
    (inputs, result)
}

/// Parses and compiles one plugin from its bytes; `path` is used in messages, `dir` resolves `table_file`.
pub fn compile_bytes(
    dir: &Path,
    path: &Path,
    name: &str,
    bytes: &[u8],
    inputs: &mut Inputs,
) -> Result<CompiledPlugin, Vec<PluginError>> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(vec![PluginError::file(
            path,
            format!("file is over the 1 MiB limit ({MAX_FILE_BYTES} bytes)"),
        )]);
    }
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return Err(vec![PluginError {
                file: path.to_path_buf(),
                location: Location::LineColumn(e.line(), e.column()),
                message: syntax_message(&e),
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
    let file = match deserialize_file(path, &value) {
        Ok(f) => f,
        Err(mut errors) => {
            // the ops that did parse may have errors of meaning too: report them in the same pass
            let mut ctx = Compiler {
                dir,
                path,
                errors: Vec::new(),
                tables: HashMap::new(),
                inputs,
            };
            for (at, op) in parsed_ops(path, &value) {
                ctx.op(&op, &at);
            }
            errors.append(&mut ctx.errors);
            errors.sort_by_key(pointer_order);
            return Err(errors);
        }
    };
    let mut ctx = Compiler {
        dir,
        path,
        errors: Vec::new(),
        tables: HashMap::new(),
        inputs,
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

    fn when(&mut self, when: &When, at: String) -> CompiledWhen {
        let mut inquiry = Vec::new();
        for (ptr, test) in when.inquiry.iter().flatten() {
            let at_test = format!("{at}/inquiry/{}", escape_token(ptr));
            let pointer = self.pointer(ptr, at_test.clone(), true, true);
            let matches = match &test.matches {
                Some(re) => match Regex::new(re) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        let first = e.to_string();
                        let first = first.lines().last().unwrap_or("").trim();
                        let first = first.trim_start_matches("error: ").to_owned();
                        self.err(
                            format!("{at_test}/matches"),
                            format!("invalid regex {re:?}: {first}"),
                        );
                        None
                    }
                },
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
            list.iter()
                .enumerate()
                .map(|(k, w)| self.when(w, format!("{at}/any/{k}")))
                .collect()
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
        let bytes = match read_limited(&full, MAX_TABLE_BYTES) {
            Ok(b) => b,
            Err(e) => {
                self.inputs.0.push((full, None));
                self.err(at, format!("table_file {rel:?}: {e}"));
                return Arc::new(Map::new());
            }
        };
        self.inputs.0.push((full, Some(bytes.clone())));
        let table = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Arc::new(m),
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
                        syntax_message(&e)
                    ),
                );
                Arc::new(Map::new())
            }
        };
        self.tables.insert(rel.to_owned(), table.clone());
        table
    }
}

/// Parses a template string into pieces; errors name the bad placeholder.
pub fn parse_template(s: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = r;
        } else if let Some(r) = after.strip_prefix("${") {
            let Some(end) = r.find('}') else {
                return Err(format!("unclosed \"${{\" in template {s:?}"));
            };
            let inner = &r[..end];
            let piece = match inner {
                "caller.id" => Piece::CallerId,
                "caller.username" => Piece::CallerUsername,
                "now" => Piece::Now,
                p if p.starts_with('/') => {
                    let ptr = Pointer::parse(p).map_err(|e| format!("in template {s:?}: {e}"))?;
                    if ptr.has_wildcard() {
                        return Err(format!(
                            "in template {s:?}: \"*\" is not allowed in ${{{p}}}"
                        ));
                    }
                    Piece::Pointer(ptr)
                }
                other => {
                    return Err(format!(
                        "unknown placeholder \"${{{other}}}\" in template {s:?} (use ${{/pointer}}, ${{caller.id}}, ${{caller.username}} or ${{now}})"
                    ));
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
            rest = &r[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_unescape_and_recognise_wildcards() {
        let p = Pointer::parse("/a~1b/~0c/*/0").expect("valid");
        assert_eq!(
            p.segs,
            [
                Seg::Key("a/b".into()),
                Seg::Key("~c".into()),
                Seg::Any,
                Seg::Key("0".into())
            ]
        );
        assert!(p.has_wildcard());
        assert_eq!(Pointer::parse("").map(|p| p.segs.len()), Ok(0));
        assert_eq!(
            Pointer::parse("/").map(|p| p.segs),
            Ok(vec![Seg::Key(String::new())])
        );
        assert!(Pointer::parse("a").is_err());
        assert!(Pointer::parse("/a~").is_err());
        assert!(Pointer::parse("/a~2").is_err());
        assert!(Pointer::parse(&"/a".repeat(MAX_POINTER_SEGMENTS + 1)).is_err());
    }

    #[test]
    fn pointers_know_what_they_contain() {
        let a = Pointer::parse("/a").expect("valid");
        let ab = Pointer::parse("/a/b").expect("valid");
        assert!(ab.is_within(&a));
        assert!(a.is_within(&a));
        assert!(!a.is_within(&ab));
    }

    #[test]
    fn templates_split_into_pieces() {
        let pieces =
            parse_template("${/name} via ${caller.username} at ${now}, $5 $${x}").expect("valid");
        assert_eq!(pieces.len(), 6);
        assert!(matches!(&pieces[0], Piece::Pointer(p) if p.text == "/name"));
        assert_eq!(pieces[1], Piece::Text(" via ".into()));
        assert_eq!(pieces[2], Piece::CallerUsername);
        assert_eq!(pieces[4], Piece::Now);
        assert_eq!(pieces[5], Piece::Text(", $5 ${x}".into()));
        assert!(parse_template("${caller.email}").is_err());
        assert!(parse_template("${/a").is_err());
        assert!(parse_template("${/a/*}").is_err());
    }

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

    #[test]
    fn errors_display_file_and_location() {
        let f = Path::new("p/a.json");
        let e = PluginError {
            file: f.into(),
            location: Location::LineColumn(3, 7),
            message: "x".into(),
        };
        assert_eq!(e.to_string(), "p/a.json:3:7: x");
        assert_eq!(
            PluginError::at(f, "/hooks/0", "y").to_string(),
            "p/a.json: /hooks/0: y"
        );
        assert_eq!(PluginError::file(f, "z").to_string(), "p/a.json: z");
    }
}
