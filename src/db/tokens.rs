//! Queries on `tokens`. Only Rocket.Chat's `hashedToken` form is ever stored.

use rusqlite::{Connection, params};

use crate::model::{HashedToken, UserId};

/// Stores a login token's hash for a user, valid until `expires_at` (Unix seconds), with its
/// last six characters (Rocket.Chat's `lastTokenPart`, for `token list`).
pub fn insert(
    conn: &Connection,
    hashed: &HashedToken,
    user: &UserId,
    expires_at: i64,
    last_part: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO tokens (hashed_token, user_id, created_at, expires_at, last_part)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        hashed.as_str(),
        user.as_str(),
        super::now_secs(),
        expires_at,
        last_part
    ])?;
    Ok(())
}

/// Personal access tokens never expire (Rocket.Chat's do not): this is their `expires_at`.
pub const NEVER: i64 = i64::MAX;

/// Rocket.Chat's `lastTokenPart`: the token's last six characters.
pub fn last_part(token: &str) -> &str {
    let cut = token.char_indices().rev().nth(5).map_or(0, |(i, _)| i);
    &token[cut..]
}

/// Stores a personal access token's hash under `name`; returns false when the user already has
/// a personal token of that name.
pub fn insert_personal(
    conn: &Connection,
    hashed: &HashedToken,
    user: &UserId,
    name: &str,
    last_part: &str,
    bypass_two_factor: bool,
) -> rusqlite::Result<bool> {
    // Two-factor authentication is not offered offline: `bypassTwoFactor` is kept only to be
    // listed back, as Rocket.Chat lists it.
    let n = conn
        .prepare_cached(
            "INSERT INTO tokens (hashed_token, user_id, created_at, expires_at, kind, name, last_part,
                                 bypass_two_factor)
             VALUES (?1, ?2, ?3, ?4, 'personal', ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            hashed.as_str(),
            user.as_str(),
            super::now_secs(),
            NEVER,
            name,
            last_part,
            bypass_two_factor
        ])?;
    Ok(n > 0)
}

/// A stored token as `token list` and `users.getPersonalAccessTokens` show it: never its hash.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// `login` or `personal`.
    pub kind: String,
    pub name: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: i64,
    pub last_part: Option<String>,
    pub bypass_two_factor: bool,
}

/// The tokens of a user (personal ones only when `personal_only`), oldest first.
pub fn list(
    conn: &Connection,
    user: &UserId,
    personal_only: bool,
) -> rusqlite::Result<Vec<TokenInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, name, created_at, expires_at, last_part, bypass_two_factor FROM tokens
         WHERE user_id = ?1 AND (?2 = 0 OR kind = 'personal') ORDER BY created_at, rowid",
    )?;
    let rows = stmt.query_map(params![user.as_str(), personal_only], |r| {
        Ok(TokenInfo {
            kind: r.get(0)?,
            name: r.get(1)?,
            created_at: r.get(2)?,
            expires_at: r.get(3)?,
            last_part: r.get(4)?,
            bypass_two_factor: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Deletes a user's personal access token by name; returns whether it existed.
pub fn remove_personal(conn: &Connection, user: &UserId, name: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "DELETE FROM tokens WHERE user_id = ?1 AND kind = 'personal' AND name = ?2",
        params![user.as_str(), name],
    )?;
    Ok(n > 0)
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
