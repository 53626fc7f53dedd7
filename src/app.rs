//! Builds the server from a [`Config`]: opens and migrates the database, seeds the demo, loads the
//! plugins, starts the auth poller, binds the listener (port 0 picks one; see [`Application::port`])
//! and mounts the routes. Used by `inquiryd serve` and by the tests alike.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::Condition;
use actix_web::{App, web};

use crate::api::livechat::RenderMemo;
use crate::api::{self, ApiError, AppState};
use crate::auth::throttle::Throttle;
use crate::auth::{AuthCache, tokens};
use crate::config::Config;
use crate::conn::{Descriptors, GuardedStream, ReadBodyFirst, Timeouts};
use crate::db::{self, Pool, reader::WorkerReader};
use crate::metrics::{self, RequestStats};
use crate::observe::Observe;
use crate::periodic::Periodic;
use crate::plugins::PluginHost;

/// The demo user and token of the contract (section 6), seeded once when `[demo] enabled`.
pub const DEMO_USER_ID: &str = "rbAXPnMktTFbNpwtJ";
pub const DEMO_USERNAME: &str = "demo.agent";
pub const DEMO_TOKEN: &str = "RScctEHSmLGZGywfIhWyRpyofhKOiMoUIpimhvheU3f";
const DEMO_INQUIRIES: &str = include_str!("demo-inquiries.json");

/// Why the server did not start; [`StartError::exit_code`] is what the process returns.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("plugins: {}", .0.join("\n  "))]
    Plugins(Vec<String>),
    #[error("plugins directory {0}: does not exist (create it, or point [plugins] dir at one)")]
    PluginsDirMissing(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("demo seed: {0}")]
    Seed(String),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot start the auth poller thread: {0}")]
    Poller(std::io::Error),
    #[error("cannot start the audit pruning thread: {0}")]
    AuditPruner(std::io::Error),
    #[error("cannot start the login verification threads: {0}")]
    Verifier(std::io::Error),
}

impl StartError {
    /// 2 for what the operator must fix in configuration or plugin files, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Plugins(_) | StartError::PluginsDirMissing(_) => 2,
            _ => 1,
        }
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    server: actix_web::dev::Server,
    port: u16,
    metrics_port: Option<u16>,
    _poller: Periodic,
    _checkpointer: Periodic,
    _audit_pruner: Option<Periodic>,
    /// The pool the plugin watcher's audit sink borrows (weakly): the watcher thread outlives the
    /// server, and a pool it owned would keep SQLite connections open past the stop.
    _audit_sink_pool: Arc<db::Pool>,
}

impl Application {
    /// Opens everything, binds and installs the SIGTERM/SIGINT handlers; nothing is served until
    /// [`Application::run_until_stopped`]. Call it within the actix runtime.
    pub fn build(config: &Config) -> Result<Application, StartError> {
        let (pool, db_watch) = db::open_server(&config.database.path, config.database.pool_size)?;
        if config.demo.enabled {
            seed_demo(&pool, config.auth.token_ttl_days)?;
        }
        let auth = AuthCache::load(pool.clone())?;
        if auth
            .snapshot()
            .token_valid_hashed(tokens::hash(DEMO_TOKEN).as_str(), db::now_secs())
        {
            log::warn!(
                "demo: the public demo token for user {DEMO_USERNAME:?} is valid; anyone can read inquiries with it (revoke: inquiryd token revoke {DEMO_USERNAME} --all)"
            );
        }
        let plugins = start_plugins(config)?;
        let verifier = crate::auth::passwords::Verifier::start(
            config.auth.login_concurrency,
            Duration::from_millis(config.auth.login_wait_ms),
        )
        .map_err(StartError::Verifier)?;
        let (stats, endpoint) = if config.metrics.enabled {
            let mut routes = api::ROUTES.to_vec();
            routes.push(metrics::PATH);
            let stats = Arc::new(RequestStats::new(routes));
            let live = metrics::Live {
                auth: auth.clone(),
                plugins: plugins.clone(),
                pool: pool.clone(),
                db_path: config.database.path.clone(),
                verifications: verifier.verifications(),
            };
            let endpoint = web::Data::new(metrics::Endpoint::new(stats.clone(), live));
            (Some(stats), Some(endpoint))
        } else {
            (None, None)
        };
        let reload_on_hangup = plugins.clone();
        let audit_sink_pool = Arc::new(pool.clone());
        plugins.on_change(audit_plugin_changes(Arc::downgrade(&audit_sink_pool)));
        let state = web::Data::new(AppState {
            pool,
            db_watch: db_watch.clone(),
            auth: auth.clone(),
            plugins,
            throttle: Throttle::new(
                config.auth.login_max_failures,
                config.auth.login_max_failures_per_address,
                Duration::from_secs(config.auth.login_window_secs),
            ),
            token_ttl_days: config.auth.token_ttl_days,
            audit_retention_days: config.audit.retention_days,
            verifier,
        });
        let poller = auth.spawn_poller().map_err(StartError::Poller)?;
        let checkpointer = db::checkpointer::spawn(&config.database.path, db_watch.clone())?;
        let audit_pruner = spawn_audit_pruner(&state.pool, config.audit.retention_days)
            .map_err(StartError::AuditPruner)?;
        let listener =
            TcpListener::bind(&config.server.bind).map_err(|source| StartError::Bind {
                addr: config.server.bind.clone(),
                source,
            })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let access = if log::log_enabled!(target: "inquiryd::access", log::Level::Info) {
            config.log.access
        } else {
            crate::config::AccessLog::Off
        };
        let observe = Observe::new(stats, access, config.log.slow_ms);
        // /metrics on the main listener unless it has its own.
        let main_endpoint = endpoint.clone().filter(|_| config.metrics.bind.is_none());
        let db_path = (config.database.path.clone(), db_watch);
        let timeouts = config.timeouts();
        let builder = actix_server::Server::build();
        let stopping = builder.graceful_shutdown_signal();
        let app = move || {
            App::new()
                .app_data(state.clone())
                .app_data(worker_reader(&db_path))
                .app_data(RenderMemo::default())
                .wrap(ReadBodyFirst {
                    timeout: timeouts.body,
                    stopping: stopping.clone(),
                })
                .wrap(Condition::new(observe.is_needed(), observe.clone()))
                .configure(api::configure)
                .configure(|cfg| {
                    if let Some(endpoint) = &main_endpoint {
                        cfg.app_data(endpoint.clone());
                        metrics::mount(cfg);
                    }
                })
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(ApiError::NotFound)
                }))
        };
        let workers = config.workers();
        // Each worker's reader and the checkpointer hold SQLite connections beside the pool.
        let db_connections = config.database.pool_size + workers as u32 + 1;
        let descriptors =
            Descriptors::settle(workers, db_connections, config.server.max_connections);
        log::info!(
            "connections: open-file limit {}{}, up to {} concurrent connections ({} per worker; more wait to be accepted)",
            descriptors.limit,
            descriptors
                .raised_from
                .map_or(String::new(), |from| format!(" (raised from {from})")),
            descriptors.per_worker * workers,
            descriptors.per_worker,
        );
        if descriptors.starved {
            log::warn!(
                "connections: open-file limit {} leaves too few descriptors (about {} are kept for SQLite and the rest); raise it (ulimit -n, or LimitNOFILE= under systemd)",
                descriptors.limit,
                Descriptors::reserved(db_connections)
            );
        }
        let mut builder = serve(
            builder,
            listener,
            app,
            timeouts,
            workers,
            descriptors.per_worker,
        )?;
        let mut metrics_port = None;
        if let (Some(bind), Some(endpoint)) = (&config.metrics.bind, endpoint) {
            let listener = TcpListener::bind(bind).map_err(|source| StartError::Bind {
                addr: bind.clone(),
                source,
            })?;
            let addr = listener.local_addr().map_err(|source| StartError::Bind {
                addr: bind.clone(),
                source,
            })?;
            let app = move || {
                App::new()
                    .app_data(endpoint.clone())
                    .configure(metrics::mount)
                    .default_service(web::to(|| async {
                        Err::<actix_web::HttpResponse, _>(ApiError::NotFound)
                    }))
            };
            builder = serve(
                builder,
                listener,
                app,
                timeouts,
                workers,
                descriptors.per_worker,
            )?;
            metrics_port = Some(addr.port());
            log::info!("metrics on http://{addr}{}", metrics::PATH);
        }
        let server = builder
            .shutdown_signal(stop_signal().map_err(StartError::Signals)?)
            .run();
        reload_signal(reload_on_hangup).map_err(StartError::Signals)?;
        log::info!(
            "inquiryd listening on {}",
            config.server.bind.replace(":0", &format!(":{port}"))
        );
        Ok(Application {
            server,
            port,
            metrics_port,
            _poller: poller,
            _checkpointer: checkpointer,
            _audit_pruner: audit_pruner,
            _audit_sink_pool: audit_sink_pool,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener, when `[metrics] bind` gave it one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/Ctrl-C (or a handle's stop); in-flight requests finish first.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server, _poller, ..
        } = self;
        server.await
    }
}

/// Records the plugin file changes the watcher acts on in the audit trail (actor `watcher`): the
/// file, the SHA-256 of the version before and of the one read, and the outcome. A failure to
/// record is logged; the reload itself stands.
fn audit_plugin_changes(pool: std::sync::Weak<db::Pool>) -> crate::plugins::watcher::ChangeSink {
    use crate::plugins::watcher::ChangeOutcome;
    Box::new(move |changes| {
        // After the server stopped there is nothing to record into.
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let mut conn = match pool.get() {
            Ok(conn) => conn,
            Err(e) => {
                log::error!("audit: plugin changes not recorded: database pool: {e}");
                return;
            }
        };
        let result = crate::admin::in_transaction(&mut conn, |tx| {
            for c in changes {
                let (kind, error) = match &c.outcome {
                    ChangeOutcome::Applied => ("plugin.applied", None),
                    ChangeOutcome::Rejected(e) => ("plugin.rejected", Some(first_chars(e, 2_000))),
                    ChangeOutcome::Removed => ("plugin.removed", None),
                };
                let before = c
                    .old_sha256
                    .as_ref()
                    .map(|h| serde_json::json!({"sha256": h}));
                let after = match (&c.new_sha256, error) {
                    (Some(h), None) => Some(serde_json::json!({"sha256": h})),
                    (Some(h), Some(e)) => Some(serde_json::json!({"sha256": h, "error": e})),
                    (None, _) => None,
                };
                crate::admin::audit::record(
                    tx,
                    &crate::admin::Actor::Watcher,
                    kind,
                    &c.file,
                    before.as_ref(),
                    after.as_ref(),
                )?;
            }
            Ok(())
        });
        if let Err(e) = result {
            log::error!("audit: plugin changes not recorded: {e}");
        }
    })
}

/// At most `n` characters of `text`: a file with many errors keeps one bounded audit record (the
/// log has them all).
fn first_chars(text: &str, n: usize) -> &str {
    text.char_indices()
        .nth(n)
        .map_or(text, |(at, _)| &text[..at])
}

/// Prunes the audit trail now and then daily (`[audit] retention_days`; 0 keeps everything and
/// starts no thread). A failure is logged and the next round tries again.
fn spawn_audit_pruner(pool: &db::Pool, retention_days: u32) -> std::io::Result<Option<Periodic>> {
    if retention_days == 0 {
        return Ok(None);
    }
    let prune = {
        let pool = pool.clone();
        move || {
            let pruned = pool.get().map_err(|e| e.to_string()).and_then(|c| {
                crate::admin::audit::prune(&c, retention_days).map_err(|e| e.to_string())
            });
            match pruned {
                Ok(0) => {}
                Ok(n) => log::info!("audit: pruned {n} record(s) older than {retention_days} days"),
                Err(e) => log::error!("audit: pruning failed (tried again tomorrow): {e}"),
            }
            true
        }
    };
    let first = prune.clone();
    first();
    Periodic::spawn("audit-pruner", Duration::from_secs(86_400), prune).map(Some)
}

/// Completes on the first SIGTERM or SIGINT, after which the server stops gracefully (in-flight
/// requests finish). The handlers are installed here, at build time: actix installs its own only
/// when the server is first polled, after the "listening" line, so a SIGTERM right after that line
/// killed the process outright; and actix treats SIGINT as a forced stop. Must be called within
/// the actix (tokio) runtime, as [`Application::build`] is.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        let which = futures_util::future::select(Box::pin(term.recv()), Box::pin(int.recv())).await;
        let name = match which {
            futures_util::future::Either::Left(_) => "SIGTERM",
            futures_util::future::Either::Right(_) => "SIGINT",
        };
        log::info!("{name} received: finishing in-flight requests, then stopping");
    })
}

/// On each SIGHUP (`systemctl reload`), rescans the plugins directory at once and logs the outcome;
/// nothing else is reloaded (the configuration is read at start only). Without this handler
/// SIGHUP's default action ended the process. Call it within the actix (tokio) runtime.
fn reload_signal(plugins: Arc<PluginHost>) -> std::io::Result<()> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    actix_web::rt::spawn(async move {
        while hangup.recv().await.is_some() {
            let plugins = plugins.clone();
            let rescanned = actix_web::rt::task::spawn_blocking(move || {
                plugins.reload_settled();
                plugins.reload_status()
            })
            .await;
            match rescanned {
                Ok(status) if status.success => {
                    log::info!("SIGHUP received: plugins rescanned, every file valid")
                }
                Ok(status) => log::warn!(
                    "SIGHUP received: plugins rescanned, {} file(s) in error (their last good version stays in force; see /health)",
                    status.files_in_error
                ),
                Err(e) => log::error!("SIGHUP received: plugins rescan failed: {e}"),
            }
        }
    });
    Ok(())
}

/// This worker's reader, with a timer that ends its read snapshot when the worker is idle. Called
/// once per worker, on the worker's own runtime.
fn worker_reader(
    (path, watch): &(std::path::PathBuf, Arc<db::file::DbWatch>),
) -> std::rc::Rc<WorkerReader> {
    let reader = std::rc::Rc::new(WorkerReader::new(path.clone(), Some(watch.clone())));
    let weak = std::rc::Rc::downgrade(&reader);
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(crate::db::reader::SNAPSHOT_AGE);
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(reader) => reader.release_stale(),
                None => break,
            }
        }
    });
    reader
}

/// The server, assembled from actix-web's parts as `HttpServer` does, except that each accepted
/// socket is wrapped in a [`GuardedStream`]: the HTTP/1 dispatcher leaves stages of a connection
/// untimed (see `crate::conn`). The guard times request heads, so actix's own head timer (which
/// answers 408 without a body) is off. Connections past `per_worker` per worker wait in the
/// listen queue rather than exhaust descriptors. `builder` is fresh from `Server::build`: the app
/// already holds its graceful-stop signal (see `ReadBodyFirst`).
fn serve<F, S, B>(
    builder: actix_server::ServerBuilder,
    listener: TcpListener,
    app: F,
    timeouts: Timeouts,
    workers: usize,
    per_worker: usize,
) -> Result<actix_server::ServerBuilder, StartError>
where
    F: Fn() -> App<S> + Send + Clone + 'static,
    S: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: actix_web::body::MessageBody + 'static,
{
    use actix_service::{ServiceFactoryExt as _, fn_service, map_config};
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: "the bound listener".into(),
        source,
    })?;
    let builder = builder
        .workers(workers)
        .max_concurrent_connections(per_worker)
        .shutdown_timeout(10);
    let graceful = builder.graceful_shutdown_signal();
    let keep_alive = if timeouts.keep_alive.is_zero() {
        actix_http::KeepAlive::Disabled
    } else {
        actix_http::KeepAlive::Timeout(timeouts.keep_alive)
    };
    builder
        .listen("inquiryd", listener, move || {
            let graceful = graceful.clone();
            let http = actix_http::HttpService::build()
                .graceful_shutdown_signal(move || {
                    let graceful = graceful.clone();
                    async move { graceful.notified().await }
                })
                .keep_alive(keep_alive)
                .client_request_timeout(Duration::ZERO)
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .finish(map_config(
                    actix_service::IntoServiceFactory::into_factory(app())
                        .map_err(|err| err.error_response()),
                    |_| actix_web::dev::AppConfig::default(),
                ));
            fn_service(move |io: actix_web::rt::net::TcpStream| async move {
                let peer = io.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((
                    GuardedStream::new(io, timeouts),
                    actix_http::Protocol::Http1,
                    peer,
                ))
            })
            .and_then(http)
        })
        .map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })
}

fn start_plugins(config: &Config) -> Result<Arc<PluginHost>, StartError> {
    let dir = &config.plugins.dir;
    if !dir.is_dir() {
        if config.plugins.dir_is_default {
            std::fs::create_dir_all(dir).map_err(|e| {
                StartError::PluginsDirMissing(format!("{}: cannot create: {e}", dir.display()))
            })?;
            log::info!("plugins: created empty directory {}", dir.display());
        } else {
            return Err(StartError::PluginsDirMissing(dir.display().to_string()));
        }
    }
    PluginHost::start(dir.clone(), config.plugins.watch)
        .map_err(|errs| StartError::Plugins(errs.iter().map(|e| e.to_string()).collect()))
}

/// Seeds the demo user, token and inquiry once per database (an admin's later revocation sticks).
fn seed_demo(pool: &Pool, ttl_days: u32) -> Result<(), StartError> {
    let seed_err = |e: String| StartError::Seed(e);
    let mut conn = pool.get().map_err(|e| seed_err(e.to_string()))?;
    if db::meta_get(&conn, "demo_seeded")
        .map_err(|e| seed_err(e.to_string()))?
        .is_some()
    {
        return Ok(());
    }
    let records = crate::import::parse(DEMO_INQUIRIES)
        .map_err(|e| seed_err(format!("bundled demo inquiries: {}", e[0])))?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| seed_err(e.to_string()))?;
    let result = (|| -> rusqlite::Result<()> {
        tx.execute(
            "INSERT OR IGNORE INTO users (id, username, name, password_hash, active, created_at)
             VALUES (?1, ?2, 'Demo Agent', NULL, 1, ?3)",
            rusqlite::params![DEMO_USER_ID, DEMO_USERNAME, db::now_secs()],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO user_roles (user_id, role) VALUES (?1, 'livechat-agent')",
            [DEMO_USER_ID],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO tokens (hashed_token, user_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                tokens::hash(DEMO_TOKEN).as_str(),
                DEMO_USER_ID,
                db::now_secs(),
                db::now_secs() + i64::from(ttl_days) * 86_400
            ],
        )?;
        db::inquiries::upsert_all(&tx, &records)?;
        db::meta_set(&tx, "demo_seeded", "1")?;
        Ok(())
    })();
    result
        .and_then(|()| tx.commit())
        .map_err(|e| seed_err(e.to_string()))?;
    log::info!("demo: seeded user {DEMO_USERNAME:?}, its token and the demo inquiry");
    Ok(())
}
