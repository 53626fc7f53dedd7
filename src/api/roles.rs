//! Rocket.Chat's roles routes (`apps/meteor/app/api/server/v1/roles.ts`, and the enterprise
//! `roles.create` / `roles.update`, which inquiryd serves for real: it does not gate custom roles,
//! and the CLI's `role add` already makes them). Every change goes through [`crate::admin`] in one
//! transaction, audited with the REST user as actor, in force for the next request.
//!
//! Check order, route by route as Rocket.Chat declares them (legacy routes: 401, then the
//! `validateParams` schema, 400 `... [invalid-params]`, then `permissionsRequired`, 403):
//! - `roles.list`: any logged-in user. `roles.sync`: any logged-in user, query schema
//!   `{updatedSince?}`.
//! - `roles.getUsersInRole`: `access-permissions` (403), no schema.
//! - `roles.addUserToRole`: body schema, then *no* route permission: the handler answers 400
//!   `Accessing permissions is not allowed` (and `Assigning admin is not allowed` without
//!   `assign-admin-role`) after finding the user and the role.
//! - `roles.removeUserFromRole`, `roles.delete`: body schema, then `access-permissions` (403).
//! - `roles.create`, `roles.update`: their own body check (400
//!   `The role properties are invalid.`), then `access-permissions` inside (400).
//!
//! A role's `_id` is its name (Rocket.Chat's default roles are so too); renaming a custom role
//! with `roles.update` renames it where users and permissions hold it. Roles are user-wide here:
//! inquiryd has no room subscriptions, so `roomId` / `scope` are accepted and not used.

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};

use super::errors::json as json_response;
use super::paging::Page;
use super::permissions::{Body, iso, parse_js_date};
use super::{ApiError, Ctx};
use crate::admin::{self, ACCESS_PERMISSIONS, Actor, AdminError, RoleSpec};
use crate::db;
use crate::db::roles::RoleRow;

const ASSIGN_ADMIN_ROLE: &str = "assign-admin-role";
const VIEW_OTHER_USER_CHANNELS: &str = "view-other-user-channels";

/// A role document as Rocket.Chat stores it (`IRole`), with or without `_updatedAt`.
fn role_json(r: &RoleRow, with_updated_at: bool) -> Value {
    let mut doc = json!({
        "_id": r.id,
        "name": r.name,
        "scope": r.scope,
        "description": r.description,
        "protected": r.protected,
        "mandatory2fa": r.mandatory2fa,
    });
    if with_updated_at {
        doc["_updatedAt"] = json!(iso(r.updated_at_ms));
    }
    doc
}

fn actor(ctx: &Ctx) -> Actor {
    Actor::Rest {
        user: ctx.caller.user.username.clone(),
    }
}

fn ok(body: Value) -> HttpResponse {
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /api/v1/roles.list`: every role, without `_updatedAt`.
pub async fn list(ctx: Ctx, _: super::NoParams) -> Result<HttpResponse, ApiError> {
    let roles = super::blocking(&ctx.state, |conn| {
        Ok(db::roles::list(conn)?
            .iter()
            .map(|r| role_json(r, false))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(ok(json!({"roles": roles, "success": true})))
}

/// The query of `roles.sync`, checked against its schema (`{updatedSince?: string}`, nothing
/// else).
pub struct SyncQuery(Option<String>);

impl FromRequest for SyncQuery {
    type Error = ApiError;
    type Future = std::future::Ready<Result<SyncQuery, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(parse_sync_query(req.query_string()))
    }
}

fn parse_sync_query(query: &str) -> Result<SyncQuery, ApiError> {
    let mut since = None;
    let mut additional = false;
    let mut repeated = false;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "updatedSince" {
            repeated |= since.is_some();
            since = Some(value.into_owned());
        } else {
            additional = true;
        }
    }
    if additional {
        return Err(ApiError::invalid_params(
            "must NOT have additional properties",
        ));
    }
    if repeated {
        return Err(ApiError::invalid_params("must be string"));
    }
    Ok(SyncQuery(since))
}

/// `GET /api/v1/roles.sync[?updatedSince=DATE]`: the roles changed and removed after the date.
/// Rocket.Chat reads the date with `new Date(..)`, so no date (or one it cannot read) matches
/// nothing: both lists are empty. Removals are read from the audit trail, so they reach as far
/// back as its retention.
pub async fn sync(ctx: Ctx, query: SyncQuery) -> Result<HttpResponse, ApiError> {
    let since = query.0.as_deref().and_then(parse_js_date);
    let roles = super::blocking(&ctx.state, move |conn| {
        let Some(since) = since else {
            return Ok(json!({"update": [], "remove": []}));
        };
        let update: Vec<Value> = db::roles::updated_since(conn, since)?
            .iter()
            .map(|r| role_json(r, true))
            .collect();
        let remove: Vec<Value> = admin::audit::role_removals_since(conn, since)?
            .into_iter()
            .map(|(id, at)| json!({"_id": id, "_deletedAt": iso(at)}))
            .collect();
        Ok(json!({"update": update, "remove": remove}))
    })
    .await?;
    Ok(ok(json!({"roles": roles, "success": true})))
}

/// The query of `roles.getUsersInRole`. Rocket.Chat mounts it without a schema: nothing here is
/// refused before the permission check.
pub struct UsersInRoleQuery {
    role: Option<String>,
    room_id: Option<String>,
    page: Page,
}

impl FromRequest for UsersInRoleQuery {
    type Error = ApiError;
    type Future = std::future::Ready<Result<UsersInRoleQuery, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let (mut role, mut room_id, mut offset, mut count) = (None, None, None, None);
        for (key, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
            let slot = match &*key {
                "role" => &mut role,
                "roomId" => &mut room_id,
                "offset" => &mut offset,
                "count" => &mut count,
                _ => continue,
            };
            slot.get_or_insert(value.into_owned());
        }
        std::future::ready(Ok(UsersInRoleQuery {
            page: Page::from_params(offset.as_deref(), count.as_deref()),
            role: role.filter(|r| !r.is_empty()),
            room_id: room_id.filter(|r| !r.is_empty()),
        }))
    }
}

/// `GET /api/v1/roles.getUsersInRole?role=ID[&offset&count]`: the users holding the role, by
/// username, `{users, total, success}`.
pub async fn get_users_in_role(
    ctx: Ctx,
    query: UsersInRoleQuery,
) -> Result<HttpResponse, ApiError> {
    let Some(role) = query.role else {
        return Err(ApiError::meteor(
            "error-param-not-provided",
            "Query param \"role\" is required",
            None,
        ));
    };
    if query.room_id.is_some() && !ctx.caller.has_permission(VIEW_OTHER_USER_CHANNELS) {
        return Err(ApiError::meteor("error-not-allowed", "Not allowed", None));
    }
    let page = query.page;
    let body = super::blocking(&ctx.state, move |conn| {
        let Some(role) = db::roles::by_id_or_name(conn, &role)? else {
            return Err(ApiError::meteor("error-invalid-roleId", "", None));
        };
        let (users, total) = db::roles::holders(conn, &role.id, page.offset, page.sql_limit())?;
        let users: Vec<Value> = users
            .into_iter()
            .map(|u| {
                json!({
                    "_id": u.id,
                    "username": u.username,
                    "name": u.name,
                    "createdAt": iso(u.created_at_secs.saturating_mul(1000)),
                })
            })
            .collect();
        Ok(json!({"users": users, "total": total, "success": true}))
    })
    .await?;
    Ok(ok(body))
}

/// What a property of a body schema may hold.
#[derive(Clone, Copy)]
enum Kind {
    String,
    NullableString,
    Boolean,
    OneOf(&'static [&'static str]),
}

/// A body checked against an object schema the way ajv reports the first failure: not an object,
/// a missing required property, an additional property, then a property of the wrong type.
fn check_object(
    body: &[u8],
    required: &[&str],
    properties: &[(&str, Kind)],
) -> Result<Map<String, Value>, &'static str> {
    let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(body) else {
        return Err("must be object");
    };
    if required.iter().any(|key| !top.contains_key(*key)) {
        return Err("must have required property");
    }
    if top
        .keys()
        .any(|key| !properties.iter().any(|(name, _)| name == key))
    {
        return Err("must NOT have additional properties");
    }
    for (name, kind) in properties {
        let ok = match (top.get(*name), kind) {
            (None, _) => true,
            (Some(Value::String(_)), Kind::String | Kind::NullableString) => true,
            (Some(Value::Null), Kind::NullableString) => true,
            (Some(Value::Bool(_)), Kind::Boolean) => true,
            (Some(Value::String(s)), Kind::OneOf(allowed)) => allowed.contains(&s.as_str()),
            _ => false,
        };
        if !ok {
            return Err(match kind {
                Kind::String | Kind::NullableString => "must be string",
                Kind::Boolean => "must be boolean",
                Kind::OneOf(_) => "must be equal to one of the allowed values",
            });
        }
    }
    Ok(top)
}

/// A legacy `validateParams` failure; the missing property is named as ajv names it.
fn invalid_params(message: &'static str, required: &[&str], top: Option<&[u8]>) -> ApiError {
    if message == "must have required property" {
        let missing = top
            .and_then(|b| serde_json::from_slice::<Map<String, Value>>(b).ok())
            .and_then(|m| required.iter().find(|k| !m.contains_key(**k)).copied())
            .unwrap_or(required[0]);
        return ApiError::invalid_params(format!("must have required property '{missing}'"));
    }
    ApiError::invalid_params(message)
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The body of `roles.addUserToRole` / `roles.removeUserFromRole`.
pub struct UserRoleBody {
    username: String,
    role_id: Option<String>,
}

const USER_ROLE_REQUIRED: &[&str] = &["username"];
const USER_ROLE_PROPERTIES: &[(&str, Kind)] = &[
    ("username", Kind::String),
    ("roleId", Kind::String),
    ("roomId", Kind::NullableString),
    ("scope", Kind::NullableString),
];

impl FromRequest for UserRoleBody {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;
    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = Body::from_request(req, payload);
        Box::pin(async move {
            let body = body.await?.0;
            let map = check_object(&body, USER_ROLE_REQUIRED, USER_ROLE_PROPERTIES)
                .map_err(|m| invalid_params(m, USER_ROLE_REQUIRED, Some(&body)))?;
            Ok(UserRoleBody {
                username: text(&map, "username").unwrap_or_default(),
                role_id: text(&map, "roleId").filter(|r| !r.is_empty()),
            })
        })
    }
}

fn invalid_role_properties() -> ApiError {
    // `API.v1.failure('error-invalid-role-properties')`: the text alone, no errorType.
    ApiError::failure("error-invalid-role-properties", "")
}

fn role_not_found() -> ApiError {
    // Rocket.Chat passes the arguments swapped: `failure('error-role-not-found', 'Role not found')`.
    ApiError::failure("error-role-not-found", "Role not found")
}

fn invalid_user_param() -> ApiError {
    ApiError::meteor(
        "error-invalid-user",
        "The required \"userId\" or \"username\" param provided does not match any users",
        None,
    )
}

fn admin_required() -> ApiError {
    ApiError::meteor(
        "error-admin-required",
        "You need to have at least one admin",
        None,
    )
}

/// The user by username, case-insensitively as Rocket.Chat's `findOneByUsernameIgnoringCase`
/// when no exact match exists.
fn find_user(conn: &rusqlite::Connection, username: &str) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(
        "SELECT username FROM users WHERE username = ?1
         UNION ALL SELECT username FROM users WHERE lower(username) = lower(?1) LIMIT 1",
    )?
    .query_row([username], |r| r.get(0))
    .optional()
}

/// The role whose `_id` is exactly `id`.
fn role_by_id(conn: &rusqlite::Connection, id: &str) -> rusqlite::Result<Option<RoleRow>> {
    Ok(db::roles::by_id_or_name(conn, id)?.filter(|r| r.id == id))
}

fn refusal(e: AdminError) -> ApiError {
    match e {
        AdminError::LastAdmin => admin_required(),
        AdminError::Sqlite(e) => e.into(),
        other => ApiError::Internal(format!("roles: unexpected refusal: {other}")),
    }
}

/// `POST /api/v1/roles.addUserToRole` `{username, roleId}`: `{role, success}`.
pub async fn add_user_to_role(ctx: Ctx, body: UserRoleBody) -> Result<HttpResponse, ApiError> {
    let may_access = ctx.caller.has_permission(ACCESS_PERMISSIONS);
    let may_assign_admin = ctx.caller.has_permission(ASSIGN_ADMIN_ROLE);
    let actor = actor(&ctx);
    let role = super::write(&ctx.state, move |tx| {
        if body.username.trim().is_empty() {
            return Err(ApiError::meteor(
                "error-user-param-not-provided",
                "The required \"userId\" or \"username\" param was not provided",
                None,
            ));
        }
        let username = find_user(tx, &body.username)?.ok_or_else(invalid_user_param)?;
        let role_id = body.role_id.ok_or_else(invalid_role_properties)?;
        let role = role_by_id(tx, &role_id)?.ok_or_else(role_not_found)?;
        let user = db::users::by_username(tx, &username)?.ok_or_else(invalid_user_param)?;
        if user.roles.contains(&role.id) {
            return Err(ApiError::meteor(
                "error-user-already-in-role",
                "User already in role",
                None,
            ));
        }
        if !may_access {
            return Err(ApiError::meteor_details(
                "error-action-not-allowed",
                "Accessing permissions is not allowed",
                json!({"method": "authorization:addUserToRole", "action": "Accessing_permissions"}),
            ));
        }
        if role.id == "admin" && !may_assign_admin {
            return Err(ApiError::meteor_details(
                "error-action-not-allowed",
                "Assigning admin is not allowed",
                json!({"method": "authorization:addUserToRole", "action": "Assign_admin"}),
            ));
        }
        admin::user_add_role(tx, &actor, &username, &role.id).map_err(refusal)?;
        Ok(role)
    })
    .await?;
    Ok(ok(json!({"role": role_json(&role, true), "success": true})))
}

/// `POST /api/v1/roles.removeUserFromRole` `{username, roleId}`: `{role, success}`. Refuses to
/// take the last admin's access away.
pub async fn remove_user_from_role(ctx: Ctx, body: UserRoleBody) -> Result<HttpResponse, ApiError> {
    let actor = actor(&ctx);
    let role = super::write(&ctx.state, move |tx| {
        let role_id = body.role_id.ok_or_else(invalid_role_properties)?;
        let user = db::users::by_username(tx, &body.username)?.ok_or_else(|| {
            ApiError::meteor(
                "error-invalid-user",
                "There is no user with this username",
                None,
            )
        })?;
        let role = role_by_id(tx, &role_id)?.ok_or_else(|| {
            ApiError::meteor("error-invalid-roleId", "This role does not exist", None)
        })?;
        if !user.roles.contains(&role.id) {
            return Err(ApiError::meteor(
                "error-user-not-in-role",
                "User is not in this role",
                None,
            ));
        }
        admin::user_remove_role(tx, &actor, &user.username, &role.id).map_err(refusal)?;
        Ok(role)
    })
    .await?;
    Ok(ok(json!({"role": role_json(&role, true), "success": true})))
}

/// The body of `roles.delete`: `{roleId}`.
pub struct DeleteBody(String);

impl FromRequest for DeleteBody {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;
    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = Body::from_request(req, payload);
        Box::pin(async move {
            let body = body.await?.0;
            let map = check_object(&body, &["roleId"], &[("roleId", Kind::String)])
                .map_err(|m| invalid_params(m, &["roleId"], Some(&body)))?;
            Ok(DeleteBody(text(&map, "roleId").unwrap_or_default()))
        })
    }
}

/// `POST /api/v1/roles.delete` `{roleId}` (an id or a name): `{success}`. A protected role, or
/// one a user or a permission still holds, is refused.
pub async fn delete(ctx: Ctx, body: DeleteBody) -> Result<HttpResponse, ApiError> {
    let actor = actor(&ctx);
    super::write(&ctx.state, move |tx| {
        let Some(role) = db::roles::by_id_or_name(tx, &body.0)? else {
            return Err(ApiError::meteor(
                "error-invalid-roleId",
                "This role does not exist",
                None,
            ));
        };
        admin::role_remove(tx, &actor, &role.id).map_err(|e| match e {
            AdminError::RoleProtected(_) => ApiError::meteor(
                "error-role-protected",
                "Cannot delete a protected role",
                None,
            ),
            AdminError::RoleInUse { .. } => ApiError::meteor(
                "error-role-in-use",
                "Cannot delete role because it's in use",
                None,
            ),
            other => refusal(other),
        })
    })
    .await?;
    Ok(ok(json!({"success": true})))
}

/// The body of `roles.create` (`update` adds `roleId`), as the enterprise schema allows.
pub struct RoleBody {
    role_id: Option<String>,
    name: String,
    /// As given: `create` defaults it to `Users`, `update` keeps the role's.
    scope: Option<String>,
    spec: RoleSpec,
}

fn parse_role_body(body: &[u8], update: bool) -> Result<RoleBody, ApiError> {
    const SCOPES: &[&str] = &["Users", "Subscriptions"];
    let properties: &[(&str, Kind)] = &[
        ("roleId", Kind::String),
        ("name", Kind::String),
        ("description", Kind::String),
        ("scope", Kind::OneOf(SCOPES)),
        ("mandatory2fa", Kind::Boolean),
    ];
    let (required, properties): (&[&str], _) = if update {
        (&["roleId", "name"], properties)
    } else {
        (&["name"], &properties[1..])
    };
    let invalid = || {
        ApiError::meteor(
            "error-invalid-role-properties",
            "The role properties are invalid.",
            None,
        )
    };
    let map = check_object(body, required, properties).map_err(|_| invalid())?;
    let name = text(&map, "name").unwrap_or_default();
    // Rocket.Chat takes any string; here a role name follows the CLI's rule (admin::valid_name),
    // so that every role can be named on a command line and in a plugin.
    if !admin::valid_name(&name) {
        return Err(invalid());
    }
    Ok(RoleBody {
        role_id: text(&map, "roleId"),
        name,
        scope: text(&map, "scope"),
        spec: RoleSpec {
            scope: text(&map, "scope").unwrap_or_else(|| "Users".into()),
            description: text(&map, "description").unwrap_or_default(),
            mandatory2fa: map
                .get("mandatory2fa")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
    })
}

/// The body of `roles.create` and `roles.update`; which one is known only in the handler, so the
/// extractor keeps the bytes.
pub struct RawRoleBody(actix_web::web::BytesMut);

impl FromRequest for RawRoleBody {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;
    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = Body::from_request(req, payload);
        Box::pin(async move { Ok(RawRoleBody(body.await?.0)) })
    }
}

fn not_allowed() -> ApiError {
    ApiError::meteor(
        "error-action-not-allowed",
        "Accessing permissions is not allowed",
        None,
    )
}

fn duplicate_name() -> ApiError {
    ApiError::meteor(
        "error-duplicate-role-names-not-allowed",
        "Role name already exists",
        None,
    )
}

/// `POST /api/v1/roles.create` `{name, description?, scope?, mandatory2fa?}`: `{role, success}`.
pub async fn create(ctx: Ctx, body: RawRoleBody) -> Result<HttpResponse, ApiError> {
    let body = parse_role_body(&body.0, false)?;
    if !ctx.caller.has_permission(ACCESS_PERMISSIONS) {
        return Err(not_allowed());
    }
    let actor = actor(&ctx);
    let role = super::write(&ctx.state, move |tx| {
        admin::role_create(tx, &actor, &body.name, &body.spec).map_err(|e| match e {
            AdminError::RoleExists(_) => duplicate_name(),
            other => refusal(other),
        })
    })
    .await?;
    Ok(ok(json!({"role": role_json(&role, true), "success": true})))
}

/// `POST /api/v1/roles.update` `{roleId, name, description?, scope?, mandatory2fa?}`:
/// `{role, success}`. The name and scope of a protected role cannot change.
pub async fn update(ctx: Ctx, body: RawRoleBody) -> Result<HttpResponse, ApiError> {
    let body = parse_role_body(&body.0, true)?;
    if !ctx.caller.has_permission(ACCESS_PERMISSIONS) {
        return Err(not_allowed());
    }
    let actor = actor(&ctx);
    let id = body.role_id.clone().unwrap_or_default();
    // A role's _id is its name, and plugin conditions name roles: renaming one a plugin names
    // would silently change what its hooks do (a redaction for that role would stop applying).
    let naming = ctx.state.plugins.current().files_naming_role(&id);
    let role = super::write(&ctx.state, move |tx| {
        let Some(role) = role_by_id(tx, &id)? else {
            return Err(ApiError::meteor(
                "error-invalid-roleId",
                "This role does not exist",
                None,
            ));
        };
        if body.name != role.name && !role.protected && !naming.is_empty() {
            return Err(ApiError::meteor(
                "error-role-in-use",
                format!(
                    "Cannot rename role because plugin file(s) {} name it; rename it there first",
                    naming.join(", ")
                ),
                None,
            ));
        }
        let spec = RoleSpec {
            scope: body.scope.unwrap_or(role.scope),
            ..body.spec
        };
        admin::role_update(tx, &actor, &id, &body.name, &spec).map_err(|e| match e {
            AdminError::RoleProtected(_) => ApiError::meteor(
                "error-invalid-role-properties",
                "The name and scope of protected roles cannot be changed.",
                None,
            ),
            AdminError::RoleExists(_) => duplicate_name(),
            other => refusal(other),
        })
    })
    .await?;
    Ok(ok(json!({"role": role_json(&role, true), "success": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_in_ajvs_order() {
        let check = |b: &str| check_object(b.as_bytes(), USER_ROLE_REQUIRED, USER_ROLE_PROPERTIES);
        assert_eq!(check("[]").unwrap_err(), "must be object");
        assert_eq!(check("{").unwrap_err(), "must be object");
        assert_eq!(
            check(r#"{"roleId":"x"}"#).unwrap_err(),
            "must have required property"
        );
        assert_eq!(
            check(r#"{"username":"a","x":1}"#).unwrap_err(),
            "must NOT have additional properties"
        );
        assert_eq!(check(r#"{"username":1}"#).unwrap_err(), "must be string");
        assert!(check(r#"{"username":"a","roomId":null}"#).is_ok());
        assert!(parse_role_body(br#"{"name":"x","scope":"Rooms"}"#, false).is_err());
        assert!(parse_role_body(br#"{"name":" "}"#, false).is_err());
        assert!(parse_role_body(br#"{"name":"x"}"#, true).is_err());
        let b = parse_role_body(br#"{"roleId":"a","name":"b","mandatory2fa":true}"#, true).unwrap();
        assert_eq!(
            (b.role_id.as_deref(), b.spec.mandatory2fa),
            (Some("a"), true)
        );
    }
}
