//! How import files reach the database: into a database that does not exist yet, the files are
//! loaded into a new file beside it that is moved into place at the end (see `db::fresh`):
//! written once instead of twice, and never seen half-built. Into an existing one, through a
//! rollback journal or the WAL (see `db::bulk`). Each file in its own transaction, all or none.

use std::path::{Path, PathBuf};

use super::{ImportError, import_file};
use crate::db::{self, DbError};

/// One result per file, in order.
pub type ImportResults = Vec<Result<usize, ImportError>>;

/// Imports `files` into the database at `path`, each file all-or-nothing; returns one result per
/// file. Fails only when the database itself cannot be opened or placed.
pub fn import_files(path: &Path, files: &[PathBuf]) -> Result<ImportResults, DbError> {
    match import_into_new(path, files)? {
        Some(results) => Ok(results),
        None => import_into_existing(path, files),
    }
}

/// Imports into a database built beside `path`, when `path` does not exist yet; `None` when it
/// does (or appeared meanwhile, then nothing was written to it): the caller imports into it.
fn import_into_new(path: &Path, files: &[PathBuf]) -> Result<Option<ImportResults>, DbError> {
    let Some(mut fresh) = db::fresh::FreshDatabase::create(path)? else {
        return Ok(None);
    };
    let results = files.iter().map(|f| import_file(fresh.conn(), f)).collect();
    let started = std::time::Instant::now();
    match fresh.place()? {
        db::fresh::Placed::Yes => {
            log::debug!(
                "database {}: flushed and moved into place in {:.2?}",
                path.display(),
                started.elapsed()
            );
            Ok(Some(results))
        }
        db::fresh::Placed::No(why) => {
            log::warn!(
                "database {}: built aside but not placed ({why}); importing into it directly",
                path.display()
            );
            Ok(None)
        }
    }
}

fn import_into_existing(path: &Path, files: &[PathBuf]) -> Result<ImportResults, DbError> {
    let pool = db::open(path, 1)?;
    let mut conn = pool.get()?;
    Ok(db::bulk::write_through_journal_if_alone(
        &mut conn,
        path,
        |conn| files.iter().map(|f| import_file(conn, f)).collect(),
    ))
}
