//! Rocket.Chat's users routes: `users.list`, `users.info`, `users.create`, `users.update`,
//! `users.setActiveStatus`. Bodies compared to Rocket.Chat's exactly, each error included; every
//! refused request changes nothing; changes are audited with the REST user and in force for the
//! very next request.

use serde_json::{Value, json};

use crate::helpers::*;

const FORBIDDEN: &str = r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#;
const NOT_LOGGED_IN: &str = r#"{"success":false,"error":"You must be logged in to do this.","status":"error","message":"You must be logged in to do this."}"#;

/// A request body, who sends it, and Rocket.Chat's answer.
type Case<'a> = (String, Option<(&'a str, &'a str)>, Value);

fn auth(c: &(String, String)) -> Option<(&str, &str)> {
    Some((c.0.as_str(), c.1.as_str()))
}

fn root(app: &TestApp) -> (String, String) {
    app.user_with_token("root", &["admin"])
}

/// Creates a user through `users.create` as `by`; returns its `_id`.
fn create(app: &TestApp, by: &(String, String), username: &str, roles: &[&str]) -> String {
    let body = json!({"username": username, "name": format!("{username} N"), "email": format!("{username}@example.com"),
        "password": "secret-1", "roles": roles});
    let r = app.post("/api/v1/users.create", &body.to_string(), auth(by));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["user"]["_id"].as_str().unwrap().to_string()
}

fn user_count(app: &TestApp) -> i64 {
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap()
}

fn audit_kinds(app: &TestApp) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let mut stmt = conn
        .prepare("SELECT actor, kind, subject FROM audit WHERE actor_kind = 'rest' ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn login(app: &TestApp, user: &str, password: &str) -> u16 {
    let body = json!({"user": user, "password": password}).to_string();
    app.post("/api/v1/login", &body, None).status
}

fn usernames(v: &Value) -> Vec<&str> {
    v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect()
}

#[test]
fn users_list_paginates_sorts_and_counts_like_rocketchat() {
    let app = spawn_app();
    let root = root(&app);
    for name in ["carol", "alice", "bob"] {
        create(&app, &root, name, &["user"]);
    }
    assert_eq!(app.get("/api/v1/users.list", None).body, NOT_LOGGED_IN);
    // The demo agent holds livechat-agent only: no view-d-room.
    assert_eq!(app.get("/api/v1/users.list", demo()).body, FORBIDDEN);

    let r = app.get("/api/v1/users.list", auth(&root));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["users", "count", "offset", "total", "success"]);
    assert_eq!(
        usernames(&v),
        ["alice", "bob", "carol", "demo.agent", "root"],
        "default sort is {{username:1}}"
    );
    assert_eq!(
        (v["count"].as_u64(), v["total"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(v["users"][0]["emails"][0]["address"], "alice@example.com");

    let v = app
        .get("/api/v1/users.list?count=2&offset=1", auth(&root))
        .json();
    assert_eq!(usernames(&v), ["bob", "carol"]);
    assert_eq!(
        (
            v["count"].as_u64(),
            v["offset"].as_u64(),
            v["total"].as_u64()
        ),
        (Some(2), Some(1), Some(5))
    );

    let v = app
        .get(
            "/api/v1/users.list?sort=%7B%22username%22%3A-1%7D",
            auth(&root),
        )
        .json();
    assert_eq!(usernames(&v)[0], "root");
    // count=0 is "no limit" (API_Allow_Infinite_Count); a count that is no number is the default.
    assert_eq!(
        app.get("/api/v1/users.list?count=0", auth(&root)).json()["count"],
        5
    );
    assert_eq!(
        app.get("/api/v1/users.list?count=x", auth(&root)).json()["count"],
        5
    );

    for raw in [r#"{"username":2}"#, "notjson", r#"{"name":"asc"}"#] {
        let q: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
        let r = app.get(&format!("/api/v1/users.list?sort={q}"), auth(&root));
        assert_eq!(r.status, 400);
        let expected = json!({"success": false,
            "error": format!("Invalid sort parameter provided: \"{raw}\" [error-invalid-sort]"),
            "errorType": "error-invalid-sort", "details": {"helperMethod": "parseJsonQuery"}});
        assert_eq!(r.json(), expected);
    }

    // Rocket.Chat 7.x's deprecated `query`, as its clients search: $or of case-blind $regex.
    let search = |raw: &str| {
        let q: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
        app.get(
            &format!("/api/v1/users.list?count=1&query={q}"),
            auth(&root),
        )
    };
    let v = search(r#"{"$or":[{"username":{"$regex":"^[AB]","$options":"i"}},{"name":{"$regex":"^carol N$"}}]}"#).json();
    assert_eq!(usernames(&v), ["alice"], "count applies to the matches");
    assert_eq!(
        (v["count"].as_u64(), v["total"].as_u64()),
        (Some(1), Some(3)),
        "total counts the matches"
    );
    let v = search(r#"{"emails.address":"bob@example.com"}"#).json();
    assert_eq!(usernames(&v), ["bob"]);
    for (raw, why) in [
        ("notjson", String::new()),
        (
            r#"{"roles":"admin"}"#,
            ": roles cannot be searched (username, name, emails.address, $or and $and can)".into(),
        ),
        (
            r#"{"name":{"$regex":"("}}"#,
            ": name: $regex does not compile".into(),
        ),
    ] {
        let r = search(raw);
        assert_eq!(r.status, 400, "{raw}: {}", r.body);
        let v = r.json();
        assert_eq!(v["errorType"], "error-invalid-query");
        let error = v["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("Invalid query parameter provided: \"{raw}\"{why}")),
            "{error}"
        );
        assert!(error.ends_with(" [error-invalid-query]"), "{error}");
    }
    // the permission is checked before the query is read
    assert_eq!(
        app.get("/api/v1/users.list?query=notjson", demo()).body,
        FORBIDDEN
    );

    // A plain user may list, but sees no one else's emails or roles.
    let plain = app.user_with_token("pat", &["user"]);
    let v = app.get("/api/v1/users.list?count=1", auth(&plain)).json();
    assert_eq!(v["users"][0]["username"], "alice");
    assert!(v["users"][0].get("emails").is_none() && v["users"][0].get("roles").is_none());
}

#[test]
fn users_info_finds_by_id_or_username_and_shows_what_the_caller_may_see() {
    let app = spawn_app();
    let root = root(&app);
    let id = create(&app, &root, "alice", &["user", "livechat-agent"]);
    let v = app
        .get(&format!("/api/v1/users.info?userId={id}"), auth(&root))
        .json();
    assert_eq!(v["success"], true);
    assert_eq!(v["user"]["username"], "alice");
    assert_eq!(v["user"]["roles"], json!(["livechat-agent", "user"]));
    assert_eq!(
        v["user"]["emails"],
        json!([{"address": "alice@example.com", "verified": false}])
    );
    assert_eq!(v["user"]["canViewAllInfo"], true);
    let by_name = app
        .get("/api/v1/users.info?username=alice", auth(&root))
        .json();
    assert_eq!(by_name["user"]["_id"], id.as_str());

    // Another user without view-full-other-user-info sees the public fields only; oneself, all.
    let bob = app.user_with_token("bob", &["user"]);
    let v = app
        .get("/api/v1/users.info?username=alice", auth(&bob))
        .json();
    assert_eq!(v["user"]["name"], "alice N");
    assert!(v["user"].get("emails").is_none() && v["user"].get("roles").is_none());
    assert_eq!(v["user"]["canViewAllInfo"], false);
    let v = app
        .get("/api/v1/users.info?username=bob", auth(&bob))
        .json();
    assert_eq!(v["user"]["roles"], json!(["user"]));
    assert_eq!(v["user"]["services"], json!({"password": true}));

    let r = app.get("/api/v1/users.info?username=nobody", auth(&root));
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, r#"{"success":false,"error":"User not found."}"#)
    );
    let r = app.get("/api/v1/users.info?importId=x", auth(&root));
    assert_eq!(r.body, r#"{"success":false,"error":"User not found."}"#);

    let r = app.get("/api/v1/users.info", auth(&root));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"success": false, "errorType": "invalid-params",
        "error": "must have required property 'userId'\n must have required property 'username'\n must have required property 'importId'\n must match a schema in anyOf [invalid-params]"})
    );
    let r = app.get("/api/v1/users.info?username=alice&x=1", auth(&root));
    assert_eq!(
        r.json()["error"],
        "must have required property 'userId'\n must NOT have additional properties\n must have required property 'importId'\n must match a schema in anyOf [invalid-params]"
    );
    let r = app.get("/api/v1/users.info?username=a&username=b", auth(&root));
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("must be string")
    );
    assert_eq!(
        app.get("/api/v1/users.info?username=alice", None).body,
        NOT_LOGGED_IN
    );
}

#[test]
fn users_create_stores_a_user_who_can_log_in_and_is_audited() {
    let app = spawn_app();
    let root = root(&app);
    let body = json!({"username": "nina", "name": "Nina", "email": "nina@example.com",
        "password": "pw-nina", "roles": ["livechat-agent"], "verified": true,
        "joinDefaultChannels": false});
    let r = app.post("/api/v1/users.create", &body.to_string(), auth(&root));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["success"], true);
    let user = &v["user"];
    assert_eq!(
        (
            user["username"].as_str(),
            user["name"].as_str(),
            user["active"].as_bool()
        ),
        (Some("nina"), Some("Nina"), Some(true))
    );
    assert_eq!(user["roles"], json!(["livechat-agent"]));
    assert!(!r.body.contains("pw-nina") && !r.body.contains("argon2"));
    assert_eq!(login(&app, "nina", "pw-nina"), 200);
    assert_eq!(login(&app, "nina", "wrong"), 401);
    assert!(audit_kinds(&app).contains(&("root".into(), "user.add".into(), "nina".into())));

    // Rocket.Chat's ajv coerces scalars: "active":"false" makes an inactive user, a number name a
    // string; without roles a user gets `user`.
    let body = json!({"username": "otto", "name": 42, "email": "otto@example.com", "password": "p", "active": "false"});
    let v = app
        .post("/api/v1/users.create", &body.to_string(), auth(&root))
        .json();
    assert_eq!(
        (v["user"]["active"].as_bool(), v["user"]["name"].as_str()),
        (Some(false), Some("42"))
    );
    assert_eq!(v["user"]["roles"], json!(["user"]));
    assert_eq!(
        login(&app, "otto", "p"),
        401,
        "an inactive user cannot log in"
    );
}

#[test]
fn users_create_refusals_are_rocketchat_bodies_and_change_nothing() {
    let app = spawn_app();
    let root = root(&app);
    create(&app, &root, "taken", &["user"]);
    let agent = app.user_with_token("agent", &["livechat-agent"]);
    let before = user_count(&app);
    let audit_before = audit_kinds(&app).len();
    let ok = json!({"username": "neo", "name": "Neo", "email": "neo@example.com", "password": "p"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b.to_string()
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b.to_string()
    };
    let invalid = |msg: &str| json!({"success": false, "error": format!("{msg} [invalid-params]"), "errorType": "invalid-params"});
    let meteor = |ty: &str, reason: &str, details: Value| json!({"success": false, "error": format!("{reason} [{ty}]"), "errorType": ty, "details": details});
    let save = |action: &str| json!({"method": "insertOrUpdateUser", "action": action});
    let cases: Vec<Case> = vec![
        ("{".into(), auth(&root), invalid("must be object")),
        ("[]".into(), auth(&root), invalid("must be object")),
        (
            without("email"),
            auth(&root),
            invalid("must have required property 'email'"),
        ),
        (
            without("username"),
            auth(&root),
            invalid("must have required property 'username'"),
        ),
        (
            with("extra", json!(1)),
            auth(&root),
            invalid("must NOT have additional properties"),
        ),
        (
            with("roles", json!("admin")),
            auth(&root),
            invalid("must be array"),
        ),
        (
            with("roles", json!([["admin"]])),
            auth(&root),
            invalid("must be string"),
        ),
        (
            with("roles", json!(vec!["user"; 5000])),
            auth(&root),
            invalid("must NOT have more than 1000 items"),
        ),
        (
            with("name", json!({"a": 1})),
            auth(&root),
            invalid("must be string"),
        ),
        (
            with("active", json!("maybe")),
            auth(&root),
            invalid("must be boolean"),
        ),
        // The body is checked before the permission, even for a caller without create-user.
        (
            without("password"),
            auth(&agent),
            invalid("must have required property 'password'"),
        ),
        (
            ok.to_string(),
            auth(&agent),
            meteor(
                "error-action-not-allowed",
                "Adding user is not allowed",
                save("Adding_user"),
            ),
        ),
        (
            with("name", json!("<b>x</b>")),
            auth(&root),
            json!({"success": false, "error": "Name contains invalid characters"}),
        ),
        (
            with("roles", json!(["user", "livechat-managr"])),
            auth(&root),
            meteor(
                "error-action-not-allowed",
                "The field Roles consist invalid role id",
                save("Assign_role"),
            ),
        ),
        (
            with("name", json!("  ")),
            auth(&root),
            meteor(
                "error-the-field-is-required",
                "The field Name is required",
                json!({"method": "insertOrUpdateUser", "field": "Name"}),
            ),
        ),
        (
            with("password", json!("")),
            auth(&root),
            meteor(
                "error-the-field-is-required",
                "The field Password is required",
                json!({"method": "insertOrUpdateUser", "field": "Password"}),
            ),
        ),
        (
            with("username", json!("bad name")),
            auth(&root),
            meteor(
                "error-input-is-not-a-valid-field",
                "bad name is not a valid username",
                json!({"method": "insertOrUpdateUser", "input": "bad name", "field": "Username"}),
            ),
        ),
        (
            with("username", json!("TAKEN")),
            auth(&root),
            meteor(
                "error-field-unavailable",
                "TAKEN is already in use :(",
                json!({"method": "insertOrUpdateUser", "field": "TAKEN"}),
            ),
        ),
        (
            with("email", json!("Taken@Example.com")),
            auth(&root),
            meteor(
                "error-field-unavailable",
                "Taken@Example.com is already in use :(",
                json!({"method": "insertOrUpdateUser", "field": "Taken@Example.com"}),
            ),
        ),
        (
            with("email", json!("not-an-email")),
            auth(&root),
            meteor(
                "error-invalid-email",
                "Invalid email not-an-email",
                json!({"method": "insertOrUpdateUser", "email": "not-an-email"}),
            ),
        ),
    ];
    for (body, who, expected) in cases {
        let r = app.post("/api/v1/users.create", &body, who);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json(), expected, "{body}");
    }
    assert_eq!(
        app.post("/api/v1/users.create", &ok.to_string(), None).body,
        NOT_LOGGED_IN
    );
    assert_eq!(user_count(&app), before, "a refused create added a user");
    assert_eq!(
        audit_kinds(&app).len(),
        audit_before,
        "a refused create was audited"
    );
}

#[test]
fn admin_role_needs_assign_admin_role_even_for_a_user_manager() {
    let app = spawn_app();
    let root = root(&app);
    // A livechat-manager allowed to create and edit users, but not to hand out admin.
    for p in ["create-user", "edit-other-user-info"] {
        let body = json!({"permissionId": p, "role": "livechat-manager"}).to_string();
        assert_eq!(
            app.post("/api/v1/permissions.addRole", &body, auth(&root))
                .status,
            200
        );
    }
    let manager = app.user_with_token("mgr", &["livechat-manager"]);
    let expected = json!({"success": false, "error": "Assigning admin is not allowed [error-action-not-allowed]",
        "errorType": "error-action-not-allowed", "details": {"method": "insertOrUpdateUser", "action": "Assign_admin"}});
    let body = json!({"username": "x", "name": "X", "email": "x@example.com", "password": "p", "roles": ["admin"]});
    assert_eq!(
        app.post("/api/v1/users.create", &body.to_string(), auth(&manager))
            .json(),
        expected
    );
    // Nor to itself.
    let body = json!({"userId": manager.0, "data": {"roles": ["livechat-manager", "admin"]}});
    assert_eq!(
        app.post("/api/v1/users.update", &body.to_string(), auth(&manager))
            .json(),
        expected
    );
    let v = app
        .get("/api/v1/users.info?username=mgr", auth(&root))
        .json();
    assert_eq!(v["user"]["roles"], json!(["livechat-manager"]));
    // Without it, a role that is not admin is fine.
    let body = json!({"username": "y", "name": "Y", "email": "y@example.com", "password": "p", "roles": ["livechat-agent"]});
    assert_eq!(
        app.post("/api/v1/users.create", &body.to_string(), auth(&manager))
            .status,
        200
    );
}

#[test]
fn users_update_changes_name_password_roles_and_active_in_one_transaction() {
    let app = spawn_app();
    let root = root(&app);
    let id = create(&app, &root, "alice", &["user"]);
    let alice = {
        let body = json!({"user": "alice", "password": "secret-1"}).to_string();
        let v = app.post("/api/v1/login", &body, None).json();
        (
            v["data"]["userId"].as_str().unwrap().to_string(),
            v["data"]["authToken"].as_str().unwrap().to_string(),
        )
    };
    // Oneself: the name, without any admin permission.
    let body = json!({"userId": id, "data": {"name": "Alice A."}});
    let r = app.post("/api/v1/users.update", &body.to_string(), auth(&alice));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"]["name"], "Alice A.");

    // An admin: password, roles; the new password works, the old one and the old token do not.
    let body = json!({"userId": id, "data": {"password": "secret-2", "roles": ["livechat-manager"], "email": "a2@example.com"}});
    let r = app.post("/api/v1/users.update", &body.to_string(), auth(&root));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["user"]["roles"], json!(["livechat-manager"]));
    assert_eq!(v["user"]["emails"][0]["address"], "a2@example.com");
    assert_eq!(
        app.get("/api/v1/me", auth(&alice)).status,
        401,
        "a new password logs the user out"
    );
    assert_eq!(login(&app, "alice", "secret-1"), 401);
    assert_eq!(login(&app, "alice", "secret-2"), 200);
    let kinds = audit_kinds(&app);
    assert!(
        kinds.contains(&("root".into(), "user.update".into(), "alice".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("root".into(), "user.roles".into(), "alice".into())),
        "{kinds:?}"
    );
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let trail: String = conn
        .query_row(
            "SELECT group_concat(coalesce(before,'') || coalesce(after,'')) FROM audit",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        !trail.contains("secret-2") && !trail.contains("argon2"),
        "{trail}"
    );

    // Deactivation through update.
    let body = json!({"userId": id, "data": {"active": false}});
    assert_eq!(
        app.post("/api/v1/users.update", &body.to_string(), auth(&root))
            .json()["user"]["active"],
        false
    );
    assert_eq!(login(&app, "alice", "secret-2"), 401);
}

#[test]
fn users_update_refusals_are_rocketchat_bodies_and_change_nothing() {
    let app = spawn_app();
    let root = root(&app);
    let bob_id = create(&app, &root, "bob", &["user"]);
    create(&app, &root, "carol", &["user"]);
    let plain = app.user_with_token("plain", &["user"]);
    let meteor = |ty: &str, reason: &str, details: Value| json!({"success": false, "error": format!("{reason} [{ty}]"), "errorType": ty, "details": details});
    let save = |action: &str| json!({"method": "insertOrUpdateUser", "action": action});
    let invalid = |msg: &str| json!({"success": false, "error": format!("{msg} [invalid-params]"), "errorType": "invalid-params"});
    let last_admin = meteor(
        "error-action-not-allowed",
        "Leaving the app without admins is not allowed",
        json!({"method": "removeUserFromRole", "action": "Remove_last_admin"}),
    );
    let last_active_admin = meteor(
        "error-action-not-allowed",
        "Leaving the app without an active admin is not allowed",
        json!({"method": "removeUserFromRole", "action": "Remove_last_admin"}),
    );
    let cases: Vec<(Value, &(String, String), Value)> = vec![
        (
            json!({"userId": bob_id}),
            &root,
            invalid("must have required property 'data'"),
        ),
        (
            json!({"data": {}}),
            &root,
            invalid("must have required property 'userId'"),
        ),
        (
            json!({"userId": bob_id, "data": {"nick": "x"}}),
            &root,
            invalid("must NOT have additional properties"),
        ),
        (
            json!({"userId": bob_id, "data": {"roles": "user"}}),
            &root,
            invalid("must be array"),
        ),
        (
            json!({"userId": bob_id, "data": []}),
            &root,
            invalid("must be object"),
        ),
        (
            json!({"userId": bob_id, "data": {"name": "N"}}),
            &plain,
            meteor(
                "error-action-not-allowed",
                "Editing user is not allowed",
                save("Editing_user"),
            ),
        ),
        // A plain user cannot grant itself admin (or any role).
        (
            json!({"userId": plain.0, "data": {"roles": ["admin"]}}),
            &plain,
            meteor(
                "error-action-not-allowed",
                "Editing user is not allowed",
                save("Editing_user"),
            ),
        ),
        (
            json!({"userId": plain.0, "data": {"active": false}}),
            &plain,
            meteor(
                "error-not-allowed",
                "Not allowed",
                json!({"method": "setUserActiveStatus"}),
            ),
        ),
        (
            json!({"userId": "nope", "data": {"name": "N"}}),
            &root,
            meteor(
                "error-invalid-userId",
                "Invalid userId",
                json!({"method": "insertOrUpdateUser"}),
            ),
        ),
        (
            json!({"userId": bob_id, "data": {"roles": ["nope"]}}),
            &root,
            meteor(
                "error-action-not-allowed",
                "The field Roles consist invalid role id",
                save("Assign_role"),
            ),
        ),
        (
            json!({"userId": bob_id, "data": {"username": "Carol"}}),
            &root,
            meteor(
                "error-field-unavailable",
                "Carol is already in use :(",
                json!({"method": "insertOrUpdateUser", "field": "Carol"}),
            ),
        ),
        (
            json!({"userId": bob_id, "data": {"email": "carol@example.com"}}),
            &root,
            meteor(
                "error-field-unavailable",
                "carol@example.com is already in use :(",
                json!({"method": "insertOrUpdateUser", "field": "carol@example.com"}),
            ),
        ),
        (
            json!({"userId": bob_id, "data": {"name": "a/b"}}),
            &root,
            json!({"success": false, "error": "Name contains invalid characters"}),
        ),
        // The last admin cannot be demoted or deactivated; the name change in the same request is
        // not applied either.
        (
            json!({"userId": root.0, "data": {"name": "Changed", "roles": ["user"]}}),
            &root,
            last_admin,
        ),
        (
            json!({"userId": root.0, "data": {"name": "Changed", "active": false}}),
            &root,
            last_active_admin,
        ),
    ];
    let before = app.get("/api/v1/users.list", auth(&root)).body;
    for (body, who, expected) in cases {
        let r = app.post("/api/v1/users.update", &body.to_string(), auth(who));
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json(), expected, "{body}");
    }
    assert_eq!(
        app.get("/api/v1/users.list", auth(&root)).body,
        before,
        "a refused update changed something"
    );
    assert_eq!(app.get("/api/v1/me", auth(&root)).status, 200);
}

#[test]
fn set_active_status_revokes_tokens_at_once_and_for_good() {
    let app = spawn_app();
    let root = root(&app);
    let agent = app.user_with_token("agent", &["livechat-agent"]);
    let body = |id: &str, active: bool| json!({"userId": id, "activeStatus": active}).to_string();

    assert_eq!(
        app.post(
            "/api/v1/users.setActiveStatus",
            &body(&agent.0, false),
            None
        )
        .body,
        NOT_LOGGED_IN
    );
    // 400 before 403: a bad body from a caller without the permission is a 400.
    let r = app.post(
        "/api/v1/users.setActiveStatus",
        r#"{"userId":"x"}"#,
        auth(&agent),
    );
    assert_eq!(
        r.body,
        r#"{"success":false,"error":"must have required property 'activeStatus' [invalid-params]","errorType":"invalid-params"}"#
    );
    let r = app.post(
        "/api/v1/users.setActiveStatus",
        r#"{"userId":"x","activeStatus":"sure"}"#,
        auth(&root),
    );
    assert_eq!(
        r.body,
        r#"{"success":false,"error":"must be boolean [invalid-params]","errorType":"invalid-params"}"#
    );
    let r = app.post(
        "/api/v1/users.setActiveStatus",
        &body(&root.0, false),
        auth(&agent),
    );
    assert_eq!((r.status, r.body.as_str()), (403, FORBIDDEN));

    let r = app.post(
        "/api/v1/users.setActiveStatus",
        &body(&agent.0, false),
        auth(&root),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"user": {"_id": agent.0, "active": false}, "success": true})
    );
    // In force for the very next request, and the token stays dead after reactivation.
    assert_eq!(app.get("/api/v1/me", auth(&agent)).status, 401);
    let r = app.post(
        "/api/v1/users.setActiveStatus",
        &body(&agent.0, true),
        auth(&root),
    );
    assert_eq!(r.json()["user"]["active"], true);
    assert_eq!(app.get("/api/v1/me", auth(&agent)).status, 401);
    let kinds = audit_kinds(&app);
    assert!(kinds.contains(&("root".into(), "user.deactivate".into(), "agent".into())));
    assert!(kinds.contains(&("root".into(), "user.activate".into(), "agent".into())));

    let r = app.post(
        "/api/v1/users.setActiveStatus",
        &body("nobody", false),
        auth(&root),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, r#"{"success":false,"error":"User not found"}"#)
    );
    let r = app.post(
        "/api/v1/users.setActiveStatus",
        &body(&root.0, false),
        auth(&root),
    );
    assert_eq!(
        r.json(),
        json!({"success": false, "error": "Leaving the app without an active admin is not allowed [error-action-not-allowed]",
        "errorType": "error-action-not-allowed", "details": {"method": "removeUserFromRole", "action": "Remove_last_admin"}})
    );
    assert_eq!(app.get("/api/v1/me", auth(&root)).status, 200);
}

/// Setting a password takes `edit-other-user-password`, oneself included (Rocket.Chat's
/// saveUser): a user manager, or whoever holds a user's token (the public demo token), cannot take
/// the account over by setting a password it then logs in with.
#[test]
fn a_password_is_set_only_with_edit_other_user_password() {
    let app = spawn_app();
    let root = root(&app);
    let root_id = root.0.clone();
    let body =
        json!({"permissionId": "edit-other-user-info", "role": "livechat-manager"}).to_string();
    assert_eq!(
        app.post("/api/v1/permissions.addRole", &body, auth(&root))
            .status,
        200
    );
    let manager = app.user_with_token("mgr", &["livechat-manager"]);
    let expected = json!({"success": false, "error": "Editing user password is not allowed [error-action-not-allowed]",
        "errorType": "error-action-not-allowed", "details": {"method": "insertOrUpdateUser", "action": "Editing_user"}});
    for (who, target) in [(&manager, &root_id), (&manager, &manager.0)] {
        let body = json!({"userId": target, "data": {"password": "Pwned-123456"}});
        let r = app.post("/api/v1/users.update", &body.to_string(), auth(who));
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json(), expected);
    }
    assert_eq!(login(&app, "root", "Pwned-123456"), 401);
    // The demo agent's public token cannot give the demo user a password either.
    let demo = (
        inquiryd::app::DEMO_USER_ID.to_string(),
        inquiryd::app::DEMO_TOKEN.to_string(),
    );
    let body = json!({"userId": demo.0, "data": {"password": "newpass-12345"}});
    assert_eq!(
        app.post("/api/v1/users.update", &body.to_string(), auth(&demo))
            .json(),
        expected
    );
    assert_eq!(login(&app, "demo.agent", "newpass-12345"), 401);
    // An admin holds it, and the new password works.
    let body = json!({"userId": manager.0, "data": {"password": "fresh-pass-1"}});
    assert_eq!(
        app.post("/api/v1/users.update", &body.to_string(), auth(&root))
            .status,
        200
    );
    assert_eq!(login(&app, "mgr", "fresh-pass-1"), 200);
}

/// Searching or sorting by email is for callers who may see others' emails: a regex on them
/// would reveal an address a character at a time.
#[test]
fn only_callers_who_see_emails_may_search_or_sort_by_them() {
    let app = spawn_app();
    let root = root(&app);
    create(&app, &root, "bob", &["user"]);
    create(&app, &root, "carol", &["user"]);
    let carol = app.user_with_token("carol2", &["user"]);
    let q = |query: &str| {
        format!(
            "/api/v1/users.list?query={}",
            form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        )
    };
    let by_email = q(r#"{"emails.address":{"$regex":"^bob"}}"#);
    let r = app.get(&by_email, auth(&carol));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["errorType"], "error-invalid-query");
    let nested = q(r#"{"$or":[{"username":"zzz"},{"emails.address":"bob@example.com"}]}"#);
    assert_eq!(app.get(&nested, auth(&carol)).status, 400);
    // The same search by name works, and an admin may search by email.
    assert_eq!(
        app.get(&q(r#"{"username":"bob"}"#), auth(&carol)).status,
        200
    );
    let r = app.get(&by_email, auth(&root));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(usernames(&r.json()), vec!["bob"]);
    // Sorting by email is ignored for carol: the order is by username, whatever the emails say.
    let sort = form_urlencoded::byte_serialize(br#"{"emails":-1}"#).collect::<String>();
    let r = app.get(&format!("/api/v1/users.list?sort={sort}"), auth(&carol));
    assert_eq!(r.status, 200, "{}", r.body);
    let names = usernames(&r.json())
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}
