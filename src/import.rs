//! `inquiry import`: reads a JSON array, NDJSON, or a `mongoexport` of
//! `rocketchat_livechat_inquiry` (Extended JSON), checks every record, and upserts the whole file
//! by `_id` in one transaction: a bad record means nothing from that file is written. Every
//! shape is streamed a record at a time (memory does not grow with the file), one record is
//! bounded at [`MAX_RECORD_BYTES`], a file that holds an `_id` twice is refused, and every error
//! names its line (and column, where the text itself is broken) or its index in the array.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::db::inquiries::InquiryRecord;
use crate::document;

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

/// Why [`check_in_order`] stopped.
enum Failure<E> {
    /// Bad records (at most `MAX_ERRORS`), in file order.
    Invalid(Vec<RecordError>),
    /// The file could not be read (or is not UTF-8).
    Read(std::io::Error),
    /// The sink failed.
    Sink(E),
}

/// Text and the records in it, by line (NDJSON) or index (JSON array) and byte range.
struct Unit {
    block: Arc<String>,
    items: Vec<(usize, Range<usize>)>,
}

/// Where a file's records come from: text in memory (a JSON array, whole, or NDJSON), or a file
/// streamed (NDJSON a block of lines at a time, a JSON array an element at a time), so memory
/// stays bounded however large the file and checking starts with the first records.
enum Source {
    Whole {
        is_array: bool,
        units: Vec<Unit>,
    },
    /// NDJSON: the file, and how many bytes to read at a time.
    Lines(std::fs::File, usize),
    /// A JSON array in a file, read element by element.
    Array(std::fs::File),
}

/// Bytes read from an NDJSON file at a time (a block ends at the last newline in it).
const BLOCK: usize = 4 << 20;

impl Source {
    fn whole(text: String) -> Result<Source, RecordError> {
        let start = text.len() - text.trim_start_matches('\u{feff}').trim_start().len();
        let block = Arc::new(text);
        if block[start..].starts_with('[') {
            // Borrow each element's text: no element is built as a tree unless it needs rewriting.
            let raw: Vec<&serde_json::value::RawValue> = serde_json::from_str(&block[start..])
                .map_err(|e| RecordError {
                    position: format!("line {}, column {}", e.line(), e.column()),
                    message: format!("not a JSON array: {e}"),
                })?;
            let base = block.as_ptr() as usize;
            let items: Vec<_> = raw
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let at = r.get().as_ptr() as usize - base;
                    (i, at..at + r.get().len())
                })
                .collect();
            drop(raw);
            let units = chunk(&block, items);
            return Ok(Source::Whole {
                is_array: true,
                units,
            });
        }
        let items = lines(&block, 1).0;
        Ok(Source::Whole {
            is_array: false,
            units: chunk(&block, items),
        })
    }

    /// A file, streamed whatever its shape: a JSON array if its first character after a
    /// byte-order mark and whitespace (however much) is `[`, NDJSON otherwise.
    fn open(path: &std::path::Path) -> std::io::Result<Source> {
        use std::io::{BufRead, Seek};
        // never waits on a FIFO, never reads /dev/zero forever
        let file = crate::regular::open(path)?;
        let mut reader = std::io::BufReader::with_capacity(64 << 10, file);
        let mut at_start = true;
        let first = loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                break None;
            }
            let mut skip = 0;
            if at_start && buf.starts_with(BOM) {
                skip = BOM.len();
            }
            at_start = false;
            match buf[skip..].iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => break Some(buf[skip + i]),
                None => {
                    let n = buf.len();
                    reader.consume(n);
                }
            }
        };
        let mut file = reader.into_inner();
        file.rewind()?;
        if first == Some(b'[') {
            return Ok(Source::Array(file));
        }
        Ok(Source::Lines(file, BLOCK))
    }
}

/// A UTF-8 byte-order mark, which some tools write at the start of a file.
const BOM: &[u8] = "\u{feff}".as_bytes();

/// Longest record, in bytes of JSON text: MongoDB's limit for one document (16 MiB of BSON), so a
/// file exported from Rocket.Chat's database never holds a longer one, while memory per record
/// stays bounded.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Why a file's reader stopped early.
enum ReadFailure {
    /// The file could not be read.
    Io(std::io::Error),
    /// The text is not what an import accepts there (not UTF-8, not JSON, a record too long).
    Record(RecordError),
}

impl From<std::io::Error> for ReadFailure {
    fn from(e: std::io::Error) -> Self {
        ReadFailure::Io(e)
    }
}

/// The error for a record longer than [`MAX_RECORD_BYTES`] at `position`.
fn too_long(position: String) -> ReadFailure {
    ReadFailure::Record(RecordError {
        position,
        message: format!(
            "longer than {} MiB, the limit for one record (MongoDB's for one document)",
            MAX_RECORD_BYTES >> 20
        ),
    })
}

/// A reader that counts the bytes read through it and fails once one record (the bytes since
/// `mark`) runs past [`MAX_RECORD_BYTES`], so that a huge element is never held whole.
struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
    mark: Rc<Cell<u64>>,
    over: Rc<Cell<bool>>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = self.read.get() + n as u64;
        self.read.set(read);
        if read - self.mark.get() > MAX_RECORD_BYTES as u64 + 1 {
            self.over.set(true);
            return Err(std::io::Error::other("record too long"));
        }
        Ok(n)
    }
}

/// Reads a JSON array element by element with serde_json's own tokenizer over the file, and
/// hands the elements' text out in units, until the array ends or `send` refuses (returns how
/// many units it sent). Memory holds a
/// unit (at most `CHUNK` records or about `BLOCK` bytes) and one record, whatever the file's size.
fn read_array(
    file: std::fs::File,
    mut send: impl FnMut(Unit) -> bool,
) -> Result<usize, ReadFailure> {
    use serde::de::{Deserializer as _, Error as _, SeqAccess, Visitor};
    use std::io::BufRead;

    let mut reader = std::io::BufReader::with_capacity(64 << 10, file);
    if reader.fill_buf()?.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    let (read, mark, over) = Default::default();
    let counting = Counting {
        inner: reader,
        read: Rc::clone(&read),
        mark: Rc::clone(&mark),
        over: Rc::clone(&over),
    };
    let mut de = serde_json::Deserializer::from_reader(counting);
    let index = Cell::new(0usize);
    let sent = Cell::new(0usize);
    let stopped = Cell::new(false);
    let ended = Cell::new(false);

    struct Elements<'a, F> {
        send: &'a mut F,
        index: &'a Cell<usize>,
        sent: &'a Cell<usize>,
        stopped: &'a Cell<bool>,
        ended: &'a Cell<bool>,
        read: &'a Cell<u64>,
        mark: &'a Cell<u64>,
    }
    impl<'de, F: FnMut(Unit) -> bool> Visitor<'de> for Elements<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of inquiry records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut block = String::new();
            let mut items = Vec::new();
            loop {
                self.mark.set(self.read.get());
                let Some(raw) = seq.next_element::<Box<serde_json::value::RawValue>>()? else {
                    self.ended.set(true);
                    break;
                };
                let start = block.len();
                block.push_str(raw.get());
                items.push((self.index.get(), start..block.len()));
                self.index.set(self.index.get() + 1);
                if items.len() == CHUNK || block.len() >= BLOCK {
                    let unit = Unit {
                        block: Arc::new(std::mem::take(&mut block)),
                        items: std::mem::take(&mut items),
                    };
                    if !(self.send)(unit) {
                        self.stopped.set(true);
                        return Err(A::Error::custom("stopped"));
                    }
                    self.sent.set(self.sent.get() + 1);
                }
            }
            if !items.is_empty() {
                if (self.send)(Unit {
                    block: Arc::new(block),
                    items,
                }) {
                    self.sent.set(self.sent.get() + 1);
                } else {
                    self.stopped.set(true);
                }
            }
            Ok(())
        }
    }
    let result = (&mut de)
        .deserialize_seq(Elements {
            send: &mut send,
            index: &index,
            sent: &sent,
            stopped: &stopped,
            ended: &ended,
            read: &read,
            mark: &mark,
        })
        .and_then(|()| de.end());
    let n = index.get();
    match result {
        // The caller counts units, to know that every one sent was checked.
        _ if stopped.get() => Ok(sent.get()),
        Ok(()) => Ok(sent.get()),
        Err(_) if over.get() => Err(too_long(format!("record {n}"))),
        Err(e) if e.is_io() => Err(ReadFailure::Io(e.into())),
        Err(e) => {
            let at = format!("line {}, column {}", e.line(), e.column());
            // serde_json's message ends with the position, which is given first here.
            let shown = e.to_string();
            let message = shown
                .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
                .unwrap_or(&shown);
            // Past the last element (`]` read), what is wrong is the file's, not a record's.
            let position = if ended.get() {
                at
            } else {
                format!("record {n}, {at}")
            };
            Err(ReadFailure::Record(RecordError {
                position,
                message: format!("not JSON: {message}"),
            }))
        }
    }
}

/// Every line of `text` with its number (the first is `first`), trimmed; empty lines left out.
/// At the start of the file (`first` is 1) a byte-order mark is skipped. Also returns the number
/// the next line would have.
fn lines(text: &str, first: usize) -> (Vec<(usize, Range<usize>)>, usize) {
    let mut items = Vec::new();
    let mut number = first;
    let mut at = if first == 1 && text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    while at < text.len() {
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        let line = &text[at..end];
        let trimmed = line.trim();
        if !trimmed.is_empty() {
            let start = at + (trimmed.as_ptr() as usize - line.as_ptr() as usize);
            items.push((number, start..start + trimmed.len()));
        }
        number += 1;
        at = end + 1;
    }
    (items, number)
}

/// Cuts a block's items into units of at most `CHUNK`.
fn chunk(block: &Arc<String>, items: Vec<(usize, Range<usize>)>) -> Vec<Unit> {
    items
        .chunks(CHUNK)
        .map(|part| Unit {
            block: block.clone(),
            items: part.to_vec(),
        })
        .collect()
}

/// Reads NDJSON a block at a time and hands out its lines in units, until the file ends or
/// `stop` is set. Returns how many units it sent.
fn read_lines(
    mut file: std::fs::File,
    block: usize,
    mut send: impl FnMut(Unit) -> bool,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<usize, ReadFailure> {
    use std::io::Read;
    let mut carry: Vec<u8> = Vec::new();
    let mut number = 1;
    let mut sent = 0;
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(sent);
        }
        let mut buf = std::mem::take(&mut carry);
        let had = buf.len();
        (&mut file).take(block as u64).read_to_end(&mut buf)?;
        // `take` reads up to `block` bytes unless the file ends: nothing new means the end.
        let eof = buf.len() == had;
        // A block ends after its last newline; the rest waits for the next read.
        let cut = if eof {
            buf.len()
        } else {
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None if buf.len() > MAX_RECORD_BYTES + 2 => {
                    return Err(too_long(format!("line {number}, column 1")));
                }
                None => {
                    carry = buf;
                    continue;
                }
            }
        };
        carry = buf.split_off(cut);
        if buf.is_empty() {
            return Ok(sent);
        }
        let text = String::from_utf8(buf).map_err(|e| not_utf8(number, &e))?;
        let (items, next) = lines(&text, number);
        if let Some((line, _)) = items.iter().find(|(_, r)| r.len() > MAX_RECORD_BYTES) {
            return Err(too_long(format!("line {line}, column 1")));
        }
        number = next;
        for unit in chunk(&Arc::new(text), items) {
            if !send(unit) {
                return Ok(sent);
            }
            sent += 1;
        }
        if eof {
            return Ok(sent);
        }
    }
}

/// The error for a block that is not UTF-8, naming the line (the block's first is `number`) and
/// the column (in bytes from 1, as serde_json counts them) of the first byte that is not.
fn not_utf8(number: usize, e: &std::string::FromUtf8Error) -> ReadFailure {
    let bytes = e.as_bytes();
    let at = e.utf8_error().valid_up_to();
    let valid = &bytes[..at];
    let line = number + valid.iter().filter(|&&b| b == b'\n').count();
    let column = at - valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
    let bad = &bytes[at..bytes
        .len()
        .min(at + e.utf8_error().error_len().unwrap_or(1))];
    let shown: Vec<String> = bad.iter().map(|b| format!("0x{b:02x}")).collect();
    ReadFailure::Record(RecordError {
        position: format!("line {line}, column {column}"),
        message: format!("not UTF-8 (byte {})", shown.join(" ")),
    })
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
struct Places {
    is_array: bool,
    /// Each record's index (array) or line (NDJSON).
    numbers: Vec<usize>,
}

impl Places {
    /// Where an error about a whole record points: "record 3" (JSON array), or "line 12,
    /// column 1" (NDJSON: every NDJSON error names a line and a column).
    fn position(&self, number: usize) -> String {
        if self.is_array {
            format!("record {number}")
        } else {
            format!("line {number}, column 1")
        }
    }

    /// "record 3" (JSON array) or "line 12" (NDJSON), for a record's index or line.
    fn name(&self, number: usize) -> String {
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
fn check_in_order<E>(
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

/// Levels of nesting MongoDB Extended JSON wrappers add to a value (`{"$date": {"$numberLong":
/// …}}`), allowed before they are turned into plain values.
const WRAPPER_DEPTH: usize = 2;

/// Checks one document's text and produces its compact form, turning Extended JSON into what
/// Rocket.Chat's REST API shows. Whatever is stored passes [`document::check`], the test every
/// read applies, so the server can serve every record an import accepts.
fn record(text: &str) -> Result<InquiryRecord<'_>, String> {
    if text.contains("\"$") {
        // Extended JSON (keys like `$date`): rewrite through a tree, once the text is known to
        // be one that parses into a tree and back without loss.
        document::check_extended(text, WRAPPER_DEPTH).map_err(located)?;
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(map) = from_extended(value, "")? else {
            return Err("not a JSON object".into());
        };
        let doc = serde_json::to_string(&map).map_err(|e| format!("cannot serialise: {e}"))?;
        let checked = document::check(&doc).map_err(|p| p.to_string())?;
        let (id, rid) = (checked.id.into_owned(), checked.rid.into_owned());
        return Ok(InquiryRecord {
            id,
            rid,
            doc: doc.into(),
        });
    }
    // Plain JSON: stream it to compact form, keeping key order and numbers, without a tree.
    let checked = document::check(text).map_err(located)?;
    let (id, rid) = (checked.id.into_owned(), checked.rid.into_owned());
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

/// A problem with a record's text, ending with its position in that text the way serde_json ends
/// its messages (` at line L column C`), which [`line_error`] turns into the file's line and column.
fn located(p: document::Problem) -> String {
    match p.at {
        Some((line, column)) => format!("{p} at line {line} column {column}"),
        None => p.to_string(),
    }
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
