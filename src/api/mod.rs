//! Rocket.Chat's wire format: one file per upstream resource, mounted by [`configure`].
//!
//! A route's permission is part of its declaration ([`guarded`]): every authenticated route is
//! mounted with the permissions it needs (authentication is only reachable through it: [`Caller`]
//! is no extractor and [`Ctx`] cannot be built elsewhere, so a handler cannot skip the check), checked in Rocket.Chat's legacy order, authentication
//! (401), then the handler's parameters (its extractor, 400), then the permissions (403), then the
//! handler. A route whose permission Rocket.Chat checks *inside* the handler, answering 400 with an
//! `errorType` (users.create, addUserToRole, token generation), declares [`AUTH_ONLY`] and checks
//! in the handler, saying so in its declaration's comment.

pub mod audit;
pub mod auth;
pub mod errors;
pub mod health;
pub mod info;
pub mod livechat;
pub mod logged;
pub mod paging;
pub mod permissions;
pub mod roles;
pub mod state;

use std::future::{Future, Ready, ready};
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};

pub use errors::ApiError;
pub use state::{AppState, MAX_BODY, blocking, write};

use crate::auth::{AuthSnapshot, UserEntry};

/// The permissions of a route that needs only a logged-in user (or checks inside its handler).
pub const AUTH_ONLY: &[&str] = &[];

/// What a guarded handler receives besides its parameters. Only [`guarded`] makes one.
// A private field, not #[non_exhaustive]: that would seal it from other crates only.
#[allow(clippy::manual_non_exhaustive)]
pub struct Ctx {
    pub caller: Caller,
    pub state: web::Data<AppState>,
    pub req: HttpRequest,
    _sealed: (),
}

/// Wraps `handler` so that it runs only for a caller holding every one of `permissions`, checked
/// after authentication (401) and after the parameters `P` were
/// extracted (400), as Rocket.Chat's legacy routes do.
pub fn guarded<P, F, Fut>(
    permissions: &'static [&'static str],
    handler: F,
) -> impl actix_web::Handler<
    (Authenticated, P, web::Data<AppState>, HttpRequest),
    Output = Result<HttpResponse, ApiError>,
>
where
    P: FromRequest + 'static,
    F: Fn(Ctx, P) -> Fut + Clone + 'static,
    Fut: Future<Output = Result<HttpResponse, ApiError>> + 'static,
{
    move |Authenticated(caller): Authenticated,
          params: P,
          state: web::Data<AppState>,
          req: HttpRequest| {
        let handler = handler.clone();
        async move {
            if !permissions.iter().all(|p| caller.has_permission(p)) {
                return Err(ApiError::Forbidden);
            }
            let ctx = Ctx {
                caller,
                state,
                req,
                _sealed: (),
            };
            handler(ctx, params).await
        }
    }
}

/// No parameters: for handlers that read nothing from the request beyond the caller.
pub struct NoParams;

impl FromRequest for NoParams {
    type Error = ApiError;
    type Future = Ready<Result<NoParams, ApiError>>;
    fn from_request(_: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(NoParams))
    }
}

/// Mounts every route, each with a JSON 405 for other methods. Authenticated routes are declared
/// with their permissions through [`guarded`]; only login, info and health are open.
pub fn configure(cfg: &mut web::ServiceConfig) {
    fn not_allowed(allow: &'static str) -> actix_web::Route {
        web::to(move || {
            ready(Err::<actix_web::HttpResponse, _>(
                ApiError::MethodNotAllowed(allow),
            ))
        })
    }
    use livechat::VIEW_L_ROOM;
    use permissions::ACCESS_PERMISSIONS;
    cfg.service(
        web::resource("/api/v1/livechat/inquiries.getOne")
            .route(web::get().to(guarded(&[VIEW_L_ROOM], livechat::inquiries_get_one)))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/permissions.listAll")
            .route(web::get().to(guarded(AUTH_ONLY, permissions::list_all)))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/permissions.update")
            .route(web::post().to(guarded(&[ACCESS_PERMISSIONS], permissions::update)))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/permissions.addRole")
            .route(web::post().to(guarded(&[ACCESS_PERMISSIONS], permissions::add_role)))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/permissions.removeRole")
            .route(web::post().to(guarded(&[ACCESS_PERMISSIONS], permissions::remove_role)))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/roles.list")
            .route(web::get().to(guarded(AUTH_ONLY, roles::list)))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/roles.sync")
            .route(web::get().to(guarded(AUTH_ONLY, roles::sync)))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/roles.getUsersInRole")
            .route(web::get().to(guarded(&[ACCESS_PERMISSIONS], roles::get_users_in_role)))
            .default_service(not_allowed("GET")),
    )
    .service(
        // Rocket.Chat checks access-permissions (and assign-admin-role) inside: 400, not 403.
        web::resource("/api/v1/roles.addUserToRole")
            .route(web::post().to(guarded(AUTH_ONLY, roles::add_user_to_role)))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/roles.removeUserFromRole")
            .route(web::post().to(guarded(&[ACCESS_PERMISSIONS], roles::remove_user_from_role)))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/roles.delete")
            .route(web::post().to(guarded(&[ACCESS_PERMISSIONS], roles::delete)))
            .default_service(not_allowed("POST")),
    )
    .service(
        // Enterprise routes in Rocket.Chat; access-permissions checked inside (400).
        web::resource("/api/v1/roles.create")
            .route(web::post().to(guarded(AUTH_ONLY, roles::create)))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/roles.update")
            .route(web::post().to(guarded(AUTH_ONLY, roles::update)))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/inquiryd/audit.list")
            .route(web::get().to(guarded(&[ACCESS_PERMISSIONS], audit::list)))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/login")
            .route(web::post().to(auth::login))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/logout")
            .route(web::post().to(guarded(AUTH_ONLY, auth::logout)))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/me")
            .route(web::get().to(guarded(AUTH_ONLY, auth::me)))
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

/// An authenticated, active caller: the `X-User-Id` / `X-Auth-Token` pair matched a valid token
/// ([`authenticate`]; routes get one through [`guarded`]).
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
    let now = crate::db::now_secs();
    let snapshot = state.auth.snapshot_full();
    if let Some(user) = snapshot.authenticate(user_id, token, now).cloned() {
        return Ok(Caller { user, snapshot });
    }
    // Perhaps created a moment ago by another process: read your writes (see AuthCache). The
    // counter is read on this worker's own connection, in a fresh read snapshot.
    let seen = req
        .app_data::<std::rc::Rc<crate::db::reader::WorkerReader>>()
        .map(|reader| reader.with_fresh(crate::db::auth_version));
    let snapshot = match seen {
        Some(Ok(seen)) => state.auth.catch_up(seen),
        _ => snapshot,
    };
    let user = snapshot
        .authenticate(user_id, token, now)
        .cloned()
        .ok_or(ApiError::NotLoggedIn)?;
    Ok(Caller { user, snapshot })
}

/// The extractor behind [`guarded`]: the caller, or Rocket.Chat's 401. Public only because it
/// appears in `guarded`'s type; handlers take [`Ctx`], never this.
pub struct Authenticated(Caller);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Authenticated, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<AppState>>() {
            Some(state) => authenticate(req, state).map(Authenticated),
            None => Err(ApiError::Internal("app state missing".into())),
        };
        ready(result)
    }
}

/// Reads a request body up to [`MAX_BODY`] bytes; more is a 413. The body is already
/// in memory by then: [`crate::conn::ReadBodyFirst`] read it, within its deadline, before routing.
pub async fn read_body(mut payload: web::Payload) -> Result<web::BytesMut, ApiError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            log::debug!("request body: {e}");
            ApiError::BadRequest("Could not read the request body".into())
        })?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
