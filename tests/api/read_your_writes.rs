//! A token made by `inquiryd token create` is accepted by the server's very next request, with no
//! window of 401s while the server's poller catches up.

use crate::helpers::*;

#[test]
fn a_cli_token_works_for_the_very_next_request_every_time() {
    let app = spawn_app();
    assert!(
        app.cli(&["user", "add", "rita", "--role", "livechat-agent"])
            .status
            .success()
    );
    for i in 0..30 {
        let (uid, tok) = token_create(&app, "rita");
        let r = app.get_one(DEMO_ROOM, Some((&uid, &tok)));
        assert_eq!(r.status, 200, "token {i}: {}", r.body);
    }
}

#[test]
fn unknown_tokens_still_get_the_401_and_a_known_one_keeps_working() {
    let app = spawn_app();
    for i in 0..50 {
        let r = app.get_one(DEMO_ROOM, Some(("someone", &format!("bad-token-{i}"))));
        assert_eq!(r.status, 401);
        assert_eq!(app.get_one(DEMO_ROOM, demo()).status, 200);
    }
}
