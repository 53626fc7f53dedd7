//! Queries on `inquiries`: documents stored as compact JSON text in their original key order.

use rusqlite::{Connection, Transaction, params};

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

/// Appends the stored document (JSON text) of the inquiry whose `rid` is `rid` to `out` (the
/// first stored, should several share it); returns whether there was one. Copies the text once, straight from SQLite's buffer.
pub fn append_by_rid(conn: &Connection, rid: &str, out: &mut Vec<u8>) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare_cached("SELECT doc FROM inquiries WHERE rid = ?1 LIMIT 1")?;
    let mut rows = stmt.query([rid])?;
    match rows.next()? {
        Some(row) => {
            out.extend_from_slice(row.get_ref(0)?.as_bytes()?);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Calls `f(id, rid, status)` for every inquiry, ordered by `rid`.
pub fn for_each(
    conn: &Connection,
    mut f: impl FnMut(&str, &str, Option<&str>),
) -> rusqlite::Result<()> {
    let mut stmt = conn
        .prepare("SELECT id, rid, json_extract(doc, '$.status') FROM inquiries ORDER BY rid, id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let status: Option<String> = row.get::<_, Option<String>>(2).unwrap_or(None);
        f(
            row.get_ref(0)?.as_str()?,
            row.get_ref(1)?.as_str()?,
            status.as_deref(),
        );
    }
    Ok(())
}
