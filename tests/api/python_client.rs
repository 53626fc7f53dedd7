//! Compatibility with a real client: the PyPI package `rocketchat-API` logs in and reads an inquiry.
//! `.ci/run` installs it; locally the test is skipped (with a note) when it is missing, but under
//! `CI=true` a missing client is a failure.

use std::process::Command;

use crate::helpers::*;

const SCRIPT: &str = r#"
import json, sys
from rocketchat_API.rocketchat import RocketChat
from rocketchat_API.APIExceptions.RocketExceptions import RocketAuthenticationException
url = sys.argv[1]
rc = RocketChat("pyuser", "pw-of-test", server_url=url)
print(json.dumps(rc.livechat_inquiries_get_one("yy8SmYKfHQ6GZdnJp"), separators=(",", ":")))
print(json.dumps(rc.livechat_inquiries_get_one("no-such-room"), separators=(",", ":")))
try:
    RocketChat("pyuser", "wrong", server_url=url)
    print("wrong password accepted")
except RocketAuthenticationException:
    print("auth refused")
"#;

fn client_available() -> bool {
    Command::new("python3")
        .args(["-c", "import rocketchat_API"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn rocketchat_api_client_logs_in_and_reads_an_inquiry() {
    if !client_available() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install the PyPI package rocketchat-API (see .ci/run)"
        );
        eprintln!(
            "skipped: python3 package rocketchat-API is not installed (pip install rocketchat-API)"
        );
        return;
    }
    let app = spawn_app();
    app.user_with_token("pyuser", &["livechat-agent"]);
    let out = Command::new("python3")
        .args(["-c", SCRIPT, &app.base])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python client failed: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], fixture_compact("inquiries.getOne.200.json"));
    assert_eq!(lines[1], r#"{"inquiry":null,"success":true}"#);
    assert_eq!(lines[2], "auth refused");
}
