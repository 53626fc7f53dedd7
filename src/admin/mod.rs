//! Admin changes to users, roles, tokens and permissions: the one implementation the CLI and the
//! REST routes share, so they cannot disagree. Every function here works inside the caller's
//! transaction and, on success, has recorded the change in the audit trail ([`audit`]) within it;
//! on failure the caller drops the transaction and nothing is applied.
//!
//! Rules kept here: role and permission names must exist (an unknown one is refused with a "did
//! you mean" when one is close); an install that has an active user holding
//! `access-permissions` keeps one ([`AdminError::LastAdmin`]); deactivating a user revokes its
//! tokens, as Rocket.Chat does.

pub mod audit;
pub mod users;

use rusqlite::{Connection, Transaction};
use serde_json::{Value, json};

use crate::db;
use crate::model::{HashedToken, UserId};

/// The permission that administers permissions and roles; someone must keep it.
pub const ACCESS_PERMISSIONS: &str = "access-permissions";

/// Who made a change, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A REST request, by the authenticated user's username.
    Rest { user: String },
    /// The command line, by the operating-system user who ran it.
    Cli { os_user: String },
    /// The plugin directory watcher.
    Watcher,
    /// The server itself (seeding, start-up).
    System,
}

impl Actor {
    /// The CLI actor for the user running this process (`$USER`, else the uid).
    pub fn cli() -> Actor {
        let os_user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| {
                std::fs::metadata("/proc/self").map_or_else(
                    |_| "unknown".to_string(),
                    |m| format!("uid {}", std::os::unix::fs::MetadataExt::uid(&m)),
                )
            });
        Actor::Cli { os_user }
    }

    pub fn name(&self) -> &str {
        match self {
            Actor::Rest { user } => user,
            Actor::Cli { os_user } => os_user,
            Actor::Watcher => "watcher",
            Actor::System => "inquiryd",
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Rest { .. } => "rest",
            Actor::Cli { .. } => "cli",
            Actor::Watcher => "watcher",
            Actor::System => "system",
        }
    }
}

/// Why an admin change was refused. [`AdminError::is_usage`] tells the operator's mistakes (exit 2)
/// from the rest.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("unknown role {name:?}{}", did_you_mean(.suggestion))]
    UnknownRole {
        name: String,
        suggestion: Option<String>,
    },
    #[error("unknown permission {name:?}{}", did_you_mean(.suggestion))]
    UnknownPermission {
        name: String,
        suggestion: Option<String>,
    },
    #[error("no user named {0:?}")]
    UnknownUser(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error(
        "refused: no active user would hold access-permissions any more (an install keeps at least one admin)"
    )]
    LastAdmin,
    #[error("role {0:?} already exists")]
    RoleExists(String),
    #[error("role {0:?} is one of Rocket.Chat's protected roles and cannot be removed")]
    RoleProtected(String),
    #[error(
        "role {name:?} is in use ({users} user(s), {permissions} permission(s)); remove it from them first"
    )]
    RoleInUse {
        name: String,
        users: i64,
        permissions: i64,
    },
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl AdminError {
    /// Whether the operator named something that does not exist or cannot be (exit 2), rather
    /// than asked for a change the data refuses (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AdminError::UnknownRole { .. }
                | AdminError::UnknownPermission { .. }
                | AdminError::Invalid { .. }
        )
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map_or(String::new(), |s| format!(" (did you mean {s:?}?)"))
}

/// The closest of `known` to `name`, when it is close enough to be a typo.
fn closest(name: &str, known: impl IntoIterator<Item = String>) -> Option<String> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(name, &k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Whether `name` may name a user or a role: 1-128 letters, digits, '.', '-', '_' or '@' (every
/// Rocket.Chat default role fits; anything else would be awkward on a command line, in a plugin's
/// `roles_any` or in a log line).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
}

/// What [`valid_name`] refuses says.
pub const NAME_RULE: &str = "use 1-128 letters, digits, '.', '-', '_' or '@'";

fn check_role_name(name: &str) -> Result<(), AdminError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(AdminError::Invalid {
            what: "role name",
            value: name.into(),
            why: NAME_RULE,
        })
    }
}

/// Refuses a role that does not exist.
pub fn check_role(conn: &Connection, name: &str) -> Result<(), AdminError> {
    if db::roles::by_id_or_name(conn, name)?.is_some() {
        return Ok(());
    }
    let known = db::roles::list(conn)?.into_iter().map(|r| r.name);
    Err(AdminError::UnknownRole {
        name: name.into(),
        suggestion: closest(name, known),
    })
}

/// Refuses a permission that does not exist.
pub fn check_permission(conn: &Connection, name: &str) -> Result<(), AdminError> {
    if db::permissions::exists(conn, name)? {
        return Ok(());
    }
    Err(AdminError::UnknownPermission {
        name: name.into(),
        suggestion: closest(name, db::permissions::ids(conn)?),
    })
}

/// Whether some active user holds `access-permissions` through one of its roles.
pub fn has_admin(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS(SELECT 1 FROM users u
             JOIN user_roles ur ON ur.user_id = u.id
             JOIN permissions p ON p.role = ur.role AND p.permission = ?1
             WHERE u.active = 1)",
    )?
    .query_row([ACCESS_PERMISSIONS], |r| r.get(0))
}

/// Runs `change`, then refuses it if it took away the last active holder of
/// `access-permissions` (an install that never had one is not held to it).
fn keeping_an_admin<T>(
    tx: &Transaction,
    change: impl FnOnce() -> Result<T, AdminError>,
) -> Result<T, AdminError> {
    let before = has_admin(tx)?;
    let out = change()?;
    if before && !has_admin(tx)? {
        return Err(AdminError::LastAdmin);
    }
    Ok(out)
}

fn user(tx: &Connection, username: &str) -> Result<db::users::UserRow, AdminError> {
    db::users::by_username(tx, username)?.ok_or_else(|| AdminError::UnknownUser(username.into()))
}

fn user_state(u: &db::users::UserRow) -> Value {
    json!({"id": u.id.as_str(), "username": u.username, "name": u.name, "email": u.email, "active": u.active, "roles": u.roles})
}

/// Adds a user with its roles (each must exist). Fails with `UserExists` for a taken username.
pub fn user_add(
    tx: &Transaction,
    actor: &Actor,
    id: &UserId,
    username: &str,
    name: &str,
    password_hash: Option<&str>,
    roles: &[String],
) -> Result<(), AdminError> {
    for role in roles {
        check_role(tx, role)?;
    }
    if !db::users::insert(tx, id, username, name, password_hash, roles)? {
        return Err(AdminError::UserExists(username.into()));
    }
    let after = user_state(&user(tx, username)?);
    audit::record(tx, actor, "user.add", username, None, Some(&after))?;
    Ok(())
}

/// Replaces a user's roles (each must exist).
pub fn user_set_roles(
    tx: &Transaction,
    actor: &Actor,
    username: &str,
    roles: &[String],
) -> Result<(), AdminError> {
    for role in roles {
        check_role(tx, role)?;
    }
    keeping_an_admin(tx, || {
        let before = user(tx, username)?;
        db::users::replace_roles(tx, &before.id, roles)?;
        let after = user(tx, username)?;
        audit::record(
            tx,
            actor,
            "user.roles",
            username,
            Some(&json!({"roles": before.roles})),
            Some(&json!({"roles": after.roles})),
        )?;
        Ok(())
    })
}

/// Activates or deactivates a user. Deactivating revokes every token of the user, so activating
/// it again does not bring old tokens back (Rocket.Chat does the same). Returns how many tokens
/// were revoked.
pub fn user_set_active(
    tx: &Transaction,
    actor: &Actor,
    username: &str,
    active: bool,
) -> Result<usize, AdminError> {
    keeping_an_admin(tx, || {
        let before = user(tx, username)?;
        db::users::set_active(tx, username, active).map_err(|e| match e {
            db::users::UserError::Sqlite(e) => AdminError::Sqlite(e),
            _ => AdminError::UnknownUser(username.into()),
        })?;
        let revoked = if active {
            0
        } else {
            db::tokens::revoke_all(tx, &before.id)?
        };
        audit::record(
            tx,
            actor,
            if active {
                "user.activate"
            } else {
                "user.deactivate"
            },
            username,
            Some(&json!({"active": before.active})),
            Some(&json!({"active": active, "tokens_revoked": revoked})),
        )?;
        Ok(revoked)
    })
}

/// Stores a new login token (its hash and last six characters only) for a user, valid until
/// `expires_at`.
pub fn token_create(
    tx: &Transaction,
    actor: &Actor,
    user: &UserId,
    username: &str,
    token: &str,
    expires_at: i64,
) -> Result<(), AdminError> {
    let hashed = crate::auth::tokens::hash(token);
    db::tokens::insert(tx, &hashed, user, expires_at, db::tokens::last_part(token))?;
    audit::record(
        tx,
        actor,
        "token.create",
        username,
        None,
        Some(&json!({"kind": "login", "expires_at": expires_at})),
    )?;
    Ok(())
}

/// Revokes one token of a user (Some) or all of them (None); returns how many.
pub fn token_revoke(
    tx: &Transaction,
    actor: &Actor,
    username: &str,
    hashed: Option<&HashedToken>,
) -> Result<usize, AdminError> {
    let u = user(tx, username)?;
    let n = match hashed {
        Some(h) => usize::from(db::tokens::revoke(tx, &u.id, h)?),
        None => db::tokens::revoke_all(tx, &u.id)?,
    };
    if n > 0 {
        audit::record(
            tx,
            actor,
            "token.revoke",
            username,
            None,
            Some(&json!({"revoked": n, "all": hashed.is_none()})),
        )?;
    }
    Ok(n)
}

fn permission_roles(tx: &Connection, permission: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        tx.prepare_cached("SELECT role FROM permissions WHERE permission = ?1 ORDER BY pos, role")?;
    let rows = stmt.query_map([permission], |r| r.get(0))?;
    rows.collect()
}

/// Replaces the roles of a permission (both must exist), stamping its `_updatedAt` when they
/// changed. Returns whether they changed.
pub fn permission_set_roles(
    tx: &Transaction,
    actor: &Actor,
    permission: &str,
    roles: &[String],
) -> Result<bool, AdminError> {
    check_permission(tx, permission)?;
    for role in roles {
        check_role(tx, role)?;
    }
    keeping_an_admin(tx, || {
        let before = permission_roles(tx, permission)?;
        if before == roles {
            return Ok(false);
        }
        db::permissions::set_roles(tx, permission, roles.iter().map(String::as_str))?;
        db::permissions::touch(tx, permission, db::now_ms())?;
        audit::record(
            tx,
            actor,
            "permission.roles",
            permission,
            Some(&json!({"roles": before})),
            Some(&json!({"roles": roles})),
        )?;
        Ok(true)
    })
}

/// Grants a permission to a role (both must exist); returns false when it already held it.
pub fn permission_grant(
    tx: &Transaction,
    actor: &Actor,
    permission: &str,
    role: &str,
) -> Result<bool, AdminError> {
    let mut roles = {
        check_permission(tx, permission)?;
        permission_roles(tx, permission)?
    };
    if roles.iter().any(|r| r == role) {
        check_role(tx, role)?;
        return Ok(false);
    }
    roles.push(role.to_string());
    permission_set_roles(tx, actor, permission, &roles)
}

/// Revokes a permission from a role (both must exist); returns false when it did not hold it.
pub fn permission_revoke(
    tx: &Transaction,
    actor: &Actor,
    permission: &str,
    role: &str,
) -> Result<bool, AdminError> {
    check_permission(tx, permission)?;
    check_role(tx, role)?;
    let roles = permission_roles(tx, permission)?;
    if !roles.iter().any(|r| r == role) {
        return Ok(false);
    }
    let kept: Vec<String> = roles.into_iter().filter(|r| r != role).collect();
    permission_set_roles(tx, actor, permission, &kept)
}

/// Adds a custom role. Names follow the CLI's rule for names; scope is `Users` or `Subscriptions`.
pub fn role_add(
    tx: &Transaction,
    actor: &Actor,
    name: &str,
    scope: &str,
    description: &str,
) -> Result<(), AdminError> {
    if !matches!(scope, "Users" | "Subscriptions") {
        return Err(AdminError::Invalid {
            what: "scope",
            value: scope.into(),
            why: "use Users or Subscriptions",
        });
    }
    if !db::roles::insert(tx, name, scope, description, db::now_ms())? {
        return Err(AdminError::RoleExists(name.into()));
    }
    audit::record(
        tx,
        actor,
        "role.add",
        name,
        None,
        Some(&json!({"scope": scope, "description": description})),
    )?;
    Ok(())
}

/// Removes a custom role that no user and no permission refers to.
pub fn role_remove(tx: &Transaction, actor: &Actor, name: &str) -> Result<(), AdminError> {
    check_role(tx, name)?;
    let Some(role) = db::roles::by_id_or_name(tx, name)? else {
        return Err(AdminError::UnknownRole {
            name: name.into(),
            suggestion: None,
        });
    };
    if role.protected {
        return Err(AdminError::RoleProtected(role.name));
    }
    let (users, permissions) = db::roles::uses(tx, &role.id)?;
    if users + permissions > 0 {
        return Err(AdminError::RoleInUse {
            name: role.name,
            users,
            permissions,
        });
    }
    db::roles::delete(tx, &role.id)?;
    audit::record(
        tx,
        actor,
        "role.remove",
        &role.name,
        Some(&json!({"scope": role.scope, "description": role.description})),
        None,
    )?;
    Ok(())
}

/// What a role is made of besides its name: `roles.create` / `roles.update` set all of it.
#[derive(Debug, Clone)]
pub struct RoleSpec {
    pub scope: String,
    pub description: String,
    pub mandatory2fa: bool,
}

fn role_state(r: &db::roles::RoleRow) -> Value {
    json!({"name": r.name, "scope": r.scope, "description": r.description, "mandatory2fa": r.mandatory2fa})
}

fn check_scope(scope: &str) -> Result<(), AdminError> {
    if matches!(scope, "Users" | "Subscriptions") {
        Ok(())
    } else {
        Err(AdminError::Invalid {
            what: "scope",
            value: scope.into(),
            why: "use Users or Subscriptions",
        })
    }
}

/// Adds a custom role with its 2FA flag (`roles.create`); fails with `RoleExists` when a role
/// has this name or id.
pub fn role_create(
    tx: &Transaction,
    actor: &Actor,
    name: &str,
    spec: &RoleSpec,
) -> Result<db::roles::RoleRow, AdminError> {
    check_role_name(name)?;
    check_scope(&spec.scope)?;
    if db::roles::by_id_or_name(tx, name)?.is_some()
        || !db::roles::insert(tx, name, &spec.scope, &spec.description, db::now_ms())?
    {
        return Err(AdminError::RoleExists(name.into()));
    }
    db::roles::update(
        tx,
        name,
        &spec.scope,
        &spec.description,
        spec.mandatory2fa,
        db::now_ms(),
    )?;
    let role = db::roles::by_id_or_name(tx, name)?.ok_or_else(|| AdminError::UnknownRole {
        name: name.into(),
        suggestion: None,
    })?;
    audit::record(tx, actor, "role.add", name, None, Some(&role_state(&role)))?;
    Ok(role)
}

/// Changes a role (`roles.update`): its name (custom roles only; the users and permissions
/// holding it follow), scope (custom roles only), description and 2FA flag.
pub fn role_update(
    tx: &Transaction,
    actor: &Actor,
    id: &str,
    new_name: &str,
    spec: &RoleSpec,
) -> Result<db::roles::RoleRow, AdminError> {
    check_role_name(new_name)?;
    check_scope(&spec.scope)?;
    let before = db::roles::by_id_or_name(tx, id)?
        .filter(|r| r.id == id)
        .ok_or_else(|| AdminError::UnknownRole {
            name: id.into(),
            suggestion: None,
        })?;
    if before.protected && (new_name != before.name || spec.scope != before.scope) {
        return Err(AdminError::RoleProtected(before.name));
    }
    if new_name != before.name {
        if db::roles::by_id_or_name(tx, new_name)?.is_some() {
            return Err(AdminError::RoleExists(new_name.into()));
        }
        db::roles::rename(tx, &before.id, new_name)?;
    }
    db::roles::update(
        tx,
        new_name,
        &spec.scope,
        &spec.description,
        spec.mandatory2fa,
        db::now_ms(),
    )?;
    let after = db::roles::by_id_or_name(tx, new_name)?.ok_or_else(|| AdminError::UnknownRole {
        name: new_name.into(),
        suggestion: None,
    })?;
    let kind = if new_name == before.name {
        "role.update"
    } else {
        "role.rename"
    };
    audit::record(
        tx,
        actor,
        kind,
        &before.id,
        Some(&role_state(&before)),
        Some(&role_state(&after)),
    )?;
    Ok(after)
}

/// Gives a user one more role (which must exist); returns false when it already held it.
pub fn user_add_role(
    tx: &Transaction,
    actor: &Actor,
    username: &str,
    role: &str,
) -> Result<bool, AdminError> {
    check_role(tx, role)?;
    let u = user(tx, username)?;
    if u.roles.iter().any(|r| r == role) {
        return Ok(false);
    }
    let mut roles = u.roles.clone();
    roles.push(role.to_string());
    user_set_roles(tx, actor, username, &roles)?;
    Ok(true)
}

/// Takes a role from a user, keeping an admin (`LastAdmin`); returns false when it did not hold
/// it.
pub fn user_remove_role(
    tx: &Transaction,
    actor: &Actor,
    username: &str,
    role: &str,
) -> Result<bool, AdminError> {
    check_role(tx, role)?;
    let u = user(tx, username)?;
    if !u.roles.iter().any(|r| r == role) {
        return Ok(false);
    }
    let kept: Vec<String> = u.roles.iter().filter(|r| *r != role).cloned().collect();
    user_set_roles(tx, actor, username, &kept)?;
    Ok(true)
}

/// Opens an IMMEDIATE transaction on `conn`, runs `f` in it and commits when it succeeds.
pub fn in_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction) -> Result<T, AdminError>,
) -> Result<T, AdminError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}
