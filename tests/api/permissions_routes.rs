//! Rocket.Chat's permissions routes: `permissions.listAll`, `permissions.update`,
//! `permissions.addRole`, `permissions.removeRole`. Bodies compared to Rocket.Chat's exactly; every
//! change is audited with the REST user as actor and in force for the very next request.

use serde_json::{Value, json};

use crate::helpers::*;

const FORBIDDEN: &str = r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#;
const NOT_LOGGED_IN: &str = r#"{"success":false,"error":"You must be logged in to do this.","status":"error","message":"You must be logged in to do this."}"#;
const INVALID_PERMISSION: &str =
    r#"{"success":false,"error":"Invalid permission","errorType":"error-invalid-permission"}"#;
const INVALID_ROLE: &str =
    r#"{"success":false,"error":"Invalid role","errorType":"error-invalid-role"}"#;
const INVALID_BODY: &str =
    r#"{"success":false,"error":"Invalid body params","errorType":"error-invalid-body-params"}"#;
const ADMIN_REQUIRED: &str = r#"{"success":false,"error":"You need to have at least one admin [error-admin-required]","errorType":"error-admin-required"}"#;

/// The roles of `id` in a listAll/update answer's array.
fn roles_of(list: &Value, id: &str) -> Vec<String> {
    let doc = list
        .as_array()
        .expect("array")
        .iter()
        .find(|d| d["_id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed"));
    serde_json::from_value(doc["roles"].clone()).unwrap()
}

fn audit_rows(app: &TestApp) -> Vec<(String, String, String, String)> {
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let mut stmt = conn
        .prepare("SELECT actor, actor_kind, kind, subject FROM audit ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn list_all_answers_every_permission_in_rocketchat_shape() {
    let app = spawn_app();
    assert_eq!(
        app.get("/api/v1/permissions.listAll", None).body,
        NOT_LOGGED_IN
    );
    // authRequired only: an agent may list; unknown parameters are ignored (legacy route).
    let r = app.get("/api/v1/permissions.listAll?x=1", demo());
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["update", "remove", "success"]);
    assert_eq!(v["remove"], json!([]));
    assert_eq!(
        roles_of(&v["update"], "view-l-room"),
        [
            "livechat-manager",
            "livechat-monitor",
            "livechat-agent",
            "admin"
        ]
    );
    assert_eq!(
        roles_of(&v["update"], "view-d-room"),
        ["admin", "user", "bot", "app", "guest"]
    );
    let doc = v["update"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["_id"] == "access-permissions")
        .unwrap();
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["_id", "roles", "_updatedAt"]);
    let at = doc["_updatedAt"].as_str().unwrap();
    assert!(
        at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
}

#[test]
fn list_all_since_a_date_answers_what_changed_after_it_and_a_bad_date_is_400() {
    let app = spawn_app();
    let root = admin(&app);
    let r = app.get(
        "/api/v1/permissions.listAll?updatedSince=2018-11-27T13:52:01Z",
        auth(&root),
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["update"].as_array().unwrap().len() > 10);
    let r = app.get(
        "/api/v1/permissions.listAll?updatedSince=2999-01-01T00:00:00Z",
        auth(&root),
    );
    assert_eq!(r.body, r#"{"update":[],"remove":[],"success":true}"#);
    for bad in ["fsafdf", "2018-13-45", "a&updatedSince=b"] {
        let r = app.get(
            &format!("/api/v1/permissions.listAll?updatedSince={bad}"),
            auth(&root),
        );
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(
            r.body,
            r#"{"success":false,"error":"The \"updatedSince\" query parameter must be a valid date. [error-roomId-param-invalid]","errorType":"error-roomId-param-invalid"}"#
        );
    }
    // Only what changed since: one update, then listAll since just before it.
    let before = app.get("/api/v1/permissions.listAll", auth(&root)).json();
    let latest = before["update"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["_updatedAt"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    let r = app.post(
        "/api/v1/permissions.update",
        r#"{"permissions":[{"_id":"view-livechat-queue","roles":["admin"]}]}"#,
        auth(&root),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let since = app
        .get(
            &format!("/api/v1/permissions.listAll?updatedSince={latest}"),
            auth(&root),
        )
        .json();
    let ids: Vec<&str> = since["update"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["view-livechat-queue"]);
}

#[test]
fn update_replaces_roles_answers_all_permissions_and_is_in_force_at_once() {
    let app = spawn_app();
    let root = admin(&app);
    assert_eq!(app.get_one(DEMO_ROOM, demo()).status, 200);
    let r = app.post(
        "/api/v1/permissions.update",
        r#"{"permissions":[{"_id":"view-l-room","roles":["admin","livechat-manager"]}]}"#,
        auth(&root),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["permissions", "success"]);
    assert_eq!(
        roles_of(&v["permissions"], "view-l-room"),
        ["admin", "livechat-manager"]
    );
    assert_eq!(roles_of(&v["permissions"], "access-permissions"), ["admin"]);
    // The very next request: the demo agent lost view-l-room.
    assert_eq!(app.get_one(DEMO_ROOM, demo()).body, FORBIDDEN);
    // An empty list is allowed.
    let r = app.post(
        "/api/v1/permissions.update",
        r#"{"permissions":[{"_id":"view-livechat-queue","roles":[]}]}"#,
        auth(&root),
    );
    assert_eq!(
        roles_of(&r.json()["permissions"], "view-livechat-queue"),
        Vec::<String>::new()
    );
    let rows = audit_rows(&app);
    assert!(
        rows.contains(&(
            "root".into(),
            "rest".into(),
            "permission.roles".into(),
            "view-l-room".into()
        )),
        "{rows:?}"
    );
}

#[test]
fn update_errors_match_rocketchat_and_apply_nothing() {
    let app = spawn_app();
    let root = admin(&app);
    let post = |body: &str, who| app.post("/api/v1/permissions.update", body, who);
    let ok = r#"{"permissions":[{"_id":"view-l-room","roles":["admin"]}]}"#;
    assert_eq!(post(ok, None).body, NOT_LOGGED_IN);
    // Legacy route without validateParams: 403 before the body is looked at.
    let r = post("{not json", demo());
    assert_eq!((r.status, r.body.as_str()), (403, FORBIDDEN));
    for (body, expected) in [
        (
            r#"{"permissions":[{"_id":"view-l-roomz","roles":["admin"]}]}"#,
            INVALID_PERMISSION,
        ),
        // Listed twice: Rocket.Chat's count check says invalid permission.
        (
            r#"{"permissions":[{"_id":"view-l-room","roles":[]},{"_id":"view-l-room","roles":[]}]}"#,
            INVALID_PERMISSION,
        ),
        // The first change is valid, the second names an unknown role: nothing is applied.
        (
            r#"{"permissions":[{"_id":"view-l-room","roles":[]},{"_id":"manage-apps","roles":["livechat-managr"]}]}"#,
            INVALID_ROLE,
        ),
        ("{not json", INVALID_BODY),
        ("[]", INVALID_BODY),
        (r#"{"permissions":{}}"#, INVALID_BODY),
        (
            r#"{"permissions":[{"_id":"view-l-room","roles":"admin"}]}"#,
            INVALID_BODY,
        ),
        (
            r#"{"permissions":[{"_id":"view-l-room","roles":[1]}]}"#,
            INVALID_BODY,
        ),
        (
            r#"{"permissions":[{"_id":"view-l-room","roles":["admin","admin"]}]}"#,
            INVALID_BODY,
        ),
        (
            r#"{"permissions":[{"_id":"view-l-room","roles":[],"x":1}]}"#,
            INVALID_BODY,
        ),
        (r#"{"permissions":[],"extra":true}"#, INVALID_BODY),
        // The last admin: access-permissions taken from every active user.
        (
            r#"{"permissions":[{"_id":"access-permissions","roles":[]}]}"#,
            ADMIN_REQUIRED,
        ),
    ] {
        let r = post(body, auth(&root));
        assert_eq!((r.status, r.body.as_str()), (400, expected), "{body}");
    }
    let huge = format!(
        r#"{{"permissions":[{}]}}"#,
        vec![r#"{"_id":"view-l-room","roles":[]}"#; 1_500].join(",")
    );
    let r = post(&huge, auth(&root));
    assert_eq!((r.status, r.body.as_str()), (400, INVALID_BODY));
    let list = app.get("/api/v1/permissions.listAll", auth(&root)).json();
    assert_eq!(
        roles_of(&list["update"], "view-l-room"),
        [
            "livechat-manager",
            "livechat-monitor",
            "livechat-agent",
            "admin"
        ],
        "nothing half-applied"
    );
    assert_eq!(roles_of(&list["update"], "access-permissions"), ["admin"]);
    assert_eq!(app.get_one(DEMO_ROOM, demo()).status, 200);
    assert!(
        audit_rows(&app).iter().all(|r| r.1 != "rest"),
        "nothing audited"
    );
}

#[test]
fn add_role_and_remove_role_change_one_role() {
    let app = spawn_app();
    let root = admin(&app);
    let change =
        |route: &str, body: &str, who| app.post(&format!("/api/v1/permissions.{route}"), body, who);
    let body = r#"{"permissionId":"view-l-room","role":"user"}"#;
    for route in ["addRole", "removeRole"] {
        assert_eq!(change(route, body, None).body, NOT_LOGGED_IN);
        assert_eq!(change(route, body, demo()).body, FORBIDDEN);
        // Shape errors (ajv, invalid-params) come before the permission check.
        for (bad, message) in [
            ("[]", "must be object"),
            ("{not json", "must be object"),
            (
                r#"{"role":"user"}"#,
                "must have required property 'permissionId'",
            ),
            (
                r#"{"permissionId":"view-l-room"}"#,
                "must have required property 'role'",
            ),
            (
                r#"{"permissionId":"view-l-room","role":"user","x":1}"#,
                "must NOT have additional properties",
            ),
            (
                r#"{"permissionId":"view-l-room","role":["user"]}"#,
                "must be string",
            ),
        ] {
            let r = change(route, bad, demo());
            assert_eq!(r.status, 400, "{route} {bad}");
            assert_eq!(
                r.json(),
                json!({"success": false, "error": format!("{message} [invalid-params]"), "errorType": "invalid-params"}),
                "{route} {bad}"
            );
        }
        let r = change(
            route,
            r#"{"permissionId":"view-l-roomz","role":"user"}"#,
            auth(&root),
        );
        assert_eq!((r.status, r.body.as_str()), (400, INVALID_PERMISSION));
        let r = change(
            route,
            r#"{"permissionId":"view-l-room","role":"usr"}"#,
            auth(&root),
        );
        assert_eq!((r.status, r.body.as_str()), (400, INVALID_ROLE));
    }
    let (uid, tok) = app.user_with_token("ursula", &["user"]);
    assert_eq!(app.get_one(DEMO_ROOM, Some((&uid, &tok))).status, 403);
    let r = change("addRole", body, auth(&root));
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"success":true}"#));
    assert_eq!(
        app.get_one(DEMO_ROOM, Some((&uid, &tok))).status,
        200,
        "next request"
    );
    let list = app.get("/api/v1/permissions.listAll", auth(&root)).json();
    assert_eq!(
        roles_of(&list["update"], "view-l-room"),
        [
            "livechat-manager",
            "livechat-monitor",
            "livechat-agent",
            "admin",
            "user"
        ]
    );
    let r = change("removeRole", body, auth(&root));
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"success":true}"#));
    assert_eq!(
        app.get_one(DEMO_ROOM, Some((&uid, &tok))).status,
        403,
        "next request"
    );
    let r = change(
        "removeRole",
        r#"{"permissionId":"access-permissions","role":"admin"}"#,
        auth(&root),
    );
    assert_eq!((r.status, r.body.as_str()), (400, ADMIN_REQUIRED));
    let kinds: Vec<(String, String)> = audit_rows(&app)
        .into_iter()
        .filter(|r| r.1 == "rest")
        .map(|r| (r.0, r.3))
        .collect();
    assert_eq!(
        kinds,
        [
            ("root".into(), "view-l-room".into()),
            ("root".into(), "view-l-room".into())
        ]
    );
}

#[test]
fn wrong_methods_are_json_405() {
    let app = spawn_app();
    assert_eq!(
        app.post("/api/v1/permissions.listAll", "{}", demo()).status,
        405
    );
    assert_eq!(app.get("/api/v1/permissions.update", demo()).status, 405);
}
