//! Tokens made for users: Rocket.Chat's personal access tokens (`users.generatePersonalAccessToken`,
//! `users.getPersonalAccessTokens`, `users.regeneratePersonalAccessToken`,
//! `users.removePersonalAccessToken`), `users.createToken`, and the CLI's `token create --name` and
//! `token list`. A token is shown once, works for the very next request, and is listed by name and
//! last six characters only.

use serde_json::{Value, json};

use crate::helpers::*;

const FORBIDDEN: &str = r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#;
const NAME_REQUIRED: &str = r#"{"success":false,"error":"The 'tokenName' param is required"}"#;

fn auth(c: &(String, String)) -> Option<(&str, &str)> {
    Some((c.0.as_str(), c.1.as_str()))
}

fn meteor(ty: &str, reason: &str, method: &str) -> Value {
    json!({"success": false, "error": format!("{reason} [{ty}]"), "errorType": ty,
        "details": {"method": format!("personalAccessTokens:{method}")}})
}

#[test]
fn a_personal_access_token_is_shown_once_works_at_once_and_is_listed_by_its_last_part() {
    let app = spawn_app();
    let bob = app.user_with_token("bob", &["user"]);
    let r = app.post(
        "/api/v1/users.generatePersonalAccessToken",
        r#"{"tokenName":"ci","bypassTwoFactor":true}"#,
        auth(&bob),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["token", "success"]);
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 43);
    // The very next request, with the user's id.
    let pat = (bob.0.clone(), token.clone());
    assert_eq!(app.get("/api/v1/me", auth(&pat)).status, 200);

    let r = app.get("/api/v1/users.getPersonalAccessTokens", auth(&bob));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "login tokens are not listed: {v}");
    assert_eq!(tokens[0]["name"], "ci");
    assert_eq!(tokens[0]["lastTokenPart"], &token[token.len() - 6..]);
    assert_eq!(tokens[0]["bypassTwoFactor"], true);
    assert!(tokens[0]["createdAt"].as_str().unwrap().ends_with(".000Z"));
    assert!(!r.body.contains(&token));
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let trail: String = conn
        .query_row(
            "SELECT group_concat(coalesce(after,'')) FROM audit WHERE kind LIKE 'token.%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        trail.contains("\"ci\"") && !trail.contains(&token[token.len() - 6..]),
        "{trail}"
    );

    let r = app.post(
        "/api/v1/users.generatePersonalAccessToken",
        r#"{"tokenName":"ci"}"#,
        auth(&bob),
    );
    assert_eq!(
        r.json(),
        meteor(
            "error-token-already-exists",
            "A token with this name already exists",
            "generateToken"
        )
    );
    for body in [
        "{}",
        r#"{"tokenName":""}"#,
        "not json",
        r#"{"tokenName":7}"#,
    ] {
        let r = app.post(
            "/api/v1/users.generatePersonalAccessToken",
            body,
            auth(&bob),
        );
        assert_eq!((r.status, r.body.as_str()), (400, NAME_REQUIRED), "{body}");
    }

    // Regenerated: the old secret stops at once, the new one works at once.
    let r = app.post(
        "/api/v1/users.regeneratePersonalAccessToken",
        r#"{"tokenName":"ci"}"#,
        auth(&bob),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh = (
        bob.0.clone(),
        r.json()["token"].as_str().unwrap().to_string(),
    );
    assert_eq!(app.get("/api/v1/me", auth(&pat)).status, 401);
    assert_eq!(app.get("/api/v1/me", auth(&fresh)).status, 200);
    let listed = app
        .get("/api/v1/users.getPersonalAccessTokens", auth(&bob))
        .json();
    assert_eq!(
        listed["tokens"][0]["bypassTwoFactor"], true,
        "regenerating keeps the flag"
    );
    let r = app.post(
        "/api/v1/users.regeneratePersonalAccessToken",
        r#"{"tokenName":"nope"}"#,
        auth(&bob),
    );
    assert_eq!(
        r.json(),
        meteor(
            "error-token-does-not-exists",
            "Token does not exist",
            "regenerateToken"
        )
    );

    // Removed: gone for the very next request.
    let r = app.post(
        "/api/v1/users.removePersonalAccessToken",
        r#"{"tokenName":"ci"}"#,
        auth(&bob),
    );
    assert_eq!(r.body, r#"{"success":true}"#);
    assert_eq!(app.get("/api/v1/me", auth(&fresh)).status, 401);
    assert_eq!(
        app.get("/api/v1/me", auth(&bob)).status,
        200,
        "the login token is untouched"
    );
    let r = app.post(
        "/api/v1/users.removePersonalAccessToken",
        r#"{"tokenName":"ci"}"#,
        auth(&bob),
    );
    assert_eq!(
        r.json(),
        meteor(
            "error-token-does-not-exists",
            "Token does not exist",
            "removeToken"
        )
    );
    assert_eq!(
        app.get("/api/v1/users.getPersonalAccessTokens", auth(&bob))
            .body,
        r#"{"tokens":[],"success":true}"#
    );
}

#[test]
fn personal_access_tokens_need_create_personal_access_tokens() {
    let app = spawn_app();
    let agent = app.user_with_token("agent", &["livechat-agent"]);
    let r = app.post(
        "/api/v1/users.generatePersonalAccessToken",
        r#"{"tokenName":"x"}"#,
        auth(&agent),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        meteor("not-authorized", "Not Authorized", "generateToken")
    );
    let r = app.post(
        "/api/v1/users.removePersonalAccessToken",
        r#"{"tokenName":"x"}"#,
        auth(&agent),
    );
    assert_eq!(
        r.json(),
        meteor("not-authorized", "Not Authorized", "removeToken")
    );
    // The name is checked first, as Rocket.Chat does.
    let r = app.post(
        "/api/v1/users.generatePersonalAccessToken",
        "{}",
        auth(&agent),
    );
    assert_eq!(r.body, NAME_REQUIRED);
    let r = app.get("/api/v1/users.getPersonalAccessTokens", auth(&agent));
    assert_eq!((r.status, r.body.as_str()), (403, FORBIDDEN));
}

#[test]
fn create_token_makes_a_login_token_that_works_on_the_next_request() {
    let app = spawn_app();
    let root = app.user_with_token("root", &["admin"]);
    let bob = app.user_with_token("bob", &["user"]);
    let r = app.post(
        "/api/v1/users.createToken",
        r#"{"username":"bob"}"#,
        auth(&root),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["data"]["userId"], bob.0.as_str());
    assert_eq!(v["success"], true);
    let made = (
        bob.0.clone(),
        v["data"]["authToken"].as_str().unwrap().to_string(),
    );
    let me = app.get("/api/v1/me", auth(&made));
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["username"], "bob");
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let (actor, subject): (String, String) = conn
        .query_row(
            "SELECT actor, subject FROM audit WHERE kind = 'token.create' ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((actor.as_str(), subject.as_str()), ("root", "bob"));

    // Oneself, by id, without the permission; someone else, not.
    let body = json!({"userId": bob.0}).to_string();
    assert_eq!(
        app.post("/api/v1/users.createToken", &body, auth(&bob))
            .status,
        200
    );
    let r = app.post(
        "/api/v1/users.createToken",
        r#"{"username":"root"}"#,
        auth(&bob),
    );
    assert_eq!(
        r.body,
        r#"{"success":false,"error":"Not authorized [error-not-authorized]","errorType":"error-not-authorized"}"#
    );
    let r = app.post("/api/v1/users.createToken", "{}", auth(&root));
    assert_eq!(
        r.body,
        r#"{"success":false,"error":"The required \"userId\" or \"username\" param was not provided [error-user-param-not-provided]","errorType":"error-user-param-not-provided"}"#
    );
    let r = app.post(
        "/api/v1/users.createToken",
        r#"{"username":"ghost"}"#,
        auth(&root),
    );
    assert_eq!(
        r.body,
        r#"{"success":false,"error":"The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]","errorType":"error-invalid-user"}"#
    );

    // Deactivated: every token of the user dies at once, and stays dead after reactivation.
    let deactivate = |active: bool| json!({"userId": bob.0, "activeStatus": active}).to_string();
    assert_eq!(
        app.post(
            "/api/v1/users.setActiveStatus",
            &deactivate(false),
            auth(&root)
        )
        .status,
        200
    );
    assert_eq!(app.get("/api/v1/me", auth(&made)).status, 401);
    assert_eq!(
        app.post(
            "/api/v1/users.setActiveStatus",
            &deactivate(true),
            auth(&root)
        )
        .status,
        200
    );
    assert_eq!(app.get("/api/v1/me", auth(&made)).status, 401);
    assert_eq!(app.get("/api/v1/me", auth(&bob)).status, 401);
}

/// `CREATE_TOKENS_FOR_USERS`, Rocket.Chat's environment gate, is honoured when set.
#[test]
fn create_tokens_for_users_set_to_no_turns_create_token_off() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let db = dir.path().join("gate.sqlite3");
    let db_arg = db.to_str().unwrap();
    let out = cli_with_stdin(&db, &["user", "add", "root", "--role", "admin"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli_with_stdin(&db, &["token", "create", "root"], None);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (uid, tok) = (
        v["userId"].as_str().unwrap(),
        v["authToken"].as_str().unwrap(),
    );
    let mut server = Server::start_with_env(
        dir.path(),
        &["--db", db_arg],
        &[("RUST_LOG", "info"), ("CREATE_TOKENS_FOR_USERS", "no")],
    );
    let r = server
        .client()
        .post(format!("{}/api/v1/users.createToken", server.base))
        .header("X-User-Id", uid)
        .header("X-Auth-Token", tok)
        .header("Content-Type", "application/json")
        .body(r#"{"username":"root"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.text().unwrap(),
        r#"{"success":false,"error":"Not authorized [error-not-authorized]","errorType":"error-not-authorized"}"#
    );
    server.terminate();
}

#[test]
fn cli_token_create_name_makes_a_personal_token_and_token_list_shows_both_kinds() {
    let app = spawn_app();
    let bob = app.user_with_token("bob", &["user"]);
    let out = app.cli(&["token", "create", "bob", "--name", "deploy"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = v["authToken"].as_str().unwrap().to_string();
    assert_eq!(
        (v["userId"].as_str(), v["name"].as_str()),
        (Some(bob.0.as_str()), Some("deploy"))
    );
    // Accepted by the very next request (read your writes), and listed by the REST route.
    let pat = (bob.0.clone(), secret.clone());
    assert_eq!(app.get("/api/v1/me", auth(&pat)).status, 200);
    let listed = app
        .get("/api/v1/users.getPersonalAccessTokens", auth(&bob))
        .json();
    assert_eq!(listed["tokens"][0]["name"], "deploy");
    assert_eq!(
        listed["tokens"][0]["lastTokenPart"],
        &secret[secret.len() - 6..]
    );

    let again = app.cli(&["token", "create", "bob", "--name", "deploy"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already has a personal access token named \"deploy\""),
        "{}",
        stderr(&again)
    );

    let out = app.cli(&["token", "list", "bob"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("KIND"), "{table}");
    let login_line = table
        .lines()
        .find(|l| l.starts_with("login"))
        .expect(&table);
    assert!(login_line.ends_with(&bob.1[bob.1.len() - 6..]), "{table}");
    let personal = table
        .lines()
        .find(|l| l.starts_with("personal"))
        .expect(&table);
    assert!(
        personal.contains("deploy")
            && personal.contains("never")
            && personal.ends_with(&secret[secret.len() - 6..]),
        "{table}"
    );
    assert!(
        !table.contains(&secret) && !table.contains(&bob.1),
        "a secret was printed: {table}"
    );

    let out = app.cli(&["token", "list", "bob", "--json"]);
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["kind"], "personal");
    assert_eq!(rows[1]["expiresAt"], "never");
    let out = app.cli(&["token", "list", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no user named \"ghost\""),
        "{}",
        stderr(&out)
    );
}
