//! `GET /health`: `{"status":"ok"}` when the database answers (read on the worker's own connection); plugin details for callers holding
//! `manage-apps` (a bad or missing token simply gets the short answer). A 503 with a `reason` when
//! the database path no longer names the file in use (deleted, moved, replaced, overwritten).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::errors::json as json_response;
use crate::db::reader::WorkerReader;

pub const MANAGE_APPS: &str = "manage-apps";

pub async fn health(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    // The watch logs the problem itself, once; the reason names no path.
    if let Some(reason) = state.db_watch.check() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "error", "error": "database unavailable", "reason": reason})
                .to_string(),
        );
    }
    // The worker's own read connection: a pool checkout could wait behind writers (up to the
    // pool's timeout) on this worker thread, and `SELECT 1` would not read the file at all.
    let db_ok = req
        .app_data::<std::rc::Rc<WorkerReader>>()
        .is_some_and(|reader| {
            reader
                .with(|c| c.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)))
                .is_ok()
        });
    if !db_ok {
        log::error!("health: database does not answer");
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"error","error":"database unavailable"}"#,
        );
    }
    let privileged = super::authenticate(&req, &state)
        .ok()
        .filter(|c| c.has_permission(MANAGE_APPS));
    match privileged {
        Some(_) => json_response(
            StatusCode::OK,
            json!({"status": "ok", "plugins": state.plugins.health()}).to_string(),
        ),
        None => json_response(StatusCode::OK, r#"{"status":"ok"}"#),
    }
}
