//! Plugin hooks seen over HTTP: a hook written while serving is in force within a second, and
//! hooks never touch error or `null` answers.

use std::time::Duration;

use crate::helpers::*;

const HIDE_TOKEN: &str = r#"{
  "name": "hide-token",
  "hooks": [
    { "on": "inquiry.response",
      "when": { "caller": { "roles_none": ["admin", "livechat-manager"] } },
      "do": [ { "op": "remove", "path": "/v/token" } ] }
  ]
}"#;

#[test]
fn a_new_plugin_file_is_in_force_within_a_second() {
    let app = spawn_app();
    assert!(app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]["token"].is_string());
    std::fs::write(app.plugins.join("hide.json"), HIDE_TOKEN).unwrap();
    let took = poll_until(Duration::from_secs(3), || {
        app.get_one(DEMO_ROOM, demo()).json()["inquiry"]["v"]
            .get("token")
            .is_none()
    })
    .expect("plugin took effect");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // Managers still see it; the rest of the document is untouched and in order.
    let (uid, tok) = app.user_with_token("mgr", &["livechat-manager"]);
    let r = app.get_one(DEMO_ROOM, Some((&uid, &tok)));
    assert_eq!(r.body, fixture_compact("inquiries.getOne.200.json"));
    // Errors and null answers are not touched by hooks.
    assert_eq!(
        app.get_one("no-such-room", demo()).body,
        r#"{"inquiry":null,"success":true}"#
    );
    std::fs::remove_file(app.plugins.join("hide.json")).unwrap();
    let took = poll_until(Duration::from_secs(3), || {
        app.get_one(DEMO_ROOM, demo()).body == fixture_compact("inquiries.getOne.200.json")
    })
    .expect("deletion took effect");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}
