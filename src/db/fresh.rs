//! A database file that does not exist yet, built beside its path and moved into place when done.
//!
//! Bulk loading (`inquiry import` into a new file) is the one write big enough for this to matter.
//! In WAL mode every page is written twice, each time with an fsync: to the WAL at commit, then
//! into the database when the WAL is checkpointed. A file nobody else can see yet needs neither
//! the WAL nor a crash journal, so it is written once, flushed once, and then linked into place;
//! until that link, the path does not exist, and a crash leaves nothing a server could open.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::bulk::flusher;
use super::{DbError, SIDECARS, sibling};

/// A database being built at `<path>.building`, locked by this process; dropped unplaced, it is
/// deleted.
pub struct FreshDatabase {
    path: PathBuf,
    temp: PathBuf,
    conn: Option<Connection>,
    /// Holds the `flock` that marks the temporary file as in use.
    lock: File,
    /// Pushes the file's pages to the disk while it grows.
    flusher: Option<crate::periodic::Periodic>,
    /// Whether the temporary file is still ours to delete.
    temp_ours: bool,
}

/// What became of a [`FreshDatabase`].
pub enum Placed {
    /// The database is at its path, durable.
    Yes,
    /// It could not be moved into place (the path appeared meanwhile, or the file system has no
    /// hard links); nothing was changed at the path. The reason is for the log.
    No(String),
}

impl FreshDatabase {
    /// Starts building the database for `path` beside it, with the schema in place, when `path`
    /// does not exist (nor a WAL, shm or journal file of it, which SQLite would apply to a new file).
    /// Returns `None` when it exists, or when another process is building it right now: the
    /// caller then opens it the usual way.
    pub fn create(path: &Path) -> Result<Option<FreshDatabase>, DbError> {
        let open_err = super::open_error(path);
        let taken = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        if taken(path) || SIDECARS.iter().any(|s| taken(&sibling(path, s))) {
            return Ok(None);
        }
        super::create_parent_dir(path)?;
        let temp = sibling(path, ".building");
        let Some(lock) =
            lock_temp(&temp).map_err(|e| open_err(format!("{}: {e}", temp.display())))?
        else {
            return Ok(None);
        };
        let mut fresh = FreshDatabase {
            path: path.to_path_buf(),
            temp,
            conn: None,
            lock,
            flusher: None,
            temp_ours: true,
        };
        let conn = fresh.open().map_err(|e| match e {
            DbError::Sqlite(e) => open_err(format!("{}: {e}", fresh.temp.display())),
            other => other,
        })?;
        fresh.conn = Some(conn);
        fresh.flusher = fresh.lock.try_clone().ok().and_then(flusher);
        Ok(Some(fresh))
    }

    fn open(&self) -> Result<Connection, DbError> {
        let mut conn = Connection::open(&self.temp)?;
        // The rollback journal stays in memory: a file that fails to import still rolls back,
        // and after a crash the whole temporary file is discarded anyway.
        conn.execute_batch(
            "PRAGMA journal_mode = MEMORY;
             PRAGMA synchronous = OFF;
             PRAGMA foreign_keys = ON;",
        )?;
        super::migrate(&mut conn, &self.temp)?;
        // Like every database inquiryd creates, marked as inquiryd's from the start (a backup
        // of it, and a restore, check the mark).
        super::ensure_app_id(&mut conn)?;
        Ok(conn)
    }

    /// The connection to fill the database through.
    pub fn conn(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("open until placed or dropped")
    }

    /// Switches the file to WAL mode, flushes it to disk, and links it at its path without ever
    /// replacing a file there. On `Ok(Placed::No(_))` and on `Err` nothing exists at the path
    /// that was not there before, and the temporary file is gone.
    pub fn place(mut self) -> Result<Placed, DbError> {
        let path = self.path.clone();
        let open_err = super::open_error(&path);
        let conn = self.conn.take().expect("open until placed");
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(format!(
                "cannot switch to WAL mode (still {mode})"
            )));
        }
        conn.close().map_err(|(_, e)| e)?;
        drop(self.flusher.take());
        self.lock
            .sync_all()
            .map_err(|e| open_err(format!("cannot write {}: {e}", self.temp.display())))?;
        match std::fs::hard_link(&self.temp, &self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(Placed::No("it was created meanwhile".into()));
            }
            Err(e) => return Ok(Placed::No(format!("cannot link it into place: {e}"))),
        }
        // The data is safe under the final name; the directory entry must be as well.
        let _ = std::fs::remove_file(&self.temp);
        // From here the name may be another build's (once the path is taken, none should start).
        self.temp_ours = false;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| open_err(format!("cannot sync directory {}: {e}", dir.display())))?;
        Ok(Placed::Yes)
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        // SQLite's file first, so no write of its lands after the unlink; the lock last.
        drop(self.conn.take());
        drop(self.flusher.take());
        if self.temp_ours {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Creates (mode 0600) or takes over the temporary file and locks it, emptied. `None` when another
/// process holds it. A file left by a crashed build is not locked and is simply reused.
fn lock_temp(temp: &Path) -> std::io::Result<Option<File>> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(temp)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // Between our open and our lock, its holder may have finished and removed it: then the
        // lock is on a file no longer at that name, and we start again.
        let (held, named) = (file.metadata()?, std::fs::metadata(temp));
        if named.is_ok_and(|m| m.dev() == held.dev() && m.ino() == held.ino()) {
            file.set_len(0)?;
            // A crash between the switch to WAL mode and the close can leave SQLite's files
            // beside it, which it would apply to the new one.
            for suffix in SIDECARS {
                match std::fs::remove_file(sibling(temp, suffix)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            return Ok(Some(file));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inquiries(path: &Path) -> i64 {
        crate::db::tests::rows(path, "inquiries")
    }

    #[test]
    fn placed_database_is_whole_private_and_in_wal_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("new.sqlite3");
        let mut fresh = FreshDatabase::create(&path).unwrap().expect("path is free");
        assert!(!path.exists(), "nothing at the path while building");
        fresh
            .conn()
            .execute("INSERT INTO inquiries VALUES ('i', 'r', '{}')", [])
            .unwrap();
        assert!(matches!(fresh.place().unwrap(), Placed::Yes));
        assert_eq!(inquiries(&path), 1);
        let mode: String = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let perms = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(perms & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["new.sqlite3"]);
    }

    #[test]
    fn a_path_that_appears_meanwhile_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.sqlite3");
        let fresh = FreshDatabase::create(&path).unwrap().unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        assert!(matches!(fresh.place().unwrap(), Placed::No(_)));
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
        assert!(!sibling(&path, ".building").exists());
    }

    #[test]
    fn existing_files_busy_builds_and_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        std::fs::write(sibling(&path, "-wal"), b"stale").unwrap();
        assert!(FreshDatabase::create(&path).unwrap().is_none(), "a WAL");
        std::fs::remove_file(sibling(&path, "-wal")).unwrap();
        // A crashed build's file is taken over; a running one's is not.
        std::fs::write(sibling(&path, ".building"), b"left by a crash").unwrap();
        std::fs::write(sibling(&path, ".building-wal"), b"and its WAL").unwrap();
        let first = FreshDatabase::create(&path)
            .unwrap()
            .expect("leftover reused");
        assert!(FreshDatabase::create(&path).unwrap().is_none(), "busy");
        assert!(
            !sibling(&path, ".building-wal").exists(),
            "stale WAL removed"
        );
        drop(first);
        assert!(!sibling(&path, ".building").exists(), "dropped: deleted");
        assert!(!path.exists());
        std::fs::write(&path, b"").unwrap();
        assert!(FreshDatabase::create(&path).unwrap().is_none(), "exists");
    }
}
