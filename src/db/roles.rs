//! Queries on `roles`: Rocket.Chat's role documents (`IRole`). A role's `_id` is its name, as for
//! Rocket.Chat's default roles; `user_roles` and `permissions` refer to roles by it.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Rocket.Chat's default roles (`upsertPermissions`, plus the omnichannel `livechat-monitor`):
/// name, scope, description. All protected.
pub const DEFAULTS: &[(&str, &str, &str)] = &[
    ("admin", "Users", "Admin"),
    ("moderator", "Subscriptions", "Moderator"),
    ("leader", "Subscriptions", "Leader"),
    ("owner", "Subscriptions", "Owner"),
    ("user", "Users", ""),
    ("bot", "Users", ""),
    ("app", "Users", ""),
    ("guest", "Users", ""),
    ("anonymous", "Users", ""),
    ("livechat-agent", "Users", "Livechat Agent"),
    ("livechat-manager", "Users", "Livechat Manager"),
    ("livechat-monitor", "Users", ""),
];

/// A role as Rocket.Chat's `IRole`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleRow {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub description: String,
    pub protected: bool,
    pub mandatory2fa: bool,
    pub updated_at_ms: i64,
}

/// Migration 3: the default roles, and every role already named by a user or a permission as a
/// custom (unprotected) role, so nothing granted before is lost.
pub(super) fn seed(tx: &Transaction, now_ms: i64) -> rusqlite::Result<()> {
    for (name, scope, description) in DEFAULTS {
        tx.execute(
            "INSERT OR IGNORE INTO roles (id, name, scope, description, protected, mandatory2fa, updated_at)
             VALUES (?1, ?1, ?2, ?3, 1, 0, ?4)",
            params![name, scope, description, now_ms],
        )?;
    }
    tx.execute(
        "INSERT OR IGNORE INTO roles (id, name, scope, description, protected, mandatory2fa, updated_at)
         SELECT role, role, 'Users', '', 0, 0, ?1 FROM
             (SELECT role FROM user_roles UNION SELECT role FROM permissions)",
        [now_ms],
    )?;
    Ok(())
}

fn row_to_role(r: &rusqlite::Row<'_>) -> rusqlite::Result<RoleRow> {
    Ok(RoleRow {
        id: r.get(0)?,
        name: r.get(1)?,
        scope: r.get(2)?,
        description: r.get(3)?,
        protected: r.get(4)?,
        mandatory2fa: r.get(5)?,
        updated_at_ms: r.get(6)?,
    })
}

const COLUMNS: &str = "id, name, scope, description, protected, mandatory2fa, updated_at";

/// Every role, ordered by name.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<RoleRow>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM roles ORDER BY name"))?;
    let rows = stmt.query_map([], row_to_role)?;
    rows.collect()
}

/// The role with this id or name.
pub fn by_id_or_name(conn: &Connection, key: &str) -> rusqlite::Result<Option<RoleRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM roles WHERE id = ?1 OR name = ?1"
    ))?
    .query_row([key], row_to_role)
    .optional()
}

/// Inserts a custom (unprotected) role; returns false when the name is taken.
pub fn insert(
    conn: &Connection,
    name: &str,
    scope: &str,
    description: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO roles (id, name, scope, description, protected, mandatory2fa, updated_at)
         VALUES (?1, ?1, ?2, ?3, 0, 0, ?4)",
        params![name, scope, description, now_ms],
    )?;
    Ok(n > 0)
}

/// Deletes a role row; returns whether it existed.
pub fn delete(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM roles WHERE id = ?1", [id])? > 0)
}

/// How many users and permissions refer to the role.
pub fn uses(conn: &Connection, id: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT (SELECT count(*) FROM user_roles WHERE role = ?1),
                (SELECT count(*) FROM permissions WHERE role = ?1)",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Sets a role's scope, description and 2FA flag, stamping `_updatedAt`.
pub fn update(
    conn: &Connection,
    id: &str,
    scope: &str,
    description: &str,
    mandatory2fa: bool,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE roles SET scope = ?2, description = ?3, mandatory2fa = ?4, updated_at = ?5 WHERE id = ?1",
        params![id, scope, description, mandatory2fa, now_ms],
    )?;
    Ok(())
}

/// Renames a role: its `_id` is its name, so the users and permissions holding it follow.
pub fn rename(conn: &Connection, id: &str, new_name: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE roles SET id = ?2, name = ?2 WHERE id = ?1",
        params![id, new_name],
    )?;
    conn.execute(
        "UPDATE user_roles SET role = ?2 WHERE role = ?1",
        params![id, new_name],
    )?;
    conn.execute(
        "UPDATE permissions SET role = ?2 WHERE role = ?1",
        params![id, new_name],
    )?;
    Ok(())
}

/// The roles changed after `since_ms`.
pub fn updated_since(conn: &Connection, since_ms: i64) -> rusqlite::Result<Vec<RoleRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM roles WHERE updated_at > ?1 ORDER BY name"
    ))?;
    let rows = stmt.query_map([since_ms], row_to_role)?;
    rows.collect()
}

/// A user holding a role, as `roles.getUsersInRole` shows it.
#[derive(Debug, Clone)]
pub struct Holder {
    pub id: String,
    pub username: String,
    pub name: String,
    pub created_at_secs: i64,
}

/// One page of the users holding role `id`, by username, and how many hold it in all.
pub fn holders(
    conn: &Connection,
    id: &str,
    offset: i64,
    limit: i64,
) -> rusqlite::Result<(Vec<Holder>, i64)> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, u.username, u.name, u.created_at FROM users u
         JOIN user_roles r ON r.user_id = u.id WHERE r.role = ?1
         ORDER BY u.username LIMIT ?2 OFFSET ?3",
    )?;
    let users = stmt
        .query_map(params![id, limit, offset], |r| {
            Ok(Holder {
                id: r.get(0)?,
                username: r.get(1)?,
                name: r.get(2)?,
                created_at_secs: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = conn
        .prepare_cached("SELECT count(*) FROM user_roles WHERE role = ?1")?
        .query_row([id], |r| r.get(0))?;
    Ok((users, total))
}
