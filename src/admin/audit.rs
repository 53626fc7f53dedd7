//! The audit trail: one row per change, written in the same transaction as the change, so a change
//! and its record commit or roll back together. Never holds a password, a token or a hash: callers
//! pass what changed in words (roles, names, flags), and [`record`] refuses nothing, so that
//! contract is the callers'.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::Actor;

/// Days of audit kept when `[audit] retention_days` is not set.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// Records one change by `actor`: `kind` says what (e.g. `permission.update`), `subject` which
/// (a permission id, a username), `before`/`after` its state as JSON (None for none).
pub fn record(
    conn: &Connection,
    actor: &Actor,
    kind: &str,
    subject: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (at_ms, actor, actor_kind, kind, subject, before, after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        crate::db::now_ms(),
        actor.name(),
        actor.kind(),
        kind,
        subject,
        before.map(Value::to_string),
        after.map(Value::to_string),
    ])?;
    Ok(())
}

/// Deletes the records older than `retention_days`; returns how many. 0 days keeps everything.
pub fn prune(conn: &Connection, retention_days: u32) -> rusqlite::Result<usize> {
    if retention_days == 0 {
        return Ok(0);
    }
    let cutoff = crate::db::now_ms() - i64::from(retention_days) * 86_400_000;
    conn.execute("DELETE FROM audit WHERE at_ms < ?1", [cutoff])
}

/// One audit record, as `inquiryd audit` and the REST route show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub at_ms: i64,
    pub actor: String,
    pub actor_kind: String,
    pub kind: String,
    pub subject: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Records at or after `since_ms`, by `actor` when given, oldest first.
pub fn list(
    conn: &Connection,
    since_ms: Option<i64>,
    actor: Option<&str>,
) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, actor, actor_kind, kind, subject, before, after FROM audit
         WHERE at_ms >= ?1 AND (?2 IS NULL OR actor = ?2) ORDER BY at_ms, id",
    )?;
    let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let rows = stmt.query_map(params![since_ms.unwrap_or(i64::MIN), actor], |r| {
        Ok(Entry {
            at_ms: r.get(0)?,
            actor: r.get(1)?,
            actor_kind: r.get(2)?,
            kind: r.get(3)?,
            subject: r.get(4)?,
            before: parse(r.get(5)?),
            after: parse(r.get(6)?),
        })
    })?;
    rows.collect()
}
