//! The auth snapshot: every user, token hash and permission, held in memory so the hot path makes
//! no database round trip to authenticate or authorise.
//!
//! Freshness: triggers bump `auth_version` on every change to the auth tables, from any process
//! (server or CLI). A poller reads that one integer every [`POLL_INTERVAL`] and, when it moved,
//! rebuilds the snapshot in one read transaction and swaps it in atomically. The server's own
//! writes (login, logout, admin routes) refresh synchronously so their effect is visible to the
//! next request. A token the snapshot does not know may have been created a moment ago by another
//! process (`inquiryd token create`): the request then reads the counter at once, on its worker's
//! own connection, and [`AuthCache::catch_up`] rebuilds only when it moved (concurrent callers
//! share one rebuild), so such a token works for the very next request, a flood of unknown tokens
//! costs one indexed read each and no rebuild, and known tokens never touch the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::db::{self, Pool};
use crate::model::UserId;
use crate::periodic::Periodic;

/// How often the poller checks the change counter; CLI changes reach requests within this plus
/// the rebuild time.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A user as the auth layer sees it.
#[derive(Debug)]
pub struct UserEntry {
    pub id: UserId,
    pub username: String,
    pub name: String,
    pub active: bool,
    pub roles: Vec<String>,
}

#[derive(Debug)]
struct TokenEntry {
    user: Arc<UserEntry>,
    expires_at: i64,
}

/// One consistent view of users, tokens and permissions.
#[derive(Debug, Default)]
pub struct AuthSnapshot {
    version: i64,
    /// Keyed by the raw SHA-256 of the token, so a lookup hashes without allocating.
    tokens: HashMap<[u8; 32], TokenEntry>,
    users_by_name: HashMap<String, Arc<UserEntry>>,
    permissions: HashMap<String, Vec<String>>,
}

impl AuthSnapshot {
    /// The active user that `token` belongs to, if it is known, unexpired and issued to `user_id`.
    pub fn authenticate(&self, user_id: &str, token: &str, now: i64) -> Option<&Arc<UserEntry>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let entry = self.tokens.get(&digest)?;
        let owner_matches: bool =
            subtle::ConstantTimeEq::ct_eq(entry.user.id.as_str().as_bytes(), user_id.as_bytes())
                .into();
        (owner_matches && entry.expires_at > now && entry.user.active).then_some(&entry.user)
    }

    /// The active user a token belongs to, for `{"resume": token}` logins.
    pub fn resume(&self, token: &str, now: i64) -> Option<&Arc<UserEntry>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let entry = self.tokens.get(&digest)?;
        (entry.expires_at > now && entry.user.active).then_some(&entry.user)
    }

    /// The auth change counter this snapshot was read at: equal versions, equal contents.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Whether one of `roles` is listed for `permission`. A missing permission denies.
    pub fn roles_have(&self, roles: &[String], permission: &str) -> bool {
        self.permissions
            .get(permission)
            .is_some_and(|allowed| roles.iter().any(|r| allowed.contains(r)))
    }

    pub fn user_by_name(&self, username: &str) -> Option<&Arc<UserEntry>> {
        self.users_by_name.get(username)
    }

    /// Whether any valid token hashes to Rocket.Chat's `hashedToken` form given (demo check).
    pub fn token_valid_hashed(&self, hashed_b64: &str, now: i64) -> bool {
        decode_hash(hashed_b64)
            .and_then(|d| self.tokens.get(&d))
            .is_some_and(|e| e.expires_at > now && e.user.active)
    }
}

fn decode_hash(b64: &str) -> Option<[u8; 32]> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()?
        .try_into()
        .ok()
}

/// Reads a whole snapshot in one read transaction.
fn load(conn: &mut rusqlite::Connection) -> rusqlite::Result<AuthSnapshot> {
    let tx = conn.transaction()?;
    let version = db::auth_version(&tx)?;
    let mut users_by_id: HashMap<String, Arc<UserEntry>> = HashMap::new();
    let mut users_by_name = HashMap::new();
    for u in db::users::list(&tx)? {
        let entry = Arc::new(UserEntry {
            id: u.id.clone(),
            username: u.username.clone(),
            name: u.name,
            active: u.active,
            roles: u.roles,
        });
        users_by_id.insert(u.id.0, entry.clone());
        users_by_name.insert(u.username, entry);
    }
    let mut tokens = HashMap::new();
    {
        let mut stmt = tx.prepare("SELECT hashed_token, user_id, expires_at FROM tokens")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let hashed: String = row.get(0)?;
            let user_id: String = row.get(1)?;
            let (Some(digest), Some(user)) = (decode_hash(&hashed), users_by_id.get(&user_id))
            else {
                continue;
            };
            tokens.insert(
                digest,
                TokenEntry {
                    user: user.clone(),
                    expires_at: row.get(2)?,
                },
            );
        }
    }
    let permissions = db::permissions::list(&tx)?.into_iter().collect();
    tx.finish()?;
    Ok(AuthSnapshot {
        version,
        tokens,
        users_by_name,
        permissions,
    })
}

/// The live snapshot and what it takes to refresh it.
pub struct AuthCache {
    current: ArcSwap<AuthSnapshot>,
    pool: Pool,
    /// When the snapshot was last known current (unix seconds): at load and at each refresh.
    checked_at: AtomicI64,
    /// Serialises rebuilds so the poller and a login handler never rebuild twice at once.
    refresh_lock: Mutex<()>,
}

impl AuthCache {
    /// Loads the first snapshot. Fails when the database cannot be read.
    pub fn load(pool: Pool) -> Result<Arc<AuthCache>, db::DbError> {
        let snapshot = load(&mut *pool.get()?)?;
        Ok(Arc::new(AuthCache {
            current: ArcSwap::from_pointee(snapshot),
            pool,
            checked_at: AtomicI64::new(db::now_secs()),
            refresh_lock: Mutex::new(()),
        }))
    }

    /// The snapshot in force now (one atomic load).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<AuthSnapshot>> {
        self.current.load()
    }

    /// The snapshot in force now, owned (for holding across a request).
    pub fn snapshot_full(&self) -> Arc<AuthSnapshot> {
        self.current.load_full()
    }

    /// For a request whose token the snapshot does not know, after the database's change counter
    /// was read as `seen`: when the snapshot is older, rebuilds it (once for all callers waiting
    /// on the same change) and returns the snapshot then in force. On a database failure the
    /// current snapshot is returned (the request answers 401 as it would have; the poller logs).
    pub fn catch_up(&self, seen: i64) -> Arc<AuthSnapshot> {
        if self.current.load().version < seen {
            let _ = self.refresh();
        }
        self.current.load_full()
    }

    /// Rebuilds the snapshot if the database's change counter moved. Returns whether it did.
    pub fn refresh(&self) -> Result<bool, db::DbError> {
        let _guard = self.refresh_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.rebuild_if_moved()
    }

    fn rebuild_if_moved(&self) -> Result<bool, db::DbError> {
        let mut conn = self.pool.get()?;
        let version = db::auth_version(&conn)?;
        if version == self.current.load().version {
            self.checked_at.store(db::now_secs(), Ordering::Relaxed);
            return Ok(false);
        }
        let snapshot = load(&mut conn)?;
        log::debug!("auth: snapshot refreshed to version {}", snapshot.version);
        self.current.store(Arc::new(snapshot));
        self.checked_at.store(db::now_secs(), Ordering::Relaxed);
        Ok(true)
    }

    /// When the snapshot in force was last known to match the database (unix seconds).
    pub fn checked_at(&self) -> i64 {
        self.checked_at.load(Ordering::Relaxed)
    }

    /// Starts the background poller; it stops when the returned handle is dropped.
    pub fn spawn_poller(self: &Arc<Self>) -> std::io::Result<Periodic> {
        let cache = Arc::downgrade(self);
        let mut failing = false;
        Periodic::spawn("auth-poller", POLL_INTERVAL, move || {
            let Some(cache) = cache.upgrade() else {
                return false;
            };
            match cache.refresh() {
                Ok(_) if failing => {
                    log::info!("auth: refresh works again");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    log::error!("auth: refresh failed, serving the last snapshot: {e}");
                    failing = true;
                }
                Err(_) => {}
            }
            true
        })
    }
}
