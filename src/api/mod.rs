//! Rocket.Chat's wire format: one file per upstream resource, mounted by [`configure`]. Auth is the
//! [`Caller`] extractor, so a handler's signature says what it requires.

pub mod auth;
pub mod console;
pub mod errors;
pub mod health;
pub mod info;
pub mod livechat;
pub mod logged;
pub mod plugins_admin;

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, web};

pub use errors::ApiError;

use crate::app::AppState;
use crate::auth::{AuthSnapshot, UserEntry};

/// A route answering the JSON 405 that names the `allow`ed method.
pub(crate) fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || {
        ready(Err::<actix_web::HttpResponse, _>(
            ApiError::MethodNotAllowed(allow),
        ))
    })
}

/// Mounts every route, each with a JSON 405 for other methods.
pub fn configure(cfg: &mut web::ServiceConfig) {
    plugins_admin::configure(cfg);
    console::configure(cfg);
    cfg.service(
        web::resource("/api/v1/livechat/inquiries.getOne")
            .route(web::get().to(livechat::inquiries_get_one))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/login")
            .route(web::post().to(auth::login))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/logout")
            .route(web::post().to(auth::logout))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/me")
            .route(web::get().to(auth::me))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/info")
            .route(web::get().to(info::info))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/health")
            .route(web::get().to(health::health))
            .default_service(not_allowed("GET")),
    );
}

/// An authenticated, active caller: the `X-User-Id` / `X-Auth-Token` pair matched a valid token.
/// Extracting it fails with Rocket.Chat's 401 otherwise.
pub struct Caller {
    pub user: Arc<UserEntry>,
    /// The snapshot the caller was authenticated against, for permission checks.
    pub snapshot: Arc<AuthSnapshot>,
}

impl Caller {
    pub fn has_permission(&self, permission: &str) -> bool {
        self.snapshot.roles_have(&self.user.roles, permission)
    }
}

/// The credentials headers, when both are present once each and are valid text. A repeated header
/// is ambiguous and counts as missing: Rocket.Chat (Node) sees such values joined with ", ", which
/// never matches a token either.
pub fn credentials(req: &HttpRequest) -> Option<(&str, &str)> {
    let h = req.headers();
    let single = |name: &str| {
        let mut values = h.get_all(name);
        let value = values.next()?;
        values.next().is_none().then_some(value)?.to_str().ok()
    };
    Some((single("x-user-id")?, single("x-auth-token")?))
}

/// Authenticates the request against the current snapshot.
pub fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    let (user_id, token) = credentials(req).ok_or(ApiError::NotLoggedIn)?;
    let snapshot = state.auth.snapshot_full();
    let user = snapshot
        .authenticate(user_id, token, crate::db::now_secs())
        .cloned()
        .ok_or(ApiError::NotLoggedIn)?;
    Ok(Caller { user, snapshot })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<AppState>>() {
            Some(state) => authenticate(req, state),
            None => Err(ApiError::Internal("app state missing".into())),
        };
        ready(result)
    }
}

/// Reads a request body up to [`crate::app::MAX_BODY`] bytes; more is a 413. The body is already
/// in memory by then: [`crate::conn::ReadBodyFirst`] read it, within its deadline, before routing.
pub async fn read_body(payload: web::Payload) -> Result<web::BytesMut, ApiError> {
    read_body_within(payload, crate::app::MAX_BODY).await
}

/// [`read_body`] with another limit (see [`crate::app::body_limit`]).
pub async fn read_body_within(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            log::debug!("request body: {e}");
            ApiError::BadRequest("Could not read the request body".into())
        })?;
        if body.len() + chunk.len() > limit {
            return Err(crate::app::body_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
