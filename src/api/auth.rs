//! `POST /api/v1/login`, `POST /api/v1/logout` and `GET /api/v1/me`, in Rocket.Chat's shapes.
//! Unknown user, wrong password and deactivated user answer alike and take the same time (one
//! argon2 verification each); failures are throttled per username and per client address.
//! Verification runs on a few fixed slots ([`crate::auth::passwords::Verifier`]): a login that
//! finds none free within a short wait gets the same 429 as a throttled one.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::ApiError;
use super::AppState;
use super::errors::json as json_response;
use super::logged::Logged;
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
    let obj = match serde_json::from_slice::<body::Top>(body) {
        Ok(body::Top::Object(obj)) => obj,
        Ok(body::Top::Other) => return Err(bad("Request body must be a JSON object")),
        Err(_) => return Err(bad("Request body must be valid JSON")),
    };
    use body::Field;
    if let Some(resume) = obj.resume {
        return match resume {
            Field::Str(t) => Ok(Credentials::Resume(t)),
            _ => Err(bad("'resume' must be a string")),
        };
    }
    let username = match obj.user.or(obj.username) {
        Some(Field::Str(s)) => s,
        Some(Field::Object(o)) => match o.username {
            Some(s) => s,
            None => return Err(bad("'user' must be a string")),
        },
        Some(Field::Other) => return Err(bad("'user' must be a string")),
        None => return Err(bad("Provide 'user' and 'password', or 'resume'")),
    };
    let digest = match obj.password {
        Some(Field::Str(plain)) => passwords::prehash(&plain),
        Some(Field::Object(p)) => match (p.digest, p.algorithm.as_deref()) {
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
        },
        Some(Field::Other) => return Err(bad("'password' must be a string")),
        None => return Err(bad("Provide 'user' and 'password', or 'resume'")),
    };
    Ok(Credentials::Password { username, digest })
}

/// A login body read for the few members a login looks at; everything else is skipped as it is
/// parsed, never built. Parsing a body of 6,000 unknown keys into a `serde_json::Value` took about
/// 2 ms of a worker's thread before any check, so a flood of such bodies (unauthenticated, within
/// the 64 KiB limit) starved getOne on the same workers. Duplicate keys: the last one wins, as
/// with `JSON.parse`.
mod body {
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// The whole body: an object, or any other JSON value.
    pub enum Top {
        Object(Box<Login>),
        Other,
    }

    #[derive(Default)]
    pub struct Login {
        pub resume: Option<Field>,
        pub user: Option<Field>,
        pub username: Option<Field>,
        pub password: Option<Field>,
    }

    /// A member's value: a string, an object (only its string members `username`, `digest` and
    /// `algorithm` kept), or anything else (skipped).
    pub enum Field {
        Str(String),
        Object(Inner),
        Other,
    }

    #[derive(Default)]
    pub struct Inner {
        pub username: Option<String>,
        pub digest: Option<String>,
        pub algorithm: Option<String>,
    }

    /// Skips whatever value comes; `visit_map` is each user's own.
    macro_rules! skip_all_but_maps {
        ($other:expr) => {
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok($other)
            }
        };
    }

    impl<'de> Deserialize<'de> for Top {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Top;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON value")
                }
                fn visit_str<E: de::Error>(self, _: &str) -> Result<Top, E> {
                    Ok(Top::Other)
                }
                skip_all_but_maps!(Top::Other);
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
                    let mut login = Login::default();
                    while let Some(Key(key)) = map.next_key()? {
                        let slot = match key {
                            Some("resume") => &mut login.resume,
                            Some("user") => &mut login.user,
                            Some("username") => &mut login.username,
                            Some("password") => &mut login.password,
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                                continue;
                            }
                        };
                        *slot = Some(map.next_value()?);
                    }
                    Ok(Top::Object(Box::new(login)))
                }
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for Field {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Field;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON value")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Field, E> {
                    Ok(Field::Str(s.to_string()))
                }
                skip_all_but_maps!(Field::Other);
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
                    let mut inner = Inner::default();
                    while let Some(Key(key)) = map.next_key()? {
                        let slot = match key {
                            Some("username") => &mut inner.username,
                            Some("digest") => &mut inner.digest,
                            Some("algorithm") => &mut inner.algorithm,
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                                continue;
                            }
                        };
                        *slot = map.next_value::<Str>()?.0;
                    }
                    Ok(Field::Object(inner))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A member name the login reads, without allocating for the others (`None`).
    struct Key(Option<&'static str>);

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a member name")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                    const NAMES: [&str; 6] = [
                        "resume",
                        "user",
                        "username",
                        "password",
                        "digest",
                        "algorithm",
                    ];
                    Ok(Key(NAMES.into_iter().find(|n| *n == s)))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// A string, or `None` for any other value (skipped).
    struct Str(Option<String>);

    impl<'de> Deserialize<'de> for Str {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Str;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON value")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Str, E> {
                    Ok(Str(Some(s.to_string())))
                }
                skip_all_but_maps!(Str(None));
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Str, A::Error> {
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Str(None))
                }
            }
            d.deserialize_any(V)
        }
    }
}

/// The `me` object Rocket.Chat returns at login and from `/api/v1/me`: the fields of its
/// `IMeApiUser` (`getUserInfo`) that mean something offline. Presence is not tracked, so a caller
/// is `online`; `avatarUrl` is where Rocket.Chat would serve the avatar, on this server's
/// address; `services.password.exists` says whether a password is set, never more.
pub fn me_object(user: &db::users::UserRow, req: &HttpRequest) -> serde_json::Map<String, Value> {
    let info = req.connection_info();
    let emails: Vec<Value> = user
        .email
        .iter()
        .map(|e| json!({"address": e, "verified": false}))
        .collect();
    let created = chrono::DateTime::from_timestamp(user.created_at, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let value = json!({
        "_id": user.id.as_str(),
        "name": user.name,
        "emails": emails,
        "status": "online",
        "statusConnection": "online",
        "username": user.username,
        "utcOffset": 0,
        "active": user.active,
        "roles": user.roles,
        "createdAt": created,
        "settings": {"profile": {}, "preferences": {}, "calendar": {}},
        "avatarUrl": format!(
            "{}://{}/avatar/{}",
            info.scheme(),
            info.host(),
            form_urlencoded::byte_serialize(user.username.as_bytes()).collect::<String>()
        ),
        "isOAuthUser": false,
        "services": {"password": {"exists": user.password_hash.is_some()}},
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn login_success(user: &db::users::UserRow, token: &str, req: &HttpRequest) -> HttpResponse {
    let body = json!({
        "status": "success",
        "data": {
            "userId": user.id.as_str(),
            "authToken": token,
            "me": me_object(user, req),
        }
    });
    json_response(StatusCode::OK, body.to_string())
}

/// The stored user behind an authenticated entry (for `me`), or a 401 when it went away since.
async fn user_row(
    state: &web::Data<AppState>,
    user: &UserEntry,
) -> Result<db::users::UserRow, ApiError> {
    let id = user.id.clone();
    super::blocking(state, move |conn| {
        db::users::by_id(conn, id.as_str())?.ok_or(ApiError::NotLoggedIn)
    })
    .await
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
                Some(user) => Ok(login_success(
                    &user_row(&state, &user).await.map_err(|e| match e {
                        ApiError::NotLoggedIn => ApiError::LoginFailed,
                        e => e,
                    })?,
                    &token,
                    &req,
                )),
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
    let user_id = row.id.clone();
    let last = db::tokens::last_part(&token).to_string();
    super::write(&state, move |tx| {
        Ok(db::tokens::insert(tx, &hashed, &user_id, expires, &last)?)
    })
    .await?;
    log::info!("login: user {} logged in", Logged::name(&row.username));
    Ok(login_success(&row, &token, &req))
}

pub async fn logout(ctx: super::Ctx, _: super::NoParams) -> Result<HttpResponse, ApiError> {
    let super::Ctx {
        caller, state, req, ..
    } = ctx;
    // The extractor already checked these headers; read the token again rather than carry it.
    let (_, token) = super::credentials(&req).ok_or(ApiError::NotLoggedIn)?;
    let hashed = tokens::hash(token);
    let user_id = caller.user.id.clone();
    super::write(&state, move |tx| {
        db::tokens::revoke(tx, &user_id, &hashed)?;
        Ok(())
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        r#"{"status":"success","data":{"message":"You've been logged out!"}}"#,
    ))
}

pub async fn me(ctx: super::Ctx, _: super::NoParams) -> Result<HttpResponse, ApiError> {
    let row = user_row(&ctx.state, &ctx.caller.user).await?;
    let mut me = me_object(&row, &ctx.req);
    me.insert("success".into(), Value::Bool(true));
    Ok(json_response(StatusCode::OK, Value::Object(me).to_string()))
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
        // Unknown members are skipped, whatever they hold; the last of duplicate keys wins.
        match parse_credentials(
            br#"{"x":[{"a":1},[2,{"b":null}]],"user":{"username":"a","x":{"y":[1]}},"password":"p","user":"b","k":1e400}"#,
        ) {
            Ok(Credentials::Password { username, .. }) => assert_eq!(username, "b"),
            _ => panic!("not a password login"),
        }
        match parse_credentials(br#"{"username":"u","user":{"username":"n"},"password":"p"}"#) {
            Ok(Credentials::Password { username, .. }) => assert_eq!(username, "n"),
            _ => panic!("not a password login"),
        }
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"user":1,"password":"p"}"#,
            br#"{"user":"a"}"#,
            br#"{"user":"a","password":{"digest":"zz","algorithm":"sha-256"}}"#,
            br#"{"resume":5}"#,
            br#"{"resume":null}"#,
            br#"{"user":{"username":5},"password":"p"}"#,
            br#"{"user":"a","password":{"digest":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}"#,
            br#"{"user":"a","password":"p"} x"#,
            br#""a string""#,
        ] {
            assert!(matches!(
                parse_credentials(bad),
                Err(ApiError::BadRequest(_))
            ));
        }
    }
}
