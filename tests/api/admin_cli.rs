//! The CLI's admin commands go through the admin layer: unknown roles and permissions are refused
//! with exit 2 and a "did you mean", custom roles are managed with `role`, the last admin is kept,
//! deactivation revokes tokens, and every change is audited as `cli` with the OS user.

use crate::helpers::*;

#[test]
fn unknown_roles_and_permissions_are_refused_with_a_suggestion() {
    let app = spawn_app();
    assert!(
        app.cli(&["user", "add", "bob", "--role", "livechat-agent"])
            .status
            .success()
    );
    for (args, expected) in [
        (
            &["permission", "grant", "view-l-roomz", "user"][..],
            r#"unknown permission "view-l-roomz" (did you mean "view-l-room"?)"#,
        ),
        (
            &["permission", "grant", "view-l-room", "livechat-managr"],
            r#"unknown role "livechat-managr" (did you mean "livechat-manager"?)"#,
        ),
        (
            &["permission", "revoke", "view-l-room", "nobody-like-this"],
            r#"unknown role "nobody-like-this""#,
        ),
        (
            &["user", "set-roles", "bob", "livechat-managr"],
            r#"unknown role "livechat-managr" (did you mean "livechat-manager"?)"#,
        ),
        (
            &["user", "add", "carl", "--role", "admn"],
            r#"unknown role "admn" (did you mean "admin"?)"#,
        ),
        (
            &["permission", "revoke", "view-l-roomz", "livechat-agent"],
            r#"unknown permission "view-l-roomz" (did you mean "view-l-room"?)"#,
        ),
        (
            &["role", "remove", "livechat-agnt"],
            r#"unknown role "livechat-agnt" (did you mean "livechat-agent"?)"#,
        ),
    ] {
        let out = app.cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let list = stdout(&app.cli(&["user", "list"]));
    assert!(!list.contains("carl"), "nothing applied: {list}");
    let bob = list.lines().find(|l| l.contains("bob")).unwrap();
    assert!(
        bob.contains("livechat-agent") && !bob.contains("managr"),
        "{bob}"
    );
}

#[test]
fn custom_roles_are_added_used_and_removed_and_protected_ones_stay() {
    let app = spawn_app();
    let list = stdout(&app.cli(&["role", "list"]));
    for role in [
        "admin",
        "livechat-agent",
        "livechat-monitor",
        "user",
        "guest",
    ] {
        assert!(list.lines().any(|l| l.starts_with(role)), "{role}: {list}");
    }
    let out = app.cli(&["role", "add", "night-shift", "--description", "Night shift"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        app.cli(&["role", "add", "night-shift"]).status.code(),
        Some(1)
    );
    assert_eq!(
        app.cli(&["role", "add", "x", "--scope", "Rooms"])
            .status
            .code(),
        Some(2)
    );
    let out = app.cli(&["permission", "grant", "view-l-room", "night-shift"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (uid, tok) = app.user_with_token("nora", &["night-shift"]);
    assert_eq!(app.get_one(DEMO_ROOM, Some((&uid, &tok))).status, 200);
    let out = app.cli(&["role", "remove", "night-shift"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    let out = app.cli(&["role", "remove", "admin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("protected"), "{}", stderr(&out));
    assert!(
        app.cli(&["user", "set-roles", "nora", "user"])
            .status
            .success()
    );
    assert!(
        app.cli(&["permission", "revoke", "view-l-room", "night-shift"])
            .status
            .success()
    );
    let out = app.cli(&["role", "remove", "night-shift"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&app.cli(&["role", "list"])).contains("night-shift"));
}

#[test]
fn the_last_admin_is_kept_from_every_cli_path() {
    let app = spawn_app();
    assert!(
        app.cli(&["user", "add", "root", "--role", "admin"])
            .status
            .success()
    );
    for args in [
        &["user", "deactivate", "root"][..],
        &["user", "set-roles", "root", "user"],
        &["permission", "revoke", "access-permissions", "admin"],
    ] {
        let out = app.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("access-permissions"),
            "{}",
            stderr(&out)
        );
    }
    // With a second admin, the first may go.
    assert!(
        app.cli(&["user", "add", "root2", "--role", "admin"])
            .status
            .success()
    );
    assert!(app.cli(&["user", "deactivate", "root"]).status.success());
}

#[test]
fn deactivation_revokes_tokens_for_good() {
    let app = spawn_app();
    let (uid, tok) = app.user_with_token("dora", &["livechat-agent"]);
    assert_eq!(app.get_one(DEMO_ROOM, Some((&uid, &tok))).status, 200);
    assert!(app.cli(&["user", "deactivate", "dora"]).status.success());
    assert!(app.cli(&["user", "activate", "dora"]).status.success());
    // A new token is unknown to the server, so using it brings the server up to date with both
    // changes; the old token stays revoked (before issue 13 it worked again).
    let (_, fresh) = token_create(&app, "dora");
    assert_eq!(app.get_one(DEMO_ROOM, Some((&uid, &fresh))).status, 200);
    assert_eq!(app.get_one(DEMO_ROOM, Some((&uid, &tok))).status, 401);
    let out = app.cli(&["user", "deactivate", "dora"]);
    assert!(
        stdout(&out).contains("revoked 1 token)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn cli_changes_are_audited_as_cli_with_the_os_user_and_no_secrets() {
    let app = spawn_app();
    let mut cmd = std::process::Command::new(bin());
    let out = cmd
        .args([
            "user",
            "add",
            "eve",
            "--role",
            "livechat-agent",
            "--password-stdin",
            "--db",
        ])
        .arg(&app.db)
        .env("USER", "alice-operator")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"hunter2-secret\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, token) = token_create(&app, "eve");
    assert!(
        app.cli(&["permission", "grant", "view-l-room", "user"])
            .status
            .success()
    );
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let rows: Vec<(String, String, String, String, String)> = conn
        .prepare(
            "SELECT actor, actor_kind, kind, subject, COALESCE(before, '') || COALESCE(after, '')
             FROM audit ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let kinds: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.1.as_str(), r.2.as_str(), r.3.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("cli", "user.add", "eve"),
            ("cli", "token.create", "eve"),
            ("cli", "permission.roles", "view-l-room")
        ]
    );
    assert_eq!(rows[0].0, "alice-operator");
    let hash: String = conn
        .query_row(
            "SELECT password_hash FROM users WHERE username = 'eve'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    for r in &rows {
        for secret in ["hunter2", token.as_str(), hash.as_str()] {
            assert!(!r.4.contains(secret), "{r:?}");
        }
    }
}
