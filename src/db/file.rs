//! Whether the database path still names the file a server has open.
//!
//! A server keeps its SQLite file, WAL and shared-memory index open for as long as it runs. If the
//! file is deleted, moved aside, replaced by another file, or copied over, or its `-wal`/`-shm`
//! sidecars are deleted, the server's connections keep working on what they have open while the
//! path names something else: anything written then is lost at the stop (or lands in a moved-aside
//! file), and a CLI command would silently create or write another database at the path. So:
//!
//! - the server holds a shared advisory lock (`flock`) on `NAME.lock` beside the database for its
//!   lifetime, and writes into it which files it has open (device and inode of the file and its
//!   sidecars, and the database's random `application_id`);
//! - [`DbWatch::check`] (run by the checkpointer thread every round and by `/health`) compares the
//!   path with that record; on a mismatch the server refuses writes and reads (503), says why on
//!   `/health` and logs it once; when the original file is back at the path, it serves again;
//! - [`check_beside_server`], run by every CLI command before it opens the database, refuses when
//!   a server holds the lock and the path does not name that server's file, so no command creates
//!   or writes a database the server does not see.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use super::{DbError, open_error, sibling};

/// Device and inode: what a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// What `path` names now; `None` when nothing is there.
    fn at(path: &Path) -> std::io::Result<Option<FileId>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(FileId::of(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn parse(s: &str) -> Option<FileId> {
        let (dev, ino) = s.split_once(':')?;
        Some(FileId {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
        })
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.dev, self.ino)
    }
}

/// The advisory lock file beside the database.
pub fn lock_path(db: &Path) -> PathBuf {
    sibling(db, ".lock")
}

/// The files a server has open, as recorded once the database is open.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    pid: u32,
    db: FileId,
    wal: Option<FileId>,
    shm: Option<FileId>,
    /// The database's `PRAGMA application_id` (random per database, see `db::open`).
    app_id: u32,
}

impl Record {
    fn to_text(&self) -> String {
        let opt = |f: Option<FileId>| f.map_or_else(|| "-".to_string(), |f| f.to_string());
        format!(
            "inquiryd server\npid {}\ndb {}\nwal {}\nshm {}\napp {}\n",
            self.pid,
            self.db,
            opt(self.wal),
            opt(self.shm),
            self.app_id
        )
    }

    fn from_text(text: &str) -> Option<Record> {
        let mut pid = None;
        let mut db = None;
        let (mut wal, mut shm, mut app_id) = (None, None, 0);
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("pid", v)) => pid = v.parse().ok(),
                Some(("db", v)) => db = FileId::parse(v),
                Some(("wal", v)) => wal = FileId::parse(v),
                Some(("shm", v)) => shm = FileId::parse(v),
                Some(("app", v)) => app_id = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        Some(Record {
            pid: pid?,
            db: db?,
            wal,
            shm,
            app_id,
        })
    }

    /// Why `path` no longer names the files recorded, if it does not (without the path).
    fn mismatch(&self, path: &Path, header_seen: &AtomicBool) -> Option<String> {
        match FileId::at(path) {
            Ok(None) => return Some("the file was deleted or moved away while in use".into()),
            Ok(Some(id)) if id != self.db => {
                return Some("the file was replaced by another file while in use".into());
            }
            Ok(Some(_)) => {}
            Err(e) => return Some(format!("the file cannot be checked: {e}")),
        }
        for (suffix, want) in [("-wal", self.wal), ("-shm", self.shm)] {
            let Some(want) = want else { continue };
            match FileId::at(&sibling(path, suffix)) {
                Ok(Some(id)) if id == want => {}
                Ok(_) => {
                    return Some(format!(
                        "its {suffix} file (the write-ahead log or its index) was deleted or replaced while in use"
                    ));
                }
                Err(e) => return Some(format!("its {suffix} file cannot be checked: {e}")),
            }
        }
        // Same inode, other contents: a database copied over the file (`cp other.sqlite3 PATH`).
        // The id is in page 1, which reaches the file itself at a checkpoint, so a 0 there is
        // only believed until the recorded id has been seen in the file once.
        if self.app_id != 0 {
            match header_app_id(path) {
                Some(id) if id == self.app_id => header_seen.store(true, Ordering::Relaxed),
                Some(0) if !header_seen.load(Ordering::Relaxed) => {}
                _ => {
                    return Some(
                        "the file was overwritten with other contents (another database copied over it) while in use"
                            .into(),
                    );
                }
            }
        }
        None
    }
}

/// The `application_id` in the header of the file at `path`; `None` when it has no SQLite header.
fn header_app_id(path: &Path) -> Option<u32> {
    let mut header = [0u8; 100];
    crate::regular::open(path)
        .ok()?
        .read_exact(&mut header)
        .ok()?;
    if !header.starts_with(b"SQLite format 3\0") {
        return None;
    }
    Some(u32::from_be_bytes([
        header[68], header[69], header[70], header[71],
    ]))
}

/// A running server's view of its database file: the lock, the record, and the current problem.
pub struct DbWatch {
    path: PathBuf,
    /// The lock file held; made again should the path stop naming it (see [`DbWatch::check`]).
    lock: Mutex<File>,
    /// Why the lock file could not be made again, if it could not (logged once).
    lock_problem: Mutex<Option<String>>,
    record: OnceLock<Record>,
    header_seen: AtomicBool,
    /// Fast flag for the hot path: a problem is known.
    bad: AtomicBool,
    problem: Mutex<Option<String>>,
}

impl DbWatch {
    /// Creates `NAME.lock` beside the database (mode 0600) and takes a shared lock on it for as
    /// long as the watch lives. Fails with a clear message when the directory cannot be written
    /// (SQLite could not create its `-wal` and `-shm` files there either).
    pub fn lock(path: &Path) -> Result<DbWatch, DbError> {
        Ok(DbWatch {
            path: path.to_path_buf(),
            lock: Mutex::new(open_lock(path)?),
            lock_problem: Mutex::new(None),
            record: OnceLock::new(),
            header_seen: AtomicBool::new(false),
            bad: AtomicBool::new(false),
            problem: Mutex::new(None),
        })
    }

    /// Records which files the path names now (call once the database is open, so the WAL and
    /// shm files exist) and writes the record into the lock file for CLI commands to compare.
    pub fn record(&self, app_id: u32) -> Result<(), DbError> {
        let open_err = open_error(&self.path);
        let db = FileId::at(&self.path)
            .ok()
            .flatten()
            .ok_or_else(|| open_err("vanished while being opened".into()))?;
        let side = |s: &str| FileId::at(&sibling(&self.path, s)).ok().flatten();
        let record = Record {
            pid: std::process::id(),
            db,
            wal: side("-wal"),
            shm: side("-shm"),
            app_id,
        };
        // Several servers may share a file; each writes the same record (but its own pid).
        let lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        write_record(&lock, &record).map_err(|e| {
            open_err(format!(
                "cannot write {}: {e}",
                lock_path(&self.path).display()
            ))
        })?;
        let _ = self.record.set(record);
        Ok(())
    }

    /// The database path watched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the last check found the path naming the files in use (one atomic load).
    pub fn usable(&self) -> bool {
        !self.bad.load(Ordering::Relaxed)
    }

    /// The problem the last check found, if any.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Compares the path with the record; logs a change of state once (an error when a problem
    /// appears, an info line when it is gone) and returns the current problem.
    pub fn check(&self) -> Option<String> {
        self.keep_lock();
        let found = self
            .record
            .get()
            .and_then(|r| r.mismatch(&self.path, &self.header_seen));
        let mut problem = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        if *problem != found {
            match &found {
                Some(why) => log::error!(
                    "database {}: {why}; answering 503 until the file in use is back at its path (restart inquiryd to use the file there now; anything written meanwhile would be lost, so writes are refused)",
                    self.path.display()
                ),
                None => log::info!(
                    "database {}: the file in use is back at its path; serving again",
                    self.path.display()
                ),
            }
            problem.clone_from(&found);
            self.bad.store(found.is_some(), Ordering::Relaxed);
        }
        found
    }

    /// The lock file deleted or replaced under the server (by a cleaner, or by someone who thought
    /// no server ran) would leave CLI commands unguarded: they would find no server, and write or
    /// create a database it does not see. So when the path no longer names the lock file held, a
    /// new one is made, locked and given the record, and the old one let go.
    fn keep_lock(&self) {
        let Some(record) = self.record.get() else {
            return;
        };
        let path = lock_path(&self.path);
        let mut lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let held = lock.metadata().ok().map(|m| FileId::of(&m));
        if held.is_some() && FileId::at(&path).ok().flatten() == held {
            return;
        }
        let made = open_lock(&self.path).and_then(|f| {
            write_record(&f, record).map(|()| f).map_err(|e| {
                open_error(&self.path)(format!("cannot write {}: {e}", path.display()))
            })
        });
        let mut problem = self.lock_problem.lock().unwrap_or_else(|e| e.into_inner());
        match made {
            Ok(f) => {
                *lock = f;
                *problem = None;
                log::warn!(
                    "database {}: its lock file {} was deleted or replaced while in use; made it again",
                    self.path.display(),
                    path.display()
                );
            }
            Err(e) => {
                let e = e.to_string();
                if problem.as_deref() != Some(e.as_str()) {
                    log::error!(
                        "{e} (the lock file was deleted or replaced while in use; CLI commands cannot see this server)"
                    );
                    *problem = Some(e);
                }
            }
        }
    }

    /// Whether `path` (checked when a connection opens) names the recorded database file.
    pub fn names_the_file_in_use(&self) -> bool {
        match self.record.get() {
            Some(r) => FileId::at(&self.path).ok().flatten() == Some(r.db),
            None => true,
        }
    }
}

/// Creates (or opens) `NAME.lock` beside the database at `path`, mode 0600, and takes a shared lock
/// on it. A FIFO or anything else not a regular file there is refused, without waiting on it.
fn open_lock(path: &Path) -> Result<File, DbError> {
    let (lock, lock_file) = open_lock_file(path)?;
    lock.lock_shared()
        .map_err(|e| open_error(path)(format!("cannot lock {}: {e}", lock_file.display())))?;
    Ok(lock)
}

/// Creates (or opens) `NAME.lock` beside the database at `path`, mode 0600, without locking it:
/// the server takes it shared, `restore` exclusively. A FIFO or anything else not a regular file
/// there is refused, without waiting on it. Returns the file and its path.
pub(super) fn open_lock_file(path: &Path) -> Result<(File, PathBuf), DbError> {
    use std::os::unix::fs::OpenOptionsExt;
    let lock_file = lock_path(path);
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&lock_file)
        .map_err(|e| {
            let dir = match lock_file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            open_error(path)(format!(
                "cannot create {}: {}; {}",
                lock_file.display(),
                super::describe_io(&e, dir),
                super::WRITABLE_WHY
            ))
        })?;
    if let Some(what) = lock
        .metadata()
        .ok()
        .as_ref()
        .and_then(crate::regular::not_regular)
    {
        return Err(open_error(path)(format!(
            "{}: is {what}, not a regular file",
            lock_file.display()
        )));
    }
    Ok((lock, lock_file))
}

/// Writes `record` as the whole content of the lock file.
fn write_record(lock: &File, record: &Record) -> std::io::Result<()> {
    let mut f = lock;
    f.set_len(0)?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0))?;
    f.write_all(record.to_text().as_bytes())
}

/// For CLI commands: refuses when a server holds the lock beside `path` and the path does not
/// name that server's database file (deleted, moved, replaced, or its WAL gone), since whatever
/// the command wrote would go to a file the server does not see (or be lost with its WAL). Does
/// nothing when no server holds the lock.
pub fn check_beside_server(path: &Path) -> Result<(), DbError> {
    let lock_file = lock_path(path);
    super::check_regular(path)?;
    let Ok(mut file) = crate::regular::open(&lock_file) else {
        return Ok(());
    };
    match file.try_lock() {
        Ok(()) => return Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(_)) => return Ok(()),
    }
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let Some(record) = Record::from_text(&text) else {
        // A server between taking the lock and recording its files: nothing to compare yet.
        return Ok(());
    };
    // Not yet checkpointed, the id may still read 0 in the file itself: believed here.
    match record.mismatch(path, &AtomicBool::new(false)) {
        None => Ok(()),
        Some(why) => Err(open_error(path)(format!(
            "{why}, and a running inquiryd server (pid {}) still has the old one open: refusing, as a change here would not reach the server or would be lost; put the file back, or stop the server first",
            record.pid
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_through_its_text() {
        let r = Record {
            pid: 42,
            db: FileId { dev: 1, ino: 2 },
            wal: Some(FileId { dev: 1, ino: 3 }),
            shm: None,
            app_id: 7,
        };
        assert_eq!(Record::from_text(&r.to_text()), Some(r));
        assert_eq!(Record::from_text("garbage"), None);
    }

    #[test]
    fn a_path_naming_another_file_or_nothing_is_found_out_and_its_return_noticed() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("x.sqlite3");
        std::fs::write(&db, b"one").unwrap();
        let watch = DbWatch::lock(&db).unwrap();
        watch.record(0).unwrap();
        assert_eq!(watch.check(), None);
        let aside = d.path().join("aside");
        std::fs::rename(&db, &aside).unwrap();
        assert!(watch.check().unwrap().contains("deleted or moved away"));
        assert!(!watch.usable());
        std::fs::write(&db, b"other").unwrap();
        assert!(watch.check().unwrap().contains("replaced by another file"));
        assert!(check_beside_server(&db).is_err(), "the CLI refuses too");
        std::fs::rename(&aside, &db).unwrap();
        assert_eq!(watch.check(), None);
        assert!(watch.usable());
        assert!(check_beside_server(&db).is_ok());
        drop(watch);
        std::fs::remove_file(&db).unwrap();
        assert!(check_beside_server(&db).is_ok(), "no server holds the lock");
    }
}
