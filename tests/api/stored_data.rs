//! Stored data cannot break reads: an import refuses what the server cannot serve (naming the
//! record and the field), and a row that got into the database some other way is an error for its
//! own room only, named by `inquiry list`, with or without hooks.

use std::path::Path;
use std::time::Duration;

use crate::helpers::*;

/// A record whose `x` nests `depth - 1` arrays, so the document nests `depth` levels.
fn nested(id: &str, rid: &str, depth: usize) -> String {
    format!(
        r#"{{"_id":"{id}","rid":"{rid}","status":"queued","x":{}{}}}"#,
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    )
}

const GOOD: &str = r#"{"_id":"good-1","rid":"room-1","status":"queued","name":"a"}"#;

/// The pointer of the first array too deep in [`nested`]: `/x` is level 2, each `/0` one more.
fn too_deep_pointer() -> String {
    format!("/x{}", "/0".repeat(99))
}

fn listed(db: &Path) -> (Option<i32>, String, String) {
    let out = cli_with_stdin(db, &["inquiry", "list"], None);
    (out.status.code(), stdout(&out), stderr(&out))
}

#[test]
fn a_record_nested_too_deep_is_refused_with_its_line_or_index_and_field() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("s.sqlite3");
    let deep = nested("deep", "deep-room", 100_000);
    let pointer = too_deep_pointer();
    // The column (from 1) of the first array too deep: the 100th `[`.
    let column = deep.find('[').unwrap() + 100;
    let shapes = [
        (
            "deep.ndjson",
            format!("{GOOD}\n{deep}\n"),
            format!("line 2, column {column}"),
        ),
        ("deep.json", format!("[{GOOD},\n{deep}]"), "record 1".into()),
    ];
    for (name, text, position) in shapes {
        let file = d.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = import_files(&db, &[&file]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "{position}: field {pointer:?}: nested deeper than 100 levels"
            )),
            "{name}: {err}"
        );
        // All or nothing: the good record before it was not stored either.
        let (code, rows, _) = listed(&db);
        assert_eq!(code, Some(0));
        assert!(!rows.contains("room-1"), "{name}: {rows}");
    }
    // At the limit, the same record is imported.
    let file = d.path().join("limit.ndjson");
    std::fs::write(
        &file,
        format!("{GOOD}\n{}\n", nested("deep", "deep-room", 100)),
    )
    .unwrap();
    let out = import_files(&db, &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(listed(&db).1.contains("deep-room"));
}

#[test]
fn every_value_a_reader_cannot_hold_is_refused_with_its_field() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("s.sqlite3");
    let cases = [
        (
            r#"{"_id":"a","rid":"r","n":{"big":1e400}}"#,
            r#"field "/n/big": number out of range"#,
        ),
        (
            r#"{"_id":"a","rid":"r","n":[18446744073709551616]}"#,
            r#"field "/n/0": integer beyond 64 bits"#,
        ),
        (
            r#"{"_id":"a","rid":"r","s":{"t":"\ud800"}}"#,
            r#"field "/s/t": not Unicode text"#,
        ),
        (
            r#"{"_id":"a","rid":"r","v":{"k":1,"k":2}}"#,
            r#"field "/v/k": is named twice"#,
        ),
        (
            r#"{"_id":"a","rid":"r","rid":"s"}"#,
            r#"field "/rid": is named twice"#,
        ),
        (
            r#"{"_id":"a","rid":""}"#,
            r#"field "/rid": must not be empty"#,
        ),
        (
            r#"{"_id":"a\u0000b","rid":"r"}"#,
            r#"field "/_id": must not hold control characters"#,
        ),
        (
            r#"{"_id":["a"],"rid":"r"}"#,
            r#"field "/_id": must be a string, found an array"#,
        ),
        (
            r#"{"_id":"a","rid":{"$oid":"x"},"d":{"$date":"2023-11-24T12:16:12.370Z"},"x":{"y":1e999}}"#,
            r#"field "/x/y": number out of range"#,
        ),
        (
            &format!(r#"{{"_id":"a","rid":"{}"}}"#, "r".repeat(1025)),
            r#"field "/rid": longer than 1024 bytes"#,
        ),
        (
            // Extended JSON nested too deep once its wrappers are plain values.
            &nested("a", "r", 101).replace("\"queued\"", "{\"$date\":0}"),
            r#"field "/x/0/0"#,
        ),
    ];
    let text: String = cases.iter().map(|(line, _)| format!("{line}\n")).collect();
    let file = d.path().join("bad.ndjson");
    std::fs::write(&file, format!("{GOOD}\n{text}")).unwrap();
    let out = import_files(&db, &[&file]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // Where serde_json stops at a position, its column is given too ("line 2, column 37: …").
    for (i, (_, said)) in cases.iter().enumerate() {
        let at = format!("bad.ndjson: line {}", i + 2);
        let found = err.lines().any(|l| {
            l.split_once(&at).is_some_and(|(_, rest)| {
                let rest = rest.strip_prefix(": ").or_else(|| {
                    let (column, rest) = rest.strip_prefix(", column ")?.split_once(": ")?;
                    column.parse::<usize>().ok().map(|_| rest)
                });
                rest.is_some_and(|r| r.starts_with(said))
            })
        });
        assert!(found, "expected {at}: {said:?} in:\n{err}");
    }
    assert!(!listed(&db).1.contains("room-1"));
}

/// A plugin whose hooks parse and change `x`, the member the bad rows are bad in, and add `seen`.
const TOUCH_X: &str = r#"{"name":"touch-x","hooks":[{"on":"inquiry.response","do":[
  {"op":"set","path":"/seen","value":"${/status}"},
  {"op":"remove","path":"/x/0"}
]}]}"#;

#[test]
fn a_record_at_the_nesting_limit_is_served_with_hooks() {
    let app = spawn_app();
    let file = app.dir.path().join("limit.ndjson");
    std::fs::write(&file, format!("{}\n", nested("deep", "deep-room", 100))).unwrap();
    let out = import_files(&app.db, &[&file]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(app.plugins.join("touch.json"), TOUCH_X).unwrap();
    poll_until(Duration::from_secs(5), || {
        app.get_one("deep-room", demo()).json()["inquiry"]["seen"] == "queued"
    })
    .expect("the hook applied to the deepest record an import accepts");
}

/// Rows written around the import (an older version, an external `sqlite3` edit): (id, rid,
/// doc) as SQL expressions.
const BAD_ROWS: &[(&str, &str, &str)] = &[
    ("'not-json'", "'room-not-json'", "'{\"_id\":\"not-json\",'"),
    (
        "'blob'",
        "'room-blob'",
        "CAST('{\"_id\":\"blob\",\"rid\":\"room-blob\"}' AS BLOB)",
    ),
    ("'empty'", "'room-empty'", "''"),
    ("'null-doc'", "'room-null-doc'", "'null'"),
    (
        "NULL",
        "'room-null-id'",
        "'{\"_id\":null,\"rid\":\"room-null-id\"}'",
    ),
    (
        "'other'",
        "'room-other'",
        "'{\"_id\":\"other\",\"rid\":\"room-elsewhere\"}'",
    ),
    (
        "'twice'",
        "'room-twice'",
        "'{\"_id\":\"twice\",\"rid\":\"room-twice\",\"x\":1,\"x\":2}'",
    ),
];

/// Rooms whose rows are bad only for a reader that parses the document (a hook): an answer
/// without hooks sends their text as stored.
const PARSED_ONLY: &[&str] = &["room-other", "room-twice"];

/// Names a bad row is logged and listed with.
const BAD_NAMES: &[(&str, &str)] = &[
    ("\"not-json\"", "room-not-json"),
    ("\"blob\"", "room-blob"),
    ("\"empty\"", "room-empty"),
    ("\"null-doc\"", "room-null-doc"),
    ("NULL", "room-null-id"),
    ("\"other\"", "room-other"),
    ("\"twice\"", "room-twice"),
    ("\"deep\"", "room-deep"),
];

fn write_bad_rows(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for (id, rid, doc) in BAD_ROWS {
        conn.execute(
            &format!("INSERT INTO inquiries (id, rid, doc) VALUES ({id}, {rid}, {doc})"),
            [],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO inquiries (id, rid, doc) VALUES ('deep', 'room-deep', ?1)",
        [nested("deep", "room-deep", 100_000)],
    )
    .unwrap();
}

#[test]
fn bad_stored_rows_are_named_by_inquiry_list_and_the_rest_listed() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("s.sqlite3");
    let file = d.path().join("good.ndjson");
    std::fs::write(&file, format!("{GOOD}\n")).unwrap();
    assert!(import_files(&db, &[&file]).status.success());
    write_bad_rows(&db);
    let (code, rows, err) = listed(&db);
    assert_eq!(code, Some(0), "{err}");
    assert!(rows.contains("room-1") && rows.contains("good-1"), "{rows}");
    for (id, rid) in BAD_NAMES {
        let named = format!("stored inquiry {id} of room \"{rid}\" cannot be served: ");
        assert!(err.contains(&named), "expected {named:?} in:\n{err}");
        assert!(!rows.contains(rid), "{rid} listed as servable:\n{rows}");
    }
    assert!(err.contains(&format!(
        "{} stored inquiries cannot be served",
        BAD_NAMES.len()
    )));
}

/// Every bad row answers 500 for its own room once a hook would parse it, and without hooks too
/// unless it is one JSON object within the nesting limit; every other room answers 200.
#[test]
fn bad_stored_rows_answer_500_for_their_own_room_only_with_and_without_hooks() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("config.toml"), "[demo]\nenabled = true\n").unwrap();
    std::fs::create_dir(d.path().join("plugins")).unwrap();
    let db = d.path().join("s.sqlite3");
    let file = d.path().join("good.ndjson");
    std::fs::write(&file, format!("{GOOD}\n")).unwrap();
    assert!(import_files(&db, &[&file]).status.success());
    write_bad_rows(&db);
    let server = Server::start(d.path(), &["--config", "config.toml", "--db", "s.sqlite3"]);
    let internal = r#"{"success":false,"error":"Internal server error"}"#;
    let check_all = |hooked: bool| {
        let demo_room = server.get_one(DEMO_ROOM, demo());
        assert_eq!(demo_room.status, 200);
        let good = server.get_one("room-1", demo());
        assert_eq!(good.status, 200, "{}", good.body);
        assert_eq!(good.json()["inquiry"]["_id"], "good-1");
        assert_eq!(good.json()["inquiry"].get("seen").is_some(), hooked);
        for (_, rid) in BAD_NAMES {
            let r = server.get_one(rid, demo());
            if hooked || !PARSED_ONLY.contains(rid) {
                assert_eq!((r.status, r.body.as_str()), (500, internal), "room {rid}");
            } else {
                // One JSON object: without hooks it is sent as stored, and is JSON.
                assert_eq!(r.status, 200, "room {rid}");
                assert!(r.body.starts_with(r#"{"inquiry":{"_id":"#), "{}", r.body);
            }
        }
        // Still serving after all of them.
        assert_eq!(server.get_one("room-1", demo()).status, 200);
    };
    check_all(false);
    assert_eq!(
        server.get_one(DEMO_ROOM, demo()).body,
        fixture_compact("inquiries.getOne.200.json")
    );
    std::fs::write(d.path().join("plugins/touch.json"), TOUCH_X).unwrap();
    poll_until(Duration::from_secs(5), || {
        server.get_one("room-1", demo()).json()["inquiry"]["seen"] == "queued"
    })
    .expect("hook in force");
    check_all(true);
    // The operator can tell from the log which row, of which room, and why.
    let log = server.log();
    for (id, rid) in BAD_NAMES {
        let named = format!("stored inquiry {id} of room \"{rid}\" cannot be served: ");
        assert!(
            log.contains(&named),
            "expected {named:?} in the log:\n{log}"
        );
    }
    assert!(log.contains("nested deeper than 100 levels"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
