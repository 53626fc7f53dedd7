//! Queries on `users` and `user_roles`.

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::UserId;

/// The columns [`row_to_user`] reads, from `users u`.
macro_rules! user_select {
    () => {
        "SELECT u.id, u.username, u.name, u.active, u.password_hash,
                COALESCE((SELECT group_concat(role, char(31)) FROM
                    (SELECT role FROM user_roles r WHERE r.user_id = u.id ORDER BY role)), ''),
                u.email, u.created_at
         FROM users u"
    };
}

/// A user as the CLI and the API show it.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub name: String,
    pub active: bool,
    pub roles: Vec<String>,
    pub password_hash: Option<String>,
    /// The user's email address (Rocket.Chat's `emails[0].address`), when one was given.
    pub email: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
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
    let mut stmt = conn.prepare(concat!(user_select!(), " ORDER BY u.username"))?;
    let rows = stmt.query_map([], row_to_user)?;
    rows.collect()
}

fn row_to_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    let roles: String = r.get(5)?;
    Ok(UserRow {
        email: r.get(6)?,
        created_at: r.get(7)?,
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
    conn.prepare_cached(concat!(user_select!(), " WHERE u.username = ?1"))?
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

/// Looks a user up by id.
pub fn by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<UserRow>> {
    conn.prepare_cached(concat!(user_select!(), " WHERE u.id = ?1"))?
        .query_row([id], row_to_user)
        .optional()
}

/// Whether some user other than `except` has this email (compared case-insensitively, as
/// Rocket.Chat's `checkEmailAvailability` does).
pub fn email_taken(
    conn: &Connection,
    email: &str,
    except: Option<&UserId>,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS(SELECT 1 FROM users WHERE lower(email) = lower(?1) AND id IS NOT ?2)",
    )?
    .query_row(params![email, except.map(UserId::as_str)], |r| r.get(0))
}

/// A column `users.list` may sort on, and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Id,
    Username,
    /// Rocket.Chat sorts `name` by its `nameInsensitive`.
    Name,
    /// Rocket.Chat maps `status` to `active`.
    Active,
    CreatedAt,
    Email,
}

impl SortKey {
    fn column(self) -> &'static str {
        match self {
            SortKey::Id => "u.id",
            SortKey::Username => "u.username",
            SortKey::Name => "lower(u.name)",
            SortKey::Active => "u.active",
            SortKey::CreatedAt => "u.created_at",
            SortKey::Email => "u.email",
        }
    }
}

/// One page of users in `sort` order (ties broken by id), skipping `offset`, at most `limit`
/// (None: all), and how many users there are in all.
pub fn page(
    conn: &Connection,
    sort: &[(SortKey, bool)],
    offset: u64,
    limit: Option<u64>,
    filter: Option<impl Fn(&UserRow) -> bool>,
) -> rusqlite::Result<(Vec<UserRow>, u64)> {
    // Only fixed column names and ASC/DESC are put into the SQL text; values are bound.
    let mut order: Vec<String> = sort
        .iter()
        .map(|(k, asc)| format!("{} {}", k.column(), if *asc { "ASC" } else { "DESC" }))
        .collect();
    order.push("u.id ASC".into());
    let offset_n = i64::try_from(offset).unwrap_or(i64::MAX);
    let limit_n = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let Some(filter) = filter else {
        let sql = format!(
            "{} ORDER BY {} LIMIT ?1 OFFSET ?2",
            user_select!(),
            order.join(", ")
        );
        let rows = conn
            .prepare(&sql)?
            .query_map(params![limit_n, offset_n], row_to_user)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let total: i64 = conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
        return Ok((rows, total.max(0) as u64));
    };
    // A search (regular expressions) is matched here rather than in SQL: the users table of an
    // admin's install is small, and the same rows give the page and the total.
    let sql = format!("{} ORDER BY {}", user_select!(), order.join(", "));
    let mut stmt = conn.prepare(&sql)?;
    let mut matched = Vec::new();
    let mut total = 0u64;
    for row in stmt.query_map([], row_to_user)? {
        let row = row?;
        if !filter(&row) {
            continue;
        }
        total += 1;
        if total > offset && limit.is_none_or(|l| (matched.len() as u64) < l) {
            matched.push(row);
        }
    }
    Ok((matched, total))
}

/// Sets what `users.update` may change besides roles and activity: each `Some` is written.
pub fn update_profile(
    conn: &Connection,
    id: &UserId,
    name: Option<&str>,
    email: Option<&str>,
    password_hash: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE users SET name = COALESCE(?2, name), email = COALESCE(?3, email),
                password_hash = COALESCE(?4, password_hash)
         WHERE id = ?1",
        params![id.as_str(), name, email, password_hash],
    )?;
    Ok(())
}

/// Sets a new user's email (None leaves it unset).
pub fn set_email(conn: &Connection, id: &UserId, email: Option<&str>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE users SET email = ?2 WHERE id = ?1",
        params![id.as_str(), email],
    )?;
    Ok(())
}
