//! The admin console at `/admin`: a few static files compiled into the binary (`src/console/`,
//! plain JS modules, no build step) that drive the REST routes from the browser. The page keeps
//! the login token in `sessionStorage` and sends it in `X-User-Id`/`X-Auth-Token`, never in a
//! cookie, so there is no CSRF surface; the routes behind each page check permissions themselves.
//!
//! Every answer carries a strict Content-Security-Policy (scripts and styles from this origin
//! only, no inline code, no framing, requests only to this origin), `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer` and `X-Content-Type-Options: nosniff`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

/// The policy of every console answer: nothing but this origin's own files and API.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's files: URL path, media type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/admin",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "/admin/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "/admin/api.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/api.js"),
    ),
    (
        "/admin/ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/ui.js"),
    ),
    (
        "/admin/pages.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/pages.js"),
    ),
    (
        "/admin/plugins.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/plugins.js"),
    ),
    (
        "/admin/style.css",
        "text/css; charset=utf-8",
        include_str!("../console/style.css"),
    ),
    (
        "/admin/icon.svg",
        "image/svg+xml",
        include_str!("../console/icon.svg"),
    ),
];

/// Mounts `/admin` (and `/admin/`, the same page) and its files, GET and HEAD only.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for &(path, media_type, body) in ASSETS {
        let serve = move || async move { asset(media_type, body) };
        let mut resource = web::resource(path);
        if path == "/admin" {
            resource = web::resource(["/admin", "/admin/"]);
        }
        cfg.service(
            resource
                .route(web::get().to(serve))
                .route(web::head().to(serve))
                .default_service(super::not_allowed("GET, HEAD")),
        );
    }
}

fn asset(media_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::build(StatusCode::OK)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(media_type)))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // the files change only with the binary; revalidating costs one small request each
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(body)
}
