//! Rocket.Chat's roles routes: `roles.list`, `roles.sync`, `roles.getUsersInRole`,
//! `roles.addUserToRole`, `roles.removeUserFromRole`, `roles.delete`, and the enterprise
//! `roles.create` / `roles.update` that inquiryd serves. Bodies compared to Rocket.Chat's exactly,
//! in its check order; changes audited with the REST user and in force for the next request.

use serde_json::{Value, json};

use crate::helpers::*;

const FORBIDDEN: &str = r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#;
const NOT_LOGGED_IN: &str = r#"{"success":false,"error":"You must be logged in to do this.","status":"error","message":"You must be logged in to do this."}"#;
const ADMIN_REQUIRED: &str = r#"{"success":false,"error":"You need to have at least one admin [error-admin-required]","errorType":"error-admin-required"}"#;
const ROLE_PROPERTIES: &str = r#"{"success":false,"error":"error-invalid-role-properties"}"#;
const ROLE_NOT_FOUND: &str =
    r#"{"success":false,"error":"error-role-not-found","errorType":"Role not found"}"#;
const NO_SUCH_ROLE: &str = r#"{"success":false,"error":"This role does not exist [error-invalid-roleId]","errorType":"error-invalid-roleId"}"#;
const INVALID_PROPERTIES: &str = r#"{"success":false,"error":"The role properties are invalid. [error-invalid-role-properties]","errorType":"error-invalid-role-properties"}"#;
const NOT_ALLOWED: &str = r#"{"success":false,"error":"Accessing permissions is not allowed [error-action-not-allowed]","errorType":"error-action-not-allowed"}"#;
const DUPLICATE: &str = r#"{"success":false,"error":"Role name already exists [error-duplicate-role-names-not-allowed]","errorType":"error-duplicate-role-names-not-allowed"}"#;

fn invalid_params(message: &str) -> String {
    json!({"success": false, "error": format!("{message} [invalid-params]"), "errorType": "invalid-params"}).to_string()
}

fn audit_kinds(app: &TestApp) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let mut stmt = conn
        .prepare("SELECT actor, kind, subject FROM audit ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn usernames(v: &Value) -> Vec<&str> {
    v["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect()
}

#[test]
fn roles_list_answers_every_role_without_updated_at() {
    let app = spawn_app();
    assert_eq!(app.get("/api/v1/roles.list", None).body, NOT_LOGGED_IN);
    let r = app.get("/api/v1/roles.list", demo());
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["roles", "success"]);
    let roles = v["roles"].as_array().unwrap();
    let admin = roles.iter().find(|r| r["_id"] == "admin").unwrap();
    assert_eq!(
        admin.to_string(),
        r#"{"_id":"admin","name":"admin","scope":"Users","description":"Admin","protected":true,"mandatory2fa":false}"#
    );
    for name in ["moderator", "livechat-agent", "livechat-monitor", "guest"] {
        assert!(roles.iter().any(|r| r["_id"] == name), "{name} missing");
    }
    assert_eq!(
        app.post("/api/v1/roles.list", "{}", demo()).status,
        405,
        "GET only"
    );
}

#[test]
fn roles_sync_lists_changes_and_removals_after_a_date() {
    let app = spawn_app();
    let root = admin(&app);
    let r = app.get("/api/v1/roles.sync", demo());
    assert_eq!(
        r.body,
        r#"{"roles":{"update":[],"remove":[]},"success":true}"#
    );
    assert_eq!(
        app.get("/api/v1/roles.sync?x=1", demo()).body,
        invalid_params("must NOT have additional properties")
    );
    assert_eq!(
        app.get("/api/v1/roles.sync?x=1", None).status,
        401,
        "401 first"
    );
    let before = "2000-01-01T00:00:00.000Z";
    for name in ["keep-me", "drop-me"] {
        let r = app.post(
            "/api/v1/roles.create",
            &json!({"name": name}).to_string(),
            auth(&root),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = app.post(
        "/api/v1/roles.delete",
        r#"{"roleId":"drop-me"}"#,
        auth(&root),
    );
    assert_eq!(r.body, r#"{"success":true}"#);
    let v = app
        .get(&format!("/api/v1/roles.sync?updatedSince={before}"), demo())
        .json();
    let updated: Vec<&str> = v["roles"]["update"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["_id"].as_str().unwrap())
        .collect();
    assert!(updated.contains(&"keep-me") && !updated.contains(&"drop-me"));
    assert!(v["roles"]["update"][0]["_updatedAt"].is_string());
    let removed = &v["roles"]["remove"];
    assert_eq!(removed.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(removed[0]["_id"], "drop-me");
    assert!(removed[0]["_deletedAt"].is_string());
    // A date in the future: nothing changed since.
    let v = app
        .get("/api/v1/roles.sync?updatedSince=2999-01-01", demo())
        .json();
    assert_eq!(v["roles"], json!({"update": [], "remove": []}));
}

#[test]
fn get_users_in_role_is_paginated_sorted_and_needs_access_permissions() {
    let app = spawn_app();
    let root = admin(&app);
    for name in ["zed", "amy", "bob"] {
        assert!(
            app.cli(&["user", "add", name, "--role", "livechat-manager"])
                .status
                .success()
        );
    }
    let path = "/api/v1/roles.getUsersInRole";
    assert_eq!(
        app.get(&format!("{path}?role=admin"), None).body,
        NOT_LOGGED_IN
    );
    // No schema on this route: even a bad query is a 403 first.
    assert_eq!(app.get(&format!("{path}?x=1"), demo()).body, FORBIDDEN);
    assert_eq!(
        app.get(path, auth(&root)).body,
        r#"{"success":false,"error":"Query param \"role\" is required [error-param-not-provided]","errorType":"error-param-not-provided"}"#
    );
    assert_eq!(
        app.get(&format!("{path}?role=nope"), auth(&root)).body,
        r#"{"success":false,"error":"[error-invalid-roleId]","errorType":"error-invalid-roleId"}"#
    );
    let v = app
        .get(&format!("{path}?role=livechat-manager"), auth(&root))
        .json();
    assert_eq!(usernames(&v), ["amy", "bob", "zed"]);
    assert_eq!(v["total"], 3);
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["users", "total", "success"]);
    let user_keys: Vec<&String> = v["users"][0].as_object().unwrap().keys().collect();
    assert_eq!(user_keys, ["_id", "username", "name", "createdAt"]);
    let v = app
        .get(
            &format!("{path}?role=livechat-manager&offset=1&count=1"),
            auth(&root),
        )
        .json();
    assert_eq!((usernames(&v), &v["total"]), (vec!["bob"], &json!(3)));
    // count=0 is "no limit"; a count above 100 is capped, not refused.
    for count in ["0", "1000", "abc"] {
        let v = app
            .get(
                &format!("{path}?role=livechat-manager&count={count}"),
                auth(&root),
            )
            .json();
        assert_eq!(usernames(&v).len(), 3, "count={count}");
    }
}

#[test]
fn add_user_to_role_checks_in_rocketchats_order_with_its_bodies() {
    let app = spawn_app();
    let root = admin(&app);
    assert!(app.cli(&["user", "add", "bob"]).status.success());
    let path = "/api/v1/roles.addUserToRole";
    assert_eq!(app.post(path, "{}", None).body, NOT_LOGGED_IN);
    for (body, expected) in [
        ("{", invalid_params("must be object")),
        ("[]", invalid_params("must be object")),
        (
            r#"{"roleId":"admin"}"#,
            invalid_params("must have required property 'username'"),
        ),
        (
            r#"{"username":"bob","x":1}"#,
            invalid_params("must NOT have additional properties"),
        ),
        (r#"{"username":1}"#, invalid_params("must be string")),
    ] {
        assert_eq!(app.post(path, body, demo()).body, expected, "{body}");
    }
    assert_eq!(
        app.post(
            path,
            r#"{"username":"nobody","roleId":"admin"}"#,
            auth(&root)
        )
        .body,
        r#"{"success":false,"error":"The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]","errorType":"error-invalid-user"}"#
    );
    assert_eq!(
        app.post(path, r#"{"username":"bob"}"#, auth(&root)).body,
        ROLE_PROPERTIES
    );
    assert_eq!(
        app.post(path, r#"{"username":"bob","roleId":"nope"}"#, auth(&root))
            .body,
        ROLE_NOT_FOUND
    );
    // No route permission: the agent's refusal is a 400 from inside, with details.
    let r = app.post(
        path,
        r#"{"username":"bob","roleId":"livechat-agent"}"#,
        demo(),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            r#"{"success":false,"error":"Accessing permissions is not allowed [error-action-not-allowed]","errorType":"error-action-not-allowed","details":{"method":"authorization:addUserToRole","action":"Accessing_permissions"}}"#
        )
    );
    // access-permissions without assign-admin-role may give any role but admin.
    assert!(app.cli(&["role", "add", "perm-admin"]).status.success());
    assert!(
        app.cli(&["permission", "grant", "access-permissions", "perm-admin"])
            .status
            .success()
    );
    let keeper = app.user_with_token("keeper", &["perm-admin"]);
    assert_eq!(
        app.post(
            path,
            r#"{"username":"bob","roleId":"admin"}"#,
            auth(&keeper)
        )
        .body,
        r#"{"success":false,"error":"Assigning admin is not allowed [error-action-not-allowed]","errorType":"error-action-not-allowed","details":{"method":"authorization:addUserToRole","action":"Assign_admin"}}"#
    );
    let r = app.post(
        path,
        r#"{"username":"bob","roleId":"livechat-manager"}"#,
        auth(&keeper),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["role"]["_id"], "livechat-manager");
    assert_eq!(v["role"]["description"], "Livechat Manager");
    assert!(v["role"]["_updatedAt"].is_string());
    assert_eq!(v["success"], true);
    assert_eq!(
        app.post(
            path,
            r#"{"username":"bob","roleId":"livechat-manager"}"#,
            auth(&root)
        )
        .body,
        r#"{"success":false,"error":"User already in role [error-user-already-in-role]","errorType":"error-user-already-in-role"}"#
    );
    // In force for the very next request: bob, now admin, may list role holders at once.
    let bob = token_create(&app, "bob");
    assert_eq!(
        app.get("/api/v1/roles.getUsersInRole?role=admin", auth(&bob))
            .status,
        403
    );
    let r = app.post(path, r#"{"username":"bob","roleId":"admin"}"#, auth(&root));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = app
        .get("/api/v1/roles.getUsersInRole?role=admin", auth(&bob))
        .json();
    assert_eq!(usernames(&v), ["bob", "root"]);
    let audited = audit_kinds(&app);
    assert!(audited.contains(&("keeper".into(), "user.roles".into(), "bob".into())));
    assert!(audited.contains(&("root".into(), "user.roles".into(), "bob".into())));
}

#[test]
fn remove_user_from_role_keeps_the_last_admin() {
    let app = spawn_app();
    let root = admin(&app);
    assert!(
        app.cli(&["user", "add", "bob", "--role", "livechat-agent"])
            .status
            .success()
    );
    let path = "/api/v1/roles.removeUserFromRole";
    // 401, then the body (400), then the permission (403).
    assert_eq!(app.post(path, "{", None).body, NOT_LOGGED_IN);
    assert_eq!(
        app.post(path, "{", demo()).body,
        invalid_params("must be object")
    );
    assert_eq!(
        app.post(
            path,
            r#"{"username":"bob","roleId":"livechat-agent"}"#,
            demo()
        )
        .body,
        FORBIDDEN
    );
    for (body, expected) in [
        (r#"{"username":"bob"}"#, ROLE_PROPERTIES.to_string()),
        (
            r#"{"username":"nobody","roleId":"admin"}"#,
            r#"{"success":false,"error":"There is no user with this username [error-invalid-user]","errorType":"error-invalid-user"}"#.to_string(),
        ),
        (r#"{"username":"bob","roleId":"nope"}"#, NO_SUCH_ROLE.to_string()),
        (
            r#"{"username":"bob","roleId":"admin"}"#,
            r#"{"success":false,"error":"User is not in this role [error-user-not-in-role]","errorType":"error-user-not-in-role"}"#.to_string(),
        ),
        (r#"{"username":"root","roleId":"admin"}"#, ADMIN_REQUIRED.to_string()),
    ] {
        assert_eq!(app.post(path, body, auth(&root)).body, expected, "{body}");
    }
    let r = app.post(
        path,
        r#"{"username":"bob","roleId":"livechat-agent"}"#,
        auth(&root),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["role"]["_id"], "livechat-agent");
    let v = app
        .get(
            "/api/v1/roles.getUsersInRole?role=livechat-agent",
            auth(&root),
        )
        .json();
    assert!(!usernames(&v).contains(&"bob"));
    // The refused removal left root an admin.
    assert_eq!(
        app.get("/api/v1/roles.getUsersInRole?role=admin", auth(&root))
            .status,
        200
    );
}

#[test]
fn delete_refuses_protected_and_used_roles() {
    let app = spawn_app();
    let root = admin(&app);
    let path = "/api/v1/roles.delete";
    assert_eq!(app.post(path, r#"{"roleId":"x"}"#, demo()).body, FORBIDDEN);
    assert_eq!(
        app.post(path, r#"{}"#, demo()).body,
        invalid_params("must have required property 'roleId'")
    );
    assert_eq!(
        app.post(path, r#"{"roleId":"nope"}"#, auth(&root)).body,
        NO_SUCH_ROLE
    );
    assert_eq!(
        app.post(path, r#"{"roleId":"livechat-agent"}"#, auth(&root))
            .body,
        r#"{"success":false,"error":"Cannot delete a protected role [error-role-protected]","errorType":"error-role-protected"}"#
    );
    assert!(app.cli(&["role", "add", "night-shift"]).status.success());
    assert!(
        app.cli(&["user", "add", "bob", "--role", "night-shift"])
            .status
            .success()
    );
    assert_eq!(
        app.post(path, r#"{"roleId":"night-shift"}"#, auth(&root))
            .body,
        r#"{"success":false,"error":"Cannot delete role because it's in use [error-role-in-use]","errorType":"error-role-in-use"}"#
    );
    assert!(
        app.cli(&["user", "set-roles", "bob", "user"])
            .status
            .success()
    );
    assert_eq!(
        app.post(path, r#"{"roleId":"night-shift"}"#, auth(&root))
            .body,
        r#"{"success":true}"#
    );
    let v = app.get("/api/v1/roles.list", auth(&root)).json();
    assert!(
        !v["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["_id"] == "night-shift")
    );
    assert!(audit_kinds(&app).contains(&(
        "root".into(),
        "role.remove".into(),
        "night-shift".into()
    )));
}

#[test]
fn create_and_update_serve_custom_roles() {
    let app = spawn_app();
    let root = admin(&app);
    let create = "/api/v1/roles.create";
    let update = "/api/v1/roles.update";
    // The body is checked first, then access-permissions inside: 400, not 403.
    assert_eq!(
        app.post(create, r#"{"name":"x","y":1}"#, demo()).body,
        INVALID_PROPERTIES
    );
    assert_eq!(
        app.post(create, r#"{"name":"x"}"#, demo()).body,
        NOT_ALLOWED
    );
    for bad in [
        "{",
        "{}",
        r#"{"name":1}"#,
        r#"{"name":""}"#,
        r#"{"name":"Night Shift"}"#,
        r#"{"name":"x\ny"}"#,
        r#"{"name":"x","scope":"Rooms"}"#,
        r#"{"name":"x","mandatory2fa":"yes"}"#,
    ] {
        assert_eq!(
            app.post(create, bad, auth(&root)).body,
            INVALID_PROPERTIES,
            "{bad}"
        );
    }
    let r = app.post(
        create,
        r#"{"name":"night-shift","description":"Nights","mandatory2fa":true}"#,
        auth(&root),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let role = &r.json()["role"];
    assert_eq!(role["_id"], "night-shift");
    assert_eq!(
        (
            &role["scope"],
            &role["description"],
            &role["protected"],
            &role["mandatory2fa"]
        ),
        (
            &json!("Users"),
            &json!("Nights"),
            &json!(false),
            &json!(true)
        )
    );
    assert_eq!(
        app.post(create, r#"{"name":"night-shift"}"#, auth(&root))
            .body,
        DUPLICATE
    );
    assert_eq!(
        app.post(create, r#"{"name":"admin"}"#, auth(&root)).body,
        DUPLICATE
    );
    assert!(
        app.cli(&["user", "add", "bob", "--role", "night-shift"])
            .status
            .success()
    );
    assert!(
        app.cli(&["permission", "grant", "view-l-room", "night-shift"])
            .status
            .success()
    );
    // Renaming a custom role renames it where users and permissions hold it.
    let r = app.post(
        update,
        r#"{"roleId":"night-shift","name":"late-shift","scope":"Users"}"#,
        auth(&root),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["role"]["_id"], "late-shift");
    assert_eq!(r.json()["role"]["description"], "");
    let v = app
        .get("/api/v1/roles.getUsersInRole?role=late-shift", auth(&root))
        .json();
    assert_eq!(usernames(&v), ["bob"]);
    let bob = token_create(&app, "bob");
    assert_eq!(app.get_one(DEMO_ROOM, auth(&bob)).status, 200);
    for (body, expected) in [
        (
            r#"{"roleId":"nope","name":"x"}"#.to_string(),
            NO_SUCH_ROLE.to_string(),
        ),
        (
            r#"{"roleId":"admin","name":"boss"}"#.to_string(),
            r#"{"success":false,"error":"The name and scope of protected roles cannot be changed. [error-invalid-role-properties]","errorType":"error-invalid-role-properties"}"#.to_string(),
        ),
        (
            r#"{"roleId":"late-shift","name":"admin"}"#.to_string(),
            DUPLICATE.to_string(),
        ),
        (r#"{"name":"x"}"#.to_string(), INVALID_PROPERTIES.to_string()),
    ] {
        assert_eq!(app.post(update, &body, auth(&root)).body, expected, "{body}");
    }
    // A role a plugin names keeps its name: renaming it would change what the plugin does.
    std::fs::write(
        app.plugins.join("late.json"),
        r#"{"name":"late","hooks":[{"on":"inquiry.response","when":{"caller":{"roles_any":["late-shift"]}},"do":[{"op":"remove","path":"/v/token"}]}]}"#,
    )
    .unwrap();
    // In force once the watcher has recorded it.
    let applied = poll_until(std::time::Duration::from_secs(10), || {
        app.get(
            "/api/v1/inquiryd/audit.list?kind=plugin.applied",
            auth(&root),
        )
        .json()["total"]
            == 1
    });
    assert!(applied.is_some(), "late.json never applied");
    let rename = r#"{"roleId":"late-shift","name":"night-shift"}"#;
    let refused = app.post(update, rename, auth(&root)).body;
    assert_eq!(
        refused,
        r#"{"success":false,"error":"Cannot rename role because plugin file(s) late.json name it; rename it there first [error-role-in-use]","errorType":"error-role-in-use"}"#
    );
    // ...while its description may still change.
    let r = app.post(
        update,
        r#"{"roleId":"late-shift","name":"late-shift","description":"Late"}"#,
        auth(&root),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A protected role's description may change; it stays protected.
    let r = app.post(
        update,
        r#"{"roleId":"admin","name":"admin","description":"Boss"}"#,
        auth(&root),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            &r.json()["role"]["description"],
            &r.json()["role"]["protected"]
        ),
        (&json!("Boss"), &json!(true))
    );
    assert_eq!(
        app.post(update, r#"{"roleId":"admin","name":"admin"}"#, demo())
            .body,
        NOT_ALLOWED
    );
    let audited = audit_kinds(&app);
    for kind in ["role.add", "role.rename", "role.update"] {
        assert!(
            audited.iter().any(|(a, k, _)| a == "root" && k == kind),
            "{kind} not audited: {audited:?}"
        );
    }
}
