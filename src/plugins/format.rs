//! The plugin file format: the serde types that describe a plugin file (they are also the single
//! source of the JSON Schema editors use), the limits a file must keep within, and the [`PluginError`]
//! that says precisely what is wrong with a file. [`super::load`] turns a file into the
//! [`super::compiled`] form the engine runs.
//!
//! Syntax errors are reported as `file:line:column: message`; errors of meaning as
//! `file: /json/pointer/into/the/file: message`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

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
/// Most hooks accepted in one plugin file (a hook without operations counts too: its conditions
/// still run on every request).
pub const MAX_HOOKS_PER_FILE: usize = 1000;
/// Most conditions accepted in one plugin file: every `inquiry` pointer test and every `any`
/// branch counts one.
pub const MAX_CONDITIONS_PER_FILE: usize = 1000;
/// Most values accepted in the lists of one plugin file's conditions (`in`, `roles_any`,
/// `roles_all`, `roles_none`, `usernames`), all lists together.
pub const MAX_LIST_VALUES_PER_FILE: usize = 10_000;
/// Longest regex accepted, in bytes of pattern text: parsing a pattern costs memory in proportion
/// to its length (about 150 bytes per byte of a long alternation) before any size limit applies.
pub const MAX_REGEX_PATTERN_BYTES: usize = 16 * 1024;
/// Most heap one compiled regex may use, in bytes. Compiling stops as soon as it would need more,
/// so a regex over the budget costs no more than one at the budget.
pub const MAX_REGEX_BYTES: usize = 1024 * 1024;
/// Most heap the compiled regexes of one plugin file may use together, in bytes (a regex refused
/// for its size is charged [`MAX_REGEX_BYTES`], the work it took).
pub const MAX_REGEX_BYTES_PER_FILE: usize = 4 * 1024 * 1024;
/// Most heap the compiled regexes of every plugin file in force may use together, in bytes.
pub const MAX_REGEX_BYTES_PER_SET: usize = 32 * 1024 * 1024;
/// Most heap a regex's lazy DFA may grow while matching, per thread matching it (when full it is
/// cleared, and a regex that keeps filling it falls back to a slower engine that needs none).
pub const REGEX_CACHE_BYTES: usize = 256 * 1024;
/// Most plugin files in the plugins directory; files past it, in name order, are errors.
pub const MAX_PLUGIN_FILES: usize = 256;
/// Most bytes of plugin files and table files every plugin file in force may be built from,
/// together (a table file read by two plugins counts twice: each holds its own copy).
pub const MAX_INPUT_BYTES_PER_SET: u64 = 64 * 1024 * 1024;
/// Most JSON values (every scalar, array and object, at any depth) the plugin and table files of
/// every plugin in force may hold together once parsed: a parsed value takes tens of bytes of
/// heap however short its text (a `serde_json::Value` is 72 bytes before what it owns), so the
/// byte limits alone do not bound memory. Two million is about 150 MB at worst, and holds a 16 MiB
/// table of typical entries (`"guest-51":{"tier":"gold"}` is two values).
pub const MAX_JSON_VALUES_PER_SET: usize = 2_000_000;
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

#[cfg(test)]
mod tests {
    use super::*;

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
