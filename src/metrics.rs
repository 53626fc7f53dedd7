//! `GET /metrics` in the Prometheus text format (0.0.4), encoded by `prometheus-client`.
//!
//! Per-request figures (requests by route and status, latency per route) are plain atomics in a
//! table sized at start: one row per mounted route plus one `unmatched` row for every path no
//! route matched, so the label set is bounded whatever clients send, and recording a request takes
//! a few relaxed atomic adds: no lock, no allocation (see [`crate::observe`]). The route label is
//! the matched pattern, never the raw path. Everything else (auth snapshot age, plugin reload
//! state, inquiries, database and WAL sizes, checkpoint runs) is read when scraped.
//!
//! With `[metrics] bind` set, `/metrics` is served there only (a listener of its own, so it need not
//! be public); unset, the main listener serves it. `[metrics] enabled = false` removes it and the
//! counting.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::api::ApiError;
use crate::auth::AuthCache;
use crate::auth::passwords::Verifications;
use crate::db::Pool;
use crate::plugins::PluginHost;

/// The path metrics are served at.
pub const PATH: &str = "/metrics";

/// The `route` label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Upper bounds (seconds) of the latency histogram's buckets; `+Inf` is implied.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// HTTP status codes are 100..=599; one counter each.
const STATUSES: usize = 500;

/// One route's counters.
struct RouteStats {
    by_status: [AtomicU64; STATUSES],
    /// Requests per latency bucket (not cumulative); the last slot is past the last bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl RouteStats {
    fn new() -> RouteStats {
        RouteStats {
            by_status: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }
}

/// Requests by route and status, and their latency per route.
pub struct RequestStats {
    /// The route patterns; a request whose matched route is not here counts as [`UNMATCHED`].
    routes: Vec<&'static str>,
    /// One row per route, then the [`UNMATCHED`] row.
    rows: Box<[RouteStats]>,
}

impl RequestStats {
    /// A table for `routes` (resource names, which are their patterns) and [`UNMATCHED`].
    pub fn new(routes: Vec<&'static str>) -> RequestStats {
        let rows = (0..=routes.len()).map(|_| RouteStats::new()).collect();
        RequestStats { routes, rows }
    }

    /// Counts one answered request. `route` is the matched resource's name, if any.
    pub fn record(&self, route: Option<&str>, status: StatusCode, elapsed: Duration) {
        let row = route
            .and_then(|name| self.routes.iter().position(|r| *r == name))
            .unwrap_or(self.routes.len());
        let stats = &self.rows[row];
        let code = usize::from(status.as_u16()).saturating_sub(100);
        if let Some(counter) = stats.by_status.get(code) {
            counter.fetch_add(1, Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(BUCKETS.len());
        stats.buckets[bucket].fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        stats.sum_micros.fetch_add(micros, Relaxed);
    }

    fn labels(&self) -> impl Iterator<Item = (&'static str, &RouteStats)> {
        self.routes
            .iter()
            .copied()
            .chain(std::iter::once(UNMATCHED))
            .zip(self.rows.iter())
    }
}

impl std::fmt::Debug for RequestStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStats")
            .field("routes", &self.routes)
            .finish()
    }
}

impl Collector for RequestStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut family = encoder.encode_descriptor(
                "inquiryd_http_requests",
                "HTTP requests answered, by matched route pattern and status",
                None,
                MetricType::Counter,
            )?;
            for (route, stats) in self.labels() {
                for (i, counter) in stats.by_status.iter().enumerate() {
                    let n = counter.load(Relaxed);
                    if n > 0 {
                        let labels = [
                            ("route", route.to_string()),
                            ("status", (i + 100).to_string()),
                        ];
                        family
                            .encode_family(&labels)?
                            .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
                    }
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "inquiryd_http_request_duration_seconds",
            "Time from a request's arrival in the app to its answer, by matched route pattern",
            None,
            MetricType::Histogram,
        )?;
        for (route, stats) in self.labels() {
            let counts: Vec<u64> = stats.buckets.iter().map(|b| b.load(Relaxed)).collect();
            let buckets: Vec<(f64, u64)> = BUCKETS
                .iter()
                .copied()
                .chain(std::iter::once(f64::INFINITY))
                .zip(counts.iter().copied())
                .collect();
            let count = counts.iter().sum();
            let sum = stats.sum_micros.load(Relaxed) as f64 / 1e6;
            family
                .encode_family(&[("route", route)])?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

/// What is read at scrape time.
pub struct Live {
    pub auth: Arc<AuthCache>,
    pub plugins: Arc<PluginHost>,
    pub pool: Pool,
    pub db_path: PathBuf,
    pub verifications: Arc<Verifications>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("db_path", &self.db_path)
            .finish()
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = crate::db::now_secs();
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64| {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)
        };
        let counter = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64| {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)
        };
        gauge(
            &mut encoder,
            "inquiryd_auth_snapshot_age_seconds",
            "Seconds since the in-memory users, tokens and permissions were last checked against the database (polled every second; growing means the poller fails)",
            now - self.auth.checked_at(),
        )?;
        let reload = self.plugins.reload_status();
        gauge(
            &mut encoder,
            "inquiryd_plugins_reload_success",
            "1 when the last plugins rescan read the directory and found every file valid, else 0",
            i64::from(reload.success),
        )?;
        gauge(
            &mut encoder,
            "inquiryd_plugins_last_success_timestamp_seconds",
            "Unix time of the last plugins rescan that found every file valid",
            reload.last_success,
        )?;
        gauge(
            &mut encoder,
            "inquiryd_plugins_files_in_error",
            "Plugin files whose current version is invalid (their last good version stays in force)",
            reload.files_in_error as i64,
        )?;
        match self.inquiries() {
            Ok(n) => gauge(&mut encoder, "inquiryd_inquiries", "Inquiries stored", n)?,
            Err(e) => log::warn!("metrics: cannot count inquiries: {e}"),
        }
        let size = |suffix: &str| {
            let mut name = self.db_path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(name).map_or(0, |m| m.len() as i64)
        };
        gauge(
            &mut encoder,
            "inquiryd_database_size_bytes",
            "Size of the SQLite database file",
            size(""),
        )?;
        gauge(
            &mut encoder,
            "inquiryd_database_wal_size_bytes",
            "Size of the SQLite write-ahead log file",
            size("-wal"),
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "inquiryd_password_verifications",
                "Argon2 password verifications run for logins, by parameters (an unknown user costs one too)",
                None,
                MetricType::Counter,
            )?;
            for (params, runs) in self.verifications.snapshot() {
                family
                    .encode_family(&[("params", params)])?
                    .encode_counter::<NoLabelSet, _, u64>(&runs, None)?;
            }
        }
        counter(
            &mut encoder,
            "inquiryd_wal_checkpoint_runs",
            "WAL checkpoint rounds run by the server's checkpointer (about five a second)",
            crate::db::checkpointer::RUNS.load(Relaxed),
        )?;
        counter(
            &mut encoder,
            "inquiryd_wal_truncations",
            "Times the checkpointer truncated a WAL grown past its size limit",
            crate::db::checkpointer::TRUNCATIONS.load(Relaxed),
        )?;
        Ok(())
    }
}

impl Live {
    fn inquiries(&self) -> Result<i64, String> {
        let conn = self.pool.get().map_err(|e| e.to_string())?;
        conn.query_row("SELECT count(*) FROM inquiries", [], |r| r.get(0))
            .map_err(|e| e.to_string())
    }
}

/// The registry `/metrics` encodes, shared by every worker.
pub struct Endpoint {
    registry: Arc<Registry>,
}

impl Endpoint {
    /// The registry of `requests` and `live`.
    pub fn new(requests: Arc<RequestStats>, live: Live) -> Endpoint {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(requests));
        registry.register_collector(Box::new(live));
        Endpoint {
            registry: Arc::new(registry),
        }
    }
}

/// Mounts `GET /metrics` (a JSON 405 for other methods, as every route).
pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(PATH)
            .name(PATH)
            .route(web::get().to(scrape))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::MethodNotAllowed("GET"))
            })),
    );
}

async fn scrape(endpoint: web::Data<Endpoint>) -> Result<HttpResponse, ApiError> {
    let registry = endpoint.registry.clone();
    // Counting inquiries reads the database: off the worker thread.
    let text = web::block(move || {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).map(|()| text)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("metrics: {e}")))?
    .map_err(|e| ApiError::Internal(format!("metrics: encoding: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
        .insert_header(("Cache-Control", "no-store"))
        .body(text))
}
