//! Compatibility with a real client: the PyPI package `rocketchat-API` logs in and reads an inquiry.
//! It runs from the test virtualenv (`python_tools`), built on first use.

use std::process::Command;

use crate::helpers::*;
use crate::python_tools::venv_or_not_run;

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

#[test]
fn rocketchat_api_client_logs_in_and_reads_an_inquiry() {
    let Some(venv) = venv_or_not_run("rocketchat_api_client_logs_in_and_reads_an_inquiry") else {
        return;
    };
    let app = spawn_app();
    app.user_with_token("pyuser", &["livechat-agent"]);
    let out = Command::new(venv.program("python"))
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
