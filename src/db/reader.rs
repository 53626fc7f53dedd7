//! A read-only connection owned by one HTTP worker thread, for the hot path. Each actix worker is
//! single-threaded, so its connection needs no pool: no lock handoff, no contention between
//! workers, and a page cache of its own sized to keep the `rid` index in memory.

use std::cell::RefCell;
use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};

/// Page cache per worker connection, in KiB (SQLite's negative `cache_size`). Enough for the rid
/// index of a few hundred thousand inquiries while keeping the process well under 64 MiB.
const CACHE_KIB: i64 = 8 * 1024;

/// Opened lazily on first use, reopened after an error.
pub struct WorkerReader {
    path: PathBuf,
    conn: RefCell<Option<Connection>>,
}

impl WorkerReader {
    pub fn new(path: PathBuf) -> WorkerReader {
        WorkerReader {
            path,
            conn: RefCell::new(None),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(super::BUSY_TIMEOUT)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        Ok(conn)
    }

    /// Runs `f` on this worker's connection. On an error the connection is dropped, so the next
    /// call starts from a fresh one.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        let mut slot = self.conn.borrow_mut();
        if slot.is_none() {
            *slot = Some(self.open()?);
        }
        let result = match slot.as_ref() {
            Some(conn) => f(conn),
            None => Err(rusqlite::Error::InvalidQuery),
        };
        if result.is_err() {
            *slot = None;
        }
        result
    }
}
