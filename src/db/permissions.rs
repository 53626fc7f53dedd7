//! Queries on `permissions`: which roles hold which permission id, with Rocket.Chat's defaults.

use rusqlite::{Connection, Transaction, params};

/// Rocket.Chat's default role lists for the permissions this server consults or an admin is
/// likely to look for (from Rocket.Chat's `server/startup/...permissions` defaults).
const DEFAULTS: &[(&str, &[&str])] = &[
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
    for (permission, roles) in DEFAULTS {
        for role in *roles {
            stmt.execute(params![permission, role])?;
        }
    }
    Ok(())
}

/// Every permission with its roles, ordered by id.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<(String, Vec<String>)>> {
    let mut stmt =
        conn.prepare("SELECT permission, role FROM permissions ORDER BY permission, role")?;
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

/// Grants a permission to a role; returns false when it was already granted.
pub fn grant(conn: &Connection, permission: &str, role: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO permissions (permission, role) VALUES (?1, ?2)",
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
