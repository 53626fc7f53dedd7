//! The README shows what each role sees of the demo inquiry with the shipped example plugins
//! switched on: that table is checked here against the real server, so it cannot drift from the
//! demo data or the plugins (it once showed a visitor named "Guest 51"; the demo's is "kookie").
//! docs/plugins.md holds the same table.

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
