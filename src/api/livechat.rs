//! `GET /api/v1/livechat/inquiries.getOne`, in Rocket.Chat's check order: authentication (401),
//! parameters (400), permission `view-l-room` (403), then the lookup (200, `inquiry: null` when
//! none). Without plugin hooks the stored bytes are sent as they are, wrapped, never re-serialised.
//! A stored row no answer can be made from (not text, not one JSON object, nested too deep) answers
//! 500 and is logged with its room and id; before hooks parse a document it is checked as an
//! import checks a record (`crate::document`), so one they could not parse answers the same.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use actix_web::web::Bytes;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::errors::{InvalidParams, json};
use super::{ApiError, Caller};
use crate::db::{self, reader::WorkerReader};
use crate::plugins::PluginSet;

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

/// The `roomId` query parameter, validated as [`parse_room_id`] does (a 400 otherwise).
pub struct RoomIdParam(String);

impl actix_web::FromRequest for RoomIdParam {
    type Error = ApiError;
    type Future = std::future::Ready<Result<RoomIdParam, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            parse_room_id(req.query_string())
                .map(|r| RoomIdParam(r.into_owned()))
                .map_err(ApiError::InvalidParams),
        )
    }
}

/// Mounted with [`VIEW_L_ROOM`] (see `api::configure`): the caller holds it by now.
pub async fn inquiries_get_one(
    ctx: super::Ctx,
    room_id: RoomIdParam,
) -> Result<HttpResponse, ApiError> {
    let super::Ctx {
        caller, state, req, ..
    } = ctx;
    let plugins = state.plugins.current();
    // A point lookup on an index takes microseconds: done inline on the worker's own connection
    // rather than hopping threads or taking a pooled one.
    let reader = req
        .app_data::<std::rc::Rc<WorkerReader>>()
        .ok_or_else(|| ApiError::Internal("worker reader missing".into()))?;
    let memo = req.app_data::<RenderMemo>();
    respond_permitted(&caller, &room_id.0, &plugins, memo, |rid, out| {
        // A row that cannot be served is no fault of the connection: it is kept.
        Ok(reader.with(|conn| db::inquiries::lookup_by_rid(conn, rid, out))??)
    })
}

impl From<db::inquiries::Unservable> for ApiError {
    fn from(e: db::inquiries::Unservable) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<db::inquiries::ReadError> for ApiError {
    fn from(e: db::inquiries::ReadError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// Per-worker memo of bodies rendered with hooks. Rendering is a pure function of the stored
/// document, the plugin set and the caller as the auth snapshot describes them (unless a template
/// reads the clock), so an entry is reused only when the document bytes are equal, the set is the
/// very same one (`Arc::ptr_eq`; the entry holds it, so no address is reused) and the snapshot has
/// the same version. Any plugin reload or auth change therefore misses. The entry keeps the
/// snapshot's version, not the snapshot, so old snapshots are not held in memory. Bounded:
/// cleared when full.
#[derive(Default)]
pub struct RenderMemo {
    entries: RefCell<HashMap<Box<str>, MemoByRoom>>,
}

/// One caller's rendered bodies, by room id.
type MemoByRoom = HashMap<Box<str>, Rendered>;

struct Rendered {
    plugins: Arc<PluginSet>,
    auth_version: i64,
    doc: Box<[u8]>,
    body: Bytes,
}

/// Entries per worker before the memo starts over.
const MEMO_CAPACITY: usize = 1024;

impl RenderMemo {
    fn get(
        &self,
        caller: &Caller,
        rid: &str,
        plugins: &Arc<PluginSet>,
        doc: &[u8],
    ) -> Option<Bytes> {
        let entries = self.entries.borrow();
        let hit = entries.get(caller.user.id.as_str())?.get(rid)?;
        (Arc::ptr_eq(&hit.plugins, plugins)
            && hit.auth_version == caller.snapshot.version()
            && *hit.doc == *doc)
            .then(|| hit.body.clone())
    }

    fn put(&self, caller: &Caller, rid: &str, plugins: &Arc<PluginSet>, doc: &[u8], body: Bytes) {
        let mut entries = self.entries.borrow_mut();
        if entries.values().map(MemoByRoom::len).sum::<usize>() >= MEMO_CAPACITY {
            entries.clear();
        }
        entries
            .entry(caller.user.id.as_str().into())
            .or_default()
            .insert(
                rid.into(),
                Rendered {
                    plugins: plugins.clone(),
                    auth_version: caller.snapshot.version(),
                    doc: doc.into(),
                    body,
                },
            );
    }
}

/// Permission check, lookup and rendering for an authenticated caller: the 200 body, or the
/// error. `lookup` appends the stored document for a room id to the buffer and returns its id, or
/// `None` when there is none. Shared by the route and `inquiryd plugins preview`.
pub fn respond(
    caller: &Caller,
    room_id: &str,
    plugins: &Arc<PluginSet>,
    memo: Option<&RenderMemo>,
    lookup: impl FnOnce(&str, &mut Vec<u8>) -> Result<Option<String>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    if !caller.has_permission(VIEW_L_ROOM) {
        return Err(ApiError::Forbidden);
    }
    respond_permitted(caller, room_id, plugins, memo, lookup)
}

/// As [`respond`], for a caller already known to hold [`VIEW_L_ROOM`].
fn respond_permitted(
    caller: &Caller,
    room_id: &str,
    plugins: &Arc<PluginSet>,
    memo: Option<&RenderMemo>,
    lookup: impl FnOnce(&str, &mut Vec<u8>) -> Result<Option<String>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let mut body = Vec::with_capacity(2048);
    body.extend_from_slice(PREFIX);
    let Some(id) = lookup(room_id, &mut body)? else {
        return Ok(json(StatusCode::OK, NO_INQUIRY));
    };
    if plugins.is_empty() {
        body.extend_from_slice(SUFFIX);
        return Ok(json(StatusCode::OK, body));
    }
    let doc = &body[PREFIX.len()..];
    let memo = memo.filter(|_| !plugins.is_time_dependent());
    if let Some(hit) = memo.and_then(|m| m.get(caller, room_id, plugins, doc)) {
        return Ok(json(StatusCode::OK, hit));
    }
    let text = std::str::from_utf8(doc).map_err(|e| {
        ApiError::Internal(format!(
            "stored inquiry of room {room_id:?} is not UTF-8: {e}"
        ))
    })?;
    // Not on a memo hit: that very document passed before.
    db::inquiries::check_before_hooks(text, &id, room_id)?;
    let rendered = Bytes::from(
        render_with_hooks(text, plugins, caller).map_err(|e| match e {
            ApiError::Internal(why) => ApiError::Internal(format!("room {room_id:?}: {why}")),
            other => other,
        })?,
    );
    if let Some(memo) = memo {
        memo.put(caller, room_id, plugins, doc, rendered.clone());
    }
    Ok(json(StatusCode::OK, rendered))
}

/// Applies the plugin set to a stored document and renders the full response body.
pub fn render_with_hooks(
    doc: &str,
    plugins: &PluginSet,
    caller: &Caller,
) -> Result<Vec<u8>, ApiError> {
    let has_permission = |p: &str| caller.has_permission(p);
    let hook_caller = crate::plugins::Caller {
        id: caller.user.id.as_str(),
        username: &caller.user.username,
        roles: &caller.user.roles,
        has_permission: &has_permission,
    };
    let mut body = Vec::with_capacity(doc.len() + 64);
    body.extend_from_slice(PREFIX);
    plugins
        .render(doc, &hook_caller, &mut body)
        .map_err(|e| ApiError::Internal(format!("rendering stored inquiry: {e}")))?;
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
