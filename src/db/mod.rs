//! The SQLite file: opening it safely (mode 0600, refusing files that are not ours or come from a
//! newer inquiryd), the r2d2 pool with its per-connection pragmas, and the numbered migrations.
//! Queries live in one file per table family: `users`, `tokens`, `permissions`, `inquiries`.

pub mod backup;
pub mod bulk;
pub mod checkpointer;
pub mod file;
pub mod fresh;
pub mod inquiries;
pub mod permissions;
pub mod reader;
pub mod roles;
pub mod tokens;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    prepare(path)?;
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(apply_pragmas);
    build_pool(manager, pool_size)
}

/// As [`open`], for the server: first takes the lock beside the file that tells CLI commands a
/// server has it open (see [`file`]); every pooled connection refuses to open when the path no
/// longer names the file in use, and refuses to read or commit while [`file::DbWatch`] knows of
/// a problem (the error maps to a 503; see [`unavailable`]). Returns the pool and the watch,
/// with the files in use recorded.
pub fn open_server(path: &Path, pool_size: u32) -> Result<(Pool, Arc<file::DbWatch>), DbError> {
    // Another server may have the old file open while the path names another (or nothing).
    file::check_beside_server(path)?;
    create_parent_dir(path)?;
    let watch = Arc::new(file::DbWatch::lock(path)?);
    let app_id = prepare(path)?;
    let hooked = watch.clone();
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(move |conn| {
            if !hooked.names_the_file_in_use() {
                return Err(refused("the path no longer names the database file in use"));
            }
            apply_pragmas(conn)?;
            // Reads too: what a file copied over this one holds is no answer (a login would
            // fail against another database's users). Returning true interrupts the statement
            // (SQLITE_INTERRUPT); these connections serve logins and refreshes, not getOne.
            let watch = hooked.clone();
            conn.progress_handler(4, Some(move || !watch.usable()))?;
            // And a commit that slipped past turns into a rollback (SQLITE_CONSTRAINT_COMMITHOOK).
            let watch = hooked.clone();
            conn.commit_hook(Some(move || !watch.usable()))
        });
    let pool = build_pool(manager, pool_size)?;
    watch.record(app_id)?;
    Ok((pool, watch))
}

/// Creates (or checks) the file, refuses what cannot be used, migrates, and returns the
/// database's `application_id`.
fn prepare(path: &Path) -> Result<u32, DbError> {
    let open_err = open_error(path);
    check_regular(path)?;
    create_parent_dir(path)?;
    create_private(path)
        .map_err(|e| open_err(format!("cannot create: {}", describe_io(&e, path))))?;
    check_writable(path)?;
    check_existing(path)?;
    let mut conn = Connection::open(path).map_err(|e| open_err(diagnose(path, &e)))?;
    apply_pragmas(&mut conn).map_err(|e| open_err(diagnose(path, &e)))?;
    migrate(&mut conn, path)?;
    ensure_app_id(&mut conn)
}

fn build_pool(manager: SqliteConnectionManager, pool_size: u32) -> Result<Pool, DbError> {
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

/// Refuses a database, sidecar or lock file that is there but is not a regular file (a FIFO, a
/// socket, a device, a directory): SQLite, or the lock's reader, would wait on a FIFO forever.
pub(crate) fn check_regular(path: &Path) -> Result<(), DbError> {
    let sidecars = SIDECARS.iter().chain(&[".lock"]).map(|s| sibling(path, s));
    crate::regular::check(path).map_err(|e| open_error(path)(e.to_string()))?;
    for p in sidecars {
        crate::regular::check(&p).map_err(|e| open_error(path)(format!("{}: {e}", p.display())))?;
    }
    Ok(())
}

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
    let mut file = crate::regular::open(path)?;
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
    // journal_size_limit: a WAL that a checkpoint has emptied is cut back to this size when the
    // next write starts it over, so a large write (an import) does not keep its size on disk.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA journal_size_limit = 4194304;",
    )
}

/// Gives the database a random `application_id` if it has none, and returns it. It identifies
/// this database's contents: a server notices when another database is copied over its file
/// (same inode, other contents; see [`file`]).
fn ensure_app_id(conn: &mut Connection) -> Result<u32, DbError> {
    let read = |c: &Connection| c.query_row("PRAGMA application_id", [], |r| r.get::<_, i64>(0));
    if read(conn)? == 0 {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if read(&tx)? == 0 {
            let id = rand::random::<u32>().max(1) as i32;
            tx.pragma_update(None, "application_id", id)?;
        }
        tx.commit()?;
    }
    Ok(read(conn)? as u32)
}

/// An error for a connection refused by inquiryd itself (it maps to a 503).
pub(crate) fn refused(why: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
        Some(format!("refused: {why}")),
    )
}

/// When a database error is about the file or the disk rather than the request (disk full, I/O
/// error, read-only, cannot open, a write refused because the file in use is no longer at its
/// path), a short cause for the log: the server answers 503 for those, not 500.
pub fn unavailable(e: &rusqlite::Error) -> Option<&'static str> {
    use rusqlite::ErrorCode as C;
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return None;
    };
    Some(match f.code {
        C::DiskFull => "the disk is full",
        C::SystemIoFailure => "an I/O error on the database file",
        C::ReadOnly => "the database cannot be written (read-only)",
        C::CannotOpen => "the database file cannot be opened",
        // Only the server's own check interrupts a statement (see `open_server`).
        C::OperationInterrupted => "refused: the database file in use is no longer at its path",
        C::ConstraintViolation
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_COMMITHOOK =>
        {
            "write refused: the database file in use is no longer at its path"
        }
        _ => return None,
    })
}

/// A file-system error on `path`, said for an operator: a read-only mount, missing permission
/// and a full disk by name.
pub(crate) fn describe_io(e: &std::io::Error, path: &Path) -> String {
    let shown = path.display();
    match e.raw_os_error() {
        Some(libc::EROFS) => format!("{e}: {shown} is on a read-only file system"),
        Some(libc::EACCES | libc::EPERM) => {
            // The owner of /proc/self is the effective uid (no unsafe geteuid call).
            let uid = std::fs::metadata("/proc/self").map_or_else(
                |_| "this user".to_string(),
                |m| format!("uid {}", std::os::unix::fs::MetadataExt::uid(&m)),
            );
            format!("{e}: {uid} may not write {shown}")
        }
        Some(libc::ENOSPC | libc::EDQUOT) => format!("{e}: the disk is full"),
        _ => e.to_string(),
    }
}

/// What an operator must know when the database or its directory cannot be written.
const WRITABLE_WHY: &str = "inquiryd writes logins and tokens to the database, and SQLite creates its -wal and -shm files beside it, so both the file and its directory must be writable by the user inquiryd runs as";

/// Refuses a database file this process cannot write, or whose directory it cannot create the
/// `-wal` and `-shm` files in, with the reason, rather than starting and failing every login.
fn check_writable(path: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::OpenOptionsExt;
    let open_err = open_error(path);
    let cannot = |what: &Path, e: &std::io::Error, on: &Path| {
        open_err(format!(
            "cannot write {}: {}; {WRITABLE_WHY}",
            what.display(),
            describe_io(e, on)
        ))
    };
    let writable = |p: &Path| std::fs::OpenOptions::new().read(true).write(true).open(p);
    writable(path).map_err(|e| cannot(path, &e, path))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    for suffix in ["-wal", "-shm"] {
        let side = sibling(path, suffix);
        if side.exists() {
            writable(&side).map_err(|e| cannot(&side, &e, &side))?;
            continue;
        }
        // SQLite will create it: the directory must take a new file.
        let probe = sibling(path, &format!(".probe-{}", std::process::id()));
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&probe)
        };
        let created = match create() {
            // Left by a process of the same id that died between creating and removing it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&probe);
                create()
            }
            other => other,
        };
        match created {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => return Err(cannot(dir, &e, dir)),
        }
        break;
    }
    Ok(())
}

/// An SQLite error at open, with the file-system cause when there is one.
fn diagnose(path: &Path, e: &rusqlite::Error) -> String {
    match check_writable(path) {
        Err(DbError::Open { message, .. }) => message,
        _ => e.to_string(),
    }
}

type Migration = fn(&Transaction) -> rusqlite::Result<()>;

/// Numbered migrations: index + 1 is the schema version (`PRAGMA user_version`) it produces.
/// Append only; never edit a released one.
const MIGRATIONS: &[Migration] = &[
    migration_1,
    migration_2,
    migration_3,
    migration_4,
    migration_5,
];

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

/// Issue 13's admin schema: roles as rows (seeded with Rocket.Chat's defaults; roles already in
/// use become custom roles), one row per permission id with its `_updatedAt` (so a permission may
/// have no role, and `listAll?updatedSince` works) and the role order Rocket.Chat keeps, the trash
/// of removed permission ids, personal access tokens beside login tokens, and the audit trail.
fn migration_3(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE roles (
             id TEXT PRIMARY KEY,
             name TEXT NOT NULL UNIQUE,
             scope TEXT NOT NULL CHECK (scope IN ('Users', 'Subscriptions')),
             description TEXT NOT NULL DEFAULT '',
             protected INTEGER NOT NULL DEFAULT 0,
             mandatory2fa INTEGER NOT NULL DEFAULT 0,
             updated_at INTEGER NOT NULL
         );
         CREATE TABLE permission_defs (id TEXT PRIMARY KEY, updated_at INTEGER NOT NULL);
         CREATE TABLE permission_trash (id TEXT PRIMARY KEY, deleted_at INTEGER NOT NULL);
         ALTER TABLE permissions ADD COLUMN pos INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'login'
             CHECK (kind IN ('login', 'personal'));
         ALTER TABLE tokens ADD COLUMN name TEXT;
         ALTER TABLE tokens ADD COLUMN last_part TEXT;
         CREATE UNIQUE INDEX tokens_personal_name ON tokens(user_id, name) WHERE kind = 'personal';
         CREATE TABLE audit (
             id INTEGER PRIMARY KEY,
             at_ms INTEGER NOT NULL,
             actor TEXT NOT NULL,
             actor_kind TEXT NOT NULL,
             kind TEXT NOT NULL,
             subject TEXT NOT NULL,
             before TEXT,
             after TEXT
         );
         CREATE INDEX audit_at ON audit(at_ms);
         CREATE INDEX audit_actor ON audit(actor, at_ms);",
    )?;
    for event in ["INSERT", "UPDATE", "DELETE"] {
        tx.execute_batch(&format!(
            "CREATE TRIGGER roles_{ev}_bump AFTER {event} ON roles
             BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;",
            ev = event.to_ascii_lowercase()
        ))?;
    }
    let now = now_ms();
    roles::seed(tx, now)?;
    permissions::seed_defs(tx, now)?;
    // Default permissions may name default roles nothing used before.
    roles::seed(tx, now)
}

/// Users get an email address (`users.create` requires one; `users.info` and `/me` show it as
/// Rocket.Chat's `emails`), unique regardless of case as Rocket.Chat keeps it; personal access
/// tokens keep Rocket.Chat's `bypassTwoFactor` flag.
fn migration_4(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "ALTER TABLE users ADD COLUMN email TEXT;
         ALTER TABLE tokens ADD COLUMN bypass_two_factor INTEGER NOT NULL DEFAULT 0;
         CREATE UNIQUE INDEX users_email ON users(lower(email)) WHERE email IS NOT NULL;",
    )
}

/// Default permissions added after migration 3 (`edit-other-user-password`) are inserted when
/// missing, as migration 3 did for the others: an admin's changes to existing ones stay.
fn migration_5(tx: &Transaction) -> rusqlite::Result<()> {
    permissions::seed_defs(tx, now_ms())
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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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

    /// While the path does not name the file in use, a server's pooled connections refuse to
    /// read or write (with an error that maps to a 503); once it is back, they work again.
    #[test]
    fn a_server_connection_refuses_writes_while_its_file_is_away() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("db.sqlite3");
        let (pool, watch) = open_server(&path, 2).unwrap();
        let conn = pool.get().unwrap();
        let write = || conn.execute("INSERT INTO meta VALUES ('k', 'v')", []);
        let aside = d.path().join("aside.sqlite3");
        std::fs::rename(&path, &aside).unwrap();
        assert!(watch.check().is_some());
        let err = write().unwrap_err();
        let cause = unavailable(&err).expect("a 503 cause");
        assert!(cause.contains("no longer at its path"), "{cause}");
        let read = conn.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0));
        assert!(
            unavailable(&read.unwrap_err()).is_some(),
            "reads refused too"
        );
        assert!(
            !path.exists(),
            "nothing created at the path; a new connection is refused"
        );
        std::fs::rename(&aside, &path).unwrap();
        assert_eq!(watch.check(), None);
        write().unwrap();
        assert_eq!(rows(&path, "meta"), 1);
    }

    /// Migration 3 on a version-2 database: roles in use become custom roles, an admin's change
    /// to a default permission survives, new defaults appear, and every permission has a row.
    #[test]
    fn migration_3_keeps_what_was_granted_and_adds_the_defaults() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (i, m) in MIGRATIONS[..2].iter().enumerate() {
            let tx = conn.transaction().unwrap();
            m(&tx).unwrap();
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        conn.execute_batch(
            "INSERT INTO users VALUES ('u1', 'nina', 'Nina', NULL, 1, 0);
             INSERT INTO user_roles VALUES ('u1', 'night-shift');
             INSERT INTO permissions (permission, role) VALUES ('my-perm', 'auditor');
             DELETE FROM permissions WHERE permission = 'view-l-room' AND role = 'livechat-agent';",
        )
        .unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        let role = |name: &str| roles::by_id_or_name(&conn, name).unwrap();
        assert!(!role("night-shift").unwrap().protected);
        assert!(!role("auditor").unwrap().protected);
        let admin = role("admin").unwrap();
        assert!(admin.protected && admin.description == "Admin" && admin.scope == "Users");
        assert_eq!(role("moderator").unwrap().scope, "Subscriptions");
        assert!(role("livechat-monitor").unwrap().protected);
        let docs = permissions::docs(&conn, None).unwrap();
        let roles_of = |id: &str| docs.iter().find(|d| d.id == id).unwrap().roles.clone();
        assert_eq!(
            roles_of("view-l-room"),
            ["livechat-manager", "livechat-monitor", "admin"]
        );
        assert_eq!(roles_of("my-perm"), ["auditor"]);
        assert_eq!(
            roles_of("view-d-room"),
            ["admin", "user", "bot", "app", "guest"]
        );
        assert_eq!(roles_of("create-personal-access-tokens"), ["admin", "user"]);
    }

    #[test]
    fn file_system_errors_name_the_read_only_mount_and_the_user() {
        let p = Path::new("/srv/db.sqlite3");
        let ro = describe_io(&std::io::Error::from_raw_os_error(libc::EROFS), p);
        assert!(
            ro.contains("/srv/db.sqlite3 is on a read-only file system"),
            "{ro}"
        );
        let denied = describe_io(&std::io::Error::from_raw_os_error(libc::EACCES), p);
        assert!(denied.contains("may not write /srv/db.sqlite3"), "{denied}");
        let full = describe_io(&std::io::Error::from_raw_os_error(libc::ENOSPC), p);
        assert!(full.contains("the disk is full"), "{full}");
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
