//! `inquiry import` under stress: every accepted file shape streamed in bounded memory, one
//! record's size bounded, and every error naming where it is (line and column, or record index).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::*;

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.sqlite3");
    (dir, db)
}

/// The file shapes an import accepts, each in its least friendly form.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `mongoexport --jsonArray` as a Windows tool might leave it: a byte-order mark, blank lines
    /// before the `[`, one element per line, CRLF line ends.
    Array,
    /// NDJSON (what `mongoexport` writes by default) after a byte-order mark and 64 blank lines,
    /// with CRLF line ends.
    Ndjson,
}

/// Writes about `bytes` of `shape` to `path`, records of about 1 KB; returns how many records.
fn generate(path: &Path, shape: Shape, bytes: u64) -> usize {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let pad = "p".repeat(900);
    out.write_all("\u{feff}".as_bytes()).unwrap();
    match shape {
        Shape::Array => out.write_all(b"\r\n\r\n  [\r\n").unwrap(),
        Shape::Ndjson => out.write_all(&b"\r\n".repeat(64)).unwrap(),
    }
    let mut written = 0u64;
    let mut n = 0;
    while written < bytes {
        let sep = match shape {
            Shape::Array if n > 0 => ",\r\n",
            _ => "",
        };
        let line = format!(
            "{sep}{{\"_id\":\"id{n}\",\"rid\":\"room{n}\",\"ts\":{{\"$date\":\"2023-11-24T12:16:12.370Z\"}},\"msg\":\"{pad}\"}}"
        );
        out.write_all(line.as_bytes()).unwrap();
        if let Shape::Ndjson = shape {
            out.write_all(b"\r\n").unwrap();
        }
        written += line.len() as u64;
        n += 1;
    }
    if let Shape::Array = shape {
        out.write_all(b"\r\n]\r\n").unwrap();
    }
    out.flush().unwrap();
    n
}

/// `/proc/PID/status`'s `VmHWM` (peak resident memory) in KiB, if the process still runs.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Imports `file` into `db` with the real binary, watching its peak RSS (the high-water mark only
/// grows, so the last reading before it exits is its peak while reading). Returns stdout, stderr,
/// whether it succeeded and the peak in MiB.
fn import_watched(db: &Path, file: &Path) -> (String, String, bool, u64) {
    let mut child = Command::new(bin())
        .args(["inquiry", "import"])
        .arg(file)
        .arg("--db")
        .arg(db)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = peak_kib(child.id()) {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        stdout(&out),
        stderr(&out),
        out.status.success(),
        peak / 1024,
    )
}

/// Imports a generated file of `mib` MiB of `shape` and checks that the importer's peak RSS stays
/// below `limit(file size in MiB)`.
fn import_in_bounded_memory(shape: Shape, mib: u64, limit: impl Fn(u64) -> u64) {
    let (dir, db) = tmp();
    let file = dir.path().join("big.json");
    let records = generate(&file, shape, mib << 20);
    let size = std::fs::metadata(&file).unwrap().len() >> 20;
    let (out, err, ok, peak) = import_watched(&db, &file);
    assert!(ok, "{shape:?}: {err}");
    assert!(
        out.contains(&format!("imported {records} inquiries")),
        "{shape:?}: {out}"
    );
    eprintln!("{shape:?}: {size} MiB file, {records} records: importer peak RSS {peak} MiB");
    assert!(
        peak < limit(size),
        "{shape:?}: peak RSS {peak} MiB for a {size} MiB file (limit {} MiB)",
        limit(size)
    );
    // The last record is stored whole, its Extended JSON date rewritten.
    let list = cli_with_stdin(&db, &["inquiry", "list"], None);
    assert!(stdout(&list).contains(&format!("room{}", records - 1)));
}

/// Before streaming, a JSON array was read whole (2,051 MB peak for a 2.03 GB file), and so was
/// NDJSON that starts with more than 64 bytes of blank lines. Both now stay at a fraction of the
/// file: the SQLite page cache (64 MiB) plus a few blocks of records.
#[test]
fn large_files_of_every_shape_import_in_memory_far_below_their_size() {
    for shape in [Shape::Array, Shape::Ndjson] {
        import_in_bounded_memory(shape, 256, |size| size / 2);
    }
}

/// The soak: a 2 GiB JSON array (what `mongoexport --jsonArray` writes for a large collection).
#[test]
#[ignore = "soak: writes and imports a 2 GiB file (minutes)"]
fn a_2_gib_json_array_imports_in_bounded_memory() {
    import_in_bounded_memory(Shape::Array, 2048, |_| 200);
}

/// Imports `text` as a file named `name`; returns stderr, and checks that nothing was stored.
fn refused(name: &str, text: &[u8]) -> String {
    let (dir, db) = tmp();
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    let out = import_files(&db, &[&file]);
    assert!(!out.status.success(), "{name} imported: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("nothing imported"), "{err}");
    let list = cli_with_stdin(&db, &["inquiry", "list"], None);
    // Only the header: nothing was stored.
    assert_eq!(
        stdout(&list).lines().count(),
        1,
        "{name}: {}",
        stdout(&list)
    );
    err
}

/// The one line of stderr naming `name`'s bad record.
fn problem(err: &str, name: &str) -> String {
    let lines: Vec<&str> = err
        .lines()
        .filter_map(|l| Some(l.split_once(&format!("/{name}: "))?.1))
        .filter(|l| !l.starts_with("nothing imported"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    lines[0].to_owned()
}

#[test]
fn every_error_names_its_line_and_column_or_its_record() {
    let good = b"{\"_id\":\"a\",\"rid\":\"r\"}\r\n";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // Invalid UTF-8 was "from index 66": a byte offset, called an index.
        (
            "utf8.ndjson",
            [&good[..], b"\n  {\"_id\":\"b\xff\",\"rid\":\"r\"}\n"].concat(),
            "line 3, column 12: not UTF-8 (byte 0xff)",
        ),
        (
            "syntax.ndjson",
            [&good[..], b"{\"_id\":\"b\",\"rid\":\"r\", x}\n"].concat(),
            "line 2, column 23: not JSON: key must be a string",
        ),
        // A problem found inside a record: the column where the walk through it stopped.
        (
            "field.ndjson",
            [
                &good[..],
                b"{\"_id\":\"b\",\"rid\":\"r\",\"v\":{\"k\":1,\"k\":2}}\n",
            ]
            .concat(),
            "line 2, column 35: field \"/v/k\": is named twice in its object (readers disagree on which value counts)",
        ),
        // In an array there was no position at all.
        (
            "utf8.json",
            b"[{\"_id\":\"a\",\"rid\":\"r\"},\n {\"_id\":\"b\",\"rid\":\"r\xff\"}]".to_vec(),
            "record 1, line 2, column 21: not JSON: invalid unicode code point",
        ),
        (
            "cut.json",
            b"\xef\xbb\xbf[{\"_id\":\"a\",\"rid\":\"r\"},\r\n {\"_id\":\"b\",\"rid\":".to_vec(),
            "record 1, line 2, column 18: not JSON: EOF while parsing a value",
        ),
        (
            "trailing.json",
            b"[{\"_id\":\"a\",\"rid\":\"r\"}]\n]".to_vec(),
            "line 2, column 1: not JSON: trailing characters",
        ),
        (
            "field.json",
            b"[{\"_id\":\"a\",\"rid\":\"r\"},{\"_id\":\"b\"}]".to_vec(),
            "record 1: field \"/rid\": missing",
        ),
    ];
    for (name, text, expected) in cases {
        let err = refused(name, &text);
        assert_eq!(problem(&err, name), expected, "{name}");
    }
}

/// A record longer than 16 MiB (MongoDB's limit for one document) is refused by its position, in
/// every shape, before it is held whole; one just under it imports.
#[test]
fn one_record_is_bounded_and_the_one_too_long_is_named() {
    let record = |id: &str, len: usize| {
        format!(
            "{{\"_id\":\"{id}\",\"rid\":\"r{id}\",\"s\":\"{}\"}}",
            "x".repeat(len)
        )
    };
    let (long, fits) = (record("big", 17 << 20), record("ok", (16 << 20) - 100));
    let small = record("a", 10);
    let array = format!("[{small},\n{long}]");
    let err = refused("long.json", array.as_bytes());
    assert!(
        problem(&err, "long.json").starts_with("record 1: longer than 16 MiB"),
        "{err}"
    );
    let ndjson = format!("{small}\n\n{long}\n{small}\n");
    let err = refused("long.ndjson", ndjson.as_bytes());
    assert!(
        problem(&err, "long.ndjson").starts_with("line 3, column 1: longer than 16 MiB"),
        "{err}"
    );
    // No newline at all: the line is refused as it grows, not once the file is read.
    let err = refused("one-line.ndjson", long.repeat(3).as_bytes());
    assert!(
        problem(&err, "one-line.ndjson").starts_with("line 1, column 1: longer than 16 MiB"),
        "{err}"
    );
    let (dir, db) = tmp();
    for (name, text) in [
        ("fits.json", format!("[{small},{fits}]")),
        ("fits.ndjson", format!("{small}\n{fits}\n")),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = import_files(&db, &[&file]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(stdout(&out).contains("imported 2 inquiries"), "{name}");
    }
}

/// Leading whitespace of any length, a byte-order mark and CRLF do not change what a file is, and
/// line numbers count every line, blank or not, as an editor shows them.
#[test]
fn shapes_are_told_apart_after_any_blank_lines() {
    let (dir, db) = tmp();
    let blank = "\r\n".repeat(64);
    let array = dir.path().join("a.json");
    std::fs::write(
        &array,
        format!("\u{feff}{blank}  [{{\"_id\":\"a1\",\"rid\":\"ra\"}},\r\n{{\"_id\":\"a2\",\"rid\":\"ra\"}}]\r\n"),
    )
    .unwrap();
    let out = import_files(&db, &[&array]);
    assert!(
        stdout(&out).contains("imported 2 inquiries"),
        "{}",
        stderr(&out)
    );
    let ndjson =
        format!("\u{feff}{blank}{{\"_id\":\"n1\",\"rid\":\"rn\"}}\r\n{{\"_id\":\"n2\"}}\r\n");
    let err = refused("n.ndjson", ndjson.as_bytes());
    assert_eq!(
        problem(&err, "n.ndjson"),
        "line 66, column 1: field \"/rid\": missing"
    );
}

/// Three records with one `_id` printed "imported 3 inquiries" for one stored row (the last won,
/// silently). A file holding an `_id` twice is refused, naming both places; the same `_id` in a
/// later file (or a later import) still replaces the stored one.
#[test]
fn an_id_twice_in_one_file_is_refused_naming_both_places() {
    let ndjson = "{\"_id\":\"a\",\"rid\":\"r1\"}\n{\"_id\":\"b\",\"rid\":\"r\"}\n\n{\"_id\":\"a\",\"rid\":\"r2\"}\n{\"_id\":\"a\",\"rid\":\"r3\"}\n";
    let err = refused("dup.ndjson", ndjson.as_bytes());
    assert_eq!(
        problem(&err, "dup.ndjson"),
        "line 4, column 1: _id \"a\" again (first at line 1): a file may hold each _id once"
    );
    // Extended JSON is compared as stored: `{"$oid": "a"}` is the `_id` "a".
    let array = r#"[{"_id":"a","rid":"r1"},{"_id":"b","rid":"r"},{"_id":{"$oid":"a"},"rid":"r2"}]"#;
    let err = refused("dup.json", array.as_bytes());
    assert_eq!(
        problem(&err, "dup.json"),
        "record 2: _id \"a\" again (first at record 0): a file may hold each _id once"
    );
    // Across chunks of records (512 at a time) too.
    let mut many: String = (0..2000)
        .map(|n| format!("{{\"_id\":\"i{n}\",\"rid\":\"r\"}}\n"))
        .collect();
    many.push_str("{\"_id\":\"i7\",\"rid\":\"r\"}\n");
    let err = refused("many.ndjson", many.as_bytes());
    assert_eq!(
        problem(&err, "many.ndjson"),
        "line 2001, column 1: _id \"i7\" again (first at line 8): a file may hold each _id once"
    );
    let (dir, db) = tmp();
    let (one, two) = (dir.path().join("1.ndjson"), dir.path().join("2.ndjson"));
    std::fs::write(&one, "{\"_id\":\"a\",\"rid\":\"r1\"}\n").unwrap();
    std::fs::write(&two, "{\"_id\":\"a\",\"rid\":\"r2\"}\n").unwrap();
    let out = import_files(&db, &[&one, &two]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&cli_with_stdin(&db, &["inquiry", "list"], None));
    assert!(list.contains("r2") && !list.contains("r1"), "{list}");
}
