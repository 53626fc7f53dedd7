//! The compiled form of a plugin: what the engine runs. Everything a hook needs at request time
//! (parsed JSON Pointers, regexes, templates, lookup tables) is built once, at load, by
//! [`super::load`]; the engine never parses anything per request.

use std::sync::Arc;

use regex_automata::meta::Regex;
use serde_json::{Map, Value};

use super::format::{
    Bound, CallerCondition, MAX_INPUT_BYTES_PER_SET, MAX_JSON_VALUES_PER_SET, MAX_POINTER_SEGMENTS,
    MAX_REGEX_BYTES_PER_SET,
};

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

impl CompiledWhen {
    /// Whether a caller condition here (or in a nested `any`) lists `role`.
    fn names_role(&self, role: &str) -> bool {
        let listed = |list: &Option<Vec<String>>| list.iter().flatten().any(|r| r == role);
        self.caller
            .as_ref()
            .is_some_and(|c| listed(&c.roles_any) || listed(&c.roles_all) || listed(&c.roles_none))
            || self.any.iter().flatten().any(|w| w.names_role(role))
    }
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
    /// What the plugin costs, charged against the set's budgets.
    pub cost: Cost,
}

impl CompiledPlugin {
    /// Whether some hook's conditions name `role` (a rename of it would silently change what the
    /// hook does).
    pub fn names_role(&self, role: &str) -> bool {
        self.hooks
            .iter()
            .filter_map(|h| h.when.as_ref())
            .any(|w| w.names_role(role))
    }
}

/// What a compiled plugin costs: the heap of its compiled regexes, and the bytes of the files
/// (the plugin file and its table files) it was built from and the JSON values they hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub regex_bytes: usize,
    pub input_bytes: u64,
    pub json_values: usize,
}

/// What the rest of the plugin set leaves for one file to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetBudget {
    pub regex_bytes: usize,
    pub input_bytes: u64,
    pub json_values: usize,
}

impl SetBudget {
    /// The whole budget of a set ([`MAX_REGEX_BYTES_PER_SET`], [`MAX_INPUT_BYTES_PER_SET`],
    /// [`MAX_JSON_VALUES_PER_SET`]).
    pub const FULL: SetBudget = SetBudget {
        regex_bytes: MAX_REGEX_BYTES_PER_SET,
        input_bytes: MAX_INPUT_BYTES_PER_SET,
        json_values: MAX_JSON_VALUES_PER_SET,
    };

    /// What is left once `cost` is charged (never below zero).
    pub fn minus(self, cost: Cost) -> SetBudget {
        SetBudget {
            regex_bytes: self.regex_bytes.saturating_sub(cost.regex_bytes),
            input_bytes: self.input_bytes.saturating_sub(cost.input_bytes),
            json_values: self.json_values.saturating_sub(cost.json_values),
        }
    }
}

impl CompiledPlugin {
    /// Number of operations over all hooks.
    pub fn op_count(&self) -> usize {
        self.hooks.iter().map(|h| h.ops.len()).sum()
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
}
