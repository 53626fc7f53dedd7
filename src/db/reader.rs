//! A read-only connection owned by one HTTP worker thread, for the hot path. Each actix worker is
//! single-threaded, so its connection needs no pool: no lock handoff, no contention between
//! workers, and a page cache of its own sized to keep the `rid` index in memory. It also keeps
//! one read transaction (a snapshot) for up to [`SNAPSHOT_AGE`] across requests, which spares
//! SQLite's lock round trips per statement; a timer ends it when the worker goes idle, so the WAL
//! can always be checkpointed. Other processes' writes show within that age. While the database
//! path does not name the file the server has open (see [`super::file`]), it answers nothing: every
//! worker then fails alike, with an error that maps to a 503, and none opens whatever is at the path.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// Page cache per worker connection, in KiB (SQLite's negative `cache_size`). Enough for the rid
/// index of a few hundred thousand inquiries while keeping the process well under 64 MiB.
const CACHE_KIB: i64 = 8 * 1024;

/// How long one read snapshot serves requests before the next request takes a fresh one. Holding
/// it spares SQLite's per-statement lock round trips; changes by others show after at most this.
pub const SNAPSHOT_AGE: Duration = Duration::from_millis(50);

/// Opened lazily on first use, reopened after an error.
pub struct WorkerReader {
    path: PathBuf,
    watch: Option<Arc<super::file::DbWatch>>,
    conn: RefCell<Option<Connection>>,
    /// When the open read transaction began, if one is open.
    snapshot_since: Cell<Option<Instant>>,
}

impl WorkerReader {
    /// A reader of `path`; with a `watch`, it refuses to read while the watch knows of a problem.
    pub fn new(path: PathBuf, watch: Option<Arc<super::file::DbWatch>>) -> WorkerReader {
        WorkerReader {
            path,
            watch,
            conn: RefCell::new(None),
            snapshot_since: Cell::new(None),
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

    /// Runs `f` on this worker's connection, inside a read snapshot at most [`SNAPSHOT_AGE`] old.
    /// On an error the connection is dropped, so the next call starts from a fresh one.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        if let Some(watch) = &self.watch
            && !watch.usable()
        {
            return Err(super::refused(
                "the path no longer names the database file in use",
            ));
        }
        let mut slot = self.conn.borrow_mut();
        if slot.is_none() {
            self.snapshot_since.set(None);
            *slot = Some(self.open()?);
        }
        let result = match slot.as_ref() {
            Some(conn) => self.fresh_snapshot(conn).and_then(|()| f(conn)),
            None => Err(rusqlite::Error::InvalidQuery),
        };
        if result.is_err() {
            self.snapshot_since.set(None);
            *slot = None;
        }
        result
    }

    /// As [`WorkerReader::with`], in a read snapshot begun now: sees every write committed
    /// before the call (read your writes).
    pub fn with_fresh<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        if let (Ok(slot), Some(_)) = (self.conn.try_borrow(), self.snapshot_since.get())
            && let Some(conn) = slot.as_ref()
        {
            self.snapshot_since.set(None);
            conn.execute_batch("COMMIT")?;
        }
        self.with(f)
    }

    fn fresh_snapshot(&self, conn: &Connection) -> rusqlite::Result<()> {
        match self.snapshot_since.get() {
            Some(since) if since.elapsed() < SNAPSHOT_AGE => return Ok(()),
            Some(_) => conn.execute_batch("COMMIT")?,
            None => {}
        }
        conn.execute_batch("BEGIN")?;
        self.snapshot_since.set(Some(Instant::now()));
        Ok(())
    }

    /// Ends a read snapshot older than [`SNAPSHOT_AGE`], so an idle worker never holds one (a
    /// held snapshot keeps the WAL from being checkpointed past it). Called by a timer.
    pub fn release_stale(&self) {
        let Ok(slot) = self.conn.try_borrow() else {
            return;
        };
        if let (Some(conn), Some(since)) = (slot.as_ref(), self.snapshot_since.get())
            && since.elapsed() >= SNAPSHOT_AGE
        {
            self.snapshot_since.set(None);
            if let Err(e) = conn.execute_batch("COMMIT") {
                log::debug!("worker reader: ending snapshot: {e}");
            }
        }
    }
}
