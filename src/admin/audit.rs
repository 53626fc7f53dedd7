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

/// Which records a reader asks for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// At or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// By this actor (a REST username, an OS user, `watcher`, `inquiryd`).
    pub actor: Option<String>,
    /// Of this kind (`user.roles`), or of this family when it has no dot (`user`: `user.*`).
    pub kind: Option<String>,
    /// Records older than this many days are past retention and not shown, even before the
    /// server's daily prune removed them (0 shows everything).
    pub retention_days: u32,
}

/// Newest first (the REST route, a console's page) or oldest first (the CLI, like a log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

/// The records matching `filter`, `limit` of them (-1: all) from `offset`, in `order`, and how
/// many match in all.
pub fn query(
    conn: &Connection,
    filter: &Filter,
    order: Order,
    offset: i64,
    limit: i64,
) -> rusqlite::Result<(Vec<Entry>, i64)> {
    let retention_cutoff = match filter.retention_days {
        0 => i64::MIN,
        days => crate::db::now_ms() - i64::from(days) * 86_400_000,
    };
    let since = filter.since_ms.unwrap_or(i64::MIN).max(retention_cutoff);
    let (kind, family) = match filter.kind.as_deref() {
        Some(k) if !k.contains('.') => (None, Some(format!("{k}."))),
        Some(k) => (Some(k.to_string()), None),
        None => (None, None),
    };
    const WHERE: &str = "WHERE at_ms >= ?1 AND (?2 IS NULL OR actor = ?2)
         AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR substr(kind, 1, length(?4)) = ?4)";
    let direction = match order {
        Order::NewestFirst => "DESC",
        Order::OldestFirst => "ASC",
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT at_ms, actor, actor_kind, kind, subject, before, after FROM audit {WHERE}
         ORDER BY at_ms {direction}, id {direction} LIMIT ?5 OFFSET ?6"
    ))?;
    let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let p = params![since, filter.actor, kind, family, limit, offset];
    let entries = stmt
        .query_map(p, |r| {
            Ok(Entry {
                at_ms: r.get(0)?,
                actor: r.get(1)?,
                actor_kind: r.get(2)?,
                kind: r.get(3)?,
                subject: r.get(4)?,
                before: parse(r.get(5)?),
                after: parse(r.get(6)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = conn
        .prepare_cached(&format!("SELECT count(*) FROM audit {WHERE}"))?
        .query_row(params![since, filter.actor, kind, family], |r| r.get(0))?;
    Ok((entries, total))
}

/// The roles removed (or renamed away) after `since_ms`, with when: `roles.sync`'s `remove`.
pub fn role_removals_since(
    conn: &Connection,
    since_ms: i64,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT subject, max(at_ms) FROM audit
         WHERE kind IN ('role.remove', 'role.rename') AND at_ms > ?1
           AND subject NOT IN (SELECT id FROM roles)
         GROUP BY subject ORDER BY subject",
    )?;
    let rows = stmt.query_map([since_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Reads a reader's `since`: an RFC 3339 time (`2026-12-01T09:00:00Z`), a date (`2026-12-01`,
/// midnight UTC), or a span back from `now_ms`: a number and a unit, `s`, `m`, `h`, `d` or `w`
/// (`90m`, `1h`, `7d`). Fails with what to write instead.
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => 0,
    };
    match number.parse::<i64>() {
        Ok(n) if unit_ms > 0 => Ok(now_ms.saturating_sub(n.saturating_mul(unit_ms))),
        _ => Err(format!(
            "{text:?} is neither a time (RFC 3339, e.g. 2026-12-01T09:00:00Z, or a date, \
             2026-12-01) nor a span back from now (e.g. 30m, 1h, 7d, 2w)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_times_dates_and_spans() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_since("1h", now), Ok(now - 3_600_000));
        assert_eq!(parse_since("7d", now), Ok(now - 7 * 86_400_000));
        assert_eq!(
            parse_since("2018-11-27T13:52:01Z", now),
            Ok(1_543_326_721_000)
        );
        assert_eq!(parse_since("2018-11-27", now), Ok(1_543_276_800_000));
        for bad in ["", "h", "1y", "-1h", "yesterday", "1.5h"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
