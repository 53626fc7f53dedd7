//! `inquiry import`: reads a JSON array, NDJSON, or a `mongoexport` of
//! `rocketchat_livechat_inquiry` (Extended JSON), checks every record, and upserts the whole file
//! by `_id` in one transaction: a bad record means nothing from that file is written. Every
//! shape is streamed a record at a time (memory does not grow with the file), one record is
//! bounded at [`MAX_RECORD_BYTES`], a file that holds an `_id` twice is refused, and every error
//! names its line (and column, where the text itself is broken) or its index in the array.
//!
//! [`source`] reads the file, [`pipeline`] checks its records in parallel and in order,
//! [`record`] checks one record (with [`extended`] for Extended JSON), and [`strategy`] decides how
//! the files reach the database (a new file built aside, or an existing one).

mod extended;
mod pipeline;
mod record;
mod source;
mod strategy;

use std::fmt;

use crate::db::inquiries::InquiryRecord;
use pipeline::{Failure, Places, check_in_order};
use source::Source;

pub use source::MAX_RECORD_BYTES;
pub use strategy::{ImportResults, import_files};

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

/// Parses a whole file's text into records, or every problem found (at most `MAX_ERRORS`).
/// Records are checked and compacted on other threads; their order is kept.
pub fn parse(text: &str) -> Result<Vec<InquiryRecord<'static>>, Vec<RecordError>> {
    let mut records = Vec::new();
    let source = Source::whole(text.to_owned()).map_err(|e| vec![e])?;
    check_in_order(source, |chunk, _| {
        records.extend(chunk.into_iter().map(InquiryRecord::into_owned));
        Ok::<(), std::convert::Infallible>(())
    })
    .map_err(|failure| match failure {
        Failure::Invalid(errors) => errors,
        Failure::Read(e) => vec![RecordError {
            position: "file".into(),
            message: e.to_string(),
        }],
        Failure::Sink(never) => match never {},
    })?;
    Ok(records)
}

/// Why a file was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: nothing imported, {}:\n{}", crate::text::plural(.errors.len(), "bad record", "bad records"), .errors.iter().map(|e| format!("  {path}: {e}")).collect::<Vec<_>>().join("\n"))]
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

/// Why storing a file's records stopped.
enum Stop {
    Db(rusqlite::Error),
    /// An `_id` the file already held.
    Duplicate(RecordError),
}

/// Records each `_id` of `chunk` as seen in this file, or names the first one it already held.
/// A collection's export holds each `_id` once (it is the primary key), so a repeat means a file
/// put together wrongly (two exports concatenated, an edited copy), and which copy is current
/// cannot be known from it: the file is refused, naming both places, rather than the last copy
/// silently winning.
fn once_each(
    tx: &rusqlite::Transaction,
    chunk: &[InquiryRecord],
    places: &Places,
) -> Result<(), Stop> {
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO temp.import_ids (id, at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )
        .map_err(Stop::Db)?;
    for (record, &number) in chunk.iter().zip(&places.numbers) {
        if insert
            .execute((&record.id, number as i64))
            .map_err(Stop::Db)?
            == 0
        {
            let first: i64 = tx
                .query_row(
                    "SELECT at FROM temp.import_ids WHERE id = ?1",
                    [&record.id],
                    |row| row.get(0),
                )
                .map_err(Stop::Db)?;
            return Err(Stop::Duplicate(RecordError {
                position: places.position(number),
                message: format!(
                    "_id {:?} again (first at {}): a file may hold each _id once",
                    record.id,
                    places.name(first as usize)
                ),
            }));
        }
    }
    Ok(())
}

/// Imports one file in one transaction, recorded in the audit trail (actor: this OS user) within
/// it; returns how many records it held. Records are stored
/// while later ones are still being checked; a bad record rolls the whole file back.
pub fn import_file(
    conn: &mut rusqlite::Connection,
    path: &std::path::Path,
) -> Result<usize, ImportError> {
    let shown = path.display().to_string();
    let started = std::time::Instant::now();
    let failed = |failure| match failure {
        Failure::Invalid(errors) => ImportError::Invalid {
            path: shown.clone(),
            errors,
        },
        Failure::Read(source) => ImportError::Read {
            path: shown.clone(),
            source,
        },
        Failure::Sink(source) => ImportError::Db {
            path: shown.clone(),
            source,
        },
    };
    let source = Source::open(path).map_err(|e| failed(Failure::Read(e)))?;
    let db_err = |source| failed(Failure::Sink(source));
    // A large file's pages stay in memory longer before spilling to the WAL mid-transaction.
    conn.pragma_update(None, "cache_size", -64 * 1024)
        .map_err(db_err)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db_err)?;
    // Each `_id` this file has stored, and where: a temporary table (spilled to a temporary file
    // as it grows, so memory stays bounded), emptied for each file.
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS import_ids (id TEXT PRIMARY KEY, at INTEGER NOT NULL)
           WITHOUT ROWID;
         DELETE FROM temp.import_ids;",
    )
    .map_err(db_err)?;
    let count = check_in_order(source, |chunk, places| {
        once_each(&tx, &chunk, &places)?;
        crate::db::inquiries::upsert_all(&tx, &chunk).map_err(Stop::Db)
    })
    .map_err(|failure| match failure {
        Failure::Sink(Stop::Duplicate(e)) => failed(Failure::Invalid(vec![e])),
        Failure::Sink(Stop::Db(e)) => failed(Failure::Sink(e)),
        Failure::Invalid(e) => failed(Failure::Invalid(e)),
        Failure::Read(e) => failed(Failure::Read(e)),
    })?;
    // The audit record commits with the import, or neither does.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    crate::admin::audit::record(
        &tx,
        &crate::admin::Actor::cli(),
        "inquiry.import",
        &absolute.display().to_string(),
        None,
        Some(&serde_json::json!({"records": count})),
    )
    .map_err(db_err)?;
    let stored = started.elapsed();
    tx.commit().map_err(db_err)?;
    log::debug!(
        "{shown}: {count} records; read, checked and stored {stored:.2?}, committed {:.2?}",
        started.elapsed() - stored
    );
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::MAX_ERRORS;
    use record::is_compact;
    use source::CHUNK;

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
        assert_eq!(
            errs[0].to_string(),
            "line 2, column 1: field \"/rid\": missing"
        );
        assert_eq!(
            errs[1].to_string(),
            "line 3, column 1: field \"/_id\": must be a string, found a number"
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
        let (second, last) = (
            format!("line {}, column 1", CHUNK + 1),
            format!("line {}, column 1", CHUNK * 4),
        );
        assert_eq!(at, ["line 3, column 1", second.as_str(), last.as_str()]);
        let many: Vec<usize> = (1..=CHUNK * 3).step_by(7).collect();
        let errs = parse(&ndjson(CHUNK * 3, &many)).err().unwrap();
        assert_eq!(errs.len(), MAX_ERRORS);
        assert_eq!(
            errs[MAX_ERRORS - 1].position,
            format!("line {}, column 1", many[MAX_ERRORS - 1])
        );
    }

    #[test]
    fn a_bad_record_or_a_failing_sink_stops_storing() {
        let text = ndjson(CHUNK * 6, &[CHUNK * 2 + 5]);
        let mut stored = 0;
        let result = check_in_order(Source::whole(text.clone()).unwrap(), |chunk, _| {
            stored += chunk.len();
            Ok::<(), ()>(())
        });
        assert!(matches!(result, Err(Failure::Invalid(e)) if e.len() == 1));
        assert_eq!(stored, CHUNK * 2, "only the chunks before the bad one");
        let text = ndjson(CHUNK * 6, &[]);
        let mut calls = 0;
        let result = check_in_order(Source::whole(text.clone()).unwrap(), |_, _| {
            calls += 1;
            if calls == 3 { Err("disk full") } else { Ok(()) }
        });
        assert!(matches!(result, Err(Failure::Sink("disk full"))));
        assert_eq!(calls, 3);
    }

    /// Checks a file streamed `block` bytes at a time; returns the ids stored, or the errors.
    fn stream(text: &[u8], block: usize) -> Result<Vec<String>, Vec<String>> {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, text).unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        let mut ids = Vec::new();
        check_in_order(Source::Lines(file, block), |chunk, _| {
            ids.extend(chunk.into_iter().map(|r| r.id));
            Ok::<(), ()>(())
        })
        .map(|_| ids)
        .map_err(|failure| match failure {
            Failure::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
            Failure::Read(e) => vec![format!("read: {e}")],
            Failure::Sink(()) => vec!["sink".into()],
        })
    }

    #[test]
    fn streamed_lines_keep_order_and_numbers_across_blocks() {
        let mut text = String::from("\u{feff}");
        for n in 1..=CHUNK * 3 {
            text.push_str(&format!("{{\"_id\":\"i{n}\",\"rid\":\"r{n}\"}}\r\n"));
            if n % 100 == 0 {
                text.push_str("  \n");
            }
        }
        text.push_str("{\"_id\":\"last\",\"rid\":\"r\"}"); // no newline at the end
        // Blocks shorter than a line, of a few lines, and larger than the file.
        for block in [7, 1000, 1 << 20] {
            let ids = stream(text.as_bytes(), block).unwrap();
            assert_eq!(ids.len(), CHUNK * 3 + 1, "block {block}");
            assert_eq!(ids[0], "i1");
            assert_eq!(ids[CHUNK * 3 - 1], format!("i{}", CHUNK * 3));
            assert_eq!(ids[CHUNK * 3], "last");
            assert_eq!(
                ids,
                parse(&text)
                    .unwrap()
                    .into_iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>()
            );
        }
        // Numbers count blank lines too, as an editor shows them.
        let bad = format!(
            "{}{{\"_id\":\"x\"}}\n",
            "{\"_id\":\"a\",\"rid\":\"r\"}\n\n".repeat(700)
        );
        let errs = stream(bad.as_bytes(), 1000).unwrap_err();
        assert_eq!(errs, ["line 1401, column 1: field \"/rid\": missing"]);
    }

    #[test]
    fn streamed_bytes_that_are_not_utf8_name_their_line() {
        let mut text = b"{\"_id\":\"a\",\"rid\":\"r\"}\n".repeat(50);
        text.extend_from_slice(b"{\"_id\":\"b\xff\",\"rid\":\"r\"}\n");
        let errs = stream(&text, 256).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs, ["line 51, column 10: not UTF-8 (byte 0xff)"]);
    }

    #[test]
    fn key_order_is_kept() {
        let recs = parse(r#"[{"z":1,"_id":"a","rid":"r","b":2}]"#).unwrap();
        assert_eq!(recs[0].doc, r#"{"z":1,"_id":"a","rid":"r","b":2}"#);
    }
}
