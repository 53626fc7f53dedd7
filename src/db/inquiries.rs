//! Queries on `inquiries`: documents stored as compact JSON text in their original key order.
//! Every read checks a row as an import checks a record ([`crate::document`]), one row at a time,
//! so a row the server cannot serve is an error for its own room only.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Transaction, params};

use crate::document;

/// One inquiry ready to store.
pub struct InquiryRecord<'a> {
    pub id: String,
    pub rid: String,
    /// Compact JSON of the whole document, in the order its keys came; borrowed from the file
    /// when it came compact.
    pub doc: std::borrow::Cow<'a, str>,
}

impl InquiryRecord<'_> {
    /// The same record, owning its document.
    pub fn into_owned(self) -> InquiryRecord<'static> {
        InquiryRecord {
            id: self.id,
            rid: self.rid,
            doc: std::borrow::Cow::Owned(self.doc.into_owned()),
        }
    }
}

/// Upserts records by `_id` inside the caller's transaction.
pub fn upsert_all(tx: &Transaction, records: &[InquiryRecord]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO inquiries (id, rid, doc) VALUES (?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET rid = excluded.rid, doc = excluded.doc",
    )?;
    for r in records {
        stmt.execute(params![r.id, r.rid, r.doc.as_ref()])?;
    }
    Ok(())
}

/// A stored inquiry the server cannot serve (see [`crate::document`]): which row, and why.
#[derive(Debug, thiserror::Error)]
#[error(
    "stored inquiry {id} of room {rid} cannot be served: {problem} (an import would refuse it; import a corrected record, or delete the row)"
)]
pub struct Unservable {
    /// The row's id, quoted, or what it is when it is not text (`NULL`, …).
    pub id: String,
    /// The row's rid, shown the same way.
    pub rid: String,
    pub problem: String,
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Unservable(#[from] Unservable),
}

/// A column as a message shows it: text quoted, anything else named.
fn shown(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => format!("(the number {i})"),
        ValueRef::Real(r) => format!("(the number {r})"),
        ValueRef::Blob(b) => format!("(a blob of {} bytes)", b.len()),
    }
}

/// Text in a column, or what it is instead.
fn text<'a>(value: ValueRef<'a>, what: &str) -> Result<&'a str, String> {
    match value {
        ValueRef::Text(t) => {
            std::str::from_utf8(t).map_err(|e| format!("its {what} is not UTF-8: {e}"))
        }
        ValueRef::Null => Err(format!("its {what} is NULL")),
        ValueRef::Blob(_) => Err(format!("its {what} is a blob, not text")),
        ValueRef::Integer(_) | ValueRef::Real(_) => {
            Err(format!("its {what} is a number, not text"))
        }
    }
}

/// A row's document, if it passes [`document::check_stored`], and its top-level members.
fn servable<'a>(
    id: ValueRef<'a>,
    rid: ValueRef<'a>,
    doc: ValueRef<'a>,
) -> Result<(&'a str, document::Checked<'a>), Unservable> {
    let check = || -> Result<_, String> {
        let (id, rid) = (text(id, "id")?, text(rid, "rid")?);
        let doc = text(doc, "document")?;
        let checked = document::check_stored(doc, id, rid).map_err(|p| p.to_string())?;
        Ok((doc, checked))
    };
    check().map_err(|problem| Unservable {
        id: shown(id),
        rid: shown(rid),
        problem,
    })
}

/// Finds the inquiry whose `rid` is `rid` (the first stored, should several share it) and
/// appends its document (JSON text) to `out`, copied once, straight from SQLite's buffer; returns
/// its id, or `None` when there is none. The document passes [`document::check_quick`], enough
/// for an answer without hooks; [`check_before_hooks`] does the rest. `Ok(Err(_))`: there is
/// one the server cannot serve (nothing is appended); `Err` is the database's.
pub fn lookup_by_rid(
    conn: &Connection,
    rid: &str,
    out: &mut Vec<u8>,
) -> rusqlite::Result<Result<Option<String>, Unservable>> {
    let mut stmt = conn.prepare_cached("SELECT id, doc FROM inquiries WHERE rid = ?1 LIMIT 1")?;
    let mut rows = stmt.query([rid])?;
    let Some(row) = rows.next()? else {
        return Ok(Ok(None));
    };
    let (id, doc) = (row.get_ref(0)?, row.get_ref(1)?);
    let check = || -> Result<(&str, &str), String> {
        let (id, doc) = (text(id, "id")?, text(doc, "document")?);
        document::check_quick(doc).map_err(|p| p.to_string())?;
        Ok((id, doc))
    };
    Ok(match check() {
        Ok((id, doc)) => {
            out.extend_from_slice(doc.as_bytes());
            Ok(Some(id.to_owned()))
        }
        Err(problem) => Err(Unservable {
            id: shown(id),
            rid: format!("{rid:?}"),
            problem,
        }),
    })
}

/// [`lookup_by_rid`] with both kinds of failure in one error.
pub fn append_by_rid(
    conn: &Connection,
    rid: &str,
    out: &mut Vec<u8>,
) -> Result<Option<String>, ReadError> {
    Ok(lookup_by_rid(conn, rid, out)??)
}

/// The rest of [`document::check_stored`] for a document [`lookup_by_rid`] found (row `id`,
/// room `rid`), before hooks parse it.
pub fn check_before_hooks(doc: &str, id: &str, rid: &str) -> Result<(), Unservable> {
    document::check_stored(doc, id, rid)
        .map(|_| ())
        .map_err(|p| Unservable {
            id: format!("{id:?}"),
            rid: format!("{rid:?}"),
            problem: p.to_string(),
        })
}

/// One row of [`for_each`].
pub enum Listed<'a> {
    Servable {
        id: &'a str,
        rid: &'a str,
        status: Option<&'a str>,
    },
    /// A row the server cannot serve: getOne for its room answers 500.
    Unservable(Unservable),
}

/// Calls `f` for every inquiry, ordered by `rid`. Each row is read and checked on its own, so one
/// that cannot be served (a document that is not JSON, too deep, not text, …) is reported as
/// such and the others are listed.
pub fn for_each(conn: &Connection, mut f: impl FnMut(Listed<'_>)) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT id, rid, doc FROM inquiries ORDER BY rid, id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        match servable(row.get_ref(0)?, row.get_ref(1)?, row.get_ref(2)?) {
            Ok((_, checked)) => f(Listed::Servable {
                id: &checked.id,
                rid: &checked.rid,
                status: checked.status.as_deref(),
            }),
            Err(bad) => f(Listed::Unservable(bad)),
        }
    }
    Ok(())
}

/// Calls `f` with every stored document, as stored (byte for byte), in the order they were
/// first stored (rowid). A row the server cannot serve is handed over as such, so an export
/// never writes what an import would refuse.
pub fn for_each_document(
    conn: &Connection,
    mut f: impl FnMut(Result<&str, Unservable>) -> std::io::Result<()>,
) -> Result<(), ExportError> {
    let mut stmt = conn.prepare("SELECT id, rid, doc FROM inquiries ORDER BY rowid")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let item = servable(row.get_ref(0)?, row.get_ref(1)?, row.get_ref(2)?).map(|(doc, _)| doc);
        f(item).map_err(ExportError::Write)?;
    }
    Ok(())
}

/// Why [`for_each_document`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Write(std::io::Error),
}

/// Deletes the inquiry with id `id`; returns its room id, or `None` when there is none.
pub fn delete_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    let mut stmt = conn.prepare("DELETE FROM inquiries WHERE id = ?1 RETURNING rid")?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => Ok(Some(row.get::<_, Option<String>>(0)?.unwrap_or_default())),
        None => Ok(None),
    }
}

/// Deletes every inquiry of room `rid` (one, normally); returns their ids, none when there were
/// none.
pub fn delete_by_rid(conn: &Connection, rid: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("DELETE FROM inquiries WHERE rid = ?1 RETURNING id")?;
    stmt.query_map([rid], |r| r.get::<_, Option<String>>(0))?
        .map(|id| id.map(Option::unwrap_or_default))
        .collect()
}
