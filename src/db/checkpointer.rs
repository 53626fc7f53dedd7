//! The server's WAL checkpointer. Every write lands in the WAL first; a checkpoint copies it back
//! into the database file. SQLite does that by default in whichever connection commits past 1,000
//! pages, which would make a login pay for copying an import. The server instead checkpoints from
//! a thread of its own, often, and without waiting for anyone (`PASSIVE`: it copies what no reader
//! still needs, and the next round copies the rest), so the WAL stays short and no request waits.
//! An import into a database the server has open leaves its checkpoint to this thread. Once a
//! large WAL has been copied whole, the thread also truncates the file, or it would keep its
//! largest size on disk for as long as the server runs.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::DbError;
use crate::periodic::Periodic;

/// How often the thread checkpoints. A round with nothing to copy costs two lock calls.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// A WAL of this many frames (pages), once copied whole, is truncated to nothing.
const TRUNCATE_FRAMES: i64 = 4096;

/// How long truncating may wait for readers to leave the WAL (it holds writers off meanwhile;
/// readers keep a snapshot at most `reader::SNAPSHOT_AGE`); on a timeout the next round tries again.
const TRUNCATE_WAIT: Duration = Duration::from_millis(200);

/// Starts the checkpointer on its own connection to `path`; it stops when the handle is dropped.
pub fn spawn(path: &Path) -> Result<Periodic, DbError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    super::apply_pragmas(&mut conn)?;
    let shown = path.display().to_string();
    let mut failing = false;
    let mut copied = 0;
    Periodic::spawn("wal-checkpointer", CHECKPOINT_EVERY, move || {
        // (busy, frames in the WAL, frames copied into the database)
        let round = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match round {
            Ok((frames, done)) => {
                if failing {
                    log::info!("database {shown}: checkpoints work again");
                    failing = false;
                }
                if done != copied {
                    log::debug!("database {shown}: {done} of {frames} WAL frames checkpointed");
                    copied = done;
                }
                if frames >= TRUNCATE_FRAMES && done == frames {
                    match truncate(&conn) {
                        Ok(true) => {
                            log::debug!("database {shown}: WAL of {frames} frames truncated");
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
