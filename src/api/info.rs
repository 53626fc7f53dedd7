//! `GET /api/info`: the Rocket.Chat version clients parse, without auth.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

/// The Rocket.Chat release whose REST behaviour this server reproduces.
pub const ROCKETCHAT_VERSION: &str = "6.5.0";

pub async fn info() -> HttpResponse {
    super::errors::json(
        StatusCode::OK,
        format!(r#"{{"version":"{ROCKETCHAT_VERSION}","success":true}}"#),
    )
}
