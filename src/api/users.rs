//! Rocket.Chat's `users.*` routes: `users.list`, `users.info`, `users.create`, `users.update`,
//! `users.setActiveStatus`, `users.createToken` and the personal access tokens
//! (`users.generatePersonalAccessToken`, `users.getPersonalAccessTokens`,
//! `users.regeneratePersonalAccessToken`, `users.removePersonalAccessToken`).
//!
//! Check order, as Rocket.Chat 7.x's legacy routes: 401, then the parameters (those with a
//! `validateParams` schema answer ajv's message with ` [invalid-params]`; Rocket.Chat's ajv coerces
//! scalars, so `"active":"true"` and `"name":5` are read as `true` and `"5"`), then the declared
//! permission (403), then the checks Rocket.Chat makes inside the handler (400 with its
//! `Meteor.Error` type and details). Changes go through [`crate::admin`] in one transaction per
//! request, audited with the REST user as actor, in force for the next request ([`super::write`]).
//!
//! Offline choices, documented in the README:
//! - `users.create` / `users.update` accept every field of Rocket.Chat's schema; those without a
//!   meaning here (bio, nickname, statusText, customFields, verified, requirePasswordChange,
//!   sendWelcomeEmail, joinDefaultChannels, settings, phones, freeSwitchExtension) are validated
//!   and not stored; `setRandomPassword` makes a user without a password (token-only).
//! - A new password revokes the user's tokens (Meteor's `Accounts.setPassword` logs out).
//! - `users.createToken` is gated by `user-generate-access-token` (or self), like Rocket.Chat; its
//!   `CREATE_TOKENS_FOR_USERS` environment gate is honoured only when set: unset means allowed
//!   (an admin turns the route off by taking the permission away, or by setting the variable to
//!   anything but `true`/`yes`).

use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};

use super::errors::json as json_response;
use super::permissions::Body;
use super::user_query::UserQuery;
use super::{ApiError, Ctx};
use crate::admin::users::{NewUser, ProfileChange};
use crate::admin::{self, Actor, AdminError};
use crate::auth::{passwords, tokens};
use crate::db::{self, users::UserRow};
use crate::model::UserId;

pub const VIEW_D_ROOM: &str = "view-d-room";
const CREATE_USER: &str = "create-user";
const EDIT_OTHER_USER_INFO: &str = "edit-other-user-info";
const EDIT_OTHER_USER_PASSWORD: &str = "edit-other-user-password";
pub const EDIT_OTHER_USER_ACTIVE_STATUS: &str = "edit-other-user-active-status";
pub const MANAGE_MODERATION_ACTIONS: &str = "manage-moderation-actions";
pub const CREATE_PERSONAL_ACCESS_TOKENS: &str = "create-personal-access-tokens";
const USER_GENERATE_ACCESS_TOKEN: &str = "user-generate-access-token";
const VIEW_FULL_OTHER_USER_INFO: &str = "view-full-other-user-info";
const VIEW_OTHER_USER_CHANNELS: &str = "view-other-user-channels";
const ASSIGN_ADMIN_ROLE: &str = "assign-admin-role";

/// Roles one request may list: far more than exist, few enough to bound the work.
const MAX_ROLES: usize = 1_000;

/// Rocket.Chat's `saveUser` method name, in its errors' details.
const SAVE_USER: &str = "insertOrUpdateUser";

// ---------------------------------------------------------------------------------------------
// Parameters, validated as Rocket.Chat's ajv (coerceTypes) validates them.

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Obj,
    StrArray,
    ObjArray,
}

struct Prop {
    name: &'static str,
    ty: Ty,
    nullable: bool,
}

const fn prop(name: &'static str, ty: Ty, nullable: bool) -> Prop {
    Prop { name, ty, nullable }
}

/// JavaScript's `String(number)` for the numbers JSON carries.
fn js_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i128)
    } else {
        format!("{f}")
    }
}

/// ajv's type check of one value with `coerceTypes: true`: scalars become the type when they can.
fn coerce(value: &mut Value, p: &Prop) -> Result<(), String> {
    if value.is_null() && p.nullable {
        return Ok(());
    }
    let coerced = match (p.ty, &*value) {
        (Ty::Str, Value::String(_)) | (Ty::Bool, Value::Bool(_)) | (Ty::Obj, Value::Object(_)) => {
            None
        }
        (Ty::Str, Value::Number(n)) => Some(Value::String(js_number(n))),
        (Ty::Str, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (Ty::Str, Value::Null) => Some(Value::String(String::new())),
        (Ty::Bool, Value::String(s)) if s == "true" || s == "false" => {
            Some(Value::Bool(s == "true"))
        }
        (Ty::Bool, Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 1) => {
            Some(Value::Bool(n.as_u64() == Some(1)))
        }
        (Ty::Bool, Value::Null) => Some(Value::Bool(false)),
        (Ty::StrArray, Value::Array(items)) => {
            if items.len() > MAX_ROLES {
                return Err(format!("must NOT have more than {MAX_ROLES} items"));
            }
            let item = prop("", Ty::Str, false);
            let mut items = items.clone();
            for v in &mut items {
                coerce(v, &item)?;
            }
            Some(Value::Array(items))
        }
        (Ty::ObjArray, Value::Array(items)) => {
            if items.len() > MAX_ROLES {
                return Err(format!("must NOT have more than {MAX_ROLES} items"));
            }
            if items.iter().any(|v| !v.is_object()) {
                return Err("must be object".into());
            }
            None
        }
        (Ty::Str, _) => return Err("must be string".into()),
        (Ty::Bool, _) => return Err("must be boolean".into()),
        (Ty::Obj, _) => return Err("must be object".into()),
        (Ty::StrArray | Ty::ObjArray, _) => return Err("must be array".into()),
    };
    if let Some(c) = coerced {
        *value = c;
    }
    Ok(())
}

/// ajv's checks of an object schema, in its order: type, required, additional properties, then
/// each property's type. Returns the object with coerced values, or ajv's first message.
fn check_object(
    value: Value,
    required: &[&str],
    props: &[Prop],
) -> Result<Map<String, Value>, String> {
    let Value::Object(mut map) = value else {
        return Err("must be object".into());
    };
    if let Some(missing) = required.iter().find(|r| !map.contains_key(**r)) {
        return Err(format!("must have required property '{missing}'"));
    }
    if map.keys().any(|k| !props.iter().any(|p| p.name == k)) {
        return Err("must NOT have additional properties".into());
    }
    for p in props {
        if let Some(v) = map.get_mut(p.name) {
            coerce(v, p)?;
        }
    }
    Ok(map)
}

/// A body read as JSON; what is not a JSON value reads as no object at all.
fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// Rocket.Chat's `bodyParams` for routes without a schema: a body that is no JSON object reads
/// as `{}`.
fn loose_body(body: &[u8]) -> Map<String, Value> {
    match body_value(body) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn str_of<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

fn bool_of(map: &Map<String, Value>, key: &str) -> Option<bool> {
    map.get(key).and_then(Value::as_bool)
}

/// JavaScript truthiness, for the parameters Rocket.Chat reads with `||`.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// The query string as Rocket.Chat's `qs` reads it: a repeated key is an array, `a[b]=c` an
/// object.
fn query_map(req: &HttpRequest) -> Map<String, Value> {
    let mut map = Map::new();
    for (key, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        let (key, value) = match key.split_once('[') {
            Some((base, _)) => (base.to_string(), Value::Object(Map::new())),
            None => (key.into_owned(), Value::String(value.into_owned())),
        };
        match map.get_mut(&key) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                map.insert(key, value);
            }
        }
    }
    map
}

/// A body validated against a schema in the extractor, so a bad one is a 400 before the 403.
macro_rules! validated_body {
    ($name:ident, $check:path) => {
        pub struct $name(Map<String, Value>);

        impl FromRequest for $name {
            type Error = ApiError;
            type Future =
                std::pin::Pin<Box<dyn std::future::Future<Output = Result<$name, ApiError>>>>;
            fn from_request(
                req: &HttpRequest,
                payload: &mut actix_web::dev::Payload,
            ) -> Self::Future {
                let body = Body::from_request(req, payload);
                Box::pin(async move {
                    let body = body.await?;
                    $check(body_value(&body.0))
                        .map($name)
                        .map_err(|m| ApiError::invalid_params(&m))
                })
            }
        }
    };
}

const CREATE_PROPS: &[Prop] = &[
    prop("email", Ty::Str, false),
    prop("name", Ty::Str, false),
    prop("password", Ty::Str, false),
    prop("username", Ty::Str, false),
    prop("active", Ty::Bool, true),
    prop("bio", Ty::Str, true),
    prop("nickname", Ty::Str, true),
    prop("statusText", Ty::Str, true),
    prop("roles", Ty::StrArray, false),
    prop("joinDefaultChannels", Ty::Bool, true),
    prop("requirePasswordChange", Ty::Bool, true),
    prop("setRandomPassword", Ty::Bool, true),
    prop("sendWelcomeEmail", Ty::Bool, true),
    prop("verified", Ty::Bool, true),
    prop("customFields", Ty::Obj, false),
    prop("fields", Ty::Str, true),
    prop("freeSwitchExtension", Ty::Str, true),
    prop("phones", Ty::ObjArray, true),
];

fn check_create(v: Value) -> Result<Map<String, Value>, String> {
    check_object(v, &["email", "name", "password", "username"], CREATE_PROPS)
}

const UPDATE_DATA_PROPS: &[Prop] = &[
    prop("email", Ty::Str, true),
    prop("name", Ty::Str, true),
    prop("password", Ty::Str, true),
    prop("username", Ty::Str, true),
    prop("bio", Ty::Str, true),
    prop("nickname", Ty::Str, true),
    prop("statusText", Ty::Str, true),
    prop("active", Ty::Bool, true),
    prop("roles", Ty::StrArray, true),
    prop("joinDefaultChannels", Ty::Bool, true),
    prop("requirePasswordChange", Ty::Bool, true),
    prop("setRandomPassword", Ty::Bool, true),
    prop("sendWelcomeEmail", Ty::Bool, true),
    prop("verified", Ty::Bool, true),
    prop("customFields", Ty::Obj, true),
    prop("status", Ty::Str, true),
];

fn check_update(v: Value) -> Result<Map<String, Value>, String> {
    let mut top = check_object(
        v,
        &["userId", "data"],
        &[
            prop("userId", Ty::Str, false),
            prop("confirmRelinquish", Ty::Bool, false),
            prop("data", Ty::Obj, false),
        ],
    )?;
    let data = top.remove("data").unwrap_or_default();
    let data = check_object(data, &[], UPDATE_DATA_PROPS)?;
    top.insert("data".into(), Value::Object(data));
    Ok(top)
}

fn check_set_active(v: Value) -> Result<Map<String, Value>, String> {
    check_object(
        v,
        &["userId", "activeStatus"],
        &[
            prop("userId", Ty::Str, false),
            prop("activeStatus", Ty::Bool, false),
            prop("confirmRelinquish", Ty::Bool, true),
        ],
    )
}

validated_body!(CreateBody, check_create);
validated_body!(UpdateBody, check_update);
validated_body!(SetActiveBody, check_set_active);

/// A body read as Rocket.Chat's `bodyParams` for routes without a schema.
pub struct LooseBody(Map<String, Value>);

impl FromRequest for LooseBody {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<LooseBody, ApiError>>>>;
    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = Body::from_request(req, payload);
        Box::pin(async move { Ok(LooseBody(loose_body(&body.await?.0))) })
    }
}

/// `users.info`'s query: `anyOf` `{userId}` | `{username}` | `{importId}`, each with optional
/// `includeUserRooms` and `fields`, no other parameter. Every branch's first failure is reported,
/// then ajv's `anyOf` message, joined as Rocket.Chat joins them.
pub struct InfoQuery {
    key: InfoKey,
    include_rooms: bool,
}

enum InfoKey {
    Id(String),
    Username(String),
    ImportId,
}

impl FromRequest for InfoQuery {
    type Error = ApiError;
    type Future = std::future::Ready<Result<InfoQuery, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(parse_info_query(query_map(req)))
    }
}

fn parse_info_query(query: Map<String, Value>) -> Result<InfoQuery, ApiError> {
    let mut errors = Vec::new();
    for key in ["userId", "username", "importId"] {
        let props = [
            prop(key, Ty::Str, false),
            prop("includeUserRooms", Ty::Str, false),
            prop("fields", Ty::Str, true),
        ];
        match check_object(Value::Object(query.clone()), &[key], &props) {
            Ok(map) => {
                let value = str_of(&map, key).unwrap_or_default().to_string();
                return Ok(InfoQuery {
                    key: match key {
                        "userId" => InfoKey::Id(value),
                        "username" => InfoKey::Username(value),
                        _ => InfoKey::ImportId,
                    },
                    include_rooms: str_of(&map, "includeUserRooms") == Some("true"),
                });
            }
            Err(e) => errors.push(e),
        }
    }
    errors.push("must match a schema in anyOf".into());
    Err(ApiError::invalid_params(errors.join("\n ")))
}

/// `users.list`'s query string, read by the handler: Rocket.Chat parses `sort` and `query` inside
/// the route's action (`parseJsonQuery`), after the permission check, so a caller without
/// `view-d-room` gets 403 whatever they send.
pub struct ListParams(Map<String, Value>);

impl FromRequest for ListParams {
    type Error = ApiError;
    type Future = std::future::Ready<Result<ListParams, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(ListParams(query_map(req))))
    }
}

/// `users.list`'s pagination, sort and search (§0.3, §0.4 of the admin routes reference).
struct ListQuery {
    offset: u64,
    limit: Option<u64>,
    sort: Vec<(db::users::SortKey, bool)>,
    /// Rocket.Chat's deprecated `query`, which 7.x still reads and its clients search with.
    query: Option<UserQuery>,
}

/// `String(value)` of a query parameter, as Rocket.Chat's helpers read it.
fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(param_text).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".into(),
        other => other.to_string(),
    }
}

/// Rocket.Chat's REST defaults ([`super::paging`]): 50 items, at most 100; `count=0` means every
/// item. Read here with Mongo's reading of a negative count (at most that many), not the fallback
/// `paging` gives it.
const DEFAULT_COUNT: u64 = super::paging::DEFAULT_COUNT as u64;
const MAX_COUNT: u64 = super::paging::MAX_COUNT as u64;
use super::paging::parse_int;

fn parse_list_query(q: &Map<String, Value>) -> Result<ListQuery, ApiError> {
    use db::users::SortKey;
    // A skip MongoDB would refuse (negative) or cannot read (NaN) starts at the beginning.
    let offset = q
        .get("offset")
        .map(param_text)
        .filter(|t| !t.is_empty())
        .and_then(|t| parse_int(&t))
        .map_or(0, |n| n.max(0) as u64);
    let count = match q.get("count").map(param_text) {
        None => DEFAULT_COUNT,
        // A negative limit is MongoDB's "at most that many, in one batch".
        Some(t) => parse_int(&t).map_or(DEFAULT_COUNT, i64::unsigned_abs),
    };
    let limit = match count.min(MAX_COUNT) {
        0 => None,
        n => Some(n),
    };
    let mut sort = Vec::new();
    match q.get("sort") {
        None => sort.push((SortKey::Username, true)),
        Some(raw) => {
            let raw = param_text(raw);
            let invalid = || {
                ApiError::meteor(
                    "error-invalid-sort",
                    format!("Invalid sort parameter provided: \"{raw}\""),
                    Some(json!({"helperMethod": "parseJsonQuery"})),
                )
            };
            let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&raw) else {
                return Err(invalid());
            };
            for (field, direction) in &fields {
                let asc = match direction.as_i64() {
                    Some(1) if direction.is_i64() || direction.is_u64() => true,
                    Some(-1) if direction.is_i64() => false,
                    _ => return Err(invalid()),
                };
                // Rocket.Chat does not whitelist keys: MongoDB sorts on a field no user has as if
                // all were equal, so an unknown key changes nothing.
                let key = match field.as_str() {
                    "_id" => SortKey::Id,
                    "username" => SortKey::Username,
                    "name" | "nameInsensitive" => SortKey::Name,
                    "status" | "active" => SortKey::Active,
                    "createdAt" => SortKey::CreatedAt,
                    "emails" | "emails.address" => SortKey::Email,
                    _ => continue,
                };
                sort.push((key, asc));
            }
        }
    }
    let query = match q.get("query").map(param_text) {
        // Rocket.Chat reads an empty `query` as none
        None => None,
        Some(raw) if raw.is_empty() => None,
        Some(raw) => Some(UserQuery::parse(&raw)?),
    };
    Ok(ListQuery {
        offset,
        limit,
        sort,
        query,
    })
}

// ---------------------------------------------------------------------------------------------
// Rocket.Chat's validations inside `saveUser`.

fn meteor(error_type: &'static str, reason: impl Into<String>, details: Value) -> ApiError {
    ApiError::meteor(error_type, reason, Some(details))
}

fn not_allowed(reason: &str, action: &str) -> ApiError {
    meteor(
        "error-action-not-allowed",
        reason,
        json!({"method": SAVE_USER, "action": action}),
    )
}

fn field_required(field: &str) -> ApiError {
    meteor(
        "error-the-field-is-required",
        format!("The field {field} is required"),
        json!({"method": SAVE_USER, "field": field}),
    )
}

/// lodash's `_.escape`, which Rocket.Chat applies to names it puts in messages.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn unavailable(value: &str) -> ApiError {
    meteor(
        "error-field-unavailable",
        format!("{} is already in use :(", escape(value)),
        json!({"method": SAVE_USER, "field": value}),
    )
}

fn invalid_username(username: &str) -> ApiError {
    meteor(
        "error-input-is-not-a-valid-field",
        format!("{} is not a valid username", escape(username)),
        json!({"method": SAVE_USER, "input": username, "field": "Username"}),
    )
}

fn invalid_email(email: &str) -> ApiError {
    meteor(
        "error-invalid-email",
        format!("Invalid email {}", escape(email)),
        json!({"method": SAVE_USER, "email": email}),
    )
}

/// Rocket.Chat's `validateNameChars`: no `<`, `>`, `/` or `\`, also once read by JavaScript's
/// `decodeURI` (a malformed escape, which makes `decodeURI` throw, is invalid too); no control
/// characters either.
fn valid_name_chars(name: &str) -> bool {
    let bad = |s: &str| s.contains(['<', '>', '/', '\\']) || s.chars().any(char::is_control);
    !bad(name) && decode_uri(name).is_some_and(|d| !bad(&d))
}

/// JavaScript's `decodeURI`: `%XX` escapes decoded as UTF-8, except those of the characters it
/// keeps escaped (`;/?:@&=+$,#`); None where it would throw.
fn decode_uri(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = s.get(i + 1..i + 3)?;
        let byte = u8::from_str_radix(hex, 16).ok()?;
        if b";/?:@&=+$,#".contains(&byte) {
            out.extend_from_slice(&bytes[i..i + 3]);
        } else {
            out.push(byte);
        }
        i += 3;
    }
    String::from_utf8(out).ok()
}

/// Rocket.Chat's default `UTF8_User_Names_Validation`, `[0-9a-zA-Z-_.]+`, and no longer than a
/// login accepts.
fn valid_username(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= super::auth::MAX_USERNAME_BYTES
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Rocket.Chat's `validateEmail` pattern.
fn valid_email(email: &str) -> bool {
    static RE: OnceLock<Option<regex_automata::meta::Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        regex_automata::meta::Regex::new(
            r#"^(([^<>()\[\]\\.,;:\s@"]+(\.[^<>()\[\]\\.,;:\s@"]+)*)|(".+"))@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\])|(([a-zA-Z\-0-9]+\.)+[a-zA-Z]{2,}))$"#,
        )
        .ok()
    })
    .as_ref()
    .is_some_and(|re| re.is_match(email))
}

fn username_taken(
    conn: &rusqlite::Connection,
    username: &str,
    except: Option<&UserId>,
) -> Result<bool, ApiError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM users WHERE lower(username) = lower(?1) AND id IS NOT ?2)",
        )?
        .query_row(
            rusqlite::params![username, except.map(UserId::as_str)],
            |r| r.get(0),
        )?)
}

/// Rocket.Chat's role checks of `saveUser`: every role an existing role id, and `admin` only for
/// a caller holding `assign-admin-role`.
fn check_roles(
    conn: &rusqlite::Connection,
    ctx_admin: bool,
    roles: &[String],
) -> Result<(), ApiError> {
    for role in roles {
        if db::roles::by_id_or_name(conn, role)?.is_none_or(|r| &r.id != role) {
            return Err(not_allowed(
                "The field Roles consist invalid role id",
                "Assign_role",
            ));
        }
    }
    if roles.iter().any(|r| r == "admin") && !ctx_admin {
        return Err(not_allowed(
            "Assigning admin is not allowed",
            "Assign_admin",
        ));
    }
    Ok(())
}

fn roles_of(map: &Map<String, Value>) -> Option<Vec<String>> {
    let roles: Vec<String> = map
        .get("roles")?
        .as_array()?
        .iter()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let mut unique = Vec::with_capacity(roles.len());
    for r in roles {
        if !unique.contains(&r) {
            unique.push(r);
        }
    }
    Some(unique)
}

fn last_admin(active: bool) -> ApiError {
    meteor(
        "error-action-not-allowed",
        if active {
            "Leaving the app without admins is not allowed"
        } else {
            "Leaving the app without an active admin is not allowed"
        },
        json!({"method": "removeUserFromRole", "action": "Remove_last_admin"}),
    )
}

/// An admin refusal that validation did not catch first (a concurrent change): Rocket.Chat's
/// answer for it, never a 500.
fn refusal(e: AdminError) -> ApiError {
    match e {
        AdminError::UnknownRole { .. } => {
            not_allowed("The field Roles consist invalid role id", "Assign_role")
        }
        AdminError::UserExists(name) => unavailable(&name),
        AdminError::Invalid { value, .. } => unavailable(&value),
        AdminError::UnknownUser(_) => ApiError::failure("User not found", ""),
        AdminError::LastAdmin => last_admin(true),
        AdminError::Sqlite(e) => e.into(),
        other => ApiError::Internal(format!("users: unexpected refusal: {other}")),
    }
}

fn actor(ctx: &Ctx) -> Actor {
    Actor::Rest {
        user: ctx.caller.user.username.clone(),
    }
}

/// Hashes a password on the blocking pool (argon2 takes tens of milliseconds), outside any
/// transaction.
async fn hash_password(plain: String) -> Result<String, ApiError> {
    actix_web::web::block(move || passwords::hash_password(&plain))
        .await
        .map_err(|e| ApiError::Internal(format!("hashing worker: {e}")))?
        .map_err(ApiError::Internal)
}

// ---------------------------------------------------------------------------------------------
// User documents.

fn iso_secs(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A user as Rocket.Chat's users routes show it: the fields anyone may see, plus (`full`, for a
/// caller with `view-full-other-user-info` or for oneself) emails, roles, dates and connection
/// status; oneself also sees whether a password is set (`services.password`).
fn user_json(u: &UserRow, full: bool, own: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("_id".into(), json!(u.id.as_str()));
    if full {
        m.insert("createdAt".into(), json!(iso_secs(u.created_at)));
    }
    m.insert("username".into(), json!(u.username));
    if full && let Some(email) = &u.email {
        m.insert(
            "emails".into(),
            json!([{"address": email, "verified": false}]),
        );
    }
    m.insert("type".into(), json!("user"));
    m.insert(
        "status".into(),
        json!(if own { "online" } else { "offline" }),
    );
    m.insert("active".into(), json!(u.active));
    m.insert("name".into(), json!(u.name));
    m.insert("utcOffset".into(), json!(0));
    if full {
        m.insert("roles".into(), json!(u.roles));
        m.insert(
            "statusConnection".into(),
            json!(if own { "online" } else { "offline" }),
        );
    }
    if own && u.password_hash.is_some() {
        m.insert("services".into(), json!({"password": true}));
    }
    m
}

fn ok(body: Value) -> HttpResponse {
    json_response(StatusCode::OK, body.to_string())
}

// ---------------------------------------------------------------------------------------------
// Routes.

/// `GET /api/v1/users.list[?count&offset&sort&query]`: `{users, count, offset, total, success}`;
/// with `query`, `total` counts the matching users.
pub async fn list(ctx: Ctx, params: ListParams) -> Result<HttpResponse, ApiError> {
    let mut q = parse_list_query(&params.0)?;
    let full = ctx.caller.has_permission(VIEW_FULL_OTHER_USER_INFO);
    // Others' emails are hidden from a caller without view-full-other-user-info: so are searching
    // and sorting by them, which would reveal them as surely.
    if !full {
        if q.query.as_ref().is_some_and(UserQuery::reads_email) {
            return Err(ApiError::meteor(
                "error-invalid-query",
                "emails.address cannot be searched without view-full-other-user-info",
                Some(json!({"helperMethod": "parseJsonQuery"})),
            ));
        }
        let asked = q.sort.len();
        q.sort
            .retain(|(key, _)| !matches!(key, db::users::SortKey::Email));
        if asked > 0 && q.sort.is_empty() {
            q.sort.push((db::users::SortKey::Username, true));
        }
    }
    let me = ctx.caller.user.id.clone();
    let body = super::blocking(&ctx.state, move |conn| {
        let (rows, total) = db::users::page(
            conn,
            &q.sort,
            q.offset,
            q.limit,
            q.query.as_ref().map(|f| move |u: &UserRow| f.matches(u)),
        )?;
        let users: Vec<Value> = rows
            .iter()
            .map(|u| Value::Object(user_json(u, full || u.id == me, u.id == me)))
            .collect();
        Ok(json!({
            "users": users,
            "count": users.len(),
            "offset": q.offset,
            "total": total,
            "success": true,
        }))
    })
    .await?;
    Ok(ok(body))
}

/// `GET /api/v1/users.info?userId=ID|username=NAME`: `{user, success}`; an unknown user is 400
/// `{"success":false,"error":"User not found."}`.
pub async fn info(ctx: Ctx, q: InfoQuery) -> Result<HttpResponse, ApiError> {
    let full_perm = ctx.caller.has_permission(VIEW_FULL_OTHER_USER_INFO);
    let rooms_perm = ctx.caller.has_permission(VIEW_OTHER_USER_CHANNELS);
    let me = ctx.caller.user.id.clone();
    let body = super::blocking(&ctx.state, move |conn| {
        let row = match &q.key {
            InfoKey::Id(id) => db::users::by_id(conn, id)?,
            InfoKey::Username(name) => db::users::by_username(conn, name)?,
            // No user of inquiryd was imported with a Rocket.Chat import id.
            InfoKey::ImportId => None,
        };
        let Some(u) = row else {
            return Err(ApiError::failure("User not found.", ""));
        };
        let own = u.id == me;
        let mut user = user_json(&u, full_perm || own, own);
        user.insert("canViewAllInfo".into(), json!(full_perm || own));
        if q.include_rooms && (own || rooms_perm) {
            // inquiryd keeps no room subscriptions.
            user.insert("rooms".into(), json!([]));
        }
        Ok(json!({"user": user, "success": true}))
    })
    .await?;
    Ok(ok(body))
}

/// `POST /api/v1/users.create`: `{user, success}`. `create-user` is checked inside, as
/// Rocket.Chat does (400 `error-action-not-allowed`).
pub async fn create(ctx: Ctx, body: CreateBody) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let name = str_of(&b, "name").unwrap_or_default().trim().to_string();
    let username = str_of(&b, "username")
        .unwrap_or_default()
        .trim()
        .to_string();
    let email = str_of(&b, "email").unwrap_or_default().trim().to_string();
    let password = str_of(&b, "password").unwrap_or_default().to_string();
    let random_password = bool_of(&b, "setRandomPassword") == Some(true);
    // Rocket.Chat gives a user created without roles (or with none) the default new-user roles.
    let roles = roles_of(&b)
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| vec!["user".to_string()]);
    let active = bool_of(&b, "active").unwrap_or(true);
    if !valid_name_chars(&name) {
        return Err(ApiError::failure("Name contains invalid characters", ""));
    }
    if !ctx.caller.has_permission(CREATE_USER) {
        return Err(not_allowed("Adding user is not allowed", "Adding_user"));
    }
    let assign_admin = ctx.caller.has_permission(ASSIGN_ADMIN_ROLE);
    {
        let (roles, username, email) = (roles.clone(), username.clone(), email.clone());
        let (name, password) = (name.clone(), password.clone());
        super::blocking(&ctx.state, move |conn| {
            check_roles(conn, assign_admin, &roles)?;
            if name.is_empty() {
                return Err(field_required("Name"));
            }
            if username.is_empty() {
                return Err(field_required("Username"));
            }
            if !valid_username(&username) {
                return Err(invalid_username(&username));
            }
            if password.trim().is_empty() && !random_password {
                return Err(field_required("Password"));
            }
            if !email.is_empty() && !valid_email(&email) {
                return Err(invalid_email(&email));
            }
            if username_taken(conn, &username, None)? {
                return Err(unavailable(&username));
            }
            if !email.is_empty() && db::users::email_taken(conn, &email, None)? {
                return Err(unavailable(&email));
            }
            Ok(())
        })
        .await?;
    }
    // setRandomPassword: Rocket.Chat mails a random one; offline, the user gets none (tokens only).
    let hash = if password.trim().is_empty() {
        None
    } else {
        Some(hash_password(password).await?)
    };
    let actor = actor(&ctx);
    let full = ctx.caller.has_permission(VIEW_FULL_OTHER_USER_INFO);
    let me = ctx.caller.user.id.clone();
    let body = super::write(&ctx.state, move |tx| {
        let id = UserId::random();
        let new = NewUser {
            id: &id,
            username: &username,
            name: &name,
            email: (!email.is_empty()).then_some(email.as_str()),
            password_hash: hash.as_deref(),
            roles: &roles,
            active,
        };
        admin::users::user_create(tx, &actor, &new).map_err(refusal)?;
        let u = db::users::by_id(tx, id.as_str())?
            .ok_or_else(|| ApiError::Internal("created user not found".into()))?;
        Ok(json!({"user": user_json(&u, full, u.id == me), "success": true}))
    })
    .await?;
    Ok(ok(body))
}

/// `POST /api/v1/users.update` `{userId, data:{name, username, email, password, roles, active,
/// …}}`: `{user, success}`. Another user needs `edit-other-user-info`; `admin` needs
/// `assign-admin-role`; `active` needs `edit-other-user-active-status`.
pub async fn update(ctx: Ctx, body: UpdateBody) -> Result<HttpResponse, ApiError> {
    let mut b = body.0;
    let user_id = str_of(&b, "userId").unwrap_or_default().to_string();
    let data = match b.remove("data") {
        Some(Value::Object(data)) => data,
        _ => Map::new(),
    };
    let text = |key: &str| {
        str_of(&data, key)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let name = text("name");
    let username = text("username");
    let email = text("email");
    let password = str_of(&data, "password")
        .filter(|p| !p.trim().is_empty())
        .map(str::to_string);
    let roles = roles_of(&data);
    let active = bool_of(&data, "active");
    if let Some(name) = &name
        && !valid_name_chars(name)
    {
        return Err(ApiError::failure("Name contains invalid characters", ""));
    }
    let own = user_id == ctx.caller.user.id.as_str();
    // Rocket.Chat's saveUser sets a password only for a caller holding edit-other-user-password,
    // oneself included (one's own goes through users.updateOwnBasicInfo, with the current one):
    // else whoever may edit a user, or holds a (public demo) token, could take the account over.
    if password.is_some() && !ctx.caller.has_permission(EDIT_OTHER_USER_PASSWORD) {
        return Err(not_allowed(
            "Editing user password is not allowed",
            "Editing_user",
        ));
    }
    let may_edit_others = ctx.caller.has_permission(EDIT_OTHER_USER_INFO);
    // Changing one's own roles is editing what only an admin may edit.
    if (!own || roles.is_some()) && !may_edit_others {
        return Err(not_allowed("Editing user is not allowed", "Editing_user"));
    }
    if active.is_some() && !ctx.caller.has_permission(EDIT_OTHER_USER_ACTIVE_STATUS) {
        return Err(meteor(
            "error-not-allowed",
            "Not allowed",
            json!({"method": "setUserActiveStatus"}),
        ));
    }
    let assign_admin = ctx.caller.has_permission(ASSIGN_ADMIN_ROLE);
    let target = {
        let (roles, username, email, user_id) = (
            roles.clone(),
            username.clone(),
            email.clone(),
            user_id.clone(),
        );
        super::blocking(&ctx.state, move |conn| {
            if let Some(roles) = &roles {
                check_roles(conn, assign_admin, roles)?;
            }
            if let Some(username) = &username
                && !valid_username(username)
            {
                return Err(invalid_username(username));
            }
            let Some(target) = db::users::by_id(conn, &user_id)? else {
                return Err(meteor(
                    "error-invalid-userId",
                    "Invalid userId",
                    json!({"method": SAVE_USER}),
                ));
            };
            if let Some(username) = &username
                && username_taken(conn, username, Some(&target.id))?
            {
                return Err(unavailable(username));
            }
            if let Some(email) = &email {
                if !valid_email(email) {
                    return Err(invalid_email(email));
                }
                if db::users::email_taken(conn, email, Some(&target.id))? {
                    return Err(unavailable(email));
                }
            }
            Ok(target)
        })
        .await?
    };
    let password_hash = match password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let actor = actor(&ctx);
    let full = ctx.caller.has_permission(VIEW_FULL_OTHER_USER_INFO) || own;
    let body = super::write(&ctx.state, move |tx| {
        let change = ProfileChange {
            username,
            name,
            email,
            password_hash,
        };
        let profile_changes = change.username.is_some()
            || change.name.is_some()
            || change.email.is_some()
            || change.password_hash.is_some();
        if profile_changes {
            admin::users::user_update(tx, &actor, &target.username, &change).map_err(refusal)?;
        }
        let current = db::users::by_id(tx, target.id.as_str())?
            .ok_or_else(|| ApiError::failure("User not found", ""))?;
        if let Some(roles) = &roles {
            admin::user_set_roles(tx, &actor, &current.username, roles).map_err(refusal)?;
        }
        if let Some(active) = active
            && active != current.active
        {
            admin::user_set_active(tx, &actor, &current.username, active).map_err(|e| match e {
                AdminError::LastAdmin => last_admin(false),
                e => refusal(e),
            })?;
        }
        let u = db::users::by_id(tx, target.id.as_str())?
            .ok_or_else(|| ApiError::failure("User not found", ""))?;
        Ok(json!({"user": user_json(&u, full, own), "success": true}))
    })
    .await?;
    Ok(ok(body))
}

/// `POST /api/v1/users.setActiveStatus` `{userId, activeStatus}`: `{user:{_id, active}}`.
/// Mounted for any logged-in user: Rocket.Chat's `hasAny` of two permissions is checked here,
/// after the body (403).
pub async fn set_active_status(ctx: Ctx, body: SetActiveBody) -> Result<HttpResponse, ApiError> {
    if ![EDIT_OTHER_USER_ACTIVE_STATUS, MANAGE_MODERATION_ACTIONS]
        .iter()
        .any(|p| ctx.caller.has_permission(p))
    {
        return Err(ApiError::Forbidden);
    }
    if !ctx.caller.has_permission(EDIT_OTHER_USER_ACTIVE_STATUS) {
        return Err(meteor(
            "error-not-allowed",
            "Not allowed",
            json!({"method": "setUserActiveStatus"}),
        ));
    }
    let b = body.0;
    let user_id = str_of(&b, "userId").unwrap_or_default().to_string();
    let active = bool_of(&b, "activeStatus").unwrap_or(false);
    let actor = actor(&ctx);
    let body = super::write(&ctx.state, move |tx| {
        let Some(u) = db::users::by_id(tx, &user_id)? else {
            return Err(ApiError::failure("User not found", ""));
        };
        if u.active != active {
            admin::user_set_active(tx, &actor, &u.username, active).map_err(|e| match e {
                AdminError::LastAdmin => last_admin(false),
                e => refusal(e),
            })?;
        }
        Ok(json!({"user": {"_id": u.id.as_str(), "active": active}, "success": true}))
    })
    .await?;
    Ok(ok(body))
}

/// Rocket.Chat's `getUserFromParams`: `userId`, else `username`, else `user`.
fn user_from_params(
    conn: &rusqlite::Connection,
    b: &Map<String, Value>,
) -> Result<UserRow, ApiError> {
    let param = |key: &str| str_of(b, key).map(str::trim).filter(|s| !s.is_empty());
    let found = if let Some(id) = param("userId") {
        db::users::by_id(conn, id)?
    } else if let Some(name) = param("username").or_else(|| param("user")) {
        let id: Option<String> = rusqlite::OptionalExtension::optional(
            conn.prepare_cached("SELECT id FROM users WHERE lower(username) = lower(?1)")?
                .query_row([name], |r| r.get(0)),
        )?;
        match id {
            Some(id) => db::users::by_id(conn, &id)?,
            None => None,
        }
    } else {
        return Err(ApiError::meteor(
            "error-user-param-not-provided",
            "The required \"userId\" or \"username\" param was not provided",
            None,
        ));
    };
    found.ok_or_else(|| {
        ApiError::meteor(
            "error-invalid-user",
            "The required \"userId\" or \"username\" param provided does not match any users",
            None,
        )
    })
}

/// Whether `CREATE_TOKENS_FOR_USERS` lets `users.createToken` work: unset, or `true`/`yes`.
fn create_tokens_allowed() -> bool {
    std::env::var("CREATE_TOKENS_FOR_USERS").map_or(true, |v| v == "true" || v == "yes")
}

/// `POST /api/v1/users.createToken` `{userId|username}`: `{data:{userId, authToken}}`, a login
/// token for that user, made by the user or by a holder of `user-generate-access-token`.
pub async fn create_token(ctx: Ctx, body: LooseBody) -> Result<HttpResponse, ApiError> {
    let target = {
        let b = body.0;
        super::blocking(&ctx.state, move |conn| user_from_params(conn, &b)).await?
    };
    let not_authorized = || ApiError::meteor("error-not-authorized", "Not authorized", None);
    if !create_tokens_allowed() {
        return Err(not_authorized());
    }
    if target.id != ctx.caller.user.id && !ctx.caller.has_permission(USER_GENERATE_ACCESS_TOKEN) {
        return Err(not_authorized());
    }
    let token = tokens::generate();
    let expires = db::now_secs() + i64::from(ctx.state.token_ttl_days) * 86_400;
    let actor = actor(&ctx);
    let user_id = target.id.as_str().to_string();
    let t = token.clone();
    super::write(&ctx.state, move |tx| {
        admin::token_create(tx, &actor, &target.id, &target.username, &t, expires).map_err(refusal)
    })
    .await?;
    Ok(ok(json!({
        "data": {"userId": user_id, "authToken": token},
        "success": true
    })))
}

/// The `tokenName` of a personal access token route, or Rocket.Chat's failure for its absence.
fn token_name(b: &Map<String, Value>) -> Result<String, ApiError> {
    match b.get("tokenName") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(ApiError::failure("The 'tokenName' param is required", "")),
    }
}

/// Rocket.Chat's personal access token methods check `create-personal-access-tokens` inside:
/// 400 `not-authorized` naming the method.
fn may_use_pats(ctx: &Ctx, method: &str) -> Result<(), ApiError> {
    if ctx.caller.has_permission(CREATE_PERSONAL_ACCESS_TOKENS) {
        return Ok(());
    }
    Err(meteor(
        "not-authorized",
        "Not Authorized",
        json!({"method": format!("personalAccessTokens:{method}")}),
    ))
}

fn token_missing(method: &str) -> ApiError {
    meteor(
        "error-token-does-not-exists",
        "Token does not exist",
        json!({"method": format!("personalAccessTokens:{method}")}),
    )
}

/// `POST /api/v1/users.generatePersonalAccessToken` `{tokenName, bypassTwoFactor}`:
/// `{token}`, the secret, shown this once (43 characters); only its hash is kept.
pub async fn generate_pat(ctx: Ctx, body: LooseBody) -> Result<HttpResponse, ApiError> {
    let name = token_name(&body.0)?;
    may_use_pats(&ctx, "generateToken")?;
    let bypass = truthy(body.0.get("bypassTwoFactor"));
    let token = tokens::generate();
    let actor = actor(&ctx);
    let username = ctx.caller.user.username.clone();
    let t = token.clone();
    super::write(&ctx.state, move |tx| {
        if admin::users::pat_create(tx, &actor, &username, &name, &t, bypass).map_err(refusal)? {
            Ok(())
        } else {
            Err(meteor(
                "error-token-already-exists",
                "A token with this name already exists",
                json!({"method": "personalAccessTokens:generateToken"}),
            ))
        }
    })
    .await?;
    Ok(ok(json!({"token": token, "success": true})))
}

/// `POST /api/v1/users.regeneratePersonalAccessToken` `{tokenName}`: `{token}`, a new secret
/// under the same name; the old one stops working at once.
pub async fn regenerate_pat(ctx: Ctx, body: LooseBody) -> Result<HttpResponse, ApiError> {
    let name = token_name(&body.0)?;
    may_use_pats(&ctx, "regenerateToken")?;
    let token = tokens::generate();
    let actor = actor(&ctx);
    let username = ctx.caller.user.username.clone();
    let t = token.clone();
    super::write(&ctx.state, move |tx| {
        if admin::users::pat_regenerate(tx, &actor, &username, &name, &t).map_err(refusal)? {
            Ok(())
        } else {
            Err(token_missing("regenerateToken"))
        }
    })
    .await?;
    Ok(ok(json!({"token": token, "success": true})))
}

/// `POST /api/v1/users.removePersonalAccessToken` `{tokenName}`: `{success:true}`; the token
/// stops working at once.
pub async fn remove_pat(ctx: Ctx, body: LooseBody) -> Result<HttpResponse, ApiError> {
    let name = token_name(&body.0)?;
    may_use_pats(&ctx, "removeToken")?;
    let actor = actor(&ctx);
    let username = ctx.caller.user.username.clone();
    super::write(&ctx.state, move |tx| {
        if admin::users::pat_remove(tx, &actor, &username, &name).map_err(refusal)? {
            Ok(())
        } else {
            Err(token_missing("removeToken"))
        }
    })
    .await?;
    Ok(ok(json!({"success": true})))
}

/// `GET /api/v1/users.getPersonalAccessTokens`: `{tokens:[{name, createdAt, lastTokenPart,
/// bypassTwoFactor}]}`, never a secret or a hash.
pub async fn get_pats(ctx: Ctx, _: super::NoParams) -> Result<HttpResponse, ApiError> {
    let id = ctx.caller.user.id.clone();
    let tokens = super::blocking(&ctx.state, move |conn| {
        Ok(db::tokens::list(conn, &id, true)?)
    })
    .await?;
    let tokens: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "createdAt": iso_secs(t.created_at),
                "lastTokenPart": t.last_part,
                "bypassTwoFactor": t.bypass_two_factor,
            })
        })
        .collect();
    Ok(ok(json!({"tokens": tokens, "success": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_validate_name_chars_checks_them() {
        for good in ["Ann", "Ann B.", "off%2F", "Zoë", "a%20b"] {
            assert!(valid_name_chars(good), "{good}");
        }
        for bad in [
            "<b>",
            "a/b",
            "a\\b",
            "%3Cscript",
            "100%",
            "%zz",
            "%ff",
            "a\nb",
        ] {
            assert!(!valid_name_chars(bad), "{bad}");
        }
    }

    #[test]
    fn parse_int_reads_as_javascript_does() {
        assert_eq!(parse_int("10abc"), Some(10));
        assert_eq!(parse_int(" -3"), Some(-3));
        assert_eq!(parse_int("abc"), None);
        assert_eq!(parse_int(""), None);
    }

    #[test]
    fn ajv_coercion_of_scalars() {
        let mut v = json!(5);
        assert!(coerce(&mut v, &prop("x", Ty::Str, false)).is_ok());
        assert_eq!(v, json!("5"));
        let mut v = json!(1.5);
        assert!(coerce(&mut v, &prop("x", Ty::Str, false)).is_ok());
        assert_eq!(v, json!("1.5"));
        let mut v = json!("false");
        assert!(coerce(&mut v, &prop("x", Ty::Bool, false)).is_ok());
        assert_eq!(v, json!(false));
        let mut v = json!(2);
        assert_eq!(
            coerce(&mut v, &prop("x", Ty::Bool, false)).unwrap_err(),
            "must be boolean"
        );
        let mut v = json!(null);
        assert!(coerce(&mut v, &prop("x", Ty::Bool, true)).is_ok());
        assert_eq!(v, json!(null));
    }
}
