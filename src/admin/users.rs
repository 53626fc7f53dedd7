//! Admin changes to a user's profile (name, username, email, password) and to personal access
//! tokens, shared by the REST `users.*` routes and the CLI. Like the rest of [`crate::admin`],
//! each works inside the caller's transaction and records itself in the audit trail; the trail
//! says *that* a password or a token changed, never the secret, its hash or its last characters.

use rusqlite::Transaction;
use serde_json::json;

use super::{Actor, AdminError, audit, user, user_add, user_state};
use crate::db;
use crate::model::UserId;

/// What `users.create` stores beyond [`user_add`]'s fields.
pub struct NewUser<'a> {
    pub id: &'a UserId,
    pub username: &'a str,
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub roles: &'a [String],
    pub active: bool,
}

/// Adds a user with an email and, when `active` is false, deactivated from the start. Fails with
/// `UserExists` for a taken username, `Invalid` for a taken email.
pub fn user_create(tx: &Transaction, actor: &Actor, new: &NewUser) -> Result<(), AdminError> {
    if let Some(email) = new.email
        && db::users::email_taken(tx, email, None)?
    {
        return Err(email_taken(email));
    }
    user_add(
        tx,
        actor,
        new.id,
        new.username,
        new.name,
        new.password_hash,
        new.roles,
    )?;
    db::users::set_email(tx, new.id, new.email)?;
    if !new.active {
        // Recorded as its own step, so the trail never shows an inactive user as active.
        super::user_set_active(tx, actor, new.username, false)?;
    }
    Ok(())
}

fn email_taken(email: &str) -> AdminError {
    AdminError::Invalid {
        what: "email",
        value: email.into(),
        why: "already in use",
    }
}

/// A profile change: each `Some` replaces the stored value.
#[derive(Default)]
pub struct ProfileChange {
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
}

/// Changes a user's profile. A new password revokes the user's tokens, as Rocket.Chat's
/// `Accounts.setPassword` logs the user out everywhere. Fails with `UserExists` for a username,
/// `Invalid` for an email, that another user has.
pub fn user_update(
    tx: &Transaction,
    actor: &Actor,
    username: &str,
    change: &ProfileChange,
) -> Result<(), AdminError> {
    let before = user(tx, username)?;
    if let Some(email) = &change.email
        && db::users::email_taken(tx, email, Some(&before.id))?
    {
        return Err(email_taken(email));
    }
    if let Some(new_name) = &change.username
        && new_name != username
    {
        if db::users::by_username(tx, new_name)?.is_some() {
            return Err(AdminError::UserExists(new_name.clone()));
        }
        tx.execute(
            "UPDATE users SET username = ?2 WHERE id = ?1",
            [before.id.as_str(), new_name.as_str()],
        )?;
    }
    db::users::update_profile(
        tx,
        &before.id,
        change.name.as_deref(),
        change.email.as_deref(),
        change.password_hash.as_deref(),
    )?;
    let revoked = if change.password_hash.is_some() {
        db::tokens::revoke_all(tx, &before.id)?
    } else {
        0
    };
    let after = db::users::by_id(tx, before.id.as_str())?
        .ok_or_else(|| AdminError::UnknownUser(username.into()))?;
    let mut after_state = user_state(&after);
    if change.password_hash.is_some() {
        after_state["password"] = json!("changed");
        after_state["tokens_revoked"] = json!(revoked);
    }
    audit::record(
        tx,
        actor,
        "user.update",
        &after.username,
        Some(&user_state(&before)),
        Some(&after_state),
    )?;
    Ok(())
}

/// Stores a personal access token (its hash and last six characters) under `token_name`.
/// Returns false, changing nothing, when the user already has a personal token of that name.
pub fn pat_create(
    tx: &Transaction,
    actor: &Actor,
    username: &str,
    token_name: &str,
    token: &str,
    bypass_two_factor: bool,
) -> Result<bool, AdminError> {
    let u = user(tx, username)?;
    let hashed = crate::auth::tokens::hash(token);
    let last = db::tokens::last_part(token);
    if !db::tokens::insert_personal(tx, &hashed, &u.id, token_name, last, bypass_two_factor)? {
        return Ok(false);
    }
    audit::record(
        tx,
        actor,
        "token.create",
        username,
        None,
        Some(
            &json!({"kind": "personal", "name": token_name, "bypassTwoFactor": bypass_two_factor}),
        ),
    )?;
    Ok(true)
}

/// Removes a user's personal access token by name; returns whether it existed.
pub fn pat_remove(
    tx: &Transaction,
    actor: &Actor,
    username: &str,
    token_name: &str,
) -> Result<bool, AdminError> {
    let u = user(tx, username)?;
    if !db::tokens::remove_personal(tx, &u.id, token_name)? {
        return Ok(false);
    }
    audit::record(
        tx,
        actor,
        "token.revoke",
        username,
        Some(&json!({"kind": "personal", "name": token_name})),
        None,
    )?;
    Ok(true)
}

/// Replaces a personal access token by a new secret under the same name, keeping its
/// `bypassTwoFactor`. Returns false, changing nothing, when there is no such token.
pub fn pat_regenerate(
    tx: &Transaction,
    actor: &Actor,
    username: &str,
    token_name: &str,
    token: &str,
) -> Result<bool, AdminError> {
    let u = user(tx, username)?;
    let Some(old) = db::tokens::list(tx, &u.id, true)?
        .into_iter()
        .find(|t| t.name.as_deref() == Some(token_name))
    else {
        return Ok(false);
    };
    db::tokens::remove_personal(tx, &u.id, token_name)?;
    let hashed = crate::auth::tokens::hash(token);
    let last = db::tokens::last_part(token);
    db::tokens::insert_personal(tx, &hashed, &u.id, token_name, last, old.bypass_two_factor)?;
    audit::record(
        tx,
        actor,
        "token.regenerate",
        username,
        None,
        Some(&json!({"kind": "personal", "name": token_name})),
    )?;
    Ok(true)
}
