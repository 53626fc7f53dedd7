//! The README shows what each role sees of the demo inquiry with the shipped example plugins
//! switched on: that table is checked here against the real server, so it cannot drift from the
//! demo data or the plugins (it once showed a visitor named "Guest 51"; the demo's is "kookie").
//! docs/plugins.md holds the same table. The demo request's printed body and the "Admin over
//! HTTP" route table are checked against the real app too.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

const HEADER: &str =
    "| caller | `/v/token` | `/v/username` | `/name` | `/display/title` | `/v/crm` |";

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The rows of the table under [`HEADER`] in `text`, as cells.
fn table(text: &str) -> Vec<Vec<String>> {
    let start = text.find(HEADER).expect("the role table");
    text[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

/// Copies the shipped plugins (and their tables) into `dir`, each switched on.
fn install_shipped_plugins(dir: &Path) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins");
    std::fs::create_dir_all(dir.join("tables")).unwrap();
    for entry in std::fs::read_dir(shipped.join("tables")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("tables").join(entry.file_name())).unwrap();
    }
    for entry in std::fs::read_dir(shipped.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".json") || name == "plugin.schema.json" {
            continue;
        }
        let mut plugin: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        plugin["enabled"] = Value::Bool(true);
        std::fs::write(dir.join(&name), plugin.to_string()).unwrap();
    }
}

#[test]
fn the_readme_role_table_is_what_the_server_answers_with_the_shipped_plugins_on() {
    let readme = table(&repo_file("README.md"));
    assert_eq!(
        readme,
        table(&repo_file("docs/plugins.md")),
        "README.md and docs/plugins.md show different tables"
    );
    assert_eq!(readme.len(), 3, "{readme:?}");
    let app = spawn_app();
    install_shipped_plugins(&app.plugins);
    for row in &readme {
        // "admin, livechat-manager" or "livechat-monitor (anyone else allowed to read)"
        for role in row[0].split(", ") {
            let role = role.split(' ').next().unwrap();
            let auth = app.user_with_token(&format!("readme-{role}"), &[role]);
            let mut inquiry = Value::Null;
            // The plugins are in force within a second of being written.
            let seen = poll_until(Duration::from_secs(10), || {
                let r = app.get_one(DEMO_ROOM, Some((&auth.0, &auth.1)));
                assert_eq!(r.status, 200, "{role}: {}", r.body);
                inquiry = r.json()["inquiry"].clone();
                inquiry["v"]["crm"] != Value::Null
            });
            assert!(seen.is_some(), "{role}: plugins never in force: {inquiry}");
            let shown = vec![
                row[0].clone(),
                if inquiry["v"].get("token").is_some() {
                    "kept"
                } else {
                    "removed"
                }
                .to_string(),
                inquiry["v"]["username"].as_str().unwrap_or("?").to_string(),
                inquiry["name"].as_str().unwrap_or("?").to_string(),
                inquiry["display"]["title"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
                serde_json::to_string(&inquiry["v"]["crm"]).unwrap(),
            ];
            assert_eq!(&shown, row, "what {role} sees");
        }
    }
}

/// The text of the first fenced block after `marker` in `text`.
fn block_after<'a>(text: &'a str, marker: &str) -> &'a str {
    let from = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} in the README"));
    let open = from + text[from..].find("```").expect("a fenced block");
    let body = open + text[open..].find('\n').unwrap() + 1;
    let close = body + text[body..].find("```").expect("its end");
    &text[body..close]
}

/// The quoted value after `after` in `text`, e.g. the header in `-H "X-User-Id: …"`.
fn between<'a>(text: &'a str, after: &str, until: char) -> &'a str {
    let start = text
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} in {text}"))
        + after.len();
    let end = start + text[start..].find(until).unwrap();
    &text[start..end]
}

#[test]
fn the_readme_demo_request_answers_exactly_the_printed_body() {
    let readme = repo_file("README.md");
    let curl = block_after(&readme, "## The example request");
    let user = between(curl, "X-User-Id: ", '"');
    let token = between(curl, "X-Auth-Token: ", '"');
    let path = between(curl, "http://127.0.0.1:3000", '"');
    let printed = block_after(&readme, "with exactly this body").trim_end();
    let app = spawn_app();
    let r = app.get(path, Some((user, token)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers["content-type"], "application/json",
        "the README promises this content type"
    );
    assert_eq!(r.body, printed, "the README's demo body");
}

/// Every route in the README's "Admin over HTTP" table is served (a row such as
/// "`POST /api/v1/inquiryd/plugins.save`, `plugins.setEnabled`" names two), so the table cannot
/// list a route that was renamed or never merged.
#[test]
fn every_route_in_the_readme_table_is_served() {
    let readme = repo_file("README.md");
    let section = &readme[readme.find("## Admin over HTTP").expect("the section")..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
    assert!(rows.len() >= 10, "the route table: {rows:?}");
    let app = spawn_app();
    let mut seen = 0;
    for row in rows {
        let cell = row.trim_start_matches("| ").split(" | ").next().unwrap();
        let mut names = cell.split(", ").map(|c| c.trim_matches('`'));
        let first = names.next().unwrap();
        let (method, path) = first.split_once(' ').expect("METHOD /path");
        let path = path.split(['?', '[']).next().unwrap();
        let prefix = &path[..path.rfind('/').unwrap() + 1];
        let paths = std::iter::once(path.to_string())
            .chain(names.map(|n| format!("{prefix}{n}")))
            .collect::<Vec<_>>();
        for path in paths {
            let r = match method {
                "GET" => app.get(&path, None),
                "POST" => app.post(&path, "{}", None),
                other => panic!("{other} in {row}"),
            };
            assert_ne!(r.status, 404, "{method} {path}: {}", r.body);
            assert_ne!(r.status, 405, "{method} {path}: {}", r.body);
            seen += 1;
        }
    }
    assert!(seen >= 18, "{seen} routes");
}
