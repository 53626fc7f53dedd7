//! `GET /health`: `{"status":"ok"}` when the database answers; plugin details for callers holding
//! `manage-apps` (a bad or missing token simply gets the short answer). A 503 with a `reason` when
//! the database path no longer names the file in use (deleted, moved, replaced, overwritten).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::errors::json as json_response;
use crate::app::AppState;

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
    let db_ok = state
        .pool
        .get()
        .ok()
        .and_then(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).ok())
        .is_some();
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
