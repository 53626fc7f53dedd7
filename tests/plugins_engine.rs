//! Plugin hooks, black-box through the library: every operation and condition, the two-phase order,
//! wildcards, redactions that must not fail open, load-time validation messages, live reload of a
//! watched directory (with a request storm during a burst of rewrites), the shipped examples, the
//! committed JSON Schema, and property tests over random documents and random plugins.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use inquiryd::plugins::compiled::SetBudget;
use inquiryd::plugins::load::{Inputs, compile_bytes};
use inquiryd::plugins::{Caller, PluginHost, PluginSet, check_command, load_dir, schema};
use serde_json::{Value, json};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

fn inquiry() -> Value {
    json!({
        "_id": "inq-1",
        "rid": "room-1",
        "name": "Guest 51",
        "status": "queued",
        "queueOrder": 3,
        "v": { "_id": "vis-1", "username": "guest-51", "token": "tok-secret-1", "status": "online" },
        "source": { "type": "widget" },
        "msgs": [ { "id": 1, "secret": "s1" }, { "id": 2, "secret": "s2" } ]
    })
}

fn plugin_json(priority: i64, hooks: Value) -> String {
    json!({ "name": "test", "priority": priority, "hooks": hooks }).to_string()
}

/// One plugin, one unconditional hook with these ops.
fn ops_plugin(ops: Value) -> String {
    plugin_json(100, json!([{ "on": "inquiry.response", "do": ops }]))
}

fn when_plugin(when: Value, ops: Value) -> String {
    plugin_json(
        100,
        json!([{ "on": "inquiry.response", "when": when, "do": ops }]),
    )
}

fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(path, body).expect("write");
    }
    dir
}

fn set_of(files: &[(&str, &str)]) -> PluginSet {
    let dir = dir_with(files);
    match load_dir(dir.path()) {
        Ok(set) => set,
        Err(errors) => panic!(
            "load failed: {}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn errors_of(files: &[(&str, &str)]) -> (TempDir, Vec<String>) {
    let dir = dir_with(files);
    match load_dir(dir.path()) {
        Ok(_) => panic!("expected load errors"),
        Err(errors) => {
            let list = errors.iter().map(|e| e.to_string()).collect();
            (dir, list)
        }
    }
}

struct Who<'a> {
    username: &'a str,
    roles: &'a [&'a str],
    perms: &'a [&'a str],
}

const NOBODY: Who<'static> = Who {
    username: "alice",
    roles: &[],
    perms: &[],
};

/// Runs `f` with `who` as the hooks' caller (user id `user-id-1`).
fn as_caller<R>(who: &Who<'_>, f: impl FnOnce(&Caller<'_>) -> R) -> R {
    let roles: Vec<String> = who.roles.iter().map(|s| s.to_string()).collect();
    let has = |p: &str| who.perms.contains(&p);
    f(&Caller {
        id: "user-id-1",
        username: who.username,
        roles: &roles,
        has_permission: &has,
    })
}

fn apply_as(set: &PluginSet, doc: &Value, who: &Who<'_>) -> Value {
    as_caller(who, |caller| {
        let mut out = doc.clone();
        set.apply(&mut out, caller);
        out
    })
}

/// Renders the stored text `doc` with the set's hooks, as the endpoint does.
fn render_as(set: &PluginSet, doc: &str, who: &Who<'_>) -> String {
    as_caller(who, |caller| {
        let mut out = Vec::new();
        set.render(doc, caller, &mut out).expect("renders");
        String::from_utf8(out).expect("UTF-8")
    })
}

/// Applies one unconditional plugin with `ops` to `doc` as an unprivileged caller.
fn run(ops: Value, doc: Value) -> Value {
    apply_as(&set_of(&[("p.json", &ops_plugin(ops))]), &doc, &NOBODY)
}

// ---------------------------------------------------------------------------------------------
// operations
// ---------------------------------------------------------------------------------------------

#[test]
fn set_literal_creates_intermediate_objects() {
    let out = run(
        json!([{ "op": "set", "path": "/display/badge/color", "value": { "hex": "#fff" } }]),
        inquiry(),
    );
    assert_eq!(out["display"]["badge"]["color"], json!({ "hex": "#fff" }));
    assert_eq!(out["name"], "Guest 51");
}

#[test]
fn set_template_renders_pointers_caller_and_now() {
    let ops = json!([
        { "op": "set", "path": "/t1", "value": "${/name} via ${/source/type}" },
        { "op": "set", "path": "/t2", "value": "${caller.username}/${caller.id}: ${/queueOrder} ${/v/_id}${/missing}!" },
        { "op": "set", "path": "/t3", "value": "${now}" },
        { "op": "set", "path": "/t4", "value": "cost $5, literal $${/name}, obj ${/source}" }
    ]);
    let out = run(ops, inquiry());
    assert_eq!(out["t1"], "Guest 51 via widget");
    assert_eq!(out["t2"], "alice/user-id-1: 3 vis-1!");
    let now = out["t3"].as_str().expect("string");
    assert!(chrono::DateTime::parse_from_rfc3339(now).is_ok(), "{now}");
    assert_eq!(
        out["t4"],
        "cost $5, literal ${/name}, obj {\"type\":\"widget\"}"
    );
}

#[test]
fn set_through_a_scalar_is_a_no_op_and_arrays_take_indexes() {
    let ops = json!([
        { "op": "set", "path": "/name/first", "value": "x" },
        { "op": "set", "path": "/msgs/0/id", "value": 10 },
        { "op": "set", "path": "/msgs/-", "value": { "id": 3 } },
        { "op": "set", "path": "/msgs/9", "value": "out of range" }
    ]);
    let out = run(ops, inquiry());
    assert_eq!(out["name"], "Guest 51");
    assert_eq!(out["msgs"][0]["id"], 10);
    assert_eq!(out["msgs"][2], json!({ "id": 3 }));
    assert_eq!(out["msgs"].as_array().map(Vec::len), Some(3));
}

#[test]
fn remove_deletes_keys_and_array_elements_and_ignores_missing_paths() {
    let ops = json!([
        { "op": "remove", "path": "/v/token" },
        { "op": "remove", "path": "/msgs/0" },
        { "op": "remove", "path": "/nothing/here" },
        { "op": "remove", "path": "/name/deeper" }
    ]);
    let out = run(ops, inquiry());
    assert!(out["v"].get("token").is_none());
    assert_eq!(out["msgs"], json!([{ "id": 2, "secret": "s2" }]));
    assert_eq!(out["name"], "Guest 51");
}

#[test]
fn remove_keeps_the_order_of_the_other_keys() {
    let out = run(json!([{ "op": "remove", "path": "/v/_id" }]), inquiry());
    let keys: Vec<&String> = out["v"].as_object().expect("object").keys().collect();
    assert_eq!(keys, ["username", "token", "status"]);
}

#[test]
fn move_and_rename_take_the_value_from_the_source() {
    let ops = json!([
        { "op": "move", "from": "/v/status", "path": "/visitor_status" },
        { "op": "rename", "from": "/source", "path": "/origin/source" },
        { "op": "move", "from": "/missing", "path": "/x" },
        { "op": "move", "from": "/rid", "path": "/name/blocked" }
    ]);
    let out = run(ops, inquiry());
    assert_eq!(out["visitor_status"], "online");
    assert!(out["v"].get("status").is_none());
    assert_eq!(out["origin"]["source"], json!({ "type": "widget" }));
    assert!(out.get("source").is_none());
    assert!(out.get("x").is_none());
    // a target that cannot be written leaves the source where it was
    assert_eq!(out["rid"], "room-1");
}

#[test]
fn copy_duplicates_the_value() {
    let out = run(
        json!([{ "op": "copy", "from": "/v/username", "path": "/display/who" }]),
        inquiry(),
    );
    assert_eq!(out["display"]["who"], "guest-51");
    assert_eq!(out["v"]["username"], "guest-51");
}

#[test]
fn append_pushes_creates_or_leaves_other_types_alone() {
    let ops = json!([
        { "op": "append", "path": "/msgs", "value": { "id": 3 } },
        { "op": "append", "path": "/tags", "value": "vip" },
        { "op": "append", "path": "/tags", "value": "by ${caller.username}" },
        { "op": "append", "path": "/name", "value": "not an array" }
    ]);
    let out = run(ops, inquiry());
    assert_eq!(out["msgs"][2], json!({ "id": 3 }));
    assert_eq!(out["tags"], json!(["vip", "by alice"]));
    assert_eq!(out["name"], "Guest 51");
}

#[test]
fn mask_hides_every_character_but_the_kept_ones() {
    let ops = json!([
        { "op": "mask", "path": "/v/username", "keep_start": 2 },
        { "op": "mask", "path": "/v/token", "keep_end": 2, "char": "•" },
        { "op": "mask", "path": "/name", "keep_start": 1, "keep_end": 1, "char": "x" },
        { "op": "mask", "path": "/rid", "keep_start": 4, "keep_end": 4 }
    ]);
    let out = run(
        ops,
        json!({ "v": { "username": "guest-51", "token": "ñandú-99" }, "name": "Zoë", "rid": "room-1" }),
    );
    assert_eq!(out["v"]["username"], "gu******");
    assert_eq!(out["v"]["token"], "••••••99");
    assert_eq!(out["name"], "Zxë");
    // kept parts covering the whole string would reveal it: everything is masked instead
    assert_eq!(out["rid"], "******");
}

#[test]
fn mask_of_non_strings_replaces_them() {
    let ops = json!([
        { "op": "mask", "path": "/n", "keep_end": 2 },
        { "op": "mask", "path": "/b" },
        { "op": "mask", "path": "/o", "keep_start": 3 },
        { "op": "mask", "path": "/a", "keep_start": 3 },
        { "op": "mask", "path": "/z" }
    ]);
    let out = run(
        ops,
        json!({ "n": 5551234, "b": true, "o": { "secret": "x" }, "a": [1, 2], "z": null }),
    );
    assert_eq!(
        out,
        json!({ "n": "*****34", "b": "****", "o": "********", "a": "********", "z": "****" })
    );
}

#[test]
fn hash_gives_sha256_hex_of_strings_and_of_compact_json_otherwise() {
    let ops = json!([{ "op": "hash", "path": "/s" }, { "op": "hash", "path": "/n" }, { "op": "hash", "path": "/o" }]);
    let out = run(ops, json!({ "s": "abc", "n": 42, "o": { "a": [1, 2] } }));
    assert_eq!(
        out["s"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // sha256("42")
    assert_eq!(
        out["n"],
        "73475cb40a568e8da8a045ced110137e159f890ac4da883b6b17dc651b3a8049"
    );
    let o = out["o"].as_str().expect("hashed object is a string");
    assert_eq!(o.len(), 64);
}

#[test]
fn truncate_cuts_characters_and_never_leaves_more_of_other_types() {
    let ops = json!([
        { "op": "truncate", "path": "/s", "max_chars": 3 },
        { "op": "truncate", "path": "/u", "max_chars": 2 },
        { "op": "truncate", "path": "/short", "max_chars": 10 },
        { "op": "truncate", "path": "/n", "max_chars": 4 },
        { "op": "truncate", "path": "/small", "max_chars": 4 },
        { "op": "truncate", "path": "/o", "max_chars": 5 }
    ]);
    let out = run(
        ops,
        json!({ "s": "abcdef", "u": "ñandú", "short": "ok", "n": 1234567, "small": 12, "o": { "k": "long value" } }),
    );
    assert_eq!(
        out,
        json!({ "s": "abc", "u": "ña", "short": "ok", "n": "1234", "small": 12, "o": "{\"k\":" })
    );
}

#[test]
fn lookup_uses_inline_table_default_and_numbers_as_keys() {
    let table = json!({ "guest-51": { "tier": "gold" }, "3": "third" });
    let ops = json!([
        { "op": "lookup", "path": "/v/crm", "key": "/v/username", "table": table },
        { "op": "lookup", "path": "/pos", "key": "/queueOrder", "table": table },
        { "op": "lookup", "path": "/none", "key": "/rid", "table": table },
        { "op": "lookup", "path": "/dflt", "key": "/rid", "table": table, "default": "n/a" },
        { "op": "lookup", "path": "/nul", "key": "/missing", "table": table, "default": null }
    ]);
    let out = run(ops, inquiry());
    assert_eq!(out["v"]["crm"], json!({ "tier": "gold" }));
    assert_eq!(out["pos"], "third");
    assert!(
        out.get("none").is_none(),
        "no default, not found: nothing set"
    );
    assert_eq!(out["dflt"], "n/a");
    assert_eq!(out.get("nul"), Some(&Value::Null));
}

#[test]
fn lookup_reads_a_table_file_relative_to_the_plugins_directory() {
    let ops = json!([{ "op": "lookup", "path": "/v/crm", "key": "/v/username", "table_file": "tables/crm.json" }]);
    let set = set_of(&[
        ("p.json", &ops_plugin(ops)),
        ("tables/crm.json", r#"{"guest-51":{"tier":"gold"}}"#),
    ]);
    assert_eq!(
        set.plugin_count(),
        1,
        "a table in a subdirectory is not a plugin"
    );
    let out = apply_as(&set, &inquiry(), &NOBODY);
    assert_eq!(out["v"]["crm"], json!({ "tier": "gold" }));
}

// ---------------------------------------------------------------------------------------------
// conditions
// ---------------------------------------------------------------------------------------------

fn marks_when(when: Value, doc: &Value, who: &Who<'_>) -> bool {
    let set = set_of(&[(
        "p.json",
        &when_plugin(
            when,
            json!([{ "op": "set", "path": "/hit", "value": true }]),
        ),
    )]);
    apply_as(&set, doc, who).get("hit") == Some(&Value::Bool(true))
}

#[test]
fn caller_role_conditions() {
    let doc = inquiry();
    let agent = Who {
        username: "bob",
        roles: &["user", "livechat-agent"],
        perms: &[],
    };
    assert!(marks_when(
        json!({ "caller": { "roles_any": ["admin", "livechat-agent"] } }),
        &doc,
        &agent
    ));
    assert!(!marks_when(
        json!({ "caller": { "roles_any": ["admin"] } }),
        &doc,
        &agent
    ));
    assert!(marks_when(
        json!({ "caller": { "roles_all": ["user", "livechat-agent"] } }),
        &doc,
        &agent
    ));
    assert!(!marks_when(
        json!({ "caller": { "roles_all": ["user", "admin"] } }),
        &doc,
        &agent
    ));
    assert!(marks_when(
        json!({ "caller": { "roles_none": ["admin", "livechat-manager"] } }),
        &doc,
        &agent
    ));
    assert!(!marks_when(
        json!({ "caller": { "roles_none": ["livechat-agent"] } }),
        &doc,
        &agent
    ));
}

#[test]
fn caller_permission_and_username_conditions() {
    let doc = inquiry();
    let who = Who {
        username: "bob",
        roles: &[],
        perms: &["view-l-room"],
    };
    assert!(marks_when(
        json!({ "caller": { "permission": "view-l-room" } }),
        &doc,
        &who
    ));
    assert!(!marks_when(
        json!({ "caller": { "permission": "manage-apps" } }),
        &doc,
        &who
    ));
    assert!(marks_when(
        json!({ "caller": { "lacks_permission": "manage-apps" } }),
        &doc,
        &who
    ));
    assert!(!marks_when(
        json!({ "caller": { "lacks_permission": "view-l-room" } }),
        &doc,
        &who
    ));
    assert!(marks_when(
        json!({ "caller": { "usernames": ["carol", "bob"] } }),
        &doc,
        &who
    ));
    assert!(!marks_when(
        json!({ "caller": { "usernames": ["carol"] } }),
        &doc,
        &who
    ));
    // every condition given must hold
    assert!(!marks_when(
        json!({ "caller": { "permission": "view-l-room", "usernames": ["carol"] } }),
        &doc,
        &who
    ));
}

#[test]
fn inquiry_equals_in_and_exists() {
    let doc = inquiry();
    let t = |w: Value| marks_when(json!({ "inquiry": w }), &doc, &NOBODY);
    assert!(t(json!({ "/status": { "equals": "queued" } })));
    assert!(!t(json!({ "/status": { "equals": "taken" } })));
    assert!(
        t(json!({ "/queueOrder": { "equals": 3.0 } })),
        "numbers compare by value"
    );
    assert!(t(json!({ "/source": { "equals": { "type": "widget" } } })));
    assert!(t(json!({ "/status": { "in": ["taken", "queued"] } })));
    assert!(!t(json!({ "/status": { "in": ["taken"] } })));
    assert!(t(json!({ "/v/token": { "exists": true } })));
    assert!(!t(json!({ "/v/nope": { "exists": true } })));
    assert!(t(json!({ "/v/nope": { "exists": false } })));
    assert!(!t(json!({ "/v/token": { "exists": false } })));
    assert!(
        !t(json!({ "/missing": { "equals": null } })),
        "a missing value equals nothing"
    );
    // all tests of all pointers must hold
    assert!(!t(
        json!({ "/status": { "equals": "queued" }, "/rid": { "equals": "other" } })
    ));
}

#[test]
fn inquiry_matches_gt_and_lt() {
    let doc = inquiry();
    let t = |w: Value| marks_when(json!({ "inquiry": w }), &doc, &NOBODY);
    assert!(t(json!({ "/v/username": { "matches": "^guest-\\d+$" } })));
    assert!(!t(json!({ "/v/username": { "matches": "^agent" } })));
    assert!(
        t(json!({ "/queueOrder": { "matches": "^3$" } })),
        "numbers match as their JSON text"
    );
    assert!(
        !t(json!({ "/source": { "matches": "widget" } })),
        "objects never match"
    );
    assert!(t(json!({ "/queueOrder": { "gt": 2, "lt": 4 } })));
    assert!(!t(json!({ "/queueOrder": { "gt": 3 } })));
    assert!(!t(json!({ "/queueOrder": { "lt": 3 } })));
    assert!(
        t(json!({ "/status": { "gt": "pending", "lt": "taken" } })),
        "strings compare lexicographically"
    );
    assert!(
        !t(json!({ "/status": { "gt": 1 } })),
        "a string is not compared with a number"
    );
}

#[test]
fn any_is_an_or_and_wildcards_match_any_element() {
    let doc = inquiry();
    let or = json!({ "any": [
        { "caller": { "roles_any": ["admin"] } },
        { "inquiry": { "/status": { "equals": "queued" } } }
    ] });
    assert!(marks_when(or, &doc, &NOBODY));
    let neither = json!({ "any": [
        { "caller": { "roles_any": ["admin"] } },
        { "inquiry": { "/status": { "equals": "taken" } } }
    ] });
    assert!(!marks_when(neither, &doc, &NOBODY));
    assert!(marks_when(
        json!({ "inquiry": { "/msgs/*/secret": { "equals": "s2" } } }),
        &doc,
        &NOBODY
    ));
    assert!(!marks_when(
        json!({ "inquiry": { "/msgs/*/secret": { "equals": "s3" } } }),
        &doc,
        &NOBODY
    ));
    assert!(marks_when(
        json!({ "inquiry": { "/msgs/*/id": { "exists": true } } }),
        &doc,
        &NOBODY
    ));
    assert!(marks_when(
        json!({ "inquiry": { "/msgs/*/nope": { "exists": false } } }),
        &doc,
        &NOBODY
    ));
}

#[test]
fn conditions_see_the_stored_inquiry_so_an_enrichment_cannot_switch_a_redaction_off() {
    let early = plugin_json(
        1,
        json!([{ "on": "inquiry.response", "do": [{ "op": "set", "path": "/status", "value": "taken" }] }]),
    );
    let redact = plugin_json(
        2,
        json!([{ "on": "inquiry.response", "when": { "inquiry": { "/status": { "equals": "queued" } } },
                 "do": [{ "op": "remove", "path": "/v/token" }] }]),
    );
    let set = set_of(&[("a.json", &early), ("b.json", &redact)]);
    let out = apply_as(&set, &inquiry(), &NOBODY);
    assert_eq!(out["status"], "taken");
    assert!(out["v"].get("token").is_none());
}

// ---------------------------------------------------------------------------------------------
// order
// ---------------------------------------------------------------------------------------------

#[test]
fn an_enrichment_written_after_a_redaction_cannot_bring_the_value_back() {
    let ops = json!([
        { "op": "remove", "path": "/v/token" },
        { "op": "remove", "path": "/x" },
        { "op": "mask", "path": "/name", "keep_start": 2 },
        { "op": "copy", "from": "/v/token", "path": "/x" },
        { "op": "set", "path": "/name", "value": "${/v/token}" }
    ]);
    let out = run(ops, inquiry());
    assert!(out["v"].get("token").is_none());
    assert!(out.get("x").is_none());
    assert_eq!(out["name"], "to**********");
    assert!(!out.to_string().contains("tok-secret-1"));
}

#[test]
fn priority_then_file_name_then_order_in_file() {
    let writes = |p: i64, v: &str| {
        plugin_json(
            p,
            json!([{ "on": "inquiry.response", "do": [
            { "op": "append", "path": "/trace", "value": v },
            { "op": "set", "path": "/last", "value": v }
        ] }]),
        )
    };
    let set = set_of(&[
        ("a.json", &writes(200, "a")),
        ("b.json", &writes(100, "b")),
        ("c.json", &writes(100, "c")),
        ("0.json", &writes(300, "0")),
    ]);
    assert_eq!(set.files(), ["b.json", "c.json", "a.json", "0.json"]);
    let out = apply_as(&set, &json!({}), &NOBODY);
    assert_eq!(out["trace"], json!(["b", "c", "a", "0"]));
    assert_eq!(out["last"], "0");
}

// ---------------------------------------------------------------------------------------------
// wildcards
// ---------------------------------------------------------------------------------------------

#[test]
fn wildcards_reach_every_element_and_member() {
    let ops = json!([
        { "op": "set", "path": "/msgs/*/seen", "value": true },
        { "op": "remove", "path": "/msgs/*/secret" },
        { "op": "mask", "path": "/v/*" },
        { "op": "append", "path": "/groups/*/tags", "value": "t" }
    ]);
    let doc = json!({
        "msgs": [ { "id": 1, "secret": "s1" }, { "id": 2, "secret": "s2" } ],
        "v": { "a": "xy", "b": 7 },
        "groups": { "g1": {}, "g2": { "tags": ["old"] }, "g3": { "tags": "scalar" } }
    });
    let out = run(ops, doc);
    assert_eq!(
        out["msgs"],
        json!([{ "id": 1, "seen": true }, { "id": 2, "seen": true }])
    );
    assert_eq!(out["v"], json!({ "a": "**", "b": "*" }));
    assert_eq!(
        out["groups"],
        json!({ "g1": { "tags": ["t"] }, "g2": { "tags": ["old", "t"] }, "g3": { "tags": "scalar" } })
    );
}

#[test]
fn removing_a_wildcard_empties_the_container() {
    let out = run(
        json!([{ "op": "remove", "path": "/msgs/*" }, { "op": "remove", "path": "/v/*" }]),
        inquiry(),
    );
    assert_eq!(out["msgs"], json!([]));
    assert_eq!(out["v"], json!({}));
}

// ---------------------------------------------------------------------------------------------
// never fail open
// ---------------------------------------------------------------------------------------------

#[test]
fn redactions_on_unexpected_types_still_hide_the_value() {
    let doc = json!({ "v": { "token": { "kind": "jwt", "value": "SECRET-abc" }, "phone": 5551234567u64, "tags": ["SECRET-x"] } });
    for op in ["mask", "hash", "remove"] {
        let ops = json!([
            { "op": op, "path": "/v/token" },
            { "op": op, "path": "/v/phone" },
            { "op": op, "path": "/v/tags" }
        ]);
        let out = run(ops, doc.clone()).to_string();
        assert!(!out.contains("SECRET"), "{op}: {out}");
        assert!(!out.contains("5551234567"), "{op}: {out}");
    }
    let out = run(
        json!([{ "op": "truncate", "path": "/v/token", "max_chars": 12 }]),
        doc,
    );
    assert_eq!(out["v"]["token"], "{\"kind\":\"jwt");
}

#[test]
fn missing_paths_and_paths_through_scalars_are_no_ops() {
    let ops = json!([
        { "op": "remove", "path": "/a/b/c" },
        { "op": "mask", "path": "/name/x" },
        { "op": "hash", "path": "/msgs/7" },
        { "op": "truncate", "path": "/msgs/01", "max_chars": 1 },
        { "op": "copy", "from": "/nope", "path": "/x" },
        { "op": "lookup", "path": "/y", "key": "/nope", "table": {} }
    ]);
    assert_eq!(run(ops, inquiry()), inquiry());
}

#[test]
fn a_copy_explosion_is_bounded_and_the_output_stays_valid_json() {
    // each copy doubles the document; the write budget and depth limit stop it
    let ops: Vec<Value> = (0..200)
        .map(|_| json!({ "op": "copy", "from": "/a", "path": "/a/b/c/d/e" }))
        .collect();
    let started = Instant::now();
    let out = run(Value::Array(ops), json!({ "a": { "x": "0123456789" } }));
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = out.to_string();
    let back: Value = serde_json::from_str(&text).expect("output must parse");
    assert_eq!(back, out);
}

#[test]
fn the_empty_set_is_empty_and_changes_nothing() {
    let set = PluginSet::empty();
    assert!(set.is_empty());
    assert_eq!(apply_as(&set, &inquiry(), &NOBODY), inquiry());
    let disabled = json!({ "name": "off", "enabled": false, "hooks": [
        { "on": "inquiry.response", "do": [{ "op": "remove", "path": "/v" }] }
    ] });
    assert!(set_of(&[("off.json", &disabled.to_string())]).is_empty());
}

// ---------------------------------------------------------------------------------------------
// validation
// ---------------------------------------------------------------------------------------------

fn one_error(files: &[(&str, &str)]) -> (TempDir, String) {
    let (dir, errors) = errors_of(files);
    assert_eq!(errors.len(), 1, "{errors:?}");
    (dir, errors.into_iter().next().unwrap_or_default())
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let (dir, e) = one_error(&[("bad.json", "{\n  \"name\": \"x\",\n  \"hooks\": [,]\n}\n")]);
    let prefix = format!("{}:3:13: ", dir.path().join("bad.json").display());
    assert!(e.starts_with(&prefix), "{e}");
}

#[test]
fn an_unknown_op_is_named_with_its_pointer() {
    let ops = json!([{ "op": "remove", "path": "/a" }, { "op": "foo", "path": "/a" }]);
    let (dir, e) = one_error(&[("bad.json", &ops_plugin(ops))]);
    let expected = format!(
        "{}: /hooks/0/do/1/op: unknown op \"foo\"",
        dir.path().join("bad.json").display()
    );
    assert!(e.starts_with(&expected), "{e}");
}

#[test]
fn unknown_keys_are_errors_wherever_they_are() {
    let (_d, e) = one_error(&[(
        "a.json",
        &json!({ "name": "x", "hooks": [], "extra": 1 }).to_string(),
    )]);
    assert!(e.contains("a.json: /extra: unknown key \"extra\""), "{e}");
    let (_d, e) = one_error(&[(
        "b.json",
        &ops_plugin(json!([{ "op": "remove", "path": "/a", "paht": "/b" }])),
    )]);
    assert!(
        e.contains("b.json: /hooks/0/do/0/paht: unknown key \"paht\""),
        "{e}"
    );
    let (_d, e) = one_error(&[(
        "c.json",
        &when_plugin(json!({ "caller": { "role": ["x"] } }), json!([])),
    )]);
    assert!(
        e.contains("c.json: /hooks/0/when/caller/role: unknown key \"role\""),
        "{e}"
    );
    let (_d, e) = one_error(&[(
        "d.json",
        &when_plugin(json!({ "inquiry": { "/a": { "equal": 1 } } }), json!([])),
    )]);
    assert!(
        e.contains("d.json: /hooks/0/when/inquiry/~1a/equal: unknown key \"equal\""),
        "{e}"
    );
}

#[test]
fn every_bad_op_in_every_file_is_reported() {
    let bad = ops_plugin(json!([
        { "op": "nope", "path": "/a" },
        { "op": "mask", "path": "v/token" },
        { "op": "truncate", "path": "/a" },
        { "op": "set", "path": "", "value": 1 }
    ]));
    let (_d, errors) = errors_of(&[
        ("one.json", &bad),
        ("two.json", "{"),
        ("ok.json", &ops_plugin(json!([]))),
    ]);
    let all = errors.join("\n");
    assert_eq!(errors.len(), 5, "{all}");
    assert!(
        all.contains("one.json: /hooks/0/do/0/op: unknown op \"nope\""),
        "{all}"
    );
    assert!(
        all.contains("one.json: /hooks/0/do/1/path: invalid JSON Pointer \"v/token\""),
        "{all}"
    );
    assert!(
        all.contains("one.json: /hooks/0/do/2: missing field \"max_chars\""),
        "{all}"
    );
    assert!(
        all.contains("one.json: /hooks/0/do/3/path: the whole inquiry"),
        "{all}"
    );
    assert!(all.contains("two.json:1:1: EOF"), "{all}");
}

#[test]
fn bad_pointers_regexes_templates_and_values_are_rejected() {
    let cases = [
        (
            json!([{ "op": "remove", "path": "/a/~2" }]),
            "/hooks/0/do/0/path: invalid JSON Pointer",
        ),
        (
            json!([{ "op": "copy", "from": "/a/*", "path": "/b" }]),
            "/hooks/0/do/0/from: \"*\" is not allowed",
        ),
        (
            json!([{ "op": "move", "from": "/a", "path": "/a/b" }]),
            "/hooks/0/do/0/path: cannot move \"/a\" into itself",
        ),
        (
            json!([{ "op": "set", "path": "/a", "value": "${/x} ${nope}" }]),
            "/hooks/0/do/0/value: unknown placeholder \"${nope}\"",
        ),
        (
            json!([{ "op": "set", "path": "/a", "value": "${/x" }]),
            "/hooks/0/do/0/value: unclosed",
        ),
        (
            json!([{ "op": "mask", "path": "/a", "char": "**" }]),
            "/hooks/0/do/0/char: \"char\" must be exactly one character",
        ),
        (
            json!([{ "op": "truncate", "path": "/a", "max_chars": -1 }]),
            "/hooks/0/do/0/max_chars: invalid value",
        ),
        (
            json!([{ "op": "lookup", "path": "/a", "key": "/k" }]),
            "/hooks/0/do/0: missing \"table\" or \"table_file\"",
        ),
        (
            json!([{ "op": "lookup", "path": "/a", "key": "/k", "table_file": "tables/none.json" }]),
            "/hooks/0/do/0/table_file: table_file \"tables/none.json\": cannot read",
        ),
        (
            json!([{ "path": "/a" }]),
            "/hooks/0/do/0: missing key \"op\"",
        ),
    ];
    for (ops, expected) in cases {
        let (_d, e) = one_error(&[("p.json", &ops_plugin(ops.clone()))]);
        assert!(e.contains(&format!("p.json: {expected}")), "{ops}: {e}");
    }
    let (_d, e) = one_error(&[(
        "r.json",
        &when_plugin(
            json!({ "inquiry": { "/status": { "matches": "(" } } }),
            json!([]),
        ),
    )]);
    assert!(
        e.contains("r.json: /hooks/0/when/inquiry/~1status/matches: invalid regex \"(\""),
        "{e}"
    );
    let (_d, e) = one_error(&[(
        "e.json",
        &when_plugin(json!({ "inquiry": { "/status": {} } }), json!([])),
    )]);
    assert!(
        e.contains("e.json: /hooks/0/when/inquiry/~1status: empty test"),
        "{e}"
    );
    let wrong_event =
        json!({ "name": "x", "hooks": [{ "on": "room.response", "do": [] }] }).to_string();
    let (_d, e) = one_error(&[("o.json", &wrong_event)]);
    assert!(
        e.contains("o.json: /hooks/0/on: unknown variant \"room.response\""),
        "{e}"
    );
}

#[test]
fn files_over_one_mebibyte_are_rejected() {
    let mut big = ops_plugin(json!([]));
    big.push_str(&" ".repeat(1024 * 1024));
    let (_d, e) = one_error(&[("big.json", &big)]);
    assert!(e.contains("big.json: file is over the 1 MiB limit"), "{e}");
}

#[test]
fn more_than_a_thousand_operations_are_rejected() {
    let ops: Vec<Value> = (0..1001)
        .map(|i| json!({ "op": "remove", "path": format!("/k{i}") }))
        .collect();
    let (_d, e) = one_error(&[("many.json", &ops_plugin(Value::Array(ops)))]);
    assert!(
        e.contains("many.json: 1001 operations, over the limit of 1000"),
        "{e}"
    );
    let ops: Vec<Value> = (0..1000)
        .map(|i| json!({ "op": "remove", "path": format!("/k{i}") }))
        .collect();
    set_of(&[("ok.json", &ops_plugin(Value::Array(ops)))]);
}

#[test]
fn only_json_files_directly_in_the_directory_are_plugins() {
    let good = ops_plugin(json!([{ "op": "set", "path": "/a", "value": 1 }]));
    let set = set_of(&[
        ("p.json", &good),
        (".hidden.json", "{"),
        ("p.json~", "{"),
        ("p.json.swp", "{"),
        ("p.json.tmp", "{"),
        ("notes.txt", "{"),
        ("plugin.schema.json", "{\"$schema\": 1}"),
        ("sub/q.json", "{"),
    ]);
    assert_eq!(set.files(), ["p.json"]);
}

// ---------------------------------------------------------------------------------------------
// plugin files are untrusted input confined to their directory
// ---------------------------------------------------------------------------------------------

/// `base/plugins` holding `p.json` (a lookup of `table_file`), and `base/outside/secret.json`.
fn confined(table_file: &str) -> (TempDir, std::path::PathBuf) {
    let base = tempfile::tempdir().expect("tempdir");
    let plugins = base.path().join("plugins");
    fs::create_dir_all(plugins.join("tables")).expect("mkdir");
    fs::create_dir_all(base.path().join("outside")).expect("mkdir");
    fs::write(
        base.path().join("outside/secret.json"),
        r#"{"guest-51":"the secret"}"#,
    )
    .expect("write");
    fs::write(plugins.join("tables/crm.json"), r#"{"guest-51":"gold"}"#).expect("write");
    let ops =
        json!([{ "op": "lookup", "path": "/crm", "key": "/v/username", "table_file": table_file }]);
    fs::write(plugins.join("p.json"), ops_plugin(ops)).expect("write");
    (base, plugins)
}

fn load_errors(dir: &std::path::Path) -> String {
    match load_dir(dir) {
        Ok(set) => panic!(
            "loaded, serving {}",
            apply_as(&set, &inquiry(), &NOBODY)["crm"]
        ),
        Err(e) => e
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn a_table_file_climbing_out_with_dot_dot_is_refused_with_its_pointer() {
    let (_base, plugins) = confined("../outside/secret.json");
    let e = load_errors(&plugins);
    assert!(
        e.contains(
            "p.json: /hooks/0/do/0/table_file: table_file \"../outside/secret.json\": resolves to"
        ) && e.contains("outside the plugins directory"),
        "{e}"
    );
    // `..` that comes back inside is fine
    let (_base, plugins) = confined("tables/../tables/crm.json");
    let set = load_dir(&plugins).expect("loads");
    assert_eq!(apply_as(&set, &inquiry(), &NOBODY)["crm"], "gold");
}

#[test]
fn symlinks_out_of_the_directory_are_refused_and_those_inside_work() {
    use std::os::unix::fs::symlink;
    // a symlinked table file pointing out
    let (base, plugins) = confined("tables/link.json");
    symlink(
        base.path().join("outside/secret.json"),
        plugins.join("tables/link.json"),
    )
    .expect("symlink");
    let e = load_errors(&plugins);
    assert!(
        e.contains("/hooks/0/do/0/table_file") && e.contains("outside the plugins directory"),
        "{e}"
    );
    // a symlinked subdirectory pointing out
    let (base, plugins) = confined("ext/secret.json");
    symlink(base.path().join("outside"), plugins.join("ext")).expect("symlink");
    let e = load_errors(&plugins);
    assert!(
        e.contains("/hooks/0/do/0/table_file") && e.contains("outside the plugins directory"),
        "{e}"
    );
    // a plugin file that is a symlink pointing out
    let (base, plugins) = confined("tables/crm.json");
    fs::write(
        base.path().join("outside/evil.json"),
        ops_plugin(json!([{ "op": "set", "path": "/evil", "value": 1 }])),
    )
    .expect("write");
    symlink(
        base.path().join("outside/evil.json"),
        plugins.join("evil.json"),
    )
    .expect("symlink");
    let e = load_errors(&plugins);
    assert!(
        e.contains("evil.json: resolves to") && e.contains("outside the plugins directory"),
        "{e}"
    );
    // symlinks that stay inside: a table file, a subdirectory, and a plugin file
    let (_base, plugins) = confined("alias/link.json");
    symlink("tables", plugins.join("alias")).expect("symlink");
    symlink("crm.json", plugins.join("tables/link.json")).expect("symlink");
    fs::create_dir(plugins.join("lib")).expect("mkdir");
    fs::write(
        plugins.join("lib/q.json"),
        ops_plugin(json!([{ "op": "set", "path": "/q", "value": 1 }])),
    )
    .expect("write");
    symlink("lib/q.json", plugins.join("q.json")).expect("symlink");
    let set = load_dir(&plugins).expect("inside symlinks load");
    let out = apply_as(&set, &inquiry(), &NOBODY);
    assert_eq!((&out["crm"], &out["q"]), (&json!("gold"), &json!(1)));
}

#[test]
fn a_plugins_directory_reached_through_a_symlink_still_works() {
    let (base, plugins) = confined("tables/crm.json");
    let link = base.path().join("plugins-link");
    std::os::unix::fs::symlink(&plugins, &link).expect("symlink");
    let set = load_dir(&link).expect("loads through the link");
    assert_eq!(apply_as(&set, &inquiry(), &NOBODY)["crm"], "gold");
}

// ---------------------------------------------------------------------------------------------
// validation cost is bounded by a budget, not by what a small file expands to
// ---------------------------------------------------------------------------------------------

/// One hook whose `when` tests `n` pointers (`/f0`, `/f1`, …) against `regex`.
fn regex_plugin(n: usize, regex: &str) -> String {
    let tests: serde_json::Map<String, Value> = (0..n)
        .map(|i| (format!("/f{i}"), json!({ "matches": regex })))
        .collect();
    when_plugin(
        json!({ "inquiry": tests }),
        json!([{ "op": "remove", "path": "/a" }]),
    )
}

#[test]
fn a_small_file_of_costly_regexes_is_refused_with_the_pointer_over_budget() {
    // the issue's file: 100 mid-size regexes in about 4 KB, 595 MB and seconds to compile before
    let text = regex_plugin(100, r"\w{100}[a-z]{50}N");
    assert!(text.len() < 8 * 1024);
    let (_d, errors) = errors_of(&[("re.json", &text)]);
    let all = errors.join("\n");
    assert!(
        errors[0].contains("re.json: /hooks/0/when/inquiry/~1f0/matches: regex")
            && errors[0].contains("is over the budget of 1048576 bytes per regex"),
        "{all}"
    );
    // compiling stops once the file's budget is spent: a few errors, not a hundred
    assert!(errors.len() <= 8, "{all}");
}

#[test]
fn a_long_regex_is_refused_before_it_is_parsed() {
    // a 900 KB alternation parsed to 140 MB before any compiled-size limit applied
    let words: Vec<String> = (0..100_000).map(|i| format!("w{i:07}")).collect();
    let re = format!("(?:{})", words.join("|"));
    let (_d, e) = one_error(&[("alt.json", &regex_plugin(1, &re))]);
    assert!(
        e.contains("alt.json: /hooks/0/when/inquiry/~1f0/matches: regex is 900003 bytes long, over the limit of 16384 bytes"),
        "{}",
        &e[..e.len().min(300)]
    );
}

#[test]
fn regexes_each_within_budget_are_refused_past_the_file_budget() {
    // about 56 KB each (Unicode \w); 4 MiB holds some 70 of them
    let (_d, errors) = errors_of(&[("many.json", &regex_plugin(200, r"^\w+$"))]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("/matches: regexes of this file compile to")
            && errors[0].contains("over the budget of 4194304 bytes per file"),
        "{}",
        errors[0]
    );
    // the same regexes, ASCII only, are small: the file loads and matches
    let set = set_of(&[("ok.json", &regex_plugin(200, r"^(?-u:\w)+$"))]);
    assert_eq!(set.hook_count(), 1);
}

#[test]
fn regexes_are_refused_past_the_budget_of_the_whole_set() {
    // 60 regexes of about 56 KB per file (under the 4 MiB per file); ten files exceed 32 MiB
    let text = regex_plugin(60, r"^\w+$");
    let files: Vec<(String, String)> = (0..10)
        .map(|i| (format!("p{i}.json"), text.clone()))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let (_d, errors) = errors_of(&refs);
    let all = errors.join("\n");
    assert!(
        errors
            .iter()
            .all(|e| e.contains("over the budget of 33554432 bytes for the whole plugin set")),
        "{all}"
    );
    assert!(all.contains("p9.json: /hooks/0/when/inquiry/"), "{all}");
    assert!(!all.contains("p0.json"), "the first files fit: {all}");
}

#[test]
fn hooks_conditions_and_list_values_are_bounded_per_file() {
    let hook = json!({ "on": "inquiry.response", "do": [] });
    let (_d, e) = one_error(&[(
        "hooks.json",
        &plugin_json(100, Value::Array(vec![hook.clone(); 1001])),
    )]);
    assert!(
        e.contains("hooks.json: /hooks/1000: 1001 hooks, over the limit of 1000 per file"),
        "{e}"
    );
    let set = set_of(&[("ok.json", &plugin_json(100, Value::Array(vec![hook; 1000])))]);
    // hooks without operations change nothing, so they cost nothing per request
    assert!(set.is_empty() && set.hook_count() == 0);

    let tests: serde_json::Map<String, Value> = (0..1001)
        .map(|i| (format!("/f{i:04}"), json!({ "exists": true })))
        .collect();
    let (_d, e) = one_error(&[(
        "tests.json",
        &when_plugin(json!({ "inquiry": tests }), json!([])),
    )]);
    assert!(
        e.contains("tests.json: /hooks/0/when/inquiry/~1f1000: over the limit of 1000 conditions"),
        "{e}"
    );
    let branches = vec![json!({ "caller": { "usernames": ["a"] } }); 1001];
    let (_d, e) = one_error(&[(
        "any.json",
        &when_plugin(json!({ "any": branches }), json!([])),
    )]);
    assert!(
        e.contains("any.json: /hooks/0/when/any/1000: over the limit of 1000 conditions"),
        "{e}"
    );

    let values: Vec<Value> = (0..10_001).map(|i| json!(i)).collect();
    let (_d, e) = one_error(&[(
        "in.json",
        &when_plugin(json!({ "inquiry": { "/a": { "in": values } } }), json!([])),
    )]);
    assert!(
        e.contains("in.json: /hooks/0/when/inquiry/~1a/in: over the limit of 10000 values"),
        "{e}"
    );
}

#[test]
fn a_table_file_that_expands_past_the_value_budget_is_refused_where_it_runs_out() {
    // 4 MB of text (under the 16 MiB table limit) that would parse into 2,000,001 values
    let mut table = String::from("{\"a\":[0");
    table.push_str(&",0".repeat(2_000_000));
    table.push_str("]}");
    let ops = json!([{ "op": "lookup", "path": "/crm", "key": "/v/username", "table_file": "tables/t.json" }]);
    let (_d, e) = one_error(&[("p.json", &ops_plugin(ops)), ("tables/t.json", &table)]);
    assert!(
        e.contains("p.json: /hooks/0/do/0/table_file: table_file tables/t.json:1:")
            && e.contains(
                "JSON values (what the other files in force leave of the plugin set's 2000000)"
            ),
        "{e}"
    );
}

#[test]
fn plugin_files_past_the_limit_per_directory_are_refused() {
    let body = ops_plugin(json!([{ "op": "remove", "path": "/a" }]));
    let files: Vec<(String, &str)> = (0..257)
        .map(|i| (format!("p{i:03}.json"), body.as_str()))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let (_d, e) = one_error(&refs);
    assert!(
        e.contains(
            "p256.json: not loaded: the directory has 257 plugin files, over the limit of 256"
        ),
        "{e}"
    );
}

#[test]
fn check_command_exit_codes() {
    let ok = dir_with(&[(
        "p.json",
        &ops_plugin(json!([{ "op": "remove", "path": "/a" }])),
    )]);
    assert_eq!(check_command(ok.path()), 0);
    let bad = dir_with(&[("p.json", "{")]);
    assert_eq!(check_command(bad.path()), 1);
    assert_eq!(check_command(&bad.path().join("missing")), 1);
}

// ---------------------------------------------------------------------------------------------
// shipped examples and the committed schema
// ---------------------------------------------------------------------------------------------

fn shipped() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins")
}

/// The shipped examples, kept apart from the plugins in force (`inquiryd plugins enable NAME`
/// copies one in), as a plugins directory holds them: beside `tables/`, switched on when
/// `enabled`, as shipped otherwise.
fn shipped_copy(enabled: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tables")).unwrap();
    for entry in std::fs::read_dir(shipped().join("tables")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("tables").join(entry.file_name()),
        )
        .unwrap();
    }
    for entry in std::fs::read_dir(shipped().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".json") {
            continue;
        }
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["enabled"], false, "{name} must ship disabled");
        v["enabled"] = json!(enabled);
        std::fs::write(
            dir.path().join(&name),
            serde_json::to_string_pretty(&v).unwrap(),
        )
        .unwrap();
    }
    dir
}

/// The shipped examples, each switched on.
fn shipped_enabled() -> tempfile::TempDir {
    shipped_copy(true)
}

#[test]
fn shipped_examples_are_valid_and_off_by_default() {
    let copy = shipped_copy(false);
    assert_eq!(check_command(copy.path()), 0);
    assert!(load_dir(copy.path()).unwrap().is_empty());
}

#[test]
fn shipped_examples_load_and_behave() {
    let enabled = shipped_enabled();
    let set = match load_dir(enabled.path()) {
        Ok(s) => s,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(
        set.files(),
        [
            "hide-visitor-token.json",
            "mask-visitor-for-agents.json",
            "crm-enrich.json"
        ]
    );
    assert_eq!(check_command(enabled.path()), 0);

    let admin = apply_as(
        &set,
        &inquiry(),
        &Who {
            username: "root",
            roles: &["admin"],
            perms: &[],
        },
    );
    assert_eq!(admin["v"]["token"], "tok-secret-1");
    assert_eq!(admin["v"]["crm"], json!({ "tier": "gold" }));
    assert_eq!(admin["display"]["title"], "Guest 51 via widget");
    assert_eq!(admin["name"], "Guest 51");

    let manager = apply_as(
        &set,
        &inquiry(),
        &Who {
            username: "m",
            roles: &["livechat-manager", "livechat-agent"],
            perms: &[],
        },
    );
    assert_eq!(manager["v"]["token"], "tok-secret-1");
    assert_eq!(manager["v"]["username"], "guest-51");

    let agent = apply_as(
        &set,
        &inquiry(),
        &Who {
            username: "a",
            roles: &["livechat-agent"],
            perms: &[],
        },
    );
    assert!(agent["v"].get("token").is_none());
    assert_eq!(agent["v"]["username"], "gu******");
    assert_eq!(agent["name"], "Gu******");
    assert_eq!(agent["display"]["title"], "Gu*****************");
    assert_eq!(agent["v"]["crm"], json!({ "tier": "gold" }));
    let text = agent.to_string();
    assert!(
        !text.contains("Guest 51") && !text.contains("guest-51"),
        "agent sees the visitor: {text}"
    );

    let user = apply_as(
        &set,
        &inquiry(),
        &Who {
            username: "u",
            roles: &["user"],
            perms: &[],
        },
    );
    assert!(user["v"].get("token").is_none());
    assert_eq!(user["v"]["username"], "guest-51");

    let mut unknown = inquiry();
    unknown["v"]["username"] = json!("guest-99");
    let out = apply_as(&set, &unknown, &NOBODY);
    assert_eq!(out["v"]["crm"], json!({ "tier": "standard" }));
}

#[test]
fn committed_schema_matches_the_types() {
    let path = shipped().join("plugin.schema.json");
    let generated = format!(
        "{}\n",
        serde_json::to_string_pretty(&schema()).unwrap_or_default()
    );
    if std::env::var_os("UPDATE_PLUGIN_SCHEMA").is_some() {
        fs::write(&path, &generated).expect("write schema");
    }
    let committed = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "plugins/plugin.schema.json drifted from the types: run `UPDATE_PLUGIN_SCHEMA=1 cargo test --test plugins_engine committed_schema` (or `inquiryd plugins schema > plugins/plugin.schema.json`) and commit it"
    );
    assert_eq!(schema()["title"], "inquiryd plugin");
}

// ---------------------------------------------------------------------------------------------
// hot reload
// ---------------------------------------------------------------------------------------------

const DEADLINE: Duration = Duration::from_secs(3);

fn marker_plugin(marker: &str) -> String {
    ops_plugin(json!([{ "op": "set", "path": "/marker", "value": marker }]))
}

fn probe(set: &PluginSet) -> Value {
    apply_as(set, &json!({}), &NOBODY)
}

/// Polls until `pred` holds for the set in force; returns how long it took. Fails after [`DEADLINE`].
fn wait_for(host: &PluginHost, what: &str, pred: impl Fn(&Value) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let out = probe(&host.current());
        if pred(&out) {
            return start.elapsed();
        }
        if start.elapsed() > DEADLINE {
            panic!(
                "timed out waiting for {what}; last output {out}; health {}",
                host.health()
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn marker_is(expected: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v.get("marker").and_then(Value::as_str) == Some(expected)
}

fn no_marker(v: &Value) -> bool {
    v.get("marker").is_none()
}

fn start(dir: &TempDir) -> Arc<PluginHost> {
    match PluginHost::start(dir.path().to_path_buf(), true) {
        Ok(h) => h,
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn start_refuses_an_invalid_file_with_every_error() {
    let dir = dir_with(&[
        ("a.json", "{"),
        ("b.json", &ops_plugin(json!([{ "op": "x" }]))),
    ]);
    match PluginHost::start(dir.path().to_path_buf(), true) {
        Ok(_) => panic!("an invalid plugin must refuse the start"),
        Err(errors) => assert_eq!(errors.len(), 2, "{errors:?}"),
    }
}

#[test]
fn reload_create_change_and_delete_are_in_force_within_a_second() {
    let dir = dir_with(&[]);
    let host = start(&dir);
    assert!(host.current().is_empty());
    // no settling time: the watch is in place when `start` returns
    fs::write(dir.path().join("m.json"), marker_plugin("one")).expect("write");
    let created = wait_for(&host, "create", marker_is("one"));
    fs::write(dir.path().join("m.json"), marker_plugin("two")).expect("write");
    let changed = wait_for(&host, "change", marker_is("two"));
    fs::remove_file(dir.path().join("m.json")).expect("rm");
    let deleted = wait_for(&host, "delete", no_marker);
    eprintln!("reload latency: create {created:?}, change {changed:?}, delete {deleted:?}");
    for d in [created, changed, deleted] {
        assert!(d < Duration::from_secs(1), "took {d:?}");
    }
    let health = host.health();
    assert_eq!(health["files"], json!([]));
    assert_eq!(health["last_error"], Value::Null);
}

#[test]
fn a_write_right_after_start_is_seen_by_the_watch_not_the_periodic_rescan() {
    for round in 0..5 {
        let dir = dir_with(&[]);
        let host = start(&dir);
        fs::write(dir.path().join("m.json"), marker_plugin("now")).expect("write");
        let took = wait_for(&host, "a write right after start", marker_is("now"));
        // the periodic rescan runs every 2 s: under 1.5 s, the watch saw the write
        assert!(
            took < Duration::from_millis(1500),
            "round {round}: took {took:?}"
        );
    }
}

#[test]
fn reload_applies_changes_synchronously_without_a_watcher() {
    let dir = dir_with(&[("m.json", &marker_plugin("one"))]);
    let host = match PluginHost::start(dir.path().to_path_buf(), false) {
        Ok(h) => h,
        Err(e) => panic!("{e:?}"),
    };
    fs::write(dir.path().join("m.json"), marker_plugin("two")).expect("write");
    assert!(marker_is("one")(&probe(&host.current())), "not watching");
    host.reload();
    assert!(marker_is("two")(&probe(&host.current())));
    fs::write(dir.path().join("m.json"), "{").expect("write");
    // an error needs the file to have settled; a fresh one is read again later
    host.reload();
    assert!(marker_is("two")(&probe(&host.current())), "last good kept");
}

#[test]
fn reload_follows_renames_and_editor_save_patterns() {
    let dir = dir_with(&[("m.json", &marker_plugin("one"))]);
    let host = start(&dir);
    wait_for(&host, "start", marker_is("one"));
    let p = dir.path();

    // write-then-rename, the way many editors save
    fs::write(p.join(".m.json.tmp123"), marker_plugin("two")).expect("write");
    fs::rename(p.join(".m.json.tmp123"), p.join("m.json")).expect("rename");
    wait_for(&host, "write-then-rename", marker_is("two"));

    // truncate-then-write
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(p.join("m.json"))
            .expect("open");
        thread::sleep(Duration::from_millis(30));
        f.write_all(marker_plugin("three").as_bytes())
            .expect("write");
    }
    wait_for(&host, "truncate-then-write", marker_is("three"));

    // rename to another plugin name keeps the hooks; renaming away from *.json removes them
    fs::rename(p.join("m.json"), p.join("n.json")).expect("rename");
    wait_for(&host, "rename", |v| {
        marker_is("three")(v) && host.current().files() == ["n.json"]
    });
    fs::rename(p.join("n.json"), p.join("n.json.off")).expect("rename");
    wait_for(&host, "rename away", no_marker);
    fs::rename(p.join("n.json.off"), p.join("n.json")).expect("rename");
    wait_for(&host, "rename back", marker_is("three"));

    // backup, swap and temp files are ignored
    fs::write(p.join("n.json~"), marker_plugin("backup")).expect("write");
    fs::write(p.join(".n.json.swp"), "garbage").expect("write");
    fs::write(p.join("n.json.swp"), "garbage").expect("write");
    fs::write(p.join("x.tmp"), "garbage").expect("write");
    host.reload();
    assert!(marker_is("three")(&probe(&host.current())));
    assert_eq!(host.health()["last_error"], Value::Null);
}

#[test]
fn a_save_caught_halfway_is_not_reported_as_an_error() {
    use std::io::Write;
    let dir = dir_with(&[("m.json", &marker_plugin("v0"))]);
    let host = start(&dir);
    let path = dir.path().join("m.json");
    let errors_seen = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        // Watches health the whole time: an error state, however brief, is counted.
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if host.health()["files"][0]["state"] == "error" {
                    errors_seen.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(2));
            }
        });
        for marker in ["v1", "v2", "v3"] {
            // An in-place save (as `cat >` or a script does): truncate, write the first half,
            // and the rest after the watcher has had time to read the half-written file.
            let text = marker_plugin(marker);
            let (head, tail) = text.split_at(text.len() / 2);
            let mut file = fs::File::create(&path).expect("truncate");
            file.write_all(head.as_bytes()).expect("write head");
            file.sync_data().expect("sync");
            thread::sleep(inquiryd::plugins::watcher::READ_WITHIN + Duration::from_millis(100));
            file.write_all(tail.as_bytes()).expect("write tail");
            drop(file);
            wait_for(&host, "the whole save", marker_is(marker));
        }
        done.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        errors_seen.into_inner(),
        0,
        "health showed an error for a normal save"
    );
    assert_eq!(host.health()["last_error"], Value::Null);
}

#[test]
fn an_invalid_edit_keeps_the_last_good_version_and_shows_the_error() {
    let dir = dir_with(&[("m.json", &marker_plugin("good"))]);
    let host = start(&dir);
    fs::write(dir.path().join("m.json"), "{ \"name\": ").expect("write");
    let start_wait = Instant::now();
    loop {
        if host.health()["files"][0]["state"] == "error" {
            break;
        }
        assert!(
            start_wait.elapsed() < DEADLINE,
            "error never shown: {}",
            host.health()
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert!(
        marker_is("good")(&probe(&host.current())),
        "last good version must stay in force"
    );
    let health = host.health();
    assert_eq!(health["files"][0]["hooks"], 1);
    assert_eq!(health["files"][0]["serving_last_good"], true);
    let err = health["files"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(err.contains("m.json:1:"), "{err}");
    assert!(
        health["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("m.json")),
        "{health}"
    );

    fs::write(dir.path().join("m.json"), marker_plugin("fixed")).expect("write");
    wait_for(&host, "fix", marker_is("fixed"));
    assert_eq!(host.health()["files"][0]["state"], "ok");
    assert_eq!(host.health()["last_error"], Value::Null);
}

#[test]
fn a_new_invalid_file_is_reported_and_adds_nothing() {
    let dir = dir_with(&[("m.json", &marker_plugin("good"))]);
    let host = start(&dir);
    fs::write(
        dir.path().join("z.json"),
        ops_plugin(json!([{ "op": "frobnicate" }])),
    )
    .expect("write");
    let t0 = Instant::now();
    while host.health()["files"].as_array().map_or(0, Vec::len) < 2 {
        assert!(t0.elapsed() < DEADLINE, "{}", host.health());
        thread::sleep(Duration::from_millis(5));
    }
    let z = &host.health()["files"][1];
    assert_eq!(z["state"], "error");
    assert_eq!(z["hooks"], 0);
    assert!(
        z["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown op \"frobnicate\"")),
        "{z}"
    );
    assert!(marker_is("good")(&probe(&host.current())));
}

#[test]
fn enabled_false_removes_the_hooks_and_true_brings_them_back() {
    let dir = dir_with(&[("m.json", &marker_plugin("on"))]);
    let host = start(&dir);
    let mut off: Value = serde_json::from_str(&marker_plugin("on")).expect("json");
    off["enabled"] = json!(false);
    fs::write(dir.path().join("m.json"), off.to_string()).expect("write");
    wait_for(&host, "disable", no_marker);
    assert_eq!(host.health()["files"][0]["state"], "disabled");
    fs::write(dir.path().join("m.json"), marker_plugin("on")).expect("write");
    wait_for(&host, "enable", marker_is("on"));
}

#[test]
fn a_changed_table_file_is_reloaded() {
    let ops = json!([{ "op": "lookup", "path": "/marker", "key": "/k", "table_file": "tables/t.json", "default": "none" }]);
    let dir = dir_with(&[
        ("m.json", &ops_plugin(ops)),
        ("tables/t.json", r#"{"":"first"}"#),
    ]);
    let host = start(&dir);
    wait_for(&host, "start", marker_is("none"));
    let with_key = |v: &Value| v.get("marker").and_then(Value::as_str).map(str::to_owned);
    let probe_k = || {
        let mut d = json!({ "k": "" });
        let set = host.current();
        let roles: Vec<String> = Vec::new();
        let caller = Caller {
            id: "i",
            username: "u",
            roles: &roles,
            has_permission: &|_| false,
        };
        set.apply(&mut d, &caller);
        with_key(&d)
    };
    assert_eq!(probe_k().as_deref(), Some("first"));
    fs::write(dir.path().join("tables/t.json"), r#"{"":"second"}"#).expect("write");
    let t0 = Instant::now();
    while probe_k().as_deref() != Some("second") {
        assert!(t0.elapsed() < DEADLINE, "{}", host.health());
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_file_refused_for_the_set_budget_loads_once_another_file_frees_it() {
    // nine files of about 3.4 MB of compiled regexes fit in the set's 32 MiB; a tenth does not
    let text = regex_plugin(60, r"^\w+$");
    let files: Vec<(String, String)> = (0..9)
        .map(|i| (format!("p{i}.json"), text.clone()))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let dir = dir_with(&refs);
    let host = match PluginHost::start(dir.path().to_path_buf(), false) {
        Ok(h) => h,
        Err(e) => panic!("{e:?}"),
    };
    fs::write(dir.path().join("p9.json"), &text).expect("write");
    host.reload();
    let p9 = |h: &PluginHost| {
        h.health()["files"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["file"] == "p9.json").cloned())
            .unwrap_or_default()
    };
    // a fresh error is given half a second to settle before it counts
    let t0 = Instant::now();
    while p9(&host)["state"] != "error" {
        assert!(t0.elapsed() < DEADLINE, "{}", host.health());
        thread::sleep(Duration::from_millis(50));
        host.reload();
    }
    assert!(
        p9(&host)["error"]
            .as_str()
            .is_some_and(|e| e.contains("for the whole plugin set")),
        "{}",
        p9(&host)
    );
    fs::remove_file(dir.path().join("p0.json")).expect("rm");
    let t0 = Instant::now();
    while p9(&host)["state"] != "ok" {
        assert!(t0.elapsed() < DEADLINE, "{}", host.health());
        thread::sleep(Duration::from_millis(50));
        host.reload();
    }
    assert_eq!(host.current().plugin_count(), 9);
}

#[test]
fn a_replaced_directory_is_picked_up() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("plugins");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("m.json"), marker_plugin("old")).expect("write");
    let host = match PluginHost::start(dir.clone(), true) {
        Ok(h) => h,
        Err(e) => panic!("{e:?}"),
    };
    let fresh = parent.path().join("plugins.new");
    fs::create_dir(&fresh).expect("mkdir");
    fs::write(fresh.join("m.json"), marker_plugin("new")).expect("write");
    fs::rename(&dir, parent.path().join("plugins.old")).expect("rename");
    fs::rename(&fresh, &dir).expect("rename");
    // the periodic rescan (every 2 s) is the safety net here
    let t0 = Instant::now();
    loop {
        if marker_is("new")(&probe(&host.current())) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(6), "{}", host.health());
        thread::sleep(Duration::from_millis(20));
    }
    // and the directory is watched again
    fs::write(dir.join("m.json"), marker_plugin("newer")).expect("write");
    wait_for(&host, "watch after replace", marker_is("newer"));
}

#[test]
fn requests_during_a_burst_of_rewrites_never_see_a_mix_of_versions() {
    let version = |tag: &str| {
        plugin_json(
            100,
            json!([
                { "on": "inquiry.response", "do": [{ "op": "set", "path": "/a", "value": tag }] },
                { "on": "inquiry.response", "do": [{ "op": "set", "path": "/b", "value": tag }, { "op": "append", "path": "/c", "value": tag }] }
            ]),
        )
    };
    let (va, vb) = (version("A"), version("B"));
    let dir = dir_with(&[("m.json", &va)]);
    let host = start(&dir);
    let stop = Arc::new(AtomicBool::new(false));
    let applied = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (host, stop, applied) = (host.clone(), stop.clone(), applied.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let out = probe(&host.current());
                    let a = out["a"].as_str().unwrap_or("?").to_owned();
                    assert!(a == "A" || a == "B", "no version in force: {out}");
                    assert_eq!(out, json!({ "a": a, "b": a, "c": [a] }), "mixed versions");
                    applied.fetch_add(1, Ordering::Relaxed);
                    // leave some CPU to the watcher and to other tests on small machines
                    thread::sleep(Duration::from_micros(200));
                }
            })
        })
        .collect();
    let path = dir.path().join("m.json");
    for i in 0..60 {
        let body = if i % 2 == 0 { &vb } else { &va };
        if i % 3 == 0 {
            let tmp = dir.path().join(".m.json.tmp");
            fs::write(&tmp, body).expect("write");
            fs::rename(&tmp, &path).expect("rename");
        } else {
            fs::write(&path, body).expect("write");
        }
        thread::sleep(Duration::from_millis(if i % 10 == 0 { 150 } else { 7 }));
    }
    // the last write was A (i = 59)
    wait_for(&host, "settle", |v| v["a"] == "A");
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader saw a mix of versions");
    }
    assert!(applied.load(Ordering::Relaxed) > 100);
}

#[test]
fn the_host_and_the_set_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PluginHost>();
    send_sync::<PluginSet>();
}

#[test]
fn dropping_the_host_does_not_hang() {
    let dir = dir_with(&[("m.json", &marker_plugin("x"))]);
    let t0 = Instant::now();
    for _ in 0..5 {
        let host = start(&dir);
        drop(host);
    }
    let not_watching = match PluginHost::start(dir.path().to_path_buf(), false) {
        Ok(h) => h,
        Err(e) => panic!("{e:?}"),
    };
    assert!(marker_is("x")(&probe(&not_watching.current())));
    drop(not_watching);
    assert!(t0.elapsed() < Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------------
// rendering stored text
// ---------------------------------------------------------------------------------------------

#[test]
fn render_keeps_untouched_members_as_stored_and_in_place() {
    let set = set_of(&[(
        "p.json",
        &ops_plugin(json!([
            { "op": "mask", "path": "/v/token", "keep_start": 0, "keep_end": 0 },
            { "op": "set", "path": "/title", "value": "${/name}" }
        ])),
    )]);
    let members: Vec<_> = set
        .members()
        .expect("no wildcard at the top")
        .iter()
        .cloned()
        .collect();
    assert_eq!(members, ["name", "title", "v"]);
    // `n` is stored as written (serde_json would print 100.0), `name` is parsed and printed.
    let stored = r#"{"_id":"i","n":1e2,"v":{"token":"abc","u":"g"},"name":"G\u0041","s":"\u00e9"}"#;
    assert_eq!(
        render_as(&set, stored, &NOBODY),
        r#"{"_id":"i","n":1e2,"v":{"token":"***","u":"g"},"name":"GA","s":"\u00e9","title":"GA"}"#
    );
}

#[test]
fn render_moves_a_member_taken_out_and_put_back_to_the_end_as_a_whole_apply_does() {
    let set = set_of(&[(
        "p.json",
        &ops_plugin(json!([
            { "op": "move", "from": "/a", "path": "/tmp" },
            { "op": "move", "from": "/tmp", "path": "/a" }
        ])),
    )]);
    let stored = r#"{"a":1,"b":2,"c":3}"#;
    let whole = apply_as(&set, &serde_json::from_str(stored).unwrap(), &NOBODY).to_string();
    assert_eq!(whole, r#"{"b":2,"c":3,"a":1}"#);
    assert_eq!(render_as(&set, stored, &NOBODY), whole);
}

#[test]
fn a_wildcard_or_the_root_at_the_top_means_the_whole_document() {
    for path in ["/*/token", "/*"] {
        let set = set_of(&[(
            "p.json",
            &ops_plugin(json!([{ "op": "remove", "path": path }])),
        )]);
        assert!(set.members().is_none(), "{path:?}");
    }
    let set = set_of(&[(
        "p.json",
        &when_plugin(
            json!({ "inquiry": { "/*": { "exists": true } } }),
            json!([{ "op": "remove", "path": "/a" }]),
        ),
    )]);
    assert!(set.members().is_none(), "a condition reading every member");
    assert_eq!(render_as(&set, r#"{"a":1,"b":2}"#, &NOBODY), r#"{"b":2}"#);
}

// ---------------------------------------------------------------------------------------------
// property tests
// ---------------------------------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    const KEYS: &[&str] = &["a", "b", "v", "token", "x", "0", "1", "-"];

    fn json_doc() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            // quarters are exact in binary, so they survive a print-and-parse round trip
            any::<i32>().prop_map(|n| json!(f64::from(n) / 4.0)),
            "[a-z]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..4).prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    fn pointer(wild: bool) -> impl Strategy<Value = String> {
        let seg = if wild {
            prop::sample::select(vec!["a", "b", "v", "token", "x", "0", "1", "-", "*"]).boxed()
        } else {
            prop::sample::select(KEYS.to_vec()).boxed()
        };
        prop::collection::vec(seg, 1..4).prop_map(|segs| format!("/{}", segs.join("/")))
    }

    /// A literal or a template; `reads_token` lets the template read `/v/token`.
    fn literal(reads_token: bool) -> impl Strategy<Value = Value> {
        let template = if reads_token {
            "${/a} and ${/v/token} by ${caller.username} at ${now}"
        } else {
            "${/a} and ${/x/0} by ${caller.username} at ${now}"
        };
        prop_oneof![json_doc(), Just(json!(template))]
    }

    /// A random op; `from_ok` says which pointers copy, move and templates may read.
    fn op(from_ok: impl Fn(&String) -> bool + Clone + 'static) -> impl Strategy<Value = Value> {
        let reads_token = from_ok(&"/v/token".to_owned());
        let f1 = from_ok.clone();
        let f2 = from_ok;
        prop_oneof![
            (pointer(true), literal(reads_token)).prop_map(|(p, v)| json!({ "op": "set", "path": p, "value": v })),
            (pointer(true), literal(reads_token)).prop_map(|(p, v)| json!({ "op": "append", "path": p, "value": v })),
            (pointer(false), pointer(false))
                .prop_filter("from", move |(f, _)| f1(f))
                .prop_map(|(f, p)| json!({ "op": "copy", "from": f, "path": p })),
            (pointer(false), pointer(false))
                .prop_filter("from", move |(f, p)| f2(f) && !p.starts_with(&format!("{f}/")) && p != f)
                .prop_map(|(f, p)| json!({ "op": "move", "from": f, "path": p })),
            (pointer(true), pointer(false), json_doc())
                .prop_map(|(p, k, d)| json!({ "op": "lookup", "path": p, "key": k, "table": { "a": d, "": 1 }, "default": "dflt" })),
            pointer(true).prop_map(|p| json!({ "op": "remove", "path": p })),
            (pointer(true), 0usize..4, 0usize..4).prop_map(|(p, s, e)| json!({ "op": "mask", "path": p, "keep_start": s, "keep_end": e })),
            pointer(true).prop_map(|p| json!({ "op": "hash", "path": p })),
            (pointer(true), 0usize..6).prop_map(|(p, n)| json!({ "op": "truncate", "path": p, "max_chars": n })),
        ]
    }

    fn when() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!({ "caller": { "roles_any": ["agent"] } })),
            Just(json!({ "caller": { "roles_none": ["agent"] } })),
            pointer(true).prop_map(|p| json!({ "inquiry": { p: { "exists": true } } })),
            (pointer(true), json_doc()).prop_map(|(p, v)| json!({ "inquiry": { p: { "equals": v } } })),
            pointer(false).prop_map(|p| json!({ "any": [ { "inquiry": { p.clone(): { "matches": "^[a-c]" } } }, { "inquiry": { p: { "gt": 0 } } } ] })),
        ]
    }

    fn hooks(
        from_ok: impl Fn(&String) -> bool + Clone + 'static,
        safe_when: bool,
    ) -> impl Strategy<Value = Value> {
        let w = if safe_when {
            Just(None).boxed()
        } else {
            prop::option::of(when()).boxed()
        };
        prop::collection::vec((w, prop::collection::vec(op(from_ok), 0..6)), 0..4).prop_map(|hs| {
            Value::Array(
                hs.into_iter()
                    .map(|(w, ops)| match w {
                        Some(w) => json!({ "on": "inquiry.response", "when": w, "do": ops }),
                        None => json!({ "on": "inquiry.response", "do": ops }),
                    })
                    .collect(),
            )
        })
    }

    fn compile(plugins: &[(i64, Value)]) -> PluginSet {
        let dir = Path::new("/nonexistent");
        let compiled = plugins.iter().enumerate().map(|(i, (priority, hooks))| {
            let body = plugin_json(*priority, hooks.clone());
            let name = format!("p{i}.json");
            match compile_bytes(
                dir,
                &dir.join(&name),
                &name,
                body.as_bytes(),
                &mut Inputs::default(),
                SetBudget::FULL,
            ) {
                Ok(p) => Arc::new(p),
                Err(e) => panic!("generated plugin did not compile: {e:?}\n{body}"),
            }
        });
        PluginSet::from_plugins(compiled)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn apply_never_panics_and_output_stays_valid_json(
            doc in json_doc(),
            plugins in prop::collection::vec((0i64..3, hooks(|_: &String| true, false)), 0..4),
            agent in any::<bool>(),
        ) {
            let set = compile(&plugins);
            let who = Who { username: "u", roles: if agent { &["agent"] } else { &[] }, perms: &[] };
            let out = apply_as(&set, &doc, &who);
            let text = out.to_string();
            let back: Value = serde_json::from_str(&text).expect("output parses");
            prop_assert_eq!(back, out);
        }

        #[test]
        fn rendering_stored_text_equals_applying_to_the_whole_document(
            doc in json_doc(),
            plugins in prop::collection::vec((0i64..3, hooks(|_: &String| true, false)), 0..4),
            agent in any::<bool>(),
        ) {
            let doc = match doc {
                Value::Object(m) => Value::Object(m),
                other => json!({ "a": other, "x": [1, { "b": 2 }], "v": { "token": "t" } }),
            };
            // Two readings of the clock would differ; read the caller instead.
            let plugins: Vec<(i64, Value)> = plugins
                .into_iter()
                .map(|(p, h)| (p, serde_json::from_str(&h.to_string().replace("${now}", "${caller.id}")).unwrap()))
                .collect();
            let set = compile(&plugins);
            let who = Who { username: "u", roles: if agent { &["agent"] } else { &[] }, perms: &[] };
            let whole = apply_as(&set, &doc, &who).to_string();
            prop_assert_eq!(render_as(&set, &doc.to_string(), &who), whole);
        }

        #[test]
        fn a_redaction_in_force_never_lets_the_value_through(
            doc in json_doc(),
            others in prop::collection::vec((0i64..3, hooks(|f: &String| !"/v/token".starts_with(f.as_str()), true)), 0..3),
            redaction in prop::sample::select(vec!["remove", "mask", "hash"]),
            path in prop::sample::select(vec!["/v/token", "/v/*", "/*/token"]),
            keep in 0usize..4,
            priority in 0i64..3,
        ) {
            let secret = "SECRET-7f3a9c";
            let mut doc = match doc { Value::Object(m) => Value::Object(m), _ => json!({}) };
            let mut v = match doc.get("v") { Some(Value::Object(m)) => m.clone(), _ => serde_json::Map::new() };
            v.insert("token".into(), json!(secret));
            doc["v"] = Value::Object(v);
            let op = if redaction == "mask" {
                json!({ "op": "mask", "path": path, "keep_start": keep, "keep_end": keep })
            } else {
                json!({ "op": redaction, "path": path })
            };
            let mut plugins = others;
            plugins.push((priority, json!([{ "on": "inquiry.response", "do": [op] }])));
            let set = compile(&plugins);
            let out = apply_as(&set, &doc, &NOBODY).to_string();
            prop_assert!(!out.contains(secret), "{} of {} let the secret through: {}", redaction, path, out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the version in force after a burst of saves
// ---------------------------------------------------------------------------------------------

/// Random bursts of valid and invalid saves of one plugin file, in place and by rename, checked
/// against the promise of docs/plugins.md: the version in force is the newest valid version the watcher
/// read (every read is reported by the host's read observer, in order), and health names it by its
/// SHA-256 and read time; once the last save has settled, the latest read is of the bytes on disk.
mod bursts {
    use super::*;
    use inquiryd::plugins::watcher::ReadObserver;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Long enough for the last save to settle (0.5 s, then a re-read) on a loaded 2-core machine.
    const SETTLE_DEADLINE: Duration = Duration::from_secs(20);

    #[derive(Debug, Clone)]
    pub(super) struct Save {
        pub valid: bool,
        pub rename: bool,
        pub gap_ms: u64,
    }

    fn sha_hex(text: &str) -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Version `i`: `set /marker = "v{i}"`; invalid, the same text cut short (a syntax error).
    fn version(i: usize, valid: bool) -> String {
        let text = marker_plugin(&format!("v{i}"));
        if valid {
            text
        } else {
            text[..text.len() - 3].to_owned()
        }
    }

    /// What a burst ended with: the version in force (by marker) and how many valid versions the
    /// watcher read, of how many written.
    pub(super) struct Outcome {
        pub in_force: String,
        pub valid_read: usize,
        pub valid_written: usize,
    }

    /// Writes version 0, starts a watching host, makes `saves`, waits for the last one to settle
    /// and checks the promise; returns what was in force.
    pub(super) fn burst(saves: &[Save]) -> Outcome {
        let dir = dir_with(&[("m.json", &version(0, true))]);
        let path = dir.path().join("m.json");
        let reads: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let log = reads.clone();
        let observer: ReadObserver = Arc::new(move |name: &str, sha: &str, valid: bool| {
            if name == "m.json" {
                log.lock().unwrap().push((sha.to_owned(), valid));
            }
        });
        let host = match PluginHost::start_observed(dir.path().to_path_buf(), true, Some(observer))
        {
            Ok(h) => h,
            Err(e) => panic!("{e:?}"),
        };
        let mut marker_of: HashMap<String, String> = HashMap::new();
        marker_of.insert(sha_hex(&version(0, true)), "v0".to_owned());
        let mut last = version(0, true);
        for (i, save) in saves.iter().enumerate() {
            let text = version(i + 1, save.valid);
            if save.valid {
                marker_of.insert(sha_hex(&text), format!("v{}", i + 1));
            }
            if save.rename {
                let tmp = dir.path().join("m.json.tmp");
                fs::write(&tmp, &text).expect("write temp");
                fs::rename(&tmp, &path).expect("rename");
            } else {
                fs::write(&path, &text).expect("write in place");
            }
            last = text;
            // part of the workload (random intervals), not a synchronisation
            thread::sleep(Duration::from_millis(save.gap_ms));
        }
        let last_sha = sha_hex(&last);
        let start = Instant::now();
        let health = loop {
            let health = host.health();
            let file = &health["files"][0];
            if file["last_read"]["sha256"] == last_sha.as_str() && file["settling"] == false {
                break health;
            }
            assert!(
                start.elapsed() < SETTLE_DEADLINE,
                "the last save never settled: {health}"
            );
            thread::sleep(Duration::from_millis(10));
        };
        let file = &health["files"][0];
        let newest_valid = reads
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(_, valid)| *valid)
            .map(|(sha, _)| sha.clone())
            .expect("version 0 was read at start");
        assert_eq!(
            file["in_force"]["sha256"], newest_valid,
            "in force must be the newest valid version read: {health}"
        );
        assert!(
            file["in_force"]["read_at"].as_str().is_some(),
            "read time: {health}"
        );
        let expected = marker_of[&newest_valid].clone();
        wait_for(&host, "the newest valid version read", |v| {
            v.get("marker").and_then(Value::as_str) == Some(expected.as_str())
        });
        let last_valid = saves.last().is_none_or(|s| s.valid);
        if last_valid {
            assert_eq!(newest_valid, last_sha, "a valid last save is in force");
            assert_eq!(file["state"], "ok", "{health}");
        } else {
            assert_eq!(file["state"], "error", "{health}");
            assert_eq!(file["serving_last_good"], true, "{health}");
            assert_eq!(file["last_read"]["valid"], false, "{health}");
        }
        let valid_read = {
            let reads = reads.lock().unwrap();
            let mut shas: Vec<&String> = reads.iter().filter(|r| r.1).map(|r| &r.0).collect();
            shas.sort();
            shas.dedup();
            shas.len()
        };
        Outcome {
            in_force: expected,
            valid_read,
            valid_written: 1 + saves.iter().filter(|s| s.valid).count(),
        }
    }

    fn save() -> impl Strategy<Value = Save> {
        (any::<bool>(), any::<bool>(), 0u64..15).prop_map(|(valid, rename, gap_ms)| Save {
            valid,
            rename,
            gap_ms,
        })
    }

    proptest! {
        // each case settles for about 0.5-0.8 s: few cases, no regression files
        #![proptest_config(ProptestConfig {
            cases: 12,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn the_version_in_force_is_the_newest_valid_one_read(
            saves in prop::collection::vec(save(), 1..40)
        ) {
            burst(&saves);
        }
    }

    /// The issue's case: 100 saves in about a second, alternating valid and cut short, ending on an
    /// invalid save whose previous valid save was version 99 (numbered from 1 here).
    pub(super) fn alternating() -> Vec<Save> {
        (1..=100)
            .map(|i| Save {
                valid: i % 2 == 1,
                rename: false,
                gap_ms: 10,
            })
            .collect()
    }

    #[test]
    fn a_hundred_alternating_saves_keep_the_promise() {
        burst(&alternating());
    }

    /// Not a test: how often the issue's burst ends with its last valid version in force
    /// (`cargo test --test plugins_engine bursts_figures -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn bursts_figures() {
        for _ in 0..8 {
            let o = burst(&alternating());
            println!(
                "in force {} (last valid v99); valid versions read {}/{}",
                o.in_force, o.valid_read, o.valid_written
            );
        }
    }
}

#[test]
fn an_idle_watched_directory_is_rescanned_only_periodically_not_on_its_own_reads() {
    let dir = dir_with(&[
        ("m.json", &marker_plugin("one")),
        (
            "crm.json",
            r#"{"name":"crm","hooks":[{"on":"inquiry.response","do":[
              {"op":"lookup","path":"/v/crm","key":"/v/username","table_file":"tables/crm.json"}]}]}"#,
        ),
        ("tables/crm.json", r#"{"a":"b"}"#),
    ]);
    let host = start(&dir);
    // Every rescan opens and reads the files, and the inotify watch reports opens and reads: taken
    // for changes, they made the watcher rescan every debounce period (100 ms) for as long as it
    // ran, ~30 rescans in 3 s. Reads by anyone else (a backup, an operator's `cat`) are no change
    // either. Idle, the periodic rescan (every 2 s) is all there is: at most 2 in 3 s, 4 allowed.
    let before = host.rescans();
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(3) {
        let _ = fs::read(dir.path().join("m.json")).expect("read");
        thread::sleep(Duration::from_millis(50));
    }
    let rescans = host.rescans() - before;
    assert!(rescans <= 4, "{rescans} rescans in 3 s of reads only");
    // a change is still seen by the watch, well before the periodic rescan
    fs::write(dir.path().join("m.json"), marker_plugin("two")).expect("write");
    let took = wait_for(&host, "a change", marker_is("two"));
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[test]
fn a_directory_far_over_the_file_limit_costs_one_error_not_one_per_file() {
    let body = ops_plugin(json!([{ "op": "remove", "path": "/a" }]));
    let dir = dir_with(&[("a.json", &marker_plugin("kept"))]);
    let host = match PluginHost::start(dir.path().to_path_buf(), false) {
        Ok(h) => h,
        Err(e) => panic!("{e:?}"),
    };
    for i in 0..2000 {
        fs::write(dir.path().join(format!("p{i:04}.json")), &body).expect("write");
    }
    // one error for the 1,745 files past the limit (before: one each, logged again at every
    // change of their count, and a rescan's cost grew with them)
    let errors = load_dir(dir.path()).expect_err("over the limit");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0].to_string();
    assert!(
        e.contains("p0255.json: not loaded (nor the 1744 plugin files after it by name): the directory has 2001 plugin files, over the limit of 256"),
        "{e}"
    );
    host.reload();
    let health = host.health();
    let files = health["files"].as_array().expect("files");
    assert_eq!(
        files.len(),
        257,
        "tracked: the first 256 and the first past the limit"
    );
    assert!(
        health["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("nor the 1744 plugin files after it")),
        "{health}"
    );
    assert!(marker_is("kept")(&probe(&host.current())));
}
