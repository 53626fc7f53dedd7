//! Large writes (`inquiry import`): a background flusher, and writing into an existing database
//! that no other connection has open through a rollback journal instead of the WAL.
//!
//! In WAL mode every page is written twice, each time with an fsync: to the WAL at commit, then
//! into the database file when the WAL is checkpointed. With a rollback journal, pages appended to
//! the file are written once, and only pages that existed before are first copied to the journal;
//! a crash still leaves the file as it was before the write (the next connection that opens it
//! rolls the journal back). Changing out of WAL mode needs every other connection to be closed,
//! so while a server has the database open the switch is refused at once and the write goes
//! through the WAL as always, with readers keeping their snapshots. It then leaves the copy back
//! into the file to whoever has the database open: a server's checkpointer thread does it in the
//! background (`db::checkpointer`), and SQLite does it when the last connection closes.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use crate::periodic::Periodic;

/// How often a flusher pushes the file's written pages to the disk.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Calls `fdatasync` on `file` every [`FLUSH_EVERY`] while a large write goes on, so the write's
/// own final fsync has little left to do and the disk works while the CPU does. Flushing written
/// data early is always safe. Stops when dropped; `None` if its thread could not start (the write
/// only loses the overlap).
pub fn flusher(file: File) -> Option<Periodic> {
    Periodic::spawn("flusher", FLUSH_EVERY, move || {
        if let Err(e) = file.sync_data() {
            log::debug!("background flush: {e}");
        }
        true
    })
    .ok()
}

/// Runs `write` on `conn` (a connection to the WAL database at `path`): through a rollback
/// journal, with a [`flusher`] on the file, when no other connection has the database open;
/// through the WAL otherwise, without checkpointing it after the commit. The database is in WAL
/// mode again afterwards; should switching back fail, the next `db::open` of it (every start,
/// every CLI command) switches it.
pub fn write_through_journal_if_alone<R>(
    conn: &mut Connection,
    path: &Path,
    write: impl FnOnce(&mut Connection) -> R,
) -> R {
    if !rollback_journal_if_alone(conn, path) {
        return write_leaving_the_checkpoint(conn, path, write);
    }
    let flushing = File::open(path).ok().and_then(flusher);
    let result = write(conn);
    drop(flushing);
    back_to_wal(conn, path);
    result
}

/// Switches the database back to WAL mode with `synchronous = FULL`, as `db::open` sets it.
fn back_to_wal(conn: &Connection, path: &Path) {
    match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
        Ok(mode) if mode.eq_ignore_ascii_case("wal") => {}
        Ok(mode) => log::warn!(
            "database {}: still in {mode} journal mode after the import; the next start of inquiryd switches it back to WAL",
            path.display()
        ),
        Err(e) => log::warn!(
            "database {}: cannot switch back to WAL mode after the import ({e}); the next start of inquiryd does",
            path.display()
        ),
    }
    if let Err(e) = conn.pragma_update(None, "synchronous", "FULL") {
        log::debug!("database {}: synchronous = FULL: {e}", path.display());
    }
}

/// Runs `write` through the WAL without the checkpoint SQLite would run after its commit: the
/// data is durable once the WAL is synced, and the connections that have the database open copy it
/// into the file (see the module comment).
fn write_leaving_the_checkpoint<R>(
    conn: &mut Connection,
    path: &Path,
    write: impl FnOnce(&mut Connection) -> R,
) -> R {
    let set = |conn: &Connection, pages: i64| {
        if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", pages) {
            log::debug!(
                "database {}: wal_autocheckpoint {pages}: {e}",
                path.display()
            );
        }
    };
    set(conn, 0);
    let result = write(conn);
    set(conn, DEFAULT_AUTOCHECKPOINT);
    result
}

/// SQLite's default `wal_autocheckpoint`, in pages.
const DEFAULT_AUTOCHECKPOINT: i64 = 1000;

/// Switches to a rollback journal if no other connection has the database open, without
/// waiting for one to close; returns whether it did.
fn rollback_journal_if_alone(conn: &Connection, path: &Path) -> bool {
    let switch = || -> rusqlite::Result<String> {
        conn.busy_timeout(Duration::ZERO)?;
        let mode = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0));
        conn.busy_timeout(super::BUSY_TIMEOUT)?;
        mode
    };
    match switch() {
        Ok(mode) if mode.eq_ignore_ascii_case("delete") => {
            // In this mode a commit is the journal's unlink, and only EXTRA syncs the directory
            // after it: with FULL, a power loss just after the import could bring the journal
            // back and roll a reported import back.
            if let Err(e) = conn.pragma_update(None, "synchronous", "EXTRA") {
                log::debug!("database {}: synchronous = EXTRA: {e}", path.display());
                back_to_wal(conn, path);
                return false;
            }
            log::debug!(
                "database {}: no other connection, writing through a rollback journal",
                path.display()
            );
            true
        }
        Ok(mode) => {
            log::debug!("database {}: journal mode stays {mode}", path.display());
            false
        }
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::DatabaseBusy => {
            log::debug!(
                "database {}: in use by another connection, writing through the WAL",
                path.display()
            );
            false
        }
        Err(e) => {
            log::debug!("database {}: writing through the WAL ({e})", path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_mode(conn: &Connection) -> String {
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    }

    fn wal_db(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t (x);")
            .unwrap();
        conn
    }

    #[test]
    fn alone_it_writes_through_a_journal_and_returns_to_wal() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("a.sqlite3");
        let mut conn = wal_db(&path);
        let synchronous = |c: &Connection| -> i64 {
            c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
        };
        let (mode_inside, sync_inside) = write_through_journal_if_alone(&mut conn, &path, |c| {
            c.execute("INSERT INTO t VALUES (1)", []).unwrap();
            (journal_mode(c), synchronous(c))
        });
        assert_eq!(mode_inside, "delete");
        assert_eq!(
            sync_inside, 3,
            "EXTRA: the directory is synced after the journal's unlink"
        );
        assert_eq!(journal_mode(&conn), "wal");
        assert_eq!(synchronous(&conn), 2, "FULL again");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn with_another_connection_open_it_writes_through_the_wal_at_once() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("b.sqlite3");
        let mut conn = wal_db(&path);
        // Another process's idle connection (a server between requests) that has read once.
        let other = Connection::open(&path).unwrap();
        let _: i64 = other
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        let started = std::time::Instant::now();
        let mode_inside = write_through_journal_if_alone(&mut conn, &path, |c| {
            c.execute("INSERT INTO t VALUES (1)", []).unwrap();
            journal_mode(c)
        });
        assert_eq!(mode_inside, "wal");
        assert!(
            started.elapsed() < super::super::BUSY_TIMEOUT / 2,
            "did not wait for the other connection"
        );
        let n: i64 = other
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
