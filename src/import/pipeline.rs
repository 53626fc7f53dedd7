//! The parallel checking pipeline: a file's [`Unit`]s are checked on all cores but one, and the
//! good records handed to a sink in file order while later ones are still being read and checked;
//! bad records are collected (at most [`MAX_ERRORS`]) with their place in the file.

use std::borrow::Cow;
use std::sync::Arc;

use super::RecordError;
use super::record::record;
use super::source::{ReadFailure, Source, Unit, read_array, read_lines};
use crate::db::inquiries::InquiryRecord;

/// At most this many problems are reported per file.
pub(super) const MAX_ERRORS: usize = 20;

/// Why [`check_in_order`] stopped.
pub(super) enum Failure<E> {
    /// Bad records (at most `MAX_ERRORS`), in file order.
    Invalid(Vec<RecordError>),
    /// The file could not be read (or is not UTF-8).
    Read(std::io::Error),
    /// The sink failed.
    Sink(E),
}

/// The error for the NDJSON record on line `number`, starting at byte `start` of `block`: when
/// the message ends with a position in the record (serde_json's ` at line 1 column C`, or
/// [`located`]'s), it becomes the line's column; a problem of the whole record (a member missing,
/// say) is placed at the record's first column.
fn line_error(block: &str, number: usize, start: usize, message: String) -> RecordError {
    let at_line = |message: &str| {
        let (rest, column) = message.rsplit_once(" column ")?;
        let column: usize = column.parse().ok()?;
        let (rest, line) = rest.rsplit_once(" at line ")?;
        (line == "1").then_some((rest.len(), column))
    };
    let mut line_start = block[..start].rfind('\n').map_or(0, |i| i + 1);
    if line_start == 0 && block.starts_with('\u{feff}') {
        line_start = '\u{feff}'.len_utf8();
    }
    let (message, column) = match at_line(&message) {
        Some((cut, column)) => (message[..cut].to_owned(), column),
        None => (message, 1),
    };
    RecordError {
        position: format!("line {number}, column {}", start - line_start + column),
        message,
    }
}

/// Where the records handed to a sink (all good, in file order) are in their file.
pub(super) struct Places {
    pub(super) is_array: bool,
    /// Each record's index (array) or line (NDJSON).
    pub(super) numbers: Vec<usize>,
}

impl Places {
    /// Where an error about a whole record points: "record 3" (JSON array), or "line 12,
    /// column 1" (NDJSON: every NDJSON error names a line and a column).
    pub(super) fn position(&self, number: usize) -> String {
        if self.is_array {
            format!("record {number}")
        } else {
            format!("line {number}, column 1")
        }
    }

    /// "record 3" (JSON array) or "line 12" (NDJSON), for a record's index or line.
    pub(super) fn name(&self, number: usize) -> String {
        if self.is_array {
            format!("record {number}")
        } else {
            format!("line {number}")
        }
    }
}

/// A checked record: its `_id`, `rid` and document, or what is wrong with it.
type Checked = Result<(String, String, Doc), String>;

/// A checked record's document: the record's own text (it came compact), or a rewritten one.
enum Doc {
    Same,
    Rewritten(String),
}

/// Checks a file's records on all cores but one (the caller's, which stores), a unit at a time,
/// and hands the good ones to `sink` in file order while the rest are still being read and
/// checked (so reading, checking and storing overlap). After the first bad record `sink` is not called again; checking goes on to
/// report up to `MAX_ERRORS`. Returns how many records there were.
pub(super) fn check_in_order<E>(
    source: Source,
    mut sink: impl FnMut(Vec<InquiryRecord<'_>>, Places) -> Result<(), E>,
) -> Result<usize, Failure<E>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, mpsc};

    // Measured on 2 cores: one checking thread beside the storing one beats two (1.42-1.52 s
    // vs 1.60-1.70 s for 200,000 records), as the storing thread is the slower one.
    let threads =
        std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1));
    let is_array = matches!(
        source,
        Source::Whole { is_array: true, .. } | Source::Array(_)
    );
    let stop = AtomicBool::new(false);
    let mut errors = Vec::new();
    let mut sink_error = None;
    let mut records = 0;
    let (due, produced, read, panicked) = std::thread::scope(|scope| {
        let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Unit)>(threads * 2);
        let (done_tx, done_rx) = mpsc::sync_channel(threads * 2);
        let stop = &stop;
        let work_rx = Arc::new(Mutex::new(work_rx));
        let reader = scope.spawn(move || {
            let mut seq = 0;
            let mut send = |unit| {
                let ok = work_tx.send((seq, unit)).is_ok();
                seq += 1;
                ok
            };
            match source {
                Source::Whole { units, .. } => {
                    let n = units.len();
                    for unit in units {
                        if stop.load(Ordering::Relaxed) || !send(unit) {
                            break;
                        }
                    }
                    Ok(n)
                }
                Source::Lines(file, block) => read_lines(file, block, send, stop),
                Source::Array(file) => read_array(file, send),
            }
        });
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let done_tx = done_tx.clone();
                // Owned by the checking threads alone: once they are gone, the reader's next
                // send fails and it stops.
                let work_rx = work_rx.clone();
                scope.spawn(move || {
                    loop {
                        let next = work_rx.lock().map(|rx| rx.recv());
                        let Ok(Ok((seq, unit))) = next else { break };
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let checked: Vec<Checked> = unit
                            .items
                            .iter()
                            .map(|(_, range)| {
                                record(&unit.block[range.clone()]).map(|r| {
                                    let doc = match r.doc {
                                        Cow::Borrowed(_) => Doc::Same,
                                        Cow::Owned(s) => Doc::Rewritten(s),
                                    };
                                    (r.id, r.rid, doc)
                                })
                            })
                            .collect();
                        if done_tx.send((seq, unit, checked)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        drop((done_tx, work_rx));
        // Units arrive in any order; each is handled once all before it have been.
        let mut waiting = std::collections::BTreeMap::new();
        let mut due = 0;
        'receive: for (seq, unit, checked) in done_rx.iter() {
            waiting.insert(seq, (unit, checked));
            while let Some((unit, checked)) = waiting.remove(&due) {
                due += 1;
                records += checked.len();
                let mut good = Vec::with_capacity(checked.len());
                for ((number, range), result) in unit.items.iter().zip(checked) {
                    match result {
                        Ok((id, rid, doc)) => good.push(InquiryRecord {
                            id,
                            rid,
                            doc: match doc {
                                Doc::Same => Cow::Borrowed(&unit.block[range.clone()]),
                                Doc::Rewritten(s) => Cow::Owned(s),
                            },
                        }),
                        Err(message) if is_array => errors.push(RecordError {
                            position: format!("record {number}"),
                            // a position within the record's own text would not be the file's
                            message: match message.rsplit_once(" at line ") {
                                Some((text, at)) if at.contains(" column ") => text.to_owned(),
                                _ => message,
                            },
                        }),
                        Err(message) => {
                            errors.push(line_error(&unit.block, *number, range.start, message))
                        }
                    }
                }
                let places = Places {
                    is_array,
                    numbers: unit.items.iter().map(|(n, _)| *n).collect(),
                };
                if errors.is_empty()
                    && let Err(e) = sink(good, places)
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
        drop(done_rx);
        let panicked = workers
            .into_iter()
            .map(|w| w.join())
            .filter(Result::is_err)
            .count()
            > 0;
        let (produced, read) = match reader.join() {
            Ok(Ok(n)) => (n, None),
            Ok(Err(e)) => (0, Some(e)),
            Err(_) => (0, None),
        };
        (due, produced, read, panicked)
    });
    if let Some(e) = sink_error {
        return Err(Failure::Sink(e));
    }
    // The reader stops at text it cannot read, after every record before it was checked.
    match read {
        Some(ReadFailure::Record(e)) => errors.push(e),
        Some(ReadFailure::Io(e)) if errors.is_empty() => return Err(Failure::Read(e)),
        _ => {}
    }
    if !errors.is_empty() {
        errors.truncate(MAX_ERRORS);
        return Err(Failure::Invalid(errors));
    }
    if panicked || due != produced {
        return Err(Failure::Invalid(vec![RecordError {
            position: "file".into(),
            message: "internal error while checking records; nothing imported".into(),
        }]));
    }
    Ok(records)
}
