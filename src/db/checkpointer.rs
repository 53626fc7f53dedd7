//! The server's WAL checkpointer. Every write lands in the WAL first; a checkpoint copies it back
//! into the database file. SQLite does that by default in whichever connection commits past 1,000
//! pages, which would make a login pay for copying an import. The server instead checkpoints from
//! a thread of its own, often, and without waiting for anyone (`PASSIVE`: it copies what no reader
//! still needs, and the next round copies the rest), so the WAL stays short and no request waits.
//! An import into a database the server has open leaves its checkpoint to this thread. Once a
//! WAL larger than [`WAL_SIZE_LIMIT`] on disk has been copied whole, the thread also truncates the
//! file, or it would keep its largest size on disk for as long as the server runs. The size on
//! disk is what counts, not the frames committed: an import that failed (a bad record, a full
//! disk) leaves a WAL of frames that were rolled back, which no commit ever counted.
//!
//! Each round also checks that the database path still names the file in use
//! ([`super::file::DbWatch::check`]); while it does not, the thread copies nothing into the file,
//! since the file at the path may be another database copied over this one.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::DbError;
use super::file::DbWatch;
use crate::periodic::Periodic;

/// Checkpoint rounds run, and WAL truncations done, by every checkpointer of this process (the
/// metrics show them).
pub static RUNS: AtomicU64 = AtomicU64::new(0);
pub static TRUNCATIONS: AtomicU64 = AtomicU64::new(0);

/// How often the thread checkpoints. A round with nothing to copy costs two lock calls.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// A WAL file larger than this on disk, once its committed frames are copied whole, is truncated
/// to nothing. Also the `journal_size_limit` every connection sets (see `db::apply_pragmas`).
pub const WAL_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

/// How long truncating may wait for readers to leave the WAL (it holds writers off meanwhile;
/// readers keep a snapshot at most `reader::SNAPSHOT_AGE`); on a timeout the next round tries again.
const TRUNCATE_WAIT: Duration = Duration::from_millis(200);

/// Starts the checkpointer on its own connection to `path`; it stops when the handle is dropped.
pub fn spawn(path: &Path, watch: Arc<DbWatch>) -> Result<Periodic, DbError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    super::apply_pragmas(&mut conn)?;
    let shown = path.display().to_string();
    let wal = super::sibling(path, "-wal");
    let mut failing = false;
    let mut copied = 0;
    Periodic::spawn("wal-checkpointer", CHECKPOINT_EVERY, move || {
        if watch.check().is_some() {
            return true;
        }
        // (busy, frames in the WAL, frames copied into the database)
        let round = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match round {
            Ok((frames, done)) => {
                RUNS.fetch_add(1, Ordering::Relaxed);
                if failing {
                    log::info!("database {shown}: checkpoints work again");
                    failing = false;
                }
                if done != copied {
                    log::debug!("database {shown}: {done} of {frames} WAL frames checkpointed");
                    copied = done;
                }
                let on_disk = std::fs::metadata(&wal).map_or(0, |m| m.len());
                if on_disk > WAL_SIZE_LIMIT && done == frames {
                    match truncate(&conn) {
                        Ok(true) => {
                            TRUNCATIONS.fetch_add(1, Ordering::Relaxed);
                            log::info!(
                                "database {shown}: WAL of {} MiB ({frames} frames committed) truncated",
                                on_disk >> 20
                            );
                            copied = 0;
                        }
                        Ok(false) => {}
                        Err(e) => log::debug!("database {shown}: truncating the WAL: {e}"),
                    }
                }
            }
            Err(e) if !failing => {
                log::error!(
                    "database {shown}: checkpoint failed (the WAL grows until one works): {e}"
                );
                failing = true;
            }
            Err(_) => {}
        }
        true
    })
    .map_err(|e| DbError::Open {
        path: path.to_path_buf(),
        message: format!("cannot start the checkpoint thread: {e}"),
    })
}

/// Restarts the WAL at its beginning and cuts the file to nothing, waiting at most
/// [`TRUNCATE_WAIT`] for readers; returns whether it did.
fn truncate(conn: &Connection) -> rusqlite::Result<bool> {
    conn.busy_timeout(TRUNCATE_WAIT)?;
    let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    Ok(busy? == 0)
}
