//! `POST /api/v1/login`, `POST /api/v1/logout` and `GET /api/v1/me`, in Rocket.Chat's shapes.
//! Unknown user, wrong password and deactivated user answer alike and take the same time (one
//! argon2 verification each); failures are throttled per username and per client address.
//! Verification runs on a few fixed slots ([`crate::auth::passwords::Verifier`]): a login that
//! finds none free within a short wait gets the same 429 as a throttled one.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::errors::json as json_response;
use super::logged::Logged;
use super::{ApiError, Caller};
use crate::app::AppState;
use crate::auth::throttle::Throttled;
use crate::auth::{UserEntry, passwords, tokens};
use crate::db;

/// What a login body asks for, once validated.
enum Credentials {
    Password { username: String, digest: String },
    Resume(String),
}

fn bad(msg: &str) -> ApiError {
    ApiError::BadRequest(msg.to_string())
}

fn parse_credentials(body: &[u8]) -> Result<Credentials, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| bad("Request body must be valid JSON"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("Request body must be a JSON object"))?;
    if let Some(resume) = obj.get("resume") {
        return resume
            .as_str()
            .map(|t| Credentials::Resume(t.to_string()))
            .ok_or_else(|| bad("'resume' must be a string"));
    }
    let username = match obj.get("user").or_else(|| obj.get("username")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => match o.get("username") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(bad("'user' must be a string")),
        },
        Some(_) => return Err(bad("'user' must be a string")),
        None => return Err(bad("Provide 'user' and 'password', or 'resume'")),
    };
    let digest = match obj.get("password") {
        Some(Value::String(plain)) => passwords::prehash(plain),
        Some(Value::Object(p)) => {
            let algorithm = p.get("algorithm").and_then(Value::as_str);
            match (p.get("digest").and_then(Value::as_str), algorithm) {
                (Some(d), Some("sha-256"))
                    if d.len() == 64 && d.bytes().all(|c| c.is_ascii_hexdigit()) =>
                {
                    d.to_ascii_lowercase()
                }
                _ => {
                    return Err(bad(
                        "'password' must be a string or {\"digest\": <sha-256 hex>, \"algorithm\": \"sha-256\"}",
                    ));
                }
            }
        }
        Some(_) => return Err(bad("'password' must be a string")),
        None => return Err(bad("Provide 'user' and 'password', or 'resume'")),
    };
    Ok(Credentials::Password { username, digest })
}

/// The `me` object Rocket.Chat returns at login and from `/api/v1/me`.
fn me_object(user: &UserEntry) -> serde_json::Map<String, Value> {
    let value = json!({
        "_id": user.id.as_str(),
        "name": user.name,
        "emails": [],
        "status": "online",
        "statusConnection": "online",
        "username": user.username,
        "utcOffset": 0,
        "active": user.active,
        "roles": user.roles,
        "settings": {"preferences": {}},
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn login_success(user: &UserEntry, token: &str) -> HttpResponse {
    let body = json!({
        "status": "success",
        "data": {
            "userId": user.id.as_str(),
            "authToken": token,
            "me": me_object(user),
        }
    });
    json_response(StatusCode::OK, body.to_string())
}

/// The longest username a login may name: `inquiryd user add` refuses longer ones, so no user can
/// have one. A longer name is answered like an unknown user's without the argon2 work.
pub const MAX_USERNAME_BYTES: usize = 128;

fn throttled(username: &str, addr: Option<std::net::IpAddr>, t: Throttled) -> ApiError {
    let level = if t.first {
        log::Level::Warn
    } else {
        log::Level::Debug
    };
    log::log!(
        level,
        "login throttled: user {} from {}; retry in {}s",
        Logged::name(username),
        show_addr(addr),
        t.retry_after
    );
    ApiError::TooManyRequests(t.retry_after)
}

fn show_addr(addr: Option<std::net::IpAddr>) -> String {
    addr.map_or_else(|| "unknown".to_string(), |a| a.to_string())
}

pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = super::read_body(payload).await?;
    let now = db::now_secs();
    let (username, digest) = match parse_credentials(&body)? {
        Credentials::Resume(token) => {
            let user = state.auth.snapshot().resume(&token, now).cloned();
            return match user {
                Some(user) => Ok(login_success(&user, &token)),
                None => Err(ApiError::LoginFailed),
            };
        }
        Credentials::Password { username, digest } => (username, digest),
    };
    let addr = req.peer_addr().map(|a| a.ip());
    if username.len() > MAX_USERNAME_BYTES {
        // No such user can exist; it still counts against the address, but not under its own
        // (long) key.
        state
            .throttle
            .reserve(None, addr)
            .map_err(|t| throttled(&username, addr, t))?;
        log::warn!(
            "login failed: user {} from {}: longer than {MAX_USERNAME_BYTES} bytes",
            Logged::name(&username),
            show_addr(addr)
        );
        return Err(ApiError::LoginFailed);
    }
    // A throttled client is answered at once, without waiting for a slot.
    state
        .throttle
        .check(Some(&username), addr)
        .map_err(|t| throttled(&username, addr, t))?;
    let Some(slot) = state.verifier.acquire().await else {
        log::debug!(
            "login busy: user {} from {}: every verification slot is taken",
            Logged::name(&username),
            show_addr(addr)
        );
        return Err(ApiError::TooManyRequests(1));
    };
    // Counted now, while holding the slot: exactly the limit of concurrent attempts get through,
    // and only attempts that are verified are tracked.
    let reservation = state
        .throttle
        .reserve(Some(&username), addr)
        .map_err(|t| throttled(&username, addr, t))?;
    let st = state.clone();
    let name = username.clone();
    // argon2 takes tens of milliseconds and 19 MiB: on a slot thread, with the slot's memory.
    let verified = slot
        .run(
            move |memory| -> Result<Option<db::users::UserRow>, ApiError> {
                let conn = st.pool.get()?;
                let row = db::users::by_username(&conn, &name)?;
                let ok = passwords::verify_digest_in(
                    memory,
                    &digest,
                    row.as_ref().and_then(|r| r.password_hash.as_deref()),
                );
                Ok(row.filter(|r| ok && r.active))
            },
        )
        .await
        .map_err(|e| ApiError::Internal(format!("login worker: {e}")))
        .and_then(|r| r);
    let row = match verified {
        Ok(Some(row)) => row,
        Ok(None) => {
            log::warn!(
                "login failed: user {} from {}",
                Logged::name(&username),
                show_addr(addr)
            );
            return Err(ApiError::LoginFailed);
        }
        Err(e) => {
            state.throttle.refund(reservation);
            return Err(e);
        }
    };
    state.throttle.succeeded(reservation);
    let token = tokens::generate();
    let hashed = tokens::hash(&token);
    let expires = now + i64::from(state.token_ttl_days) * 86_400;
    let st = state.clone();
    let user_id = row.id.clone();
    web::block(move || -> Result<(), ApiError> {
        let conn = st.pool.get()?;
        db::tokens::insert(&conn, &hashed, &user_id, expires)?;
        st.auth.refresh()?;
        Ok(())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("login worker: {e}")))??;
    log::info!("login: user {} logged in", Logged::name(&row.username));
    let user = UserEntry {
        id: row.id,
        username: row.username,
        name: row.name,
        active: row.active,
        roles: row.roles,
    };
    Ok(login_success(&user, &token))
}

pub async fn logout(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    // The extractor already checked these headers; read the token again rather than carry it.
    let (_, token) = super::credentials(&req).ok_or(ApiError::NotLoggedIn)?;
    let hashed = tokens::hash(token);
    let user_id = caller.user.id.clone();
    web::block(move || -> Result<(), ApiError> {
        let conn = st.pool.get()?;
        db::tokens::revoke(&conn, &user_id, &hashed)?;
        st.auth.refresh()?;
        Ok(())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("logout worker: {e}")))??;
    Ok(json_response(
        StatusCode::OK,
        r#"{"status":"success","data":{"message":"You've been logged out!"}}"#,
    ))
}

pub async fn me(caller: Caller) -> HttpResponse {
    let mut me = me_object(&caller.user);
    me.insert("success".into(), Value::Bool(true));
    json_response(StatusCode::OK, Value::Object(me).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_shapes() {
        assert!(matches!(
            parse_credentials(br#"{"user":"a","password":"p"}"#),
            Ok(Credentials::Password { .. })
        ));
        assert!(matches!(
            parse_credentials(br#"{"username":"a","password":{"digest":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","algorithm":"sha-256"}}"#),
            Ok(Credentials::Password { .. })
        ));
        assert!(matches!(
            parse_credentials(br#"{"resume":"t"}"#),
            Ok(Credentials::Resume(_))
        ));
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"user":1,"password":"p"}"#,
            br#"{"user":"a"}"#,
            br#"{"user":"a","password":{"digest":"zz","algorithm":"sha-256"}}"#,
            br#"{"resume":5}"#,
        ] {
            assert!(matches!(
                parse_credentials(bad),
                Err(ApiError::BadRequest(_))
            ));
        }
    }
}
