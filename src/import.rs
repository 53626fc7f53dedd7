//! `inquiry import`: reads a JSON array, NDJSON, or a `mongoexport` of
//! `rocketchat_livechat_inquiry` (Extended JSON), checks every record, and upserts the whole file
//! by `_id` in one transaction: a bad record means nothing from that file is written.

use std::fmt;

use serde_json::{Map, Value};

use crate::db::inquiries::InquiryRecord;

/// A record that cannot be imported, with where it is.
#[derive(Debug)]
pub struct RecordError {
    /// "record 3" (JSON array, 0-based index) or "line 12" (NDJSON, 1-based).
    pub position: String,
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.position, self.message)
    }
}

/// At most this many problems are reported per file.
const MAX_ERRORS: usize = 20;

/// Records checked per unit of work handed between threads.
const CHUNK: usize = 512;

/// Parses a whole file's text into records, or every problem found (at most `MAX_ERRORS`).
/// Records are checked and compacted on every core; their order is kept.
pub fn parse(text: &str) -> Result<Vec<InquiryRecord<'_>>, Vec<RecordError>> {
    let mut records = Vec::new();
    check_in_order(text, |chunk| {
        records.extend(chunk);
        Ok::<(), std::convert::Infallible>(())
    })
    .map_err(|failure| match failure {
        Failure::Invalid(errors) => errors,
        Failure::Sink(never) => match never {},
    })?;
    Ok(records)
}

/// Why [`check_in_order`] stopped.
enum Failure<E> {
    /// Bad records (at most `MAX_ERRORS`), in file order.
    Invalid(Vec<RecordError>),
    /// The sink failed.
    Sink(E),
}

/// Checks a file's records on every core, a chunk at a time, and hands the good chunks to `sink`
/// in file order while the rest are still being checked (so storing overlaps checking). After the
/// first bad record `sink` is not called again; checking goes on to report up to `MAX_ERRORS`.
/// Returns how many records there were.
fn check_in_order<'a, E>(
    text: &'a str,
    mut sink: impl FnMut(Vec<InquiryRecord<'a>>) -> Result<(), E>,
) -> Result<usize, Failure<E>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let (is_array, items) = split(text).map_err(|e| Failure::Invalid(vec![e]))?;
    let chunks: Vec<&[Item]> = items.chunks(CHUNK).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut errors = Vec::new();
    let mut sink_error = None;
    let (due, panicked) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(threads * 2);
        let workers: Vec<_> = (0..threads.min(chunks.len()))
            .map(|_| {
                let tx = tx.clone();
                let (chunks, next, stop) = (&chunks, &next, &stop);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(part) = chunks.get(i) else { break };
                        let checked: Vec<_> = part.iter().map(|(_, t)| record(t)).collect();
                        if tx.send((i, checked)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        // Chunks arrive in any order; each is handled once all before it have been.
        let mut waiting = std::collections::BTreeMap::new();
        let mut due = 0;
        'receive: for (i, checked) in rx.iter() {
            waiting.insert(i, checked);
            while let Some(checked) = waiting.remove(&due) {
                let mut good = Vec::with_capacity(checked.len());
                for ((number, _), result) in chunks[due].iter().zip(checked) {
                    match result {
                        Ok(r) => good.push(r),
                        Err(message) => errors.push(RecordError {
                            position: if is_array {
                                format!("record {number}")
                            } else {
                                format!("line {number}")
                            },
                            message,
                        }),
                    }
                }
                due += 1;
                if errors.is_empty()
                    && let Err(e) = sink(good)
                {
                    sink_error = Some(e);
                }
                if errors.len() >= MAX_ERRORS || sink_error.is_some() {
                    stop.store(true, Ordering::Relaxed);
                    break 'receive;
                }
            }
        }
        // Dropping the receiver unblocks any thread still sending. Joined here, a checking
        // thread's panic becomes an error for this file instead of ending the process.
        drop(rx);
        let panicked = workers
            .into_iter()
            .map(|w| w.join())
            .filter(Result::is_err)
            .count()
            > 0;
        (due, panicked)
    });
    if let Some(e) = sink_error {
        return Err(Failure::Sink(e));
    }
    if !errors.is_empty() {
        errors.truncate(MAX_ERRORS);
        return Err(Failure::Invalid(errors));
    }
    if panicked || due != chunks.len() {
        return Err(Failure::Invalid(vec![RecordError {
            position: "file".into(),
            message: "internal error while checking records; nothing imported".into(),
        }]));
    }
    Ok(items.len())
}

/// A record's text with the number shown in errors: its index in a JSON array, its NDJSON line.
type Item<'a> = (usize, &'a str);

/// Splits a file into its records' texts. Returns whether it is an array.
fn split(text: &str) -> Result<(bool, Vec<Item<'_>>), RecordError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('[') {
        // Borrow each element's text: no element is built as a tree unless it needs rewriting.
        let raw: Vec<&serde_json::value::RawValue> =
            serde_json::from_str(trimmed).map_err(|e| RecordError {
                position: format!("line {}, column {}", e.line(), e.column()),
                message: format!("not a JSON array: {e}"),
            })?;
        return Ok((true, raw.into_iter().map(|r| r.get()).enumerate().collect()));
    }
    let lines = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty())
        .collect();
    Ok((false, lines))
}

/// The two fields every record needs; everything else is skipped without being built.
#[derive(serde::Deserialize)]
struct Keys {
    #[serde(rename = "_id")]
    id: Option<Value>,
    rid: Option<Value>,
}

/// Checks one document's text and produces its compact form, turning Extended JSON into what
/// Rocket.Chat's REST API shows.
fn record(text: &str) -> Result<InquiryRecord<'_>, String> {
    let not_json = |e: serde_json::Error| format!("not JSON (column {}): {e}", e.column());
    if text.contains("\"$") {
        // Extended JSON (keys like `$date`): rewrite through a tree.
        let value: Value = serde_json::from_str(text).map_err(not_json)?;
        let Value::Object(map) = from_extended(value, "")? else {
            return Err("not a JSON object".into());
        };
        let id = string_field(map.get("_id"), "_id")?;
        let rid = string_field(map.get("rid"), "rid")?;
        let doc = serde_json::to_string(&map).map_err(|e| format!("cannot serialise: {e}"))?;
        return Ok(InquiryRecord {
            id,
            rid,
            doc: doc.into(),
        });
    }
    // Plain JSON: stream it to compact form, keeping key order and numbers, without a tree.
    if !text.starts_with('{') {
        return Err("not a JSON object".into());
    }
    let keys: Keys = serde_json::from_str(text).map_err(not_json)?;
    let id = string_field(keys.id.as_ref(), "_id")?;
    let rid = string_field(keys.rid.as_ref(), "rid")?;
    if is_compact(text) {
        // Already compact (mongoexport and most exports are): store the text as it came.
        return Ok(InquiryRecord {
            id,
            rid,
            doc: text.into(),
        });
    }
    let mut doc = Vec::with_capacity(text.len());
    let mut de = serde_json::Deserializer::from_str(text);
    serde_transcode::transcode(&mut de, &mut serde_json::Serializer::new(&mut doc))
        .map_err(|e| format!("cannot compact: {e}"))?;
    let doc = String::from_utf8(doc).map_err(|e| format!("cannot compact: {e}"))?;
    Ok(InquiryRecord {
        id,
        rid,
        doc: doc.into(),
    })
}

/// Whether valid JSON text has no whitespace outside its strings.
fn is_compact(text: &str) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b' ' | b'\n' | b'\r' | b'\t' => return false,
                _ => {}
            }
        }
    }
    true
}

fn string_field(value: Option<&Value>, field: &str) -> Result<String, String> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "field {field:?}: must be a string, found {}",
            kind(other)
        )),
        None => Err(format!("field {field:?}: missing")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Rewrites MongoDB Extended JSON wrappers (`$date`, `$oid`, `$numberLong`, `$numberInt`,
/// `$numberDouble`) into plain values; `at` is the JSON Pointer for error messages.
fn from_extended(value: Value, at: &str) -> Result<Value, String> {
    match value {
        Value::Object(map) => {
            if map.len() == 1 {
                let (key, inner) = map
                    .iter()
                    .next()
                    .map(|(k, v)| (k.as_str(), v))
                    .unwrap_or(("", &Value::Null));
                match key {
                    "$date" => return date(inner).map_err(|e| format!("field {at:?}: {e}")),
                    "$oid" => {
                        return inner
                            .as_str()
                            .map(|s| Value::String(s.to_string()))
                            .ok_or_else(|| format!("field {at:?}: $oid must be a string"));
                    }
                    "$numberLong" | "$numberInt" => {
                        return inner
                            .as_str()
                            .and_then(|s| s.parse::<i64>().ok())
                            .map(Value::from)
                            .ok_or_else(|| {
                                format!("field {at:?}: {key} must be an integer string")
                            });
                    }
                    "$numberDouble" => {
                        return inner
                            .as_str()
                            .and_then(|s| s.parse::<f64>().ok())
                            .and_then(serde_json::Number::from_f64)
                            .map(Value::Number)
                            .ok_or_else(|| {
                                format!(
                                    "field {at:?}: $numberDouble must be a finite number string"
                                )
                            });
                    }
                    _ => {}
                }
            }
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                let path = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                let v = from_extended(v, &path)?;
                out.insert(k, v);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| from_extended(v, &format!("{at}/{i}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other),
    }
}

/// `{"$date": …}` in any of mongoexport's forms → the ISO string Rocket.Chat's REST API shows
/// (UTC, milliseconds, `Z`).
fn date(inner: &Value) -> Result<Value, String> {
    let millis = match inner {
        Value::String(s) => {
            let parsed = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| format!("$date {s:?} is not an ISO-8601 date: {e}"))?;
            parsed.timestamp_millis()
        }
        Value::Number(n) => n
            .as_i64()
            .ok_or("$date number must be whole milliseconds")?,
        Value::Object(o) => match o.get("$numberLong").and_then(Value::as_str) {
            Some(s) if o.len() == 1 => s
                .parse::<i64>()
                .map_err(|_| format!("$date.$numberLong {s:?} is not an integer"))?,
            _ => return Err("$date object must be {\"$numberLong\": \"<ms>\"}".into()),
        },
        _ => return Err("$date must be a string, a number or {\"$numberLong\": …}".into()),
    };
    let dt = chrono::DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| format!("$date {millis} is out of range"))?;
    Ok(Value::String(
        dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_json_dates_and_oids() {
        let line = r#"{"_id":{"$oid":"6560940c6a1ef5b1a2bf9324"},"rid":"r","ts":{"$date":"2023-11-24T12:16:12.370Z"},"a":{"$date":{"$numberLong":"1700828172370"}},"n":{"$numberLong":"5"}}"#;
        let recs = parse(line).unwrap();
        assert_eq!(recs[0].id, "6560940c6a1ef5b1a2bf9324");
        assert_eq!(
            recs[0].doc,
            r#"{"_id":"6560940c6a1ef5b1a2bf9324","rid":"r","ts":"2023-11-24T12:16:12.370Z","a":"2023-11-24T12:16:12.370Z","n":5}"#
        );
    }

    #[test]
    fn bad_records_name_position_and_field() {
        let errs =
            parse("{\"_id\":\"a\",\"rid\":\"r\"}\n{\"_id\":\"b\"}\n{\"_id\":3,\"rid\":\"x\"}\n")
                .err()
                .unwrap();
        assert_eq!(errs[0].to_string(), "line 2: field \"rid\": missing");
        assert_eq!(
            errs[1].to_string(),
            "line 3: field \"_id\": must be a string, found a number"
        );
        let errs = parse(r#"[{"_id":"a","rid":"r"},{"_id":"b","rid":null}]"#)
            .err()
            .unwrap();
        assert_eq!(errs[0].position, "record 1");
    }

    #[test]
    fn whitespace_is_compacted_and_compact_text_kept() {
        let recs = parse("{ \"_id\" : \"a\", \"rid\":\"r\", \"s\": \"x y\\\" z\" }").unwrap();
        assert_eq!(recs[0].doc, r#"{"_id":"a","rid":"r","s":"x y\" z"}"#);
        assert!(is_compact(r#"{"a":"b c","d":[1,2]}"#));
        assert!(!is_compact(r#"{"a":"b c", "d":[1,2]}"#));
        assert!(!is_compact("{\"a\":\"\\\"\" ,\"b\":1}"));
    }

    fn ndjson(lines: usize, bad: &[usize]) -> String {
        (1..=lines)
            .map(|n| {
                if bad.contains(&n) {
                    format!("{{\"_id\":\"i{n}\"}}\n")
                } else {
                    format!("{{\"_id\":\"i{n}\",\"rid\":\"r{n}\"}}\n")
                }
            })
            .collect()
    }

    #[test]
    fn records_keep_file_order_across_chunks() {
        let text = ndjson(CHUNK * 5 + 7, &[]);
        let recs = parse(&text).unwrap();
        assert_eq!(recs.len(), CHUNK * 5 + 7);
        assert!(
            recs.iter()
                .enumerate()
                .all(|(i, r)| r.id == format!("i{}", i + 1))
        );
    }

    #[test]
    fn errors_from_every_chunk_come_in_file_order_and_stop_at_the_limit() {
        let errs = parse(&ndjson(CHUNK * 4, &[3, CHUNK + 1, CHUNK * 4]))
            .err()
            .unwrap();
        let at: Vec<_> = errs.iter().map(|e| e.position.as_str()).collect();
        let (second, last) = (format!("line {}", CHUNK + 1), format!("line {}", CHUNK * 4));
        assert_eq!(at, ["line 3", second.as_str(), last.as_str()]);
        let many: Vec<usize> = (1..=CHUNK * 3).step_by(7).collect();
        let errs = parse(&ndjson(CHUNK * 3, &many)).err().unwrap();
        assert_eq!(errs.len(), MAX_ERRORS);
        assert_eq!(
            errs[MAX_ERRORS - 1].position,
            format!("line {}", many[MAX_ERRORS - 1])
        );
    }

    #[test]
    fn a_bad_record_or_a_failing_sink_stops_storing() {
        let text = ndjson(CHUNK * 6, &[CHUNK * 2 + 5]);
        let mut stored = 0;
        let result = check_in_order(&text, |chunk| {
            stored += chunk.len();
            Ok::<(), ()>(())
        });
        assert!(matches!(result, Err(Failure::Invalid(e)) if e.len() == 1));
        assert_eq!(stored, CHUNK * 2, "only the chunks before the bad one");
        let text = ndjson(CHUNK * 6, &[]);
        let mut calls = 0;
        let result = check_in_order(&text, |_| {
            calls += 1;
            if calls == 3 { Err("disk full") } else { Ok(()) }
        });
        assert!(matches!(result, Err(Failure::Sink("disk full"))));
        assert_eq!(calls, 3);
    }

    #[test]
    fn key_order_is_kept() {
        let recs = parse(r#"[{"z":1,"_id":"a","rid":"r","b":2}]"#).unwrap();
        assert_eq!(recs[0].doc, r#"{"z":1,"_id":"a","rid":"r","b":2}"#);
    }
}

/// Why a file was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: nothing imported, {} bad record(s):\n{}", .errors.len(), .errors.iter().map(|e| format!("  {path}: {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        errors: Vec<RecordError>,
    },
    #[error("{path}: nothing imported: database: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
}

/// Imports one file in one transaction; returns how many records it held. Records are stored
/// while later ones are still being checked; a bad record rolls the whole file back.
pub fn import_file(
    conn: &mut rusqlite::Connection,
    path: &std::path::Path,
) -> Result<usize, ImportError> {
    let shown = path.display().to_string();
    let started = std::time::Instant::now();
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: shown.clone(),
        source,
    })?;
    let read = started.elapsed();
    let db_err = |source| ImportError::Db {
        path: shown.clone(),
        source,
    };
    // A large file's pages stay in memory longer before spilling to the WAL mid-transaction.
    conn.pragma_update(None, "cache_size", -64 * 1024)
        .map_err(db_err)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let count = check_in_order(&text, |chunk| crate::db::inquiries::upsert_all(&tx, &chunk))
        .map_err(|failure| match failure {
            Failure::Invalid(errors) => ImportError::Invalid {
                path: shown.clone(),
                errors,
            },
            Failure::Sink(source) => db_err(source),
        })?;
    let stored = started.elapsed();
    tx.commit().map_err(db_err)?;
    log::debug!(
        "{shown}: {count} records; read {read:.2?}, checked and stored {:.2?}, committed {:.2?}",
        stored - read,
        started.elapsed() - stored
    );
    Ok(count)
}
