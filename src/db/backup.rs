//! `inquiryd backup` and `inquiryd restore`.
//!
//! A backup is taken with SQLite's online backup API in one step: in WAL mode that is one read
//! transaction, a consistent snapshot, while the server and CLI commands go on writing (a
//! step-by-step copy would start over at every write made through another connection, and might
//! never finish under load). It is written to a new file (mode 0600: it holds password and token
//! hashes) beside the destination, made a single self-contained file (rollback journal mode, no
//! `-wal`), checked, and only then given the destination's name; an existing file is never
//! overwritten unless asked.
//!
//! A restore checks the file first (an inquiryd database: `application_id` set, a schema version
//! this build knows, inquiryd's tables, `PRAGMA integrity_check` ok), copies it beside the
//! database, and swaps it in with one `rename`, keeping the previous file as
//! `NAME.before-restore-TIMESTAMP`. It refuses while a server runs on the database: it takes the
//! server's lock file (`NAME.lock`) exclusively, which a running server holds shared, and a server
//! starting meanwhile waits for the restore to finish.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::{DbError, MIGRATIONS, open_error, sibling};
use crate::newfile::NewFile;

/// The tables every inquiryd schema version has.
const TABLES: &[&str] = &[
    "users",
    "user_roles",
    "tokens",
    "permissions",
    "inquiries",
    "meta",
];

/// What a database file holds, as `backup` and `restore` report it.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub schema_version: i64,
    pub users: i64,
    pub tokens: i64,
    pub inquiries: i64,
    pub bytes: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::text::plural;
        write!(
            f,
            "schema version {}, {}, {}, {}, {} bytes",
            self.schema_version,
            plural(self.users as usize, "user", "users"),
            plural(self.tokens as usize, "token", "tokens"),
            plural(self.inquiries as usize, "inquiry", "inquiries"),
            self.bytes
        )
    }
}

/// What `backup` did.
#[derive(Debug)]
pub struct BackupDone {
    pub summary: Summary,
    pub took: Duration,
}

/// Copies the database at `db` to `dest` while it may be in use, as described in the module
/// documentation. Fails, leaving nothing at `dest`, when `db` is not there, when `dest` exists
/// (unless `overwrite`), or when the copy cannot be written or does not check out.
pub fn backup(db: &Path, dest: &Path, overwrite: bool) -> Result<BackupDone, DbError> {
    let started = Instant::now();
    let dest_err = open_error(dest);
    if !db.exists() {
        return Err(open_error(db)("does not exist: nothing to back up".into()));
    }
    super::check_regular(db)?;
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_error(db)(e.to_string()))?;
    source.busy_timeout(super::BUSY_TIMEOUT)?;
    inspect(&source).map_err(|why| open_error(db)(why))?;

    let partial = NewFile::create(dest, overwrite).map_err(|e| dest_err(e.to_string()))?;
    let mut copy = Connection::open(partial.path()).map_err(|e| dest_err(e.to_string()))?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut copy)?;
        let deadline = Instant::now() + super::BUSY_TIMEOUT;
        loop {
            use rusqlite::backup::StepResult;
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                StepResult::Busy | StepResult::Locked => {
                    return Err(open_error(db)(
                        "stayed locked by a writer for 10 s; try again".into(),
                    ));
                }
                _ => {}
            }
        }
    }
    drop(source);
    // One self-contained file: no -wal beside it to lose when it is copied elsewhere.
    let mode: String = copy.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(dest_err(format!("cannot leave WAL mode (still {mode})")));
    }
    let check: String = copy.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(dest_err(format!("the copy does not check out: {check}")));
    }
    let mut summary = inspect(&copy).map_err(&dest_err)?;
    copy.close().map_err(|(_, e)| DbError::from(e))?;
    summary.bytes = partial.place().map_err(|e| dest_err(e.to_string()))?;
    Ok(BackupDone {
        summary,
        took: started.elapsed(),
    })
}

/// What `restore` did.
#[derive(Debug)]
pub struct Restored {
    pub summary: Summary,
    /// Where the database that was at the path now is, if there was one.
    pub previous: Option<PathBuf>,
}

/// Puts the database in `file` at `db`, as described in the module documentation. Fails without
/// changing `db` when `file` is not a sound inquiryd database, when a server runs on `db`, or
/// when `db` cannot be closed cleanly (another process writing to it).
pub fn restore(file: &Path, db: &Path) -> Result<Restored, DbError> {
    let file_err = open_error(file);
    super::check_regular(file)?;
    if !file.is_file() {
        return Err(file_err("does not exist or is not a file".into()));
    }
    super::check_regular(db)?;
    if same_file(file, db) {
        return Err(file_err("is the database itself".into()));
    }
    // Hold the server's lock exclusively for the whole swap.
    let _lock = lock_out_servers(db)?;

    // Copy it beside the database (the rename must stay on one file system), then check the
    // copy: what is checked is what is placed.
    let partial = NewFile::create(db, true).map_err(|e| open_error(db)(e.to_string()))?;
    {
        let source = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| file_err(format!("not a usable SQLite database: {e}")))?;
        let mut copy =
            Connection::open(partial.path()).map_err(|e| open_error(db)(e.to_string()))?;
        let backup = rusqlite::backup::Backup::new(&source, &mut copy)?;
        backup
            .step(-1)
            .map_err(|e| file_err(format!("not a usable SQLite database: {e}")))?;
    }
    let copy = Connection::open(partial.path()).map_err(|e| open_error(db)(e.to_string()))?;
    let mut summary = check_restorable(&copy).map_err(&file_err)?;
    let mode: String = copy.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(file_err(format!("cannot leave WAL mode (still {mode})")));
    }
    copy.close().map_err(|(_, e)| DbError::from(e))?;

    let previous = if db.exists() {
        close_cleanly(db)?;
        let aside = sibling(
            db,
            &format!(
                ".before-restore-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
            ),
        );
        // A second name for the old file, then the new one over the path: at every moment the
        // path names a whole database.
        std::fs::hard_link(db, &aside).map_err(|e| {
            open_error(db)(format!(
                "cannot keep the previous file as {}: {e}",
                aside.display()
            ))
        })?;
        Some(aside)
    } else {
        None
    };
    summary.bytes = partial.place().map_err(|e| open_error(db)(e.to_string()))?;
    Ok(Restored { summary, previous })
}

/// Takes `NAME.lock` exclusively, or says which server holds it.
fn lock_out_servers(db: &Path) -> Result<File, DbError> {
    let (lock, lock_file) = super::file::open_lock_file(db)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => {
            let text = std::fs::read_to_string(&lock_file).unwrap_or_default();
            let pid = text
                .lines()
                .find_map(|l| l.strip_prefix("pid "))
                .map(|p| format!(" (pid {})", p.trim()))
                .unwrap_or_default();
            Err(open_error(db)(format!(
                "a running inquiryd server{pid} has it open: stop the server first (e.g. systemctl stop inquiryd), restore, then start it again"
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(open_error(db)(format!(
            "cannot lock {}: {e}",
            lock_file.display()
        ))),
    }
}

/// Checkpoints the database's WAL into it and leaves WAL mode, so that no `-wal` file is left
/// beside the path to be replayed onto the restored database. Fails when another process has the
/// database open (a CLI command at work).
fn close_cleanly(db: &Path) -> Result<(), DbError> {
    let busy = |what: &str| {
        open_error(db)(format!(
            "{what}: another process has it open (an inquiryd command at work?); try again when it is done"
        ))
    };
    let conn = Connection::open(db).map_err(|e| open_error(db)(e.to_string()))?;
    conn.busy_timeout(Duration::from_secs(2))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(|_| busy("cannot close its WAL"))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(busy("cannot close its WAL"));
    }
    conn.close().map_err(|(_, e)| DbError::from(e))?;
    for sidecar in ["-wal", "-shm"] {
        let p = sibling(db, sidecar);
        match std::fs::metadata(&p) {
            Ok(m) if m.len() > 0 && sidecar == "-wal" => {
                return Err(busy("its WAL is still in use"));
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&p);
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// Whether two paths name the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether `conn` holds an inquiryd database of a schema version this build knows, with
/// inquiryd's tables, passing `PRAGMA integrity_check`; what it holds, or why not.
fn check_restorable(conn: &Connection) -> Result<Summary, String> {
    let summary = inspect(conn)?;
    let problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| format!("integrity check failed: {e}"))?;
    if problems != ["ok"] {
        return Err(format!(
            "fails SQLite's integrity check: {}",
            problems.join("; ")
        ));
    }
    Ok(summary)
}

/// Whether `conn` holds an inquiryd database of a known schema version; what it holds, or why
/// not.
fn inspect(conn: &Connection) -> Result<Summary, String> {
    let not_sqlite = |e: rusqlite::Error| format!("not a usable SQLite database: {e}");
    let pragma = |name: &str| -> Result<i64, String> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(not_sqlite)
    };
    let app_id = pragma("application_id")?;
    let version = pragma("user_version")?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(not_sqlite)?;
    let missing: Vec<&str> = TABLES
        .iter()
        .copied()
        .filter(|t| !tables.iter().any(|have| have == t))
        .collect();
    if app_id == 0 || version == 0 || !missing.is_empty() {
        return Err(format!(
            "not an inquiryd database (application_id {app_id}, schema version {version}{})",
            if missing.is_empty() {
                String::new()
            } else {
                format!(", no table {}", missing.join(", "))
            }
        ));
    }
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(format!(
            "schema version {version} is newer than this inquiryd supports ({supported}); upgrade inquiryd first"
        ));
    }
    let count = |table: &str| -> Result<i64, String> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(not_sqlite)
    };
    Ok(Summary {
        schema_version: version,
        users: count("users")?,
        tokens: count("tokens")?,
        inquiries: count("inquiries")?,
        bytes: 0,
    })
}
