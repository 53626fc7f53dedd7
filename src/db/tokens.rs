//! Queries on `tokens`. Only Rocket.Chat's `hashedToken` form is ever stored.

use rusqlite::{Connection, params};

use crate::model::{HashedToken, UserId};

/// Stores a token hash for a user, valid until `expires_at` (Unix seconds).
pub fn insert(
    conn: &Connection,
    hashed: &HashedToken,
    user: &UserId,
    expires_at: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO tokens (hashed_token, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        hashed.as_str(),
        user.as_str(),
        super::now_secs(),
        expires_at
    ])?;
    Ok(())
}

/// Revokes one token of a user; returns whether it existed.
pub fn revoke(conn: &Connection, user: &UserId, hashed: &HashedToken) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "DELETE FROM tokens WHERE hashed_token = ?1 AND user_id = ?2",
        params![hashed.as_str(), user.as_str()],
    )?;
    Ok(n > 0)
}

/// Revokes every token of a user; returns how many there were.
pub fn revoke_all(conn: &Connection, user: &UserId) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM tokens WHERE user_id = ?1", [user.as_str()])
}

/// Removes tokens that expired before `now`; returns how many.
pub fn purge_expired(conn: &Connection, now: i64) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM tokens WHERE expires_at <= ?1", [now])
}
