//! `GET /metrics`: Prometheus text, requests by matched route pattern (never the raw path) and
//! status, latency histograms, and the scrape-time gauges; on its own listener with
//! `[metrics] bind`; gone with `[metrics] enabled = false`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::helpers::*;

const GET_ONE: &str = "/api/v1/livechat/inquiries.getOne";

/// One scrape: `name{labels}` → value, and `name` → type (from the `# TYPE` lines).
pub struct Scrape {
    pub samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (key, value) = line.rsplit_once(' ').expect("sample line");
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("value in {line:?}"));
                assert!(
                    samples.insert(key.to_string(), value).is_none(),
                    "{key} twice"
                );
            }
        }
        Scrape { samples, types }
    }

    fn get(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }

    fn has(&self, key: &str) -> bool {
        self.samples.contains_key(key)
    }
}

pub fn scrape(base: &str) -> Scrape {
    let resp = reqwest::blocking::get(format!("{base}/metrics")).expect("scrape");
    assert_eq!(resp.status().as_u16(), 200);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    Scrape::parse(&resp.text().expect("body"))
}

fn requests(route: &str, status: u16) -> String {
    format!("inquiryd_http_requests_total{{route=\"{route}\",status=\"{status}\"}}")
}

#[test]
fn requests_are_counted_by_route_pattern_and_status_and_timed() {
    let app = spawn_app();
    let before = scrape(&app.base);
    assert_eq!(app.get_one(DEMO_ROOM, demo()).status, 200);
    assert_eq!(app.get_one(DEMO_ROOM, demo()).status, 200);
    assert_eq!(app.get_one(DEMO_ROOM, None).status, 401);
    assert_eq!(app.post(GET_ONE, "{}", demo()).status, 405);
    // Unknown paths, however many, share one label.
    for path in ["/nope", "/api/v1/x-1", "/api/v1/x-2?a=b", "/health/"] {
        assert_eq!(app.get(path, None).status, 404, "{path}");
    }
    let after = scrape(&app.base);
    let moved = |key: &str| after.get(key) - before.get(key);
    assert_eq!(moved(&requests(GET_ONE, 200)), 2.0);
    assert_eq!(moved(&requests(GET_ONE, 401)), 1.0);
    assert_eq!(moved(&requests(GET_ONE, 405)), 1.0);
    assert_eq!(moved(&requests("unmatched", 404)), 4.0);
    // The first scrape itself was counted under its own pattern.
    assert!(after.get(&requests("/metrics", 200)) >= 1.0);
    let raw_paths: Vec<&String> = after
        .samples
        .keys()
        .filter(|k| k.contains("/nope") || k.contains("x-1") || k.contains("/health/"))
        .collect();
    assert!(
        raw_paths.is_empty(),
        "raw paths became labels: {raw_paths:?}"
    );

    let hist = "inquiryd_http_request_duration_seconds";
    assert_eq!(after.types[hist], "histogram");
    assert_eq!(after.types["inquiryd_http_requests_total"], "counter");
    let count = format!("{hist}_count{{route=\"{GET_ONE}\"}}");
    assert_eq!(moved(&count), 4.0);
    assert!(moved(&format!("{hist}_sum{{route=\"{GET_ONE}\"}}")) > 0.0);
    let inf = format!("{hist}_bucket{{route=\"{GET_ONE}\",le=\"+Inf\"}}");
    assert_eq!(after.get(&inf), after.get(&count));
    // Buckets are cumulative.
    let buckets: Vec<f64> = after
        .samples
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{hist}_bucket{{route=\"{GET_ONE}\"")))
        .map(|(_, v)| *v)
        .collect();
    assert!(buckets.len() > 5, "{buckets:?}");

    for (name, kind) in [
        ("inquiryd_auth_snapshot_age_seconds", "gauge"),
        ("inquiryd_plugins_reload_success", "gauge"),
        ("inquiryd_plugins_last_success_timestamp_seconds", "gauge"),
        ("inquiryd_plugins_files_in_error", "gauge"),
        ("inquiryd_inquiries", "gauge"),
        ("inquiryd_database_size_bytes", "gauge"),
        ("inquiryd_database_wal_size_bytes", "gauge"),
        ("inquiryd_wal_checkpoint_runs_total", "counter"),
        ("inquiryd_wal_truncations_total", "counter"),
    ] {
        assert_eq!(
            after.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
        assert!(after.has(name), "{name} has no sample");
    }
    assert_eq!(after.get("inquiryd_inquiries"), 1.0, "the demo inquiry");
    assert_eq!(after.get("inquiryd_plugins_reload_success"), 1.0);
    assert_eq!(after.get("inquiryd_plugins_files_in_error"), 0.0);
    assert!(after.get("inquiryd_database_size_bytes") > 0.0);
    assert!(after.get("inquiryd_auth_snapshot_age_seconds") < 60.0);
    let runs = poll_until(Duration::from_secs(10), || {
        scrape(&app.base).get("inquiryd_wal_checkpoint_runs_total")
            > after.get("inquiryd_wal_checkpoint_runs_total")
    });
    assert!(runs.is_some(), "checkpoint runs never moved");
}

#[test]
fn a_broken_plugin_file_turns_the_reload_gauge_to_zero_and_is_counted() {
    let app = spawn_app();
    let first = scrape(&app.base);
    assert_eq!(first.get("inquiryd_plugins_reload_success"), 1.0);
    // a successful rescan may still follow the start (the watcher's first events); whatever
    // it stamps, the broken file's rescans come after this second and must not stamp it
    let written_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    std::fs::write(app.plugins.join("broken.json"), "{ not json").unwrap();
    let seen = poll_until(Duration::from_secs(10), || {
        let s = scrape(&app.base);
        s.get("inquiryd_plugins_reload_success") == 0.0
            && s.get("inquiryd_plugins_files_in_error") == 1.0
    });
    assert!(seen.is_some(), "the gauges never showed the broken file");
    let last = scrape(&app.base).get("inquiryd_plugins_last_success_timestamp_seconds");
    let at_start = first.get("inquiryd_plugins_last_success_timestamp_seconds");
    assert!(
        (at_start..=written_at).contains(&last),
        "last success {last} moved past the broken write ({written_at}; {at_start} at start)"
    );
    std::fs::remove_file(app.plugins.join("broken.json")).unwrap();
    let healed = poll_until(Duration::from_secs(10), || {
        let s = scrape(&app.base);
        s.get("inquiryd_plugins_reload_success") == 1.0
            && s.get("inquiryd_plugins_files_in_error") == 0.0
    });
    assert!(healed.is_some(), "the gauges never recovered");
}

#[test]
fn metrics_bind_serves_them_on_their_own_listener_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[metrics]\nbind = \"127.0.0.1:0\"\n").unwrap();
    let server = Server::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let log = server.log();
    let addr = log
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
        .to_string();
    let main = server
        .client()
        .get(format!("{}/metrics", server.base))
        .send()
        .unwrap();
    assert_eq!(
        main.status().as_u16(),
        404,
        "the main listener serves metrics"
    );
    let own = scrape(&format!("http://{addr}"));
    assert!(own.has("inquiryd_inquiries"));
    // The main listener's requests are what is counted.
    assert_eq!(own.get(&requests("unmatched", 404)), 1.0);
    let other = server
        .client()
        .get(format!("http://{addr}/api/info"))
        .send()
        .unwrap();
    assert_eq!(
        other.status().as_u16(),
        404,
        "the metrics listener serves the API"
    );
}

#[test]
fn metrics_disabled_are_not_served() {
    let app = spawn_app_with(|c| c.metrics.enabled = false);
    let resp = app.get("/metrics", None);
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["error"], "Resource not found");
}

#[test]
fn a_bad_metrics_address_stops_the_server_with_a_named_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[metrics]\nbind = \"localhost\"\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["--config", config.to_str().unwrap(), "serve"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("metrics.bind"), "{}", stderr(&out));
}
