//! Queries on `users` and `user_roles`.

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::UserId;

/// A user as the CLI and the API show it.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub name: String,
    pub active: bool,
    pub roles: Vec<String>,
    pub password_hash: Option<String>,
}

/// A failed user change the operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no user named {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Inserts a user with its roles within the caller's transaction; returns false when the
/// username or id is taken.
pub fn insert(
    conn: &Connection,
    id: &UserId,
    username: &str,
    name: &str,
    password_hash: Option<&str>,
    roles: &[String],
) -> rusqlite::Result<bool> {
    let inserted = conn.execute(
        "INSERT INTO users (id, username, name, password_hash, active, created_at)
         VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT DO NOTHING",
        params![
            id.as_str(),
            username,
            name,
            password_hash,
            super::now_secs()
        ],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    insert_roles(conn, id, roles)?;
    Ok(true)
}

/// Replaces a user's roles within the caller's transaction.
pub fn replace_roles(conn: &Connection, id: &UserId, roles: &[String]) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM user_roles WHERE user_id = ?1", [id.as_str()])?;
    insert_roles(conn, id, roles)
}

fn insert_roles(conn: &Connection, id: &UserId, roles: &[String]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO user_roles (user_id, role) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    for role in roles {
        stmt.execute(params![id.as_str(), role])?;
    }
    Ok(())
}

/// Every user with roles, ordered by username.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<UserRow>> {
    let mut stmt = conn.prepare(
        "SELECT u.id, u.username, u.name, u.active, u.password_hash,
                COALESCE((SELECT group_concat(role, char(31)) FROM
                    (SELECT role FROM user_roles r WHERE r.user_id = u.id ORDER BY role)), '')
         FROM users u ORDER BY u.username",
    )?;
    let rows = stmt.query_map([], row_to_user)?;
    rows.collect()
}

fn row_to_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    let roles: String = r.get(5)?;
    Ok(UserRow {
        id: UserId(r.get(0)?),
        username: r.get(1)?,
        name: r.get(2)?,
        active: r.get(3)?,
        password_hash: r.get(4)?,
        roles: roles
            .split('\u{1f}')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// Looks a user up by username.
pub fn by_username(conn: &Connection, username: &str) -> rusqlite::Result<Option<UserRow>> {
    conn.prepare_cached(
        "SELECT u.id, u.username, u.name, u.active, u.password_hash,
                COALESCE((SELECT group_concat(role, char(31)) FROM
                    (SELECT role FROM user_roles r WHERE r.user_id = u.id ORDER BY role)), '')
         FROM users u WHERE u.username = ?1",
    )?
    .query_row([username], row_to_user)
    .optional()
}

/// Activates or deactivates a user. Fails with `NotFound` for an unknown username.
pub fn set_active(conn: &Connection, username: &str, active: bool) -> Result<(), UserError> {
    let n = conn.execute(
        "UPDATE users SET active = ?1 WHERE username = ?2",
        params![active, username],
    )?;
    if n == 0 {
        return Err(UserError::NotFound(username.to_string()));
    }
    Ok(())
}
