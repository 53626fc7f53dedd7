//! `GET /api/v1/me` and login's `data.me` carry the fields of Rocket.Chat's `IMeApiUser` that
//! mean something offline, so typed clients validate them.

use serde_json::json;

use crate::helpers::*;

#[test]
fn me_and_login_me_carry_imeapiuser_fields() {
    let app = spawn_app();
    let root = app.user_with_token("root", &["admin"]);
    let body = json!({"username": "ann", "name": "Ann", "email": "ann@example.com", "password": "pw-ann", "roles": ["livechat-agent"]});
    let auth = Some((root.0.as_str(), root.1.as_str()));
    assert_eq!(
        app.post("/api/v1/users.create", &body.to_string(), auth)
            .status,
        200
    );

    let login = app
        .post(
            "/api/v1/login",
            r#"{"user":"ann","password":"pw-ann"}"#,
            None,
        )
        .json();
    let data = &login["data"];
    let (uid, tok) = (
        data["userId"].as_str().unwrap(),
        data["authToken"].as_str().unwrap(),
    );
    let r = app.get("/api/v1/me", Some((uid, tok)));
    assert_eq!(r.status, 200, "{}", r.body);
    let me = r.json();
    assert_eq!(me["success"], true);
    // Required by IMeApiUser: _id, avatarUrl, isOAuthUser, settings.profile (settings.calendar).
    assert_eq!(me["_id"], uid);
    assert_eq!(me["avatarUrl"], format!("{}/avatar/ann", app.base));
    assert_eq!(me["isOAuthUser"], false);
    assert_eq!(
        me["settings"],
        json!({"profile": {}, "preferences": {}, "calendar": {}})
    );
    assert_eq!(
        me["emails"],
        json!([{"address": "ann@example.com", "verified": false}])
    );
    assert_eq!(me["roles"], json!(["livechat-agent"]));
    assert_eq!(
        (me["status"].as_str(), me["statusConnection"].as_str()),
        (Some("online"), Some("online"))
    );
    assert_eq!(me["services"], json!({"password": {"exists": true}}));
    assert!(me["createdAt"].as_str().unwrap().ends_with(".000Z"));
    assert!(!r.body.contains("argon2") && !r.body.contains(tok));

    // Login's data.me is the same object, without `success`.
    let mut from_login = data["me"].clone();
    from_login["success"] = json!(true);
    assert_eq!(from_login, me);
    // A resume login answers the same me.
    let resume = app
        .post("/api/v1/login", &json!({"resume": tok}).to_string(), None)
        .json();
    assert_eq!(resume["data"]["me"], data["me"]);

    // A token-only user (no password, no email) has an empty emails list and no password.
    let v = app.get("/api/v1/me", demo()).json();
    assert_eq!(v["emails"], json!([]));
    assert_eq!(v["services"]["password"]["exists"], false);
}
