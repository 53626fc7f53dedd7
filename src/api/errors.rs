//! The one place that decides what an error looks like on the wire. Bodies are Rocket.Chat's, byte
//! for byte (see `shared/fixtures/inquiries.getOne.errors.json`); what went wrong on our side is
//! logged here and never shown to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

/// Everything a handler can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, unknown, revoked, expired or foreign token, or a deactivated user.
    #[error("not logged in")]
    NotLoggedIn,
    #[error("invalid params: {0}")]
    InvalidParams(InvalidParams),
    #[error("permission denied")]
    Forbidden,
    /// Wrong credentials at login (unknown user and wrong password alike).
    #[error("login failed")]
    LoginFailed,
    /// A client mistake with a message meant for the client.
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("too many requests, retry after {0}s")]
    TooManyRequests(u64),
    #[error("payload too large")]
    PayloadTooLarge,
    /// A refusal in Rocket.Chat's `API.v1.failure(error, errorType)` shape,
    /// `{"success":false,"error":…,"errorType":…}` (no `errorType` when empty), optionally with
    /// `details`; the status is the
    /// caller's choice (400 for most client mistakes, 404, 409, 413).
    #[error("{error} ({error_type})")]
    Failure {
        status: StatusCode,
        error: String,
        error_type: &'static str,
        details: Option<serde_json::Value>,
    },
    /// A request (its head or its body) not received within the server's deadline.
    #[error("request timeout")]
    RequestTimeout,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// Our fault; the detail goes to the log only.
    #[error("internal: {0}")]
    Internal(String),
    /// The database cannot serve the request for a reason outside the request (disk full, I/O
    /// error, read-only, its file deleted or replaced under the server): a 503, retryable; the
    /// detail goes to the log only.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The server is stopping and will not finish this request (its body was still arriving): the
    /// same 503 as [`ApiError::Unavailable`], retryable, but no fault to log.
    #[error("server stopping")]
    Stopping,
    /// Rocket.Chat's answer to a thrown `Meteor.Error(error_type, reason, details)`: 400
    /// `{"success":false,"error":"<reason> [<error_type>]","errorType":…,"details":…}` (no
    /// `details` when None).
    #[error("refused: {reason} [{error_type}]")]
    Meteor {
        error_type: &'static str,
        reason: String,
        details: Option<serde_json::Value>,
    },
}

/// Rocket.Chat's ajv validation failures for `inquiries.getOne`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidParams {
    MissingRoomId,
    AdditionalProperty,
    RoomIdNotString,
}

impl std::fmt::Display for InvalidParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvalidParams::MissingRoomId => "missing roomId",
            InvalidParams::AdditionalProperty => "additional property",
            InvalidParams::RoomIdNotString => "roomId not a string",
        })
    }
}

impl ApiError {
    /// A 400 in Rocket.Chat's `failure(error, errorType)` shape.
    pub fn failure(error: impl Into<String>, error_type: &'static str) -> ApiError {
        ApiError::Failure {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            error_type,
            details: None,
        }
    }

    /// Rocket.Chat's 400 for a body its validator refuses: `"<why> [invalid-params]"`.
    pub fn invalid_params(why: impl std::fmt::Display) -> ApiError {
        ApiError::failure(format!("{why} [invalid-params]"), "invalid-params")
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Sqlite(e) => e.into(),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl ApiError {
    /// Rocket.Chat's `Meteor.Error(error_type, reason, details)` thrown inside a route.
    pub fn meteor(
        error_type: &'static str,
        reason: impl Into<String>,
        details: Option<serde_json::Value>,
    ) -> ApiError {
        ApiError::Meteor {
            error_type,
            reason: reason.into(),
            details,
        }
    }

    /// As [`ApiError::meteor`], with Rocket.Chat's `details` object.
    pub fn meteor_details(
        error_type: &'static str,
        reason: &str,
        details: serde_json::Value,
    ) -> ApiError {
        ApiError::meteor(error_type, reason, Some(details))
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        match crate::db::unavailable(&e) {
            Some(cause) => ApiError::Unavailable(format!("database: {cause} ({e})")),
            None => ApiError::Internal(format!("database: {e}")),
        }
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        ApiError::Internal(format!("database pool: {e}"))
    }
}

/// A JSON response with the headers every API answer carries.
pub fn json(status: StatusCode, body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .body(body)
}

/// The body of a 408; `crate::conn` writes it raw, with these headers, when a head is late.
pub const REQUEST_TIMEOUT_BODY: &str =
    r#"{"success":false,"error":"Request not received in time"}"#;

impl ApiError {
    fn body(&self) -> &'static str {
        match self {
            ApiError::NotLoggedIn => {
                r#"{"success":false,"error":"You must be logged in to do this.","status":"error","message":"You must be logged in to do this."}"#
            }
            ApiError::InvalidParams(InvalidParams::MissingRoomId) => {
                r#"{"success":false,"error":"must have required property 'roomId' [invalid-params]","errorType":"invalid-params"}"#
            }
            ApiError::InvalidParams(InvalidParams::AdditionalProperty) => {
                r#"{"success":false,"error":"must NOT have additional properties [invalid-params]","errorType":"invalid-params"}"#
            }
            ApiError::InvalidParams(InvalidParams::RoomIdNotString) => {
                r#"{"success":false,"error":"must be string [invalid-params]","errorType":"invalid-params"}"#
            }
            ApiError::Forbidden => {
                r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#
            }
            ApiError::LoginFailed => {
                r#"{"status":"error","error":"Unauthorized","message":"Unauthorized"}"#
            }
            ApiError::TooManyRequests(_) => {
                r#"{"success":false,"error":"Too many requests","status":"error","message":"Too many requests"}"#
            }
            ApiError::PayloadTooLarge => {
                r#"{"success":false,"error":"Request body too large (limit 64 KiB)"}"#
            }
            ApiError::RequestTimeout => REQUEST_TIMEOUT_BODY,
            ApiError::NotFound => r#"{"success":false,"error":"Resource not found"}"#,
            ApiError::MethodNotAllowed(_) => r#"{"success":false,"error":"Method not allowed"}"#,
            ApiError::Internal(_) => r#"{"success":false,"error":"Internal server error"}"#,
            ApiError::Unavailable(_) | ApiError::Stopping => {
                r#"{"success":false,"error":"Service unavailable, try again later"}"#
            }
            ApiError::BadRequest(_) | ApiError::Failure { .. } | ApiError::Meteor { .. } => "",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotLoggedIn | ApiError::LoginFailed => StatusCode::UNAUTHORIZED,
            ApiError::InvalidParams(_) | ApiError::BadRequest(_) | ApiError::Meteor { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) | ApiError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Failure { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut res = match self {
            ApiError::BadRequest(msg) => json(
                status,
                serde_json::json!({"success": false, "error": msg}).to_string(),
            ),
            ApiError::Failure {
                error,
                error_type,
                details,
                ..
            } => {
                // Rocket.Chat's `failure(msg)` without a type has no `errorType` member.
                let mut body = serde_json::json!({"success": false, "error": error});
                if !error_type.is_empty() {
                    body["errorType"] = (*error_type).into();
                }
                if let Some(details) = details {
                    body["details"] = details.clone();
                }
                json(status, body.to_string())
            }
            ApiError::Meteor {
                error_type,
                reason,
                details,
            } => {
                // `Meteor.Error(type)` without a reason is rendered as just `[type]`.
                let error = if reason.is_empty() {
                    format!("[{error_type}]")
                } else {
                    format!("{reason} [{error_type}]")
                };
                let mut body = serde_json::json!({
                    "success": false,
                    "error": error,
                    "errorType": error_type,
                });
                if let Some(details) = details {
                    body["details"] = details.clone();
                }
                json(status, body.to_string())
            }
            _ => json(status, self.body()),
        };
        match self {
            ApiError::Internal(detail) => log::error!("internal error: {detail}"),
            ApiError::Unavailable(detail) => {
                log_unavailable(detail);
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::Stopping => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::MethodNotAllowed(allow) => {
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::TooManyRequests(secs) => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            _ => {}
        }
        res
    }
}

/// Logs a 503's cause, at most one line per [`UNAVAILABLE_LOG_EVERY`] seconds: while the disk is
/// full or the database file is gone every request fails alike, and one line per request would
/// flood the log (and fill the disk further). The line counts the 503s it stood for.
fn log_unavailable(detail: &str) {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    let now = crate::db::now_secs();
    let last = LAST.load(Ordering::Relaxed);
    if now - last >= UNAVAILABLE_LOG_EVERY
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let more = SINCE.swap(0, Ordering::Relaxed);
        let more = if more > 0 {
            format!(" (and {more} more 503s since the last such line)")
        } else {
            String::new()
        };
        log::error!("service unavailable (503): {detail}{more}");
    } else {
        SINCE.fetch_add(1, Ordering::Relaxed);
        log::debug!("service unavailable (503): {detail}");
    }
}

/// Seconds between two log lines about 503s.
const UNAVAILABLE_LOG_EVERY: i64 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    /// A full disk, an I/O error, a read-only file: a 503 the client may retry, not a 500.
    #[test]
    fn disk_full_and_io_errors_answer_503_and_others_500() {
        for code in [
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_IOERR_WRITE,
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_CONSTRAINT_COMMITHOOK,
            rusqlite::ffi::SQLITE_INTERRUPT,
        ] {
            let e = ApiError::from(sqlite(code));
            assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE, "{code}");
            let res = e.error_response();
            assert!(res.headers().contains_key(header::RETRY_AFTER));
        }
        let e = ApiError::from(crate::db::DbError::Sqlite(sqlite(
            rusqlite::ffi::SQLITE_FULL,
        )));
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let e = ApiError::from(sqlite(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
