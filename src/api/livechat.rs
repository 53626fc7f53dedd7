//! `GET /api/v1/livechat/inquiries.getOne`, in Rocket.Chat's check order: authentication (401),
//! parameters (400), permission `view-l-room` (403), then the lookup (200, `inquiry: null` when
//! none). Without plugin hooks the stored bytes are sent as they are, wrapped, never re-serialised.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::errors::{InvalidParams, json};
use super::{ApiError, Caller};
use crate::app::AppState;
use crate::db::{self, reader::WorkerReader};

/// The permission Rocket.Chat requires for this route.
pub const VIEW_L_ROOM: &str = "view-l-room";

const PREFIX: &[u8] = br#"{"inquiry":"#;
const SUFFIX: &[u8] = br#","success":true}"#;
const NO_INQUIRY: &str = r#"{"inquiry":null,"success":true}"#;

/// Validates the query string as Rocket.Chat's ajv schema would (`roomId`: string, required, no
/// other properties), reading `a[b]=c` the way Rocket.Chat's `qs` parser does (an object).
pub fn parse_room_id(query: &str) -> Result<Cow<'_, str>, InvalidParams> {
    let mut room = None;
    let mut twice = false;
    let mut not_string = false;
    let mut extra = false;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "roomId" {
            if room.is_some() {
                twice = true;
            } else {
                room = Some(value);
            }
        } else if key.starts_with("roomId[") {
            not_string = true;
        } else {
            extra = true;
        }
    }
    // ajv reports `required`, then `additionalProperties`, then property types.
    if room.is_none() && !not_string {
        return Err(InvalidParams::MissingRoomId);
    }
    if extra {
        return Err(InvalidParams::AdditionalProperty);
    }
    if twice || not_string {
        return Err(InvalidParams::RoomIdNotString);
    }
    room.ok_or(InvalidParams::RoomIdNotString)
}

pub async fn inquiries_get_one(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room_id = parse_room_id(req.query_string()).map_err(ApiError::InvalidParams)?;
    let plugins = state.plugins.current();
    // A point lookup on an index takes microseconds: done inline on the worker's own connection
    // rather than hopping threads or taking a pooled one.
    let reader = req
        .app_data::<WorkerReader>()
        .ok_or_else(|| ApiError::Internal("worker reader missing".into()))?;
    respond(&caller, &room_id, &plugins, |rid, out| {
        Ok(reader.with(|conn| db::inquiries::append_by_rid(conn, rid, out))?)
    })
}

/// Permission check, lookup and rendering for an authenticated caller: the 200 body, or the
/// error. `lookup` appends the stored document for a room id to the buffer and says whether there
/// was one. Shared by the route and `inquiryd plugins preview`.
pub fn respond(
    caller: &Caller,
    room_id: &str,
    plugins: &crate::plugins::PluginSet,
    lookup: impl FnOnce(&str, &mut Vec<u8>) -> Result<bool, ApiError>,
) -> Result<HttpResponse, ApiError> {
    if !caller.has_permission(VIEW_L_ROOM) {
        return Err(ApiError::Forbidden);
    }
    let mut body = Vec::with_capacity(2048);
    body.extend_from_slice(PREFIX);
    if !lookup(room_id, &mut body)? {
        return Ok(json(StatusCode::OK, NO_INQUIRY));
    }
    if plugins.is_empty() {
        body.extend_from_slice(SUFFIX);
        return Ok(json(StatusCode::OK, body));
    }
    let doc = std::str::from_utf8(&body[PREFIX.len()..])
        .map_err(|e| ApiError::Internal(format!("stored inquiry is not UTF-8: {e}")))?;
    let body = render_with_hooks(doc, plugins, caller)?;
    Ok(json(StatusCode::OK, body))
}

/// Applies the plugin set to a stored document and renders the full response body.
pub fn render_with_hooks(
    doc: &str,
    plugins: &crate::plugins::PluginSet,
    caller: &Caller,
) -> Result<Vec<u8>, ApiError> {
    let mut inquiry: serde_json::Value = serde_json::from_str(doc)
        .map_err(|e| ApiError::Internal(format!("stored inquiry is not JSON: {e}")))?;
    let has_permission = |p: &str| caller.has_permission(p);
    let hook_caller = crate::plugins::Caller {
        id: caller.user.id.as_str(),
        username: &caller.user.username,
        roles: &caller.user.roles,
        has_permission: &has_permission,
    };
    plugins.apply(&mut inquiry, &hook_caller);
    let mut body = Vec::with_capacity(doc.len() + 64);
    body.extend_from_slice(PREFIX);
    serde_json::to_writer(&mut body, &inquiry)
        .map_err(|e| ApiError::Internal(format!("rendering inquiry: {e}")))?;
    body.extend_from_slice(SUFFIX);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_validation_follows_ajv_order() {
        assert_eq!(parse_room_id("roomId=abc").unwrap(), "abc");
        assert_eq!(parse_room_id("roomId=").unwrap(), "");
        assert_eq!(parse_room_id("roomId=a%20b").unwrap(), "a b");
        assert_eq!(parse_room_id("roomId=%ZZ").unwrap(), "%ZZ");
        assert_eq!(parse_room_id(""), Err(InvalidParams::MissingRoomId));
        assert_eq!(parse_room_id("x=1"), Err(InvalidParams::MissingRoomId));
        assert_eq!(
            parse_room_id("roomId=a&x=1"),
            Err(InvalidParams::AdditionalProperty)
        );
        assert_eq!(
            parse_room_id("roomId=a&roomId=b"),
            Err(InvalidParams::RoomIdNotString)
        );
        assert_eq!(
            parse_room_id("roomId[$ne]=x"),
            Err(InvalidParams::RoomIdNotString)
        );
        assert_eq!(
            parse_room_id("roomId[$ne]=x&y=2"),
            Err(InvalidParams::AdditionalProperty)
        );
    }
}
