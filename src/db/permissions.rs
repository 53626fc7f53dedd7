//! Queries on `permissions`: which roles hold which permission id, with Rocket.Chat's defaults.

use rusqlite::{Connection, Transaction, params};

/// The defaults migration 1 seeded; frozen, as released migrations are.
const DEFAULTS_V1: &[(&str, &[&str])] = &[
    (
        "view-l-room",
        &[
            "livechat-manager",
            "livechat-monitor",
            "livechat-agent",
            "admin",
        ],
    ),
    ("manage-apps", &["admin"]),
    (
        "view-livechat-manager",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    (
        "view-livechat-rooms",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    (
        "close-livechat-room",
        &[
            "livechat-manager",
            "livechat-monitor",
            "livechat-agent",
            "admin",
        ],
    ),
    (
        "close-others-livechat-room",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    (
        "save-others-livechat-room-info",
        &["livechat-manager", "livechat-monitor"],
    ),
    (
        "remove-closed-livechat-rooms",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    (
        "view-livechat-analytics",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    (
        "view-livechat-queue",
        &[
            "livechat-manager",
            "livechat-monitor",
            "livechat-agent",
            "admin",
        ],
    ),
    (
        "transfer-livechat-guest",
        &[
            "livechat-manager",
            "livechat-monitor",
            "livechat-agent",
            "admin",
        ],
    ),
    (
        "manage-livechat-agents",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    ("manage-livechat-managers", &["livechat-manager", "admin"]),
    (
        "manage-livechat-departments",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    (
        "view-livechat-departments",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    (
        "view-l-room-closed",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    (
        "view-omnichannel-contact-center",
        &[
            "livechat-manager",
            "livechat-monitor",
            "livechat-agent",
            "admin",
        ],
    ),
    ("view-user-administration", &["admin"]),
    ("view-permissions", &["admin"]),
    ("access-permissions", &["admin"]),
];

pub(super) fn seed_defaults(tx: &Transaction) -> rusqlite::Result<()> {
    let mut stmt =
        tx.prepare("INSERT OR IGNORE INTO permissions (permission, role) VALUES (?1, ?2)")?;
    for (permission, roles) in DEFAULTS_V1 {
        for role in *roles {
            stmt.execute(params![permission, role])?;
        }
    }
    Ok(())
}

/// Rocket.Chat's default permissions (`authorization/server/constant/permissions.ts`), roles in
/// Rocket.Chat's order, as far as inquiryd serves or administers them: the livechat ones and
/// those its admin routes need.
pub const DEFAULTS: &[(&str, &[&str])] = &[
    (
        "view-l-room",
        &[
            "livechat-manager",
            "livechat-monitor",
            "livechat-agent",
            "admin",
        ],
    ),
    ("access-permissions", &["admin"]),
    ("manage-apps", &["admin"]),
    (
        "view-livechat-manager",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    (
        "view-livechat-queue",
        &[
            "livechat-manager",
            "livechat-monitor",
            "livechat-agent",
            "admin",
        ],
    ),
    ("create-user", &["admin"]),
    ("edit-other-user-info", &["admin"]),
    ("edit-other-user-password", &["admin"]),
    ("edit-other-user-active-status", &["admin"]),
    ("create-personal-access-tokens", &["admin", "user"]),
    ("user-generate-access-token", &["admin"]),
    ("view-d-room", &["admin", "user", "bot", "app", "guest"]),
    ("view-full-other-user-info", &["admin"]),
    ("view-other-user-channels", &["admin"]),
    ("assign-admin-role", &["admin"]),
    ("api-bypass-rate-limit", &["admin", "bot", "app"]),
    (
        "view-livechat-rooms",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
    (
        "manage-livechat-agents",
        &["livechat-manager", "livechat-monitor", "admin"],
    ),
];

/// Migration 3: every permission id gets a row in `permission_defs` (with its `_updatedAt`), and
/// each default permission whose id is not there yet is inserted with its default roles, as
/// Rocket.Chat's `Permissions.create` does (an admin's changes to existing ones survive).
pub(super) fn seed_defs(tx: &Transaction, now_ms: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO permission_defs (id, updated_at)
         SELECT DISTINCT permission, ?1 FROM permissions",
        [now_ms],
    )?;
    for (permission, roles) in DEFAULTS {
        let new = tx.execute(
            "INSERT OR IGNORE INTO permission_defs (id, updated_at) VALUES (?1, ?2)",
            params![permission, now_ms],
        )?;
        if new > 0 {
            set_roles(tx, permission, roles.iter().copied())?;
        }
    }
    // Defaults that migration 1 seeded keep their rows; give them Rocket.Chat's role order.
    for (permission, roles) in DEFAULTS {
        for (pos, role) in roles.iter().enumerate() {
            tx.execute(
                "UPDATE permissions SET pos = ?3 WHERE permission = ?1 AND role = ?2",
                params![permission, role, pos as i64],
            )?;
        }
    }
    Ok(())
}

/// Replaces the roles of `permission` (kept in the order given) and does not touch its
/// `_updatedAt`; callers stamp it with [`touch`].
pub fn set_roles<'a>(
    conn: &Connection,
    permission: &str,
    roles: impl IntoIterator<Item = &'a str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM permissions WHERE permission = ?1",
        [permission],
    )?;
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO permissions (permission, role, pos) VALUES (?1, ?2, ?3)",
    )?;
    for (pos, role) in roles.into_iter().enumerate() {
        stmt.execute(params![permission, role, pos as i64])?;
    }
    Ok(())
}

/// Stamps a permission's `_updatedAt` (milliseconds since the epoch).
pub fn touch(conn: &Connection, permission: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE permission_defs SET updated_at = ?2 WHERE id = ?1")?
        .execute(params![permission, now_ms])?;
    Ok(())
}

/// Whether a permission id exists.
pub fn exists(conn: &Connection, permission: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS(SELECT 1 FROM permission_defs WHERE id = ?1)")?
        .query_row([permission], |r| r.get(0))
}

/// Every permission id.
pub fn ids(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM permission_defs ORDER BY id")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// A permission as Rocket.Chat's `IPermission` (plain permissions: id, roles, `_updatedAt`).
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionDoc {
    pub id: String,
    pub roles: Vec<String>,
    pub updated_at_ms: i64,
}

/// Every permission updated after `since_ms` (all of them without it), ordered by id, with its
/// roles in their stored order.
pub fn docs(conn: &Connection, since_ms: Option<i64>) -> rusqlite::Result<Vec<PermissionDoc>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.updated_at, p.role FROM permission_defs d
         LEFT JOIN permissions p ON p.permission = d.id
         WHERE d.updated_at > ?1 ORDER BY d.id, p.pos, p.role",
    )?;
    let mut out: Vec<PermissionDoc> = Vec::new();
    let mut rows = stmt.query([since_ms.unwrap_or(i64::MIN)])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let role: Option<String> = row.get(2)?;
        if out.last().is_none_or(|d| d.id != id) {
            out.push(PermissionDoc {
                id,
                roles: Vec::new(),
                updated_at_ms: row.get(1)?,
            });
        }
        if let (Some(role), Some(doc)) = (role, out.last_mut()) {
            doc.roles.push(role);
        }
    }
    Ok(out)
}

/// Permission ids deleted after `since_ms`, with the time (Rocket.Chat's trash).
pub fn removed_since(conn: &Connection, since_ms: i64) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, deleted_at FROM permission_trash WHERE deleted_at > ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([since_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Every permission with its roles, ordered by id.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<(String, Vec<String>)>> {
    let mut stmt =
        conn.prepare("SELECT permission, role FROM permissions ORDER BY permission, pos, role")?;
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (permission, role): (String, String) = (row.get(0)?, row.get(1)?);
        match out.last_mut() {
            Some((p, roles)) if *p == permission => roles.push(role),
            _ => out.push((permission, vec![role])),
        }
    }
    Ok(out)
}

/// Grants a permission to a role (last in its order); returns false when it was already granted.
pub fn grant(conn: &Connection, permission: &str, role: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO permissions (permission, role, pos)
         VALUES (?1, ?2, (SELECT COALESCE(MAX(pos) + 1, 0) FROM permissions WHERE permission = ?1))",
        params![permission, role],
    )?;
    Ok(n > 0)
}

/// Revokes a permission from a role; returns false when the role did not hold it.
pub fn revoke(conn: &Connection, permission: &str, role: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "DELETE FROM permissions WHERE permission = ?1 AND role = ?2",
        params![permission, role],
    )?;
    Ok(n > 0)
}
