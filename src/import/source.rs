//! Reading an import file: where its records come from ([`Source`]): text in memory, or a file
//! streamed (NDJSON a block of lines at a time, a JSON array an element at a time by serde_json's
//! own tokenizer), cut into [`Unit`]s of work, with one record bounded at [`MAX_RECORD_BYTES`] and
//! text that is not UTF-8 or not JSON named by line and column.

use std::cell::Cell;
use std::fmt;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use super::RecordError;

/// Records checked per unit of work handed between threads.
pub(super) const CHUNK: usize = 512;

/// Text and the records in it, by line (NDJSON) or index (JSON array) and byte range.
pub(super) struct Unit {
    pub(super) block: Arc<String>,
    pub(super) items: Vec<(usize, Range<usize>)>,
}

/// Where a file's records come from: text in memory (a JSON array, whole, or NDJSON), or a file
/// streamed (NDJSON a block of lines at a time, a JSON array an element at a time), so memory
/// stays bounded however large the file and checking starts with the first records.
pub(super) enum Source {
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
    pub(super) fn whole(text: String) -> Result<Source, RecordError> {
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
    pub(super) fn open(path: &std::path::Path) -> std::io::Result<Source> {
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
pub(super) enum ReadFailure {
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
pub(super) fn read_array(
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
pub(super) fn read_lines(
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
