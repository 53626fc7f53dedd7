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
pub mod console;
pub mod errors;
pub mod health;
pub mod info;
pub mod livechat;
pub mod logged;
pub mod paging;
pub mod permissions;
pub mod plugins_admin;
pub mod roles;
pub mod state;
pub mod user_query;
pub mod users;

use std::future::{Future, Ready, ready};
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};

pub use errors::ApiError;
pub use state::{AppState, MAX_BODY, MAX_PLUGIN_BODY, blocking, body_limit, body_too_large, write};

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

/// Every route pattern [`configure`] mounts. Each resource is named by its pattern: the metrics
/// count requests by it (`route` label), never by the raw path.
pub const ROUTES: &[&str] = &[
    "/api/v1/livechat/inquiries.getOne",
    "/api/v1/permissions.listAll",
    "/api/v1/permissions.update",
    "/api/v1/permissions.addRole",
    "/api/v1/permissions.removeRole",
    "/api/v1/login",
    "/api/v1/logout",
    "/api/v1/me",
    "/api/info",
    "/health",
    "/api/v1/inquiryd/plugins.list",
    "/api/v1/inquiryd/plugins.get",
    "/api/v1/inquiryd/plugins.validate",
    "/api/v1/inquiryd/plugins.save",
    "/api/v1/inquiryd/plugins.delete",
    "/api/v1/inquiryd/plugins.setEnabled",
    "/api/v1/inquiryd/plugins.preview",
    "/api/v1/inquiryd/rooms.search",
    "/api/v1/roles.list",
    "/api/v1/roles.sync",
    "/api/v1/roles.getUsersInRole",
    "/api/v1/roles.addUserToRole",
    "/api/v1/roles.removeUserFromRole",
    "/api/v1/roles.delete",
    "/api/v1/roles.create",
    "/api/v1/roles.update",
    "/api/v1/inquiryd/audit.list",
    "/api/v1/users.list",
    "/api/v1/users.info",
    "/api/v1/users.create",
    "/api/v1/users.update",
    "/api/v1/users.setActiveStatus",
    "/api/v1/users.createToken",
    "/api/v1/users.generatePersonalAccessToken",
    "/api/v1/users.regeneratePersonalAccessToken",
    "/api/v1/users.removePersonalAccessToken",
    "/api/v1/users.getPersonalAccessTokens",
];

/// A resource for `path`, named by it (see [`ROUTES`]).
pub(crate) fn resource(path: &'static str) -> actix_web::Resource {
    debug_assert!(ROUTES.contains(&path), "{path} missing from api::ROUTES");
    web::resource(path).name(path)
}

/// A route answering the JSON 405 that names the `allow`ed method.
pub(crate) fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || {
        ready(Err::<actix_web::HttpResponse, _>(
            ApiError::MethodNotAllowed(allow),
        ))
    })
}

/// Mounts every route, each with a JSON 405 for other methods. Authenticated routes are declared
/// with their permissions through [`guarded`]; only login, info, health and the console's static
/// pages are open.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use livechat::VIEW_L_ROOM;
    use permissions::ACCESS_PERMISSIONS;
    // actix matches resources in the order they are mounted: the hot route first.
    cfg.service(
        resource("/api/v1/livechat/inquiries.getOne")
            .route(web::get().to(guarded(&[VIEW_L_ROOM], livechat::inquiries_get_one)))
            .default_service(not_allowed("GET")),
    );
    plugins_admin::configure(cfg);
    console::configure(cfg);
    cfg.service(
        resource("/api/v1/permissions.listAll")
            .route(web::get().to(guarded(AUTH_ONLY, permissions::list_all)))
            .default_service(not_allowed("GET")),
    )
    .service(
        resource("/api/v1/permissions.update")
            .route(web::post().to(guarded(&[ACCESS_PERMISSIONS], permissions::update)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/permissions.addRole")
            .route(web::post().to(guarded(&[ACCESS_PERMISSIONS], permissions::add_role)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/permissions.removeRole")
            .route(web::post().to(guarded(&[ACCESS_PERMISSIONS], permissions::remove_role)))
            .default_service(not_allowed("POST")),
    )
    .configure(configure_users)
    .configure(configure_roles_and_audit)
    .service(
        resource("/api/v1/login")
            .route(web::post().to(auth::login))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/logout")
            .route(web::post().to(guarded(AUTH_ONLY, auth::logout)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/me")
            .route(web::get().to(guarded(AUTH_ONLY, auth::me)))
            .default_service(not_allowed("GET")),
    )
    .service(
        resource("/api/info")
            .route(web::get().to(info::info))
            .default_service(not_allowed("GET")),
    )
    .service(
        resource("/health")
            .route(web::get().to(health::health))
            .default_service(not_allowed("GET")),
    );
}

/// The `users.*` routes ([`users`]). Those whose permission Rocket.Chat checks inside the
/// handler (create, update, createToken, the personal token changes; setActiveStatus's `hasAny`)
/// declare [`AUTH_ONLY`] and check there.
fn configure_users(cfg: &mut web::ServiceConfig) {
    use users::{CREATE_PERSONAL_ACCESS_TOKENS, VIEW_D_ROOM};
    cfg.service(
        resource("/api/v1/users.list")
            .route(web::get().to(guarded(&[VIEW_D_ROOM], users::list)))
            .default_service(not_allowed("GET")),
    )
    .service(
        resource("/api/v1/users.info")
            .route(web::get().to(guarded(AUTH_ONLY, users::info)))
            .default_service(not_allowed("GET")),
    )
    .service(
        resource("/api/v1/users.create")
            .route(web::post().to(guarded(AUTH_ONLY, users::create)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/users.update")
            .route(web::post().to(guarded(AUTH_ONLY, users::update)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/users.setActiveStatus")
            .route(web::post().to(guarded(AUTH_ONLY, users::set_active_status)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/users.createToken")
            .route(web::post().to(guarded(AUTH_ONLY, users::create_token)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/users.generatePersonalAccessToken")
            .route(web::post().to(guarded(AUTH_ONLY, users::generate_pat)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/users.regeneratePersonalAccessToken")
            .route(web::post().to(guarded(AUTH_ONLY, users::regenerate_pat)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/users.removePersonalAccessToken")
            .route(web::post().to(guarded(AUTH_ONLY, users::remove_pat)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/users.getPersonalAccessTokens")
            .route(web::get().to(guarded(&[CREATE_PERSONAL_ACCESS_TOKENS], users::get_pats)))
            .default_service(not_allowed("GET")),
    );
}

/// The `roles.*` routes ([`roles`]) and the audit trail's ([`audit`]).
fn configure_roles_and_audit(cfg: &mut web::ServiceConfig) {
    use permissions::ACCESS_PERMISSIONS;
    cfg.service(
        resource("/api/v1/roles.list")
            .route(web::get().to(guarded(AUTH_ONLY, roles::list)))
            .default_service(not_allowed("GET")),
    )
    .service(
        resource("/api/v1/roles.sync")
            .route(web::get().to(guarded(AUTH_ONLY, roles::sync)))
            .default_service(not_allowed("GET")),
    )
    .service(
        resource("/api/v1/roles.getUsersInRole")
            .route(web::get().to(guarded(&[ACCESS_PERMISSIONS], roles::get_users_in_role)))
            .default_service(not_allowed("GET")),
    )
    .service(
        // Rocket.Chat checks access-permissions (and assign-admin-role) inside: 400, not 403.
        resource("/api/v1/roles.addUserToRole")
            .route(web::post().to(guarded(AUTH_ONLY, roles::add_user_to_role)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/roles.removeUserFromRole")
            .route(web::post().to(guarded(&[ACCESS_PERMISSIONS], roles::remove_user_from_role)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/roles.delete")
            .route(web::post().to(guarded(&[ACCESS_PERMISSIONS], roles::delete)))
            .default_service(not_allowed("POST")),
    )
    .service(
        // Enterprise routes in Rocket.Chat; access-permissions checked inside (400).
        resource("/api/v1/roles.create")
            .route(web::post().to(guarded(AUTH_ONLY, roles::create)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/roles.update")
            .route(web::post().to(guarded(AUTH_ONLY, roles::update)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/inquiryd/audit.list")
            .route(web::get().to(guarded(&[ACCESS_PERMISSIONS], audit::list)))
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
pub async fn read_body(payload: web::Payload) -> Result<web::BytesMut, ApiError> {
    read_body_within(payload, MAX_BODY).await
}

/// [`read_body`] with another limit (see [`body_limit`]).
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
            return Err(body_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
