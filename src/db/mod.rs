//! The SQLite file: opening it safely (mode 0600, refusing files that are not ours or come from a
//! newer inquiryd), the r2d2 pool with its per-connection pragmas, and the numbered migrations.
//! Queries live in one file per table family: `users`, `tokens`, `permissions`, `inquiries`.

pub mod bulk;
pub mod checkpointer;
pub mod fresh;
pub mod inquiries;
pub mod permissions;
pub mod reader;
pub mod tokens;
pub mod users;

use std::path::{Path, PathBuf};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, Transaction};

pub type Pool = r2d2::Pool<SqliteConnectionManager>;
pub type PooledConn = r2d2::PooledConnection<SqliteConnectionManager>;

/// How long a writer waits for another writer (the CLI and the server share the file).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A database problem. `Open` and `Schema` are the operator's to fix (exit 1 with the message);
/// `Sqlite` and `Pool` are runtime failures.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "database {path}: schema version {found} is newer than this inquiryd supports ({supported}); upgrade inquiryd or use another file"
    )]
    Schema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::Error),
}

/// Opens (creating if needed, mode 0600) and migrates the database, and returns a pool.
///
/// Fails without modifying the file when it is not an SQLite database, is corrupt, or has a newer
/// schema than this build knows.
pub fn open(path: &Path, pool_size: u32) -> Result<Pool, DbError> {
    let open_err = open_error(path);
    create_parent_dir(path)?;
    create_private(path).map_err(|e| open_err(format!("cannot create: {e}")))?;
    check_existing(path)?;
    {
        let mut conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        apply_pragmas(&mut conn).map_err(|e| open_err(e.to_string()))?;
        migrate(&mut conn, path)?;
    }
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(apply_pragmas);
    let pool = r2d2::Pool::builder()
        .max_size(pool_size)
        .min_idle(Some(1))
        // A local file connection does not go stale; checking it on every checkout only costs.
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(15))
        .build(manager)?;
    Ok(pool)
}

/// Makes `DbError::Open` for `path` from a message.
fn open_error(path: &Path) -> impl Fn(String) -> DbError + '_ {
    move |message| DbError::Open {
        path: path.to_path_buf(),
        message,
    }
}

/// Creates the directory the database file goes in, if the path names one.
fn create_parent_dir(path: &Path) -> Result<(), DbError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|e| {
            open_error(path)(format!("cannot create directory {}: {e}", parent.display()))
        }),
        None => Ok(()),
    }
}

/// The files SQLite keeps beside a database, by suffix; it applies a WAL or journal it finds.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates the file with mode 0600 if it does not exist, so no other user can ever read it. The
/// WAL and shm files SQLite creates later take the database file's permissions.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads the header and schema version read-only, so a foreign or corrupt file is refused before
/// anything (WAL mode, migrations) could write to it.
fn check_existing(path: &Path) -> Result<(), DbError> {
    let open_err = open_error(path);
    roll_back_interrupted_write(path)?;
    let len = std::fs::metadata(path)
        .map_err(|e| open_err(e.to_string()))?
        .len();
    if len == 0 {
        return Ok(());
    }
    // A database file is whole pages. A shorter tail was cut off (an interrupted copy, a full
    // disk), and SQLite would read the missing bytes of the last page as zeros without a word.
    if let Some(page) = page_size(path).map_err(|e| open_err(e.to_string()))?
        && len % page != 0
    {
        return Err(open_err(format!(
            "not a usable SQLite database: truncated ({len} bytes is not a whole number of {page}-byte pages)"
        )));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_err(e.to_string()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_err(e.to_string()))?;
    let not_ours = |e: rusqlite::Error| unusable(path, e);
    // Reading the schema is what fails on a file that is not SQLite.
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(not_ours)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(not_ours)?;
    check_version(path, version)?;
    if version == 0 && tables > 0 {
        return Err(open_err(
            "holds tables but no inquiryd schema version; refusing to touch it".into(),
        ));
    }
    Ok(())
}

/// Why reading an existing file's schema failed: locked by a writer, or not a database inquiryd
/// can use.
fn unusable(path: &Path, e: rusqlite::Error) -> DbError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            open_error(path)(format!(
                "another process holds it locked for writing ({e}): an `inquiry import` with no server running writes through a rollback journal; try again when it is done"
            ))
        }
        e => open_error(path)(format!("not a usable SQLite database: {e}")),
    }
}

/// A write through a rollback journal (an import while nothing else had the database open) that
/// was interrupted leaves its journal beside the file, and the file half-written. SQLite puts the
/// old pages back from such a "hot" journal when a connection that may write next reads the
/// database; a read-only one cannot, and fails with `SQLITE_READONLY_ROLLBACK`, which is also how
/// a hot journal is told from the journal of an import still at work. So a read-only probe first,
/// and on that answer a connection that may write reads the file.
fn roll_back_interrupted_write(path: &Path) -> Result<(), DbError> {
    if !sibling(path, "-journal").exists() {
        return Ok(());
    }
    let open_err = open_error(path);
    let read_schema = |flags: OpenFlags| -> rusqlite::Result<i64> {
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
    };
    match read_schema(OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK =>
        {
            read_schema(OpenFlags::SQLITE_OPEN_READ_WRITE)
                .map_err(|e| open_err(format!("cannot roll back an interrupted write: {e}")))?;
            log::warn!(
                "database {}: rolled back a write that was interrupted (its journal was left beside it)",
                path.display()
            );
        }
        Err(e @ rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            return Err(unusable(path, e));
        }
        // Not hot (a writer is at work), or not a database: the checks that follow say which.
        _ => {}
    }
    Ok(())
}

/// Refuses a schema version newer than the migrations this build knows.
fn check_version(path: &Path, found: i64) -> Result<(), DbError> {
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(DbError::Schema {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    Ok(())
}

/// The page size an SQLite file's header declares, or `None` when the file does not start with
/// an SQLite header (SQLite itself then says what is wrong).
fn page_size(path: &Path) -> std::io::Result<Option<u64>> {
    use std::io::Read;
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path)?;
    if file.read_exact(&mut header).is_err() || !header.starts_with(b"SQLite format 3\0") {
        return Ok(None);
    }
    // Bytes 16-17, big-endian; 1 stands for 65536.
    Ok(match u16::from_be_bytes([header[16], header[17]]) {
        1 => Some(65_536),
        n if n >= 512 && n.is_power_of_two() => Some(u64::from(n)),
        _ => None,
    })
}

fn apply_pragmas(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // FULL: a committed write survives power loss too; writes are rare (logins, admin edits).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
}

type Migration = fn(&Transaction) -> rusqlite::Result<()>;

/// Numbered migrations: index + 1 is the schema version (`PRAGMA user_version`) it produces.
/// Append only; never edit a released one.
const MIGRATIONS: &[Migration] = &[migration_1, migration_2];

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    check_version(path, version)?;
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Re-check inside the write lock: another process may have migrated meanwhile.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        migration(&tx)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        log::info!("database: migrated schema to version {}", i + 1);
    }
    Ok(())
}

fn migration_1(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE users (
             id TEXT PRIMARY KEY,
             username TEXT NOT NULL UNIQUE,
             name TEXT NOT NULL,
             password_hash TEXT,
             active INTEGER NOT NULL DEFAULT 1,
             created_at INTEGER NOT NULL
         );
         CREATE TABLE user_roles (
             user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
             role TEXT NOT NULL,
             PRIMARY KEY (user_id, role)
         );
         CREATE TABLE tokens (
             hashed_token TEXT PRIMARY KEY,
             user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
             created_at INTEGER NOT NULL,
             expires_at INTEGER NOT NULL
         );
         CREATE INDEX tokens_user ON tokens(user_id);
         CREATE TABLE permissions (
             permission TEXT NOT NULL,
             role TEXT NOT NULL,
             PRIMARY KEY (permission, role)
         );
         CREATE TABLE inquiries (
             id TEXT PRIMARY KEY,
             rid TEXT NOT NULL,
             doc TEXT NOT NULL
         );
         CREATE INDEX inquiries_rid ON inquiries(rid, id);
         CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         -- Bumped by triggers on every auth-relevant change, from any process; the server polls it
         -- to refresh its in-memory auth snapshot.
         CREATE TABLE auth_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
         INSERT INTO auth_version VALUES (1, 0);",
    )?;
    for table in ["users", "user_roles", "tokens", "permissions"] {
        for event in ["INSERT", "UPDATE", "DELETE"] {
            tx.execute_batch(&format!(
                "CREATE TRIGGER {table}_{ev}_bump AFTER {event} ON {table}
                 BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;",
                ev = event.to_ascii_lowercase()
            ))?;
        }
    }
    permissions::seed_defaults(tx)
}

/// The `rid` index without `id`: a third of the size, so a worker's page cache holds all of it
/// for a few hundred thousand inquiries. Equal `rid`s stay in insertion (rowid) order, which is
/// the order a lookup returns, as MongoDB's natural order does.
fn migration_2(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "DROP INDEX inquiries_rid;
         CREATE INDEX inquiries_rid ON inquiries(rid);",
    )
}

/// The auth change counter (see `auth_version`).
pub fn auth_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT version FROM auth_version WHERE id = 1")?
        .query_row([], |r| r.get(0))
}

pub fn meta_get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

pub fn meta_set(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows in `table` of the database at `path` (for this module's tests and its children's).
    pub(in crate::db) fn rows(path: &Path, table: &str) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// A journal whose writer is at work is left to it; the same files with the writer gone
    /// (copied mid-transaction, as a kill -9 leaves them) are rolled back on open.
    #[test]
    fn a_live_journal_is_left_alone_and_a_hot_one_rolled_back() {
        let d = tempfile::tempdir().unwrap();
        let live = d.path().join("live.sqlite3");
        let mut writer = Connection::open(&live).unwrap();
        apply_pragmas(&mut writer).unwrap();
        migrate(&mut writer, &live).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = DELETE;
                 BEGIN IMMEDIATE;
                 INSERT INTO meta VALUES ('k', 'v');",
            )
            .unwrap();
        assert!(sibling(&live, "-journal").exists());
        check_existing(&live).unwrap();
        assert!(
            sibling(&live, "-journal").exists(),
            "the writer's journal is untouched"
        );

        // Enough rows through a one-page cache that the writer syncs its journal and writes pages
        // into the file: a kill from here on leaves a journal SQLite must play back.
        writer.pragma_update(None, "cache_size", 1).unwrap();
        for i in 0..2_000 {
            writer
                .execute(
                    "INSERT INTO meta VALUES (?1, ?2)",
                    (format!("key-{i}"), "x".repeat(200)),
                )
                .unwrap();
        }
        let hot = d.path().join("hot.sqlite3");
        std::fs::copy(&live, &hot).unwrap();
        std::fs::copy(sibling(&live, "-journal"), sibling(&hot, "-journal")).unwrap();
        check_existing(&hot).unwrap();
        assert!(!sibling(&hot, "-journal").exists(), "rolled back");
        assert_eq!(rows(&hot, "meta"), 0);

        writer.execute_batch("COMMIT").unwrap();
        assert_eq!(rows(&live, "meta"), 2_001);
    }
}
