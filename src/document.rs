//! What a stored inquiry document must be for every reader to serve it, decided in one place and
//! checked in one pass over its text: at import, so nothing the server cannot serve is stored, and
//! on every read, so a row that got into the database some other way (an older version, an
//! external `sqlite3` edit) is an error for its own room and a line in `inquiry list`, never a
//! broken answer or a failed listing.
//!
//! A servable document is a JSON object, valid UTF-8, that
//! - nests at most [`MAX_DEPTH`] objects and arrays (the document itself counts as one). MongoDB
//!   allows 100 levels, so no Rocket.Chat inquiry is deeper (real ones nest 4 or 5); serde_json, which
//!   the plugin hooks parse documents with, refuses more than 128 and the answer wraps the document
//!   in one more object; SQLite's JSON functions (`inquiry list`) stop at 1,000; and the plugin
//!   engine never writes deeper than 100 (`plugins::engine::MAX_DEPTH`);
//! - has only numbers serde_json can hold (`1e400` cannot) and no integer beyond 64 bits (a hook
//!   would turn it into a nearby float);
//! - has only strings that are Unicode (no lone surrogate in a `\u` escape);
//! - names no member twice in any object (readers disagree on which one wins: SQLite takes the
//!   first, serde_json and browsers the last);
//! - has `_id` and `rid` strings that are not empty, at most [`MAX_ID_BYTES`] long and hold no
//!   control character (`roomId=` must find nothing, a `roomId` must fit in a request's URL, and
//!   ids are printed by `inquiry list` and in logs).
//!
//! A problem is reported with the JSON Pointer of the value it is in.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Deepest nesting of objects and arrays a document may have, counting the document itself.
pub const MAX_DEPTH: usize = 100;

/// Longest `_id` or `rid`, in bytes. Rocket.Chat's have 17 to 24 characters; a getOne URL is
/// capped at 64 KiB, and a `roomId` may need 3 bytes per byte in it, percent-encoded.
pub const MAX_ID_BYTES: usize = 1024;

/// What is wrong with a document, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The JSON Pointer of the value the problem is in (`""`: the whole document).
    pub pointer: String,
    pub message: String,
    /// Where in the text the problem was found (line and column from 1, as serde_json counts
    /// them), when the walk through the text found it; `None` for a rule checked afterwards.
    pub at: Option<(usize, usize)>,
}

/// Longest pointer shown in a message; a longer one is cut (keys may be long, and a pointer
/// into a document nested too deep has [`MAX_DEPTH`] segments).
const SHOWN_POINTER: usize = 256;

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            return f.write_str(&self.message);
        }
        if self.pointer.len() <= SHOWN_POINTER {
            return write!(f, "field {:?}: {}", self.pointer, self.message);
        }
        let mut cut = SHOWN_POINTER;
        while !self.pointer.is_char_boundary(cut) {
            cut -= 1;
        }
        write!(f, "field {:?}…: {}", &self.pointer[..cut], self.message)
    }
}

impl Problem {
    fn whole(message: impl Into<String>) -> Problem {
        Problem {
            pointer: String::new(),
            message: message.into(),
            at: None,
        }
    }

    fn field(name: &str, message: impl Into<String>) -> Problem {
        Problem {
            pointer: format!("/{}", escape(name)),
            message: message.into(),
            at: None,
        }
    }
}

/// A top-level member a reader needs, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member<'a> {
    Missing,
    String(Cow<'a, str>),
    /// Another kind of value: "a number", "an object", …
    Other(&'static str),
}

/// What a document that passed [`check`] holds at its top level.
#[derive(Debug)]
pub struct Checked<'a> {
    /// `_id`, a string that is not empty and holds no control character.
    pub id: Cow<'a, str>,
    /// `rid`, the same.
    pub rid: Cow<'a, str>,
    /// `status`, when it is a string.
    pub status: Option<Cow<'a, str>>,
}

/// Checks a document's text against every rule in the module comment; on success returns its
/// `_id`, `rid` and `status`. The first problem found is returned.
pub fn check(text: &str) -> Result<Checked<'_>, Problem> {
    let top = walk(text, MAX_DEPTH)?;
    Ok(Checked {
        id: required_id(top.id, "_id")?,
        rid: required_id(top.rid, "rid")?,
        status: match top.status {
            Member::String(s) => Some(s),
            _ => None,
        },
    })
}

/// As [`check`], but allowing `extra` more levels of nesting and not requiring `_id` and `rid`:
/// for MongoDB Extended JSON before its wrappers (`{"$date": {"$numberLong": …}}`, two levels)
/// are turned into plain values, so that the tree it is parsed into for that is within what
/// serde_json accepts. The result is then checked with [`check`].
pub fn check_extended(text: &str, extra: usize) -> Result<(), Problem> {
    walk(text, MAX_DEPTH + extra).map(|_| ())
}

/// Checks a stored row: its document must pass [`check`] and name the same `_id` and `rid` as
/// the row's columns (a row edited by hand may not).
pub fn check_stored<'a>(text: &'a str, id: &str, rid: &str) -> Result<Checked<'a>, Problem> {
    let checked = check(text)?;
    if checked.id != id {
        return Err(Problem::field(
            "_id",
            format!("{:?} differs from the row's id {id:?}", checked.id),
        ));
    }
    if checked.rid != rid {
        return Err(Problem::field(
            "rid",
            format!("{:?} differs from the row's rid {rid:?}", checked.rid),
        ));
    }
    Ok(checked)
}

/// The part of [`check_stored`] every answer needs, cheap enough for each request: the text is one
/// JSON object nested at most [`MAX_DEPTH`] levels, so the answer that wraps it is JSON every
/// client parses. The rest (repeated names, numbers, escapes, the ids) matters to readers that
/// parse the document, so the server checks it before hooks run, and `inquiry list` always.
///
/// A document of at most [`MAX_DEPTH`] objects and arrays in all is checked by serde_json's
/// fastest pass, which skips values without decoding them (a third of [`check`]'s cost); any other
/// goes through [`check`], which also says what is wrong.
pub fn check_quick(text: &str) -> Result<(), Problem> {
    // `[` and `{` differ in one bit. Counted in u8 per chunk of 255, so it runs 16 bytes a step.
    let containers: usize = text
        .as_bytes()
        .chunks(255)
        .map(|c| usize::from(c.iter().fold(0u8, |n, &b| n + u8::from(b | 0x20 == b'{'))))
        .sum();
    if containers <= MAX_DEPTH
        && text.starts_with('{')
        && serde_json::from_str::<de::IgnoredAny>(text).is_ok()
    {
        return Ok(());
    }
    walk(text, MAX_DEPTH).map(|_| ())
}

/// The rules for `_id` and `rid` values; `None` when `value` follows them.
pub fn id_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > MAX_ID_BYTES {
        Some("longer than 1024 bytes (a request's roomId must fit in its URL)")
    } else if value.chars().any(char::is_control) {
        Some("must not hold control characters (such as NUL or a line break)")
    } else {
        None
    }
}

fn required_id<'a>(member: Member<'a>, name: &str) -> Result<Cow<'a, str>, Problem> {
    // Worded as the import has always reported these two fields.
    let problem = |message: String| Problem::field(name, message);
    match member {
        Member::String(s) => match id_problem(&s) {
            None => Ok(s),
            Some(why) => Err(problem(why.into())),
        },
        Member::Missing => Err(problem("missing".into())),
        Member::Other(kind) => Err(problem(format!("must be a string, found {kind}"))),
    }
}

/// What the walk found at the top level.
struct Top<'a> {
    id: Member<'a>,
    rid: Member<'a>,
    status: Member<'a>,
}

/// Walks `text` once; when a number might be an integer beyond 64 bits, looks at the text to find
/// which, and walks again to name its field.
fn walk(text: &str, max_depth: usize) -> Result<Top<'_>, Problem> {
    let (top, suspect) = walk_once(text, max_depth, None)?;
    match suspect.then(|| first_long_integer(text)).flatten() {
        None => Ok(top),
        Some(place) => walk_once(text, max_depth, Some(place)).map(|(top, _)| top),
    }
}

fn walk_once(
    text: &str,
    max_depth: usize,
    too_long: Option<usize>,
) -> Result<(Top<'_>, bool), Problem> {
    if !text.trim_start().starts_with('{') {
        return Err(Problem::whole("not a JSON object"));
    }
    let mut ctx = Ctx {
        max_depth,
        keys: Vec::with_capacity(64),
        trail: Vec::new(),
        own: None,
        top: Top {
            id: Member::Missing,
            rid: Member::Missing,
            status: Member::Missing,
        },
        numbers: 0,
        too_long,
        suspect: false,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let walked = Walk {
        ctx: &mut ctx,
        depth: 0,
        keep: false,
    }
    .deserialize(&mut de)
    .and_then(|_| de.end());
    match walked {
        Ok(()) => Ok((ctx.top, ctx.suspect)),
        Err(e) => {
            let pointer: String = ctx.trail.iter().rev().fold(String::new(), |mut p, s| {
                p.push('/');
                p.push_str(s);
                p
            });
            let message = match ctx.own.take() {
                Some(own) => own,
                None => {
                    // the position goes in `at`, where every reader of the problem finds it
                    let said = e.to_string();
                    let suffix = format!(" at line {} column {}", e.line(), e.column());
                    let said = said.strip_suffix(&suffix).unwrap_or(&said).to_owned();
                    if said.contains("escape") {
                        // A lone surrogate (`"\ud800"`) is no character: no reader can hold it.
                        format!("not Unicode text: {said}")
                    } else if said.contains("out of range") {
                        said
                    } else {
                        format!("not JSON: {said}")
                    }
                }
            };
            let at = (e.line() > 0).then(|| (e.line(), e.column()));
            Err(Problem {
                pointer,
                message,
                at,
            })
        }
    }
}

/// The place, among the numbers of `text` in order, of the first integer (no fraction or
/// exponent) that fits neither `i64` nor `u64`: serde_json reads it as the nearest float. serde
/// does not say how a number was written, so this looks at the text, and a second walk counts
/// numbers to name the field. Only text with a run of 19 or more digits is looked at closely (an
/// integer below 19 digits always fits).
fn first_long_integer(text: &str) -> Option<usize> {
    const RUN: usize = 19;
    let bytes = text.as_bytes();
    // Every run of RUN digits covers a multiple of RUN: only those bytes are looked at first.
    let long_run = (0..bytes.len()).step_by(RUN).any(|at| {
        let digit = |i: &usize| bytes[*i].is_ascii_digit();
        bytes[at].is_ascii_digit() && {
            let before = (at.saturating_sub(RUN - 1)..at)
                .rev()
                .take_while(digit)
                .count();
            let after = (at + 1..bytes.len().min(at + RUN))
                .take_while(digit)
                .count();
            before + 1 + after >= RUN
        }
    });
    if !long_run {
        return None;
    }
    let (mut in_string, mut escaped, mut place) = (false, false, 0);
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            at += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            at += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let end = bytes[at..]
                .iter()
                .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .map_or(bytes.len(), |n| at + n);
            let token = &text[at..end];
            if !token.contains(['.', 'e', 'E'])
                && token.len() >= 19
                && token.parse::<i64>().is_err()
                && token.parse::<u64>().is_err()
            {
                return Some(place);
            }
            place += 1;
            at = end;
            continue;
        }
        at += 1;
    }
    None
}

/// A JSON Pointer segment for a member name (RFC 6901).
fn escape(name: &str) -> Cow<'_, str> {
    if name.contains(['~', '/']) {
        Cow::Owned(name.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(name)
    }
}

/// State shared by every level of one walk.
struct Ctx<'de> {
    max_depth: usize,
    /// The member names of the objects being walked, innermost last (for finding repeats).
    keys: Vec<Cow<'de, str>>,
    /// The pointer's segments, innermost first, pushed while an error unwinds.
    trail: Vec<String>,
    /// The message of a problem this module found (serde_json's own errors carry theirs).
    own: Option<String>,
    top: Top<'de>,
    /// Numbers seen so far, and the place among them of the first integer beyond 64 bits (known
    /// on a second walk, see [`walk`]).
    numbers: usize,
    too_long: Option<usize>,
    /// Whether a number was read as a float that could be such an integer.
    suspect: bool,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(&mut self, message: String) -> E {
        self.own = Some(message);
        E::custom("problem")
    }
}

/// One value of the walk. `keep`: an escaped string is copied to be returned (a top-level member
/// the caller wants); otherwise only its kind is.
struct Walk<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    /// How many objects and arrays enclose this value.
    depth: usize,
    keep: bool,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = Member<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Member<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Walk<'_, 'de> {
    /// Counts a number; the one [`first_long_integer`] found is refused.
    fn number<E: de::Error>(self) -> Result<Member<'de>, E> {
        let place = self.ctx.numbers;
        self.ctx.numbers += 1;
        if self.ctx.too_long == Some(place) {
            return Err(self.ctx.fail(
                "integer beyond 64 bits (MongoDB cannot hold it, and a hook would round it)".into(),
            ));
        }
        Ok(Member::Other("a number"))
    }

    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        if self.depth >= self.ctx.max_depth {
            let max = self.ctx.max_depth;
            return Err(self.ctx.fail(format!(
                "nested deeper than {max} levels of objects and arrays"
            )));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Walk<'_, 'de> {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Member<'de>, E> {
        self.number()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Member<'de>, E> {
        self.number()
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Member<'de>, E> {
        // serde_json reads an integer that fits neither i64 nor u64 as a float of at least 2^63.
        if v.fract() == 0.0 && v.abs() >= 9_223_372_036_854_775_808.0 {
            self.ctx.suspect = true;
        }
        self.number()
    }

    fn visit_unit<E>(self) -> Result<Member<'de>, E> {
        Ok(Member::Other("null"))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Member<'de>, E> {
        Ok(if self.keep {
            Member::String(Cow::Owned(s.to_owned()))
        } else {
            Member::Other("a string")
        })
    }

    fn visit_string<E>(self, s: String) -> Result<Member<'de>, E> {
        Ok(Member::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Member<'de>, A::Error> {
        self.enter()?;
        let mut index = 0usize;
        loop {
            let next = seq.next_element_seed(Walk {
                ctx: &mut *self.ctx,
                depth: self.depth + 1,
                keep: false,
            });
            match next {
                Ok(Some(_)) => index += 1,
                Ok(None) => return Ok(Member::Other("an array")),
                Err(e) => {
                    self.ctx.trail.push(index.to_string());
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Member<'de>, A::Error> {
        self.enter()?;
        let base = self.ctx.keys.len();
        // Past this many members, repeats are found with a set instead of a scan.
        const SCAN: usize = 32;
        let mut set: Option<std::collections::HashSet<Cow<'de, str>>> = None;
        let result = loop {
            let key = match map.next_key_seed(Key) {
                Ok(Some(key)) => key,
                Ok(None) => break Ok(Member::Other("an object")),
                Err(e) => break Err(e),
            };
            let members = &self.ctx.keys[base..];
            let repeated = match &mut set {
                Some(set) => !set.insert(key.clone()),
                None if members.len() < SCAN => members.contains(&key),
                None => {
                    let mut all: std::collections::HashSet<_> = members.iter().cloned().collect();
                    let repeated = !all.insert(key.clone());
                    set = Some(all);
                    repeated
                }
            };
            if repeated {
                let e = self.ctx.fail(
                    "is named twice in its object (readers disagree on which value counts)".into(),
                );
                self.ctx.trail.push(escape(&key).into_owned());
                break Err(e);
            }
            let top = if self.depth == 0 {
                match key.as_ref() {
                    "_id" => Some(0),
                    "rid" => Some(1),
                    "status" => Some(2),
                    _ => None,
                }
            } else {
                None
            };
            let value = map.next_value_seed(Walk {
                ctx: &mut *self.ctx,
                depth: self.depth + 1,
                keep: top.is_some(),
            });
            match value {
                Ok(value) => {
                    match top {
                        Some(0) => self.ctx.top.id = value,
                        Some(1) => self.ctx.top.rid = value,
                        Some(_) => self.ctx.top.status = value,
                        None => {}
                    }
                    self.ctx.keys.push(key);
                }
                Err(e) => {
                    self.ctx.trail.push(escape(&key).into_owned());
                    break Err(e);
                }
            }
        };
        self.ctx.keys.truncate(base);
        result
    }
}

/// A member name, borrowed from the text unless it has escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        // The document is one level; `x` holds depth - 1 more.
        format!(
            r#"{{"_id":"a","rid":"r","x":{}{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    }

    fn problem(text: &str) -> String {
        check(text).expect_err("a problem").to_string()
    }

    #[test]
    fn a_plain_document_passes_with_its_members() {
        let c =
            check(r#"{"_id":"a\u0062","rid":"r","status":"queued","n":[1,-2,3.5e10]}"#).unwrap();
        assert_eq!((c.id.as_ref(), c.rid.as_ref()), ("ab", "r"));
        assert_eq!(c.status.as_deref(), Some("queued"));
        assert!(
            check(r#"{"_id":"a","rid":"r","status":1}"#)
                .unwrap()
                .status
                .is_none()
        );
    }

    #[test]
    fn nesting_is_limited_and_the_deep_field_named() {
        assert!(check(&nested(MAX_DEPTH)).is_ok());
        let deep = problem(&nested(MAX_DEPTH + 1));
        let pointer = format!("/x{}", "/0".repeat(MAX_DEPTH - 1));
        assert_eq!(
            deep,
            format!("field {pointer:?}: nested deeper than 100 levels of objects and arrays")
        );
        // Far deeper than serde_json's own limit: still this module's message, at once.
        let very = problem(&nested(100_000));
        assert!(very.contains("nested deeper than 100"), "{very}");
        let objects = format!(
            r#"{{"_id":"a","rid":"r",{}"b":1{}}}"#,
            r#""a":{"#.repeat(MAX_DEPTH),
            "}".repeat(MAX_DEPTH)
        );
        assert!(problem(&objects).starts_with(r#"field "/a/a/a"#));
    }

    #[test]
    fn numbers_serde_json_cannot_hold_are_refused() {
        let text = r#"{"_id":"a","rid":"r","v":{"n":[1,1e400]}}"#;
        assert_eq!(problem(text), r#"field "/v/n/1": number out of range"#);
        assert_eq!(check(text).err().and_then(|p| p.at), Some((1, 38)));
        assert!(check(r#"{"_id":"a","rid":"r","n":-1e308,"m":18446744073709551615}"#).is_ok());
        assert!(
            check(r#"{"_id":"a","rid":"r","m":-9223372036854775808,"f":1234567890123456789012.5}"#)
                .is_ok()
        );
        let long = r#"{"_id":"a","rid":"r","s":"1234567890123456789012","n":[-1,2.5e3,true,18446744073709551616]}"#;
        assert_eq!(
            problem(long),
            r#"field "/n/3": integer beyond 64 bits (MongoDB cannot hold it, and a hook would round it)"#
        );
        assert!(
            problem(r#"{"_id":"a","rid":"r","n":-9223372036854775809}"#).contains("beyond 64 bits")
        );
        // A float that large, beside a long run of digits in a string, is fine.
        let floats = r#"{"_id":"a","rid":"r","s":"12345678901234567890123","f":[2e19,-1.0E21]}"#;
        assert!(check(floats).is_ok());
    }

    #[test]
    fn lone_surrogates_and_repeated_names_are_refused() {
        let s = problem(r#"{"_id":"a","rid":"r","v":["\ud800"]}"#);
        assert!(s.starts_with(r#"field "/v/0": not Unicode text"#), "{s}");
        let k = problem(r#"{"_id":"a","rid":"r","v":{"\udc00x":1}}"#);
        assert!(k.starts_with(r#"field "/v": not Unicode text"#), "{k}");
        assert_eq!(
            problem(r#"{"_id":"a","rid":"r","v":{"a/b":1,"c":2,"a/b":3}}"#),
            r#"field "/v/a~1b": is named twice in its object (readers disagree on which value counts)"#
        );
        assert!(
            problem(r#"{"_id":"a","rid":"r","rid":"s"}"#)
                .starts_with(r#"field "/rid": is named twice"#)
        );
        // Many members: found with a set.
        let many: String = (0..100).map(|i| format!(r#","k{i}":{i}"#)).collect();
        assert!(check(&format!(r#"{{"_id":"a","rid":"r"{many}}}"#)).is_ok());
        let twice = problem(&format!(r#"{{"_id":"a","rid":"r"{many},"k7":0}}"#));
        assert!(
            twice.starts_with(r#"field "/k7": is named twice"#),
            "{twice}"
        );
    }

    #[test]
    fn ids_must_be_strings_readers_can_name() {
        assert_eq!(problem(r#"{"rid":"r"}"#), r#"field "/_id": missing"#);
        assert_eq!(
            problem(r#"{"_id":{"a":1},"rid":"r"}"#),
            r#"field "/_id": must be a string, found an object"#
        );
        assert_eq!(
            problem(r#"{"_id":"a","rid":""}"#),
            r#"field "/rid": must not be empty"#
        );
        assert!(problem(r#"{"_id":"a\u0000","rid":"r"}"#).contains("control characters"));
        assert!(problem(r#"{"_id":"a","rid":"r\n"}"#).contains("control characters"));
        let long = "r".repeat(MAX_ID_BYTES + 1);
        assert!(check(&format!(r#"{{"_id":"a","rid":"{}"}}"#, &long[1..])).is_ok());
        assert!(problem(&format!(r#"{{"_id":"a","rid":"{long}"}}"#)).contains("longer than 1024"));
    }

    #[test]
    fn text_that_is_not_one_json_object_is_refused() {
        assert_eq!(problem("[1]"), "not a JSON object");
        assert_eq!(problem("null"), "not a JSON object");
        assert_eq!(problem(""), "not a JSON object");
        assert!(problem("{not json").starts_with("not JSON: key must be a string"));
        assert!(problem(r#"{"_id":"a","rid":"r"} {}"#).starts_with("not JSON: trailing"));
        let cut = problem(r#"{"_id":"a","rid":"r","v":[1,{"b":"#);
        assert!(cut.starts_with(r#"field "/v/1/b": not JSON: EOF"#), "{cut}");
    }

    #[test]
    fn the_quick_check_finds_what_breaks_every_answer() {
        assert!(check_quick(r#"{"_id":"a","rid":"r","v":[{"k":1,"k":2}]}"#).is_ok());
        assert!(check_quick(&nested(MAX_DEPTH)).is_ok());
        assert!(
            check_quick(&format!(
                r#"{{"_id":"a","rid":"r","v":[{}]}}"#,
                "[],".repeat(200) + "[]"
            ))
            .is_ok()
        );
        assert!(
            check_quick(&nested(MAX_DEPTH + 1))
                .unwrap_err()
                .message
                .contains("nested deeper")
        );
        assert_eq!(check_quick("[]").unwrap_err().message, "not a JSON object");
        assert!(
            check_quick("{\"a\":")
                .unwrap_err()
                .message
                .starts_with("not JSON")
        );
        assert!(check_quick(" {\"a\":1}").is_ok());
    }

    #[test]
    fn a_stored_row_must_match_its_columns() {
        let doc = r#"{"_id":"a","rid":"r"}"#;
        assert!(check_stored(doc, "a", "r").is_ok());
        assert_eq!(
            check_stored(doc, "a", "s").unwrap_err().to_string(),
            r#"field "/rid": "r" differs from the row's rid "s""#
        );
        assert!(check_stored(doc, "b", "r").is_err());
    }

    #[test]
    fn long_pointers_are_cut_in_messages() {
        let key = "k".repeat(400);
        let p = problem(&format!(r#"{{"_id":"a","rid":"r","{key}":[1e999]}}"#));
        assert!(p.len() < 400 && p.contains("…: number out of range"), "{p}");
    }
}
