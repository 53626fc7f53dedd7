//! Rocket.Chat's permissions routes: `GET permissions.listAll` (any logged-in user),
//! `POST permissions.update` (replaces each listed permission's roles) and the newer
//! `POST permissions.addRole` / `permissions.removeRole` (one role at a time), the last three
//! needing `access-permissions`. Changes go through [`crate::admin`] in one transaction, audited
//! with the REST user as actor, and are in force for the next request ([`super::write`]).
//!
//! Check order. `update` is Rocket.Chat 7.x's legacy route without `validateParams`: 401, 403,
//! then its body is checked in the handler (400 `error-invalid-body-params`). `addRole` and
//! `removeRole` validate their body shape first (400 `invalid-params`, ajv's messages), then 403,
//! then the names (400 `error-invalid-permission` / `error-invalid-role`). A change that would
//! leave no active user holding `access-permissions` is refused with Rocket.Chat's last-admin
//! error: 400 `You need to have at least one admin [error-admin-required]`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};

use super::errors::json as json_response;
use super::{ApiError, Ctx};
use crate::admin::{self, Actor, AdminError};
use crate::db;

pub use crate::admin::ACCESS_PERMISSIONS;

/// Roles (or permissions) a single `update` may list: far more than exist, few enough that a
/// hostile body cannot make the server work hard.
const MAX_ITEMS: usize = 1_000;

/// A request body, read whole (it is already in memory: see `crate::conn::ReadBodyFirst`).
pub struct Body(pub actix_web::web::BytesMut);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Body, ApiError>>>>;
    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let payload = actix_web::web::Payload::from_request(req, payload);
        Box::pin(async move {
            let payload = payload
                .await
                .map_err(|e| ApiError::Internal(format!("request payload: {e}")))?;
            super::read_body(payload).await.map(Body)
        })
    }
}

/// `updatedSince` of `listAll`: absent (or empty, which Rocket.Chat treats as absent), or a date
/// JavaScript's `Date.parse` would read.
pub struct ListAllQuery(Option<i64>);

impl FromRequest for ListAllQuery {
    type Error = ApiError;
    type Future = std::future::Ready<Result<ListAllQuery, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(parse_updated_since(req.query_string()).map(ListAllQuery))
    }
}

fn bad_date() -> ApiError {
    ApiError::failure(
        "The \"updatedSince\" query parameter must be a valid date. [error-roomId-param-invalid]",
        "error-roomId-param-invalid",
    )
}

/// Rocket.Chat's legacy `listAll` ignores other parameters; `updatedSince` given twice, or as an
/// object (`updatedSince[x]=`), is no date.
fn parse_updated_since(query: &str) -> Result<Option<i64>, ApiError> {
    let mut found: Option<String> = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "updatedSince" {
            if found.is_some() {
                return Err(bad_date());
            }
            found = Some(value.into_owned());
        } else if key.starts_with("updatedSince[") {
            return Err(bad_date());
        }
    }
    match found.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => parse_js_date(text).map(Some).ok_or_else(bad_date),
    }
}

/// Milliseconds since the epoch for the date forms `Date.parse` accepts that clients send:
/// ISO 8601 (date only, or with a time; without a zone read as UTC, the server's zone in
/// practice) and RFC 2822.
pub(crate) fn parse_js_date(text: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let text = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d.timestamp_millis());
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(text) {
        return Some(d.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(text, format) {
            return Some(d.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|d| d.and_utc().timestamp_millis());
    }
    None
}

/// Rocket.Chat's date form: `2025-01-01T00:00:00.000Z`.
pub(crate) fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn doc_json(d: &db::permissions::PermissionDoc) -> Value {
    json!({"_id": d.id, "roles": d.roles, "_updatedAt": iso(d.updated_at_ms)})
}

fn all_docs(conn: &rusqlite::Connection) -> Result<Vec<Value>, ApiError> {
    Ok(db::permissions::docs(conn, None)?
        .iter()
        .map(doc_json)
        .collect())
}

/// `GET /api/v1/permissions.listAll[?updatedSince=DATE]`.
pub async fn list_all(ctx: Ctx, query: ListAllQuery) -> Result<HttpResponse, ApiError> {
    let since = query.0;
    let body = super::blocking(&ctx.state, move |conn| {
        let update: Vec<Value> = db::permissions::docs(conn, since)?
            .iter()
            .map(doc_json)
            .collect();
        let remove: Vec<Value> = match since {
            Some(since) => db::permissions::removed_since(conn, since)?
                .into_iter()
                .map(|(id, at)| json!({"_id": id, "_deletedAt": iso(at)}))
                .collect(),
            None => Vec::new(),
        };
        Ok(json!({"update": update, "remove": remove, "success": true}).to_string())
    })
    .await?;
    Ok(json_response(StatusCode::OK, body))
}

fn invalid_body() -> ApiError {
    ApiError::failure("Invalid body params", "error-invalid-body-params")
}

fn invalid_permission() -> ApiError {
    ApiError::failure("Invalid permission", "error-invalid-permission")
}

fn invalid_role() -> ApiError {
    ApiError::failure("Invalid role", "error-invalid-role")
}

fn admin_required() -> ApiError {
    ApiError::failure(
        "You need to have at least one admin [error-admin-required]",
        "error-admin-required",
    )
}

/// How an admin refusal reads on these routes.
fn refusal(e: AdminError) -> ApiError {
    match e {
        AdminError::UnknownPermission { .. } => invalid_permission(),
        AdminError::UnknownRole { .. } => invalid_role(),
        AdminError::LastAdmin => admin_required(),
        AdminError::Sqlite(e) => e.into(),
        other => ApiError::Internal(format!("permissions: unexpected refusal: {other}")),
    }
}

/// The body of `update`, as its schema allows: `{permissions: [{_id, roles: [unique strings]}]}`,
/// no other properties.
fn parse_update(body: &[u8]) -> Option<Vec<(String, Vec<String>)>> {
    let Ok(Value::Object(mut top)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let Some(Value::Array(items)) = top.remove("permissions") else {
        return None;
    };
    if !top.is_empty() || items.len() > MAX_ITEMS {
        return None;
    }
    items
        .into_iter()
        .map(|item| {
            let Value::Object(mut item) = item else {
                return None;
            };
            let (Some(Value::String(id)), Some(Value::Array(roles))) =
                (item.remove("_id"), item.remove("roles"))
            else {
                return None;
            };
            if !item.is_empty() || roles.len() > MAX_ITEMS {
                return None;
            }
            let roles: Vec<String> = roles
                .into_iter()
                .map(|r| match r {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            let unique: HashSet<&String> = roles.iter().collect();
            (unique.len() == roles.len()).then_some((id, roles))
        })
        .collect()
}

fn actor(ctx: &Ctx) -> Actor {
    Actor::Rest {
        user: ctx.caller.user.username.clone(),
    }
}

/// `POST /api/v1/permissions.update` `{permissions:[{_id, roles}]}`: replaces the roles of each
/// listed permission; answers every permission.
pub async fn update(ctx: Ctx, body: Body) -> Result<HttpResponse, ApiError> {
    let changes = parse_update(&body.0).ok_or_else(invalid_body)?;
    let actor = actor(&ctx);
    let body = super::write(&ctx.state, move |tx| {
        // Rocket.Chat's checks, in its order: every id known and listed once, then every role.
        let ids: HashSet<&str> = changes.iter().map(|(id, _)| id.as_str()).collect();
        if ids.len() != changes.len() {
            return Err(invalid_permission());
        }
        for id in &ids {
            if !db::permissions::exists(tx, id)? {
                return Err(invalid_permission());
            }
        }
        let roles: HashSet<&str> = changes
            .iter()
            .flat_map(|(_, roles)| roles.iter().map(String::as_str))
            .collect();
        for role in roles {
            if db::roles::by_id_or_name(tx, role)?.is_none_or(|r| r.id != role) {
                return Err(invalid_role());
            }
        }
        for (id, roles) in &changes {
            admin::permission_set_roles(tx, &actor, id, roles).map_err(refusal)?;
        }
        Ok(json!({"permissions": all_docs(tx)?, "success": true}).to_string())
    })
    .await?;
    Ok(json_response(StatusCode::OK, body))
}

/// `{permissionId, role}`, validated as a legacy `validateParams` schema would (ajv's order:
/// type, required, additional properties, property types).
pub struct RoleChange {
    permission: String,
    role: String,
}

impl FromRequest for RoleChange {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<RoleChange, ApiError>>>>;
    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = Body::from_request(req, payload);
        Box::pin(async move { parse_role_change(&body.await?.0) })
    }
}

fn parse_role_change(body: &[u8]) -> Result<RoleChange, ApiError> {
    let mut top: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(top)) => top,
        _ => return Err(ApiError::invalid_params("must be object")),
    };
    for key in ["permissionId", "role"] {
        if !top.contains_key(key) {
            return Err(ApiError::invalid_params(format!(
                "must have required property '{key}'"
            )));
        }
    }
    if top.len() > 2 {
        return Err(ApiError::invalid_params(
            "must NOT have additional properties",
        ));
    }
    match (top.remove("permissionId"), top.remove("role")) {
        (Some(Value::String(permission)), Some(Value::String(role))) => {
            Ok(RoleChange { permission, role })
        }
        _ => Err(ApiError::invalid_params("must be string")),
    }
}

fn check_names(tx: &rusqlite::Transaction, change: &RoleChange) -> Result<(), ApiError> {
    if !db::permissions::exists(tx, &change.permission)? {
        return Err(invalid_permission());
    }
    if db::roles::by_id_or_name(tx, &change.role)?.is_none_or(|r| r.id != change.role) {
        return Err(invalid_role());
    }
    Ok(())
}

/// `POST /api/v1/permissions.addRole` `{permissionId, role}`: `{success:true}`, also when the role
/// already held it.
pub async fn add_role(ctx: Ctx, change: RoleChange) -> Result<HttpResponse, ApiError> {
    let actor = actor(&ctx);
    super::write(&ctx.state, move |tx| {
        check_names(tx, &change)?;
        admin::permission_grant(tx, &actor, &change.permission, &change.role).map_err(refusal)
    })
    .await?;
    Ok(json_response(StatusCode::OK, r#"{"success":true}"#))
}

/// `POST /api/v1/permissions.removeRole` `{permissionId, role}`: `{success:true}`, also when the
/// role did not hold it.
pub async fn remove_role(ctx: Ctx, change: RoleChange) -> Result<HttpResponse, ApiError> {
    let actor = actor(&ctx);
    super::write(&ctx.state, move |tx| {
        check_names(tx, &change)?;
        admin::permission_revoke(tx, &actor, &change.permission, &change.role).map_err(refusal)
    })
    .await?;
    Ok(json_response(StatusCode::OK, r#"{"success":true}"#))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_javascript_reads_them() {
        assert_eq!(
            parse_js_date("2018-11-27T13:52:01Z"),
            Some(1_543_326_721_000)
        );
        assert_eq!(
            parse_js_date("2018-11-27T13:52:01.500+00:00"),
            Some(1_543_326_721_500)
        );
        assert_eq!(parse_js_date("2018-11-27"), Some(1_543_276_800_000));
        assert_eq!(parse_js_date("fsafdf"), None);
        assert!(parse_updated_since("updatedSince=").unwrap().is_none());
        assert!(parse_updated_since("x=1").unwrap().is_none());
        assert!(parse_updated_since("updatedSince=a&updatedSince=b").is_err());
        assert!(parse_updated_since("updatedSince[$gt]=2018-11-27").is_err());
    }

    #[test]
    fn update_bodies_outside_the_schema_are_refused() {
        let ok = parse_update(br#"{"permissions":[{"_id":"a","roles":["x","y"]}]}"#).unwrap();
        assert_eq!(
            ok,
            vec![("a".to_string(), vec!["x".to_string(), "y".to_string()])]
        );
        for bad in [
            &br#"{"permissions":[{"_id":"a","roles":["x","x"]}]}"#[..],
            br#"{"permissions":[{"_id":"a"}]}"#,
            br#"{"permissions":[{"_id":1,"roles":[]}]}"#,
            br#"{"permissions":[{"_id":"a","roles":[],"x":1}]}"#,
            br#"{"permissions":{},"x":1}"#,
            br#"{"permissions":[],"x":1}"#,
            br#"[]"#,
            br#"{"permissions":"#,
        ] {
            assert!(
                parse_update(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
