//! Configuration: one serde tree read from `config.toml`, then overridden by `INQUIRYD_*`
//! environment variables, then by command-line flags. Unknown keys in the file are an error that
//! names the key; a mistyped `INQUIRYD_*` variable is an error too, so a typo never silently falls
//! back to a default. Relative paths in the file are resolved against the file's own directory,
//! relative paths from the environment or flags against the working directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the server and the CLI need to know, after layering.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub plugins: PluginsConfig,
    pub auth: AuthConfig,
    pub demo: DemoConfig,
    pub audit: AuditConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    /// The file these settings were read from; `None` when no file was (built-in defaults, then
    /// the environment and flags). Logged at every start.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:3000` (port 0 picks a free port).
    pub bind: String,
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Seconds a client has to send a request's head (request line and headers), from its first
    /// byte; a late one gets a 408.
    pub request_timeout_secs: u64,
    /// Seconds a client has to send a request's body, in total, once the head is in; a late one
    /// gets a 408.
    pub body_timeout_secs: u64,
    /// Seconds a response may wait for a client that does not read it before the connection closes.
    pub send_timeout_secs: u64,
    /// Seconds an idle kept-alive connection stays open; 0 closes each connection after its answer.
    pub keep_alive_secs: u64,
    /// Concurrent connections; 0 derives the limit from the open-file limit (see README).
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub path: PathBuf,
    pub pool_size: u32,
    /// Whether `path` is the default `data/inquiryd.sqlite3` (beside the config file, if one was
    /// read), whose directory is created when missing; the directory of a path named by the
    /// operator must exist, so a typo is refused rather than served as a new, empty database.
    #[serde(skip)]
    pub path_is_default: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    pub dir: PathBuf,
    pub watch: bool,
    /// Whether `dir` is the default `plugins` (beside the config file, if one was read), which
    /// the server creates empty when missing; a directory named by the operator must exist.
    #[serde(skip)]
    pub dir_is_default: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub token_ttl_days: u32,
    /// Failed logins allowed per username within the window.
    pub login_max_failures: u32,
    /// Failed logins allowed per client address within the window.
    pub login_max_failures_per_address: u32,
    pub login_window_secs: u64,
    /// Password verifications run at once (each holds 19 MiB of argon2 memory).
    pub login_concurrency: usize,
    /// How long a login waits for a free verification slot before it gets a 429.
    pub login_wait_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Days the audit trail keeps a record; older ones are pruned at start and daily. 0 keeps all.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: crate::admin::audit::DEFAULT_RETENTION_DAYS,
        }
    }
}

/// `GET /metrics` (Prometheus text format).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Its own address (e.g. `127.0.0.1:9300`), and then only there; unset, the main listener
    /// serves `/metrics`.
    pub bind: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            bind: None,
        }
    }
}

/// What the access log (`inquiryd::access`, at info) records.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub access: AccessLog,
    /// With `access = "errors"`, a request that took at least this long is logged too (0: none).
    pub slow_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            access: AccessLog::All,
            slow_ms: 1000,
        }
    }
}

/// The access log's modes.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// One line per request.
    All,
    /// Only answers with a status of 400 or more, and requests slower than `slow_ms`.
    Errors,
    /// None.
    Off,
}

impl std::str::FromStr for AccessLog {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(AccessLog::All),
            "errors" => Ok(AccessLog::Errors),
            "off" => Ok(AccessLog::Off),
            _ => Err(format!(
                "expected \"all\", \"errors\" or \"off\", got {s:?}"
            )),
        }
    }
}

pub const DEFAULT_DB_PATH: &str = "data/inquiryd.sqlite3";
pub const DEFAULT_PLUGINS_DIR: &str = "plugins";

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:3000".into(),
            workers: 0,
            request_timeout_secs: 10,
            body_timeout_secs: 10,
            send_timeout_secs: 10,
            keep_alive_secs: 5,
            max_connections: 0,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: DEFAULT_DB_PATH.into(),
            pool_size: 8,
            path_is_default: true,
        }
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: DEFAULT_PLUGINS_DIR.into(),
            watch: true,
            dir_is_default: true,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_ttl_days: 90,
            login_max_failures: 10,
            login_max_failures_per_address: 50,
            login_window_secs: 300,
            login_concurrency: 2,
            login_wait_ms: 250,
        }
    }
}

/// A configuration problem; the CLI maps it to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// Where the configuration file came from: the default `./config.toml` may be absent (built-in
/// defaults apply), an explicitly named file must exist.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    Default(PathBuf),
    Explicit(PathBuf),
}

/// Flags that override both the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub bind: Option<String>,
    pub db: Option<PathBuf>,
    pub plugins: Option<PathBuf>,
    pub workers: Option<usize>,
}

impl Config {
    /// Loads file → environment → flags. On failure, the error names the file, key or variable.
    pub fn load(source: &ConfigSource, overrides: &Overrides) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self::load_with_env(source, overrides, &vars)
    }

    /// As [`Config::load`], with the environment given explicitly (testable without globals).
    pub fn load_with_env(
        source: &ConfigSource,
        overrides: &Overrides,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut config = match source {
            ConfigSource::Default(path) if !path.exists() => Config::default(),
            ConfigSource::Default(path) | ConfigSource::Explicit(path) => Self::from_file(path)?,
        };
        config.apply_env(env)?;
        if let Some(bind) = &overrides.bind {
            config.server.bind = bind.clone();
        }
        if let Some(db) = &overrides.db {
            config.database.path = db.clone();
            config.database.path_is_default = db == Path::new(DEFAULT_DB_PATH);
        }
        if let Some(dir) = &overrides.plugins {
            config.plugins.dir = dir.clone();
            config.plugins.dir_is_default = false;
        }
        if let Some(workers) = overrides.workers {
            config.server.workers = workers;
        }
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let read = |path: &Path| -> std::io::Result<String> {
            use std::io::Read;
            let mut text = String::new();
            crate::regular::open(path)?.read_to_string(&mut text)?;
            Ok(text)
        };
        let text = read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            // Laid out as the toml crate does (the line, a caret under the place, the cause).
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.file = Some(path.to_path_buf());
        // Paths in the file are relative to the file, so `inquiryd --config /etc/x/config.toml`
        // works from any directory.
        let base = path.parent().unwrap_or(Path::new(""));
        config.plugins.dir_is_default = config.plugins.dir == Path::new(DEFAULT_PLUGINS_DIR);
        config.database.path_is_default = config.database.path == Path::new(DEFAULT_DB_PATH);
        for p in [&mut config.database.path, &mut config.plugins.dir] {
            if p.is_relative() && !base.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    fn apply_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        for (name, value) in env {
            let Some(key) = name.strip_prefix("INQUIRYD_") else {
                continue;
            };
            let err = |message: String| ConfigError::Env {
                name: name.clone(),
                message,
            };
            let parse_u64 = |v: &str| {
                v.parse::<u64>()
                    .map_err(|e| err(format!("expected a whole number: {e}")))
            };
            let parse_u32 = |v: &str| {
                v.parse::<u32>()
                    .map_err(|e| err(format!("expected a whole number: {e}")))
            };
            match key {
                // INQUIRYD_CONFIG is read by clap, INQUIRYD_LOG by main (as RUST_LOG is).
                "CONFIG" | "LOG" => {}
                // A short name for INQUIRYD_DATABASE_PATH; both at once is ambiguous.
                "DB" => {
                    if env.iter().any(|(n, _)| n == "INQUIRYD_DATABASE_PATH") {
                        return Err(err(
                            "INQUIRYD_DATABASE_PATH is set too; set only one of them".into(),
                        ));
                    }
                    self.database.path = value.into()
                }
                "AUDIT_RETENTION_DAYS" => self.audit.retention_days = parse_u32(value)?,
                "SERVER_BIND" => self.server.bind = value.clone(),
                "SERVER_WORKERS" => {
                    self.server.workers = value
                        .parse()
                        .map_err(|e| err(format!("expected a whole number: {e}")))?
                }
                "SERVER_REQUEST_TIMEOUT_SECS" => {
                    self.server.request_timeout_secs = parse_u64(value)?
                }
                "SERVER_BODY_TIMEOUT_SECS" => self.server.body_timeout_secs = parse_u64(value)?,
                "SERVER_SEND_TIMEOUT_SECS" => self.server.send_timeout_secs = parse_u64(value)?,
                "SERVER_KEEP_ALIVE_SECS" => self.server.keep_alive_secs = parse_u64(value)?,
                "SERVER_MAX_CONNECTIONS" => {
                    self.server.max_connections = parse_u64(value)? as usize
                }
                "DATABASE_PATH" => {
                    self.database.path = value.into();
                    self.database.path_is_default = value == DEFAULT_DB_PATH;
                }
                "DATABASE_POOL_SIZE" => self.database.pool_size = parse_u32(value)?,
                "PLUGINS_DIR" => {
                    self.plugins.dir = value.into();
                    self.plugins.dir_is_default = false;
                }
                "PLUGINS_WATCH" => self.plugins.watch = parse_bool(value).map_err(err)?,
                "AUTH_TOKEN_TTL_DAYS" => self.auth.token_ttl_days = parse_u32(value)?,
                "AUTH_LOGIN_MAX_FAILURES" => self.auth.login_max_failures = parse_u32(value)?,
                "AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS" => {
                    self.auth.login_max_failures_per_address = parse_u32(value)?
                }
                "AUTH_LOGIN_WINDOW_SECS" => {
                    self.auth.login_window_secs = value
                        .parse()
                        .map_err(|e| err(format!("expected a whole number: {e}")))?
                }
                "AUTH_LOGIN_CONCURRENCY" => {
                    self.auth.login_concurrency = value
                        .parse()
                        .map_err(|e| err(format!("expected a whole number: {e}")))?
                }
                "AUTH_LOGIN_WAIT_MS" => {
                    self.auth.login_wait_ms = value
                        .parse()
                        .map_err(|e| err(format!("expected a whole number: {e}")))?
                }
                "DEMO_ENABLED" => self.demo.enabled = parse_bool(value).map_err(err)?,
                "METRICS_ENABLED" => self.metrics.enabled = parse_bool(value).map_err(err)?,
                "METRICS_BIND" => self.metrics.bind = Some(value.clone()).filter(|v| !v.is_empty()),
                "LOG_ACCESS" => self.log.access = value.parse().map_err(err)?,
                "LOG_SLOW_MS" => self.log.slow_ms = parse_u64(value)?,
                _ => return Err(err("unknown setting (see config.toml for the keys)".into())),
            }
        }
        Ok(())
    }

    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.bind.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "server.bind: {:?} is not an address like 127.0.0.1:3000",
                self.server.bind
            )));
        }
        for (key, secs) in [
            (
                "server.request_timeout_secs",
                self.server.request_timeout_secs,
            ),
            ("server.body_timeout_secs", self.server.body_timeout_secs),
            ("server.send_timeout_secs", self.server.send_timeout_secs),
        ] {
            if !(1..=3600).contains(&secs) {
                return Err(ConfigError::Invalid(format!(
                    "{key}: must be between 1 and 3600"
                )));
            }
        }
        if self.server.keep_alive_secs > 3600 {
            return Err(ConfigError::Invalid(
                "server.keep_alive_secs: must be at most 3600".into(),
            ));
        }
        if self.database.pool_size == 0 || self.database.pool_size > 256 {
            return Err(ConfigError::Invalid(
                "database.pool_size: must be between 1 and 256".into(),
            ));
        }
        if self.auth.token_ttl_days == 0 {
            return Err(ConfigError::Invalid(
                "auth.token_ttl_days: must be at least 1".into(),
            ));
        }
        if self.auth.login_max_failures == 0 || self.auth.login_max_failures_per_address == 0 {
            return Err(ConfigError::Invalid(
                "auth.login_max_failures: must be at least 1".into(),
            ));
        }
        if self.auth.login_window_secs == 0 {
            return Err(ConfigError::Invalid(
                "auth.login_window_secs: must be at least 1".into(),
            ));
        }
        // Each tracked key keeps one timestamp per counted failure.
        for (key, value) in [
            ("login_max_failures", self.auth.login_max_failures),
            (
                "login_max_failures_per_address",
                self.auth.login_max_failures_per_address,
            ),
        ] {
            if value > 10_000 {
                return Err(ConfigError::Invalid(format!(
                    "auth.{key}: must be at most 10000"
                )));
            }
        }
        if !(1..=64).contains(&self.auth.login_concurrency) {
            return Err(ConfigError::Invalid(
                "auth.login_concurrency: must be between 1 and 64".into(),
            ));
        }
        if let Some(bind) = &self.metrics.bind {
            if bind.parse::<SocketAddr>().is_err() {
                return Err(ConfigError::Invalid(format!(
                    "metrics.bind: {bind:?} is not an address like 127.0.0.1:9300"
                )));
            }
            if *bind == self.server.bind && !bind.ends_with(":0") {
                return Err(ConfigError::Invalid(format!(
                    "metrics.bind: {bind:?} is server.bind too (leave metrics.bind out to serve /metrics there)"
                )));
            }
        }
        if self.auth.login_wait_ms > 10_000 {
            return Err(ConfigError::Invalid(
                "auth.login_wait_ms: must be at most 10000".into(),
            ));
        }
        Ok(())
    }

    /// Refuses a database path whose directory does not exist, unless the path is the default
    /// (whose directory is created): a typo in the path must not start a new, empty database
    /// in which the admin's users have "vanished". The same rule as the plugins directory's.
    pub fn check_database_dir(&self) -> Result<(), ConfigError> {
        let path = &self.database.path;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if self.database.path_is_default || dir.is_dir() {
            return Ok(());
        }
        Err(ConfigError::Invalid(format!(
            "database.path: {}: directory {} does not exist (create it first, or check the path \
             for a typo; only the default {DEFAULT_DB_PATH}'s directory is created)",
            path.display(),
            dir.display()
        )))
    }

    /// What to log at start about where the settings came from.
    pub fn file_in_force(&self) -> String {
        match &self.file {
            Some(path) => {
                let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                format!("config file: {}", shown.display())
            }
            None => "no config file: defaults, then INQUIRYD_* environment variables and flags"
                .to_string(),
        }
    }

    /// The connection deadlines of `[server]`.
    pub fn timeouts(&self) -> crate::conn::Timeouts {
        crate::conn::Timeouts {
            request: Duration::from_secs(self.server.request_timeout_secs),
            body: Duration::from_secs(self.server.body_timeout_secs),
            send: Duration::from_secs(self.server.send_timeout_secs),
            keep_alive: Duration::from_secs(self.server.keep_alive_secs),
        }
    }

    /// The worker count to run with: the configured one, or one per core.
    pub fn workers(&self) -> usize {
        if self.server.workers > 0 {
            self.server.workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

/// `config check`: loads the configuration as a command would (file, then `INQUIRYD_*`
/// variables, then flags), checks it as `serve` does, and lays it out as TOML, each value with
/// where it came from: `default`, `file PATH`, `environment NAME` or `flag --NAME`.
pub fn explain(source: &ConfigSource, overrides: &Overrides) -> Result<String, ConfigError> {
    let config = Config::load(source, overrides)?;
    config.check_database_dir()?;
    if !config.plugins.dir_is_default && !config.plugins.dir.is_dir() {
        return Err(ConfigError::Invalid(format!(
            "plugins.dir: {}: does not exist (create it, or point [plugins] dir at one)",
            config.plugins.dir.display()
        )));
    }
    let in_file: toml::Table = match &config.file {
        Some(path) => std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_default(),
        None => toml::Table::new(),
    };
    let flag = |section: &str, key: &str| -> Option<&'static str> {
        match (section, key) {
            ("server", "bind") if overrides.bind.is_some() => Some("--bind"),
            ("server", "workers") if overrides.workers.is_some() => Some("--workers"),
            ("database", "path") if overrides.db.is_some() => Some("--db"),
            ("plugins", "dir") if overrides.plugins.is_some() => Some("--plugins"),
            _ => None,
        }
    };
    let effective = toml::Table::try_from(&config)
        .map_err(|e| ConfigError::Invalid(format!("cannot lay out: {e}")))?;
    let mut out = format!(
        "# {}
",
        config.file_in_force()
    );
    for (section, table) in &effective {
        let Some(table) = table.as_table() else {
            continue;
        };
        out.push_str(&format!("\n[{section}]\n"));
        let lines: Vec<(String, String)> = table
            .iter()
            .map(|(key, value)| {
                let env = format!(
                    "INQUIRYD_{}_{}",
                    section.to_ascii_uppercase(),
                    key.to_ascii_uppercase()
                );
                let origin = if let Some(f) = flag(section, key) {
                    format!("flag {f}")
                } else if std::env::var_os(&env).is_some() {
                    format!("environment {env}")
                } else if in_file.get(section).and_then(|t| t.get(key)).is_some() {
                    let path = config.file.as_deref().unwrap_or(Path::new("?"));
                    format!("file {}", path.display())
                } else {
                    "default".to_string()
                };
                (format!("{key} = {value}"), origin)
            })
            .collect();
        let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for (line, origin) in lines {
            out.push_str(&format!("{line:<width$}  # {origin}\n"));
        }
    }
    Ok(out)
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn unknown_key_is_named() {
        let (_d, path) = write("[server]\nbnd = \"x\"\n");
        let err = Config::load_with_env(&ConfigSource::Explicit(path), &Overrides::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bnd"), "{err}");
        assert!(err.contains("config.toml"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let (_d, path) = write("[server]\nbind = \"127.0.0.1:1\"\n[auth]\ntoken_ttl_days = 5\n");
        let env = vec![
            (
                "INQUIRYD_SERVER_BIND".to_string(),
                "127.0.0.1:2".to_string(),
            ),
            ("INQUIRYD_AUTH_TOKEN_TTL_DAYS".to_string(), "7".to_string()),
        ];
        let flags = Overrides {
            bind: Some("127.0.0.1:3".into()),
            ..Default::default()
        };
        let c = Config::load_with_env(&ConfigSource::Explicit(path), &flags, &env).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:3");
        assert_eq!(c.auth.token_ttl_days, 7);
    }

    /// INQUIRYD_DB names the database, as INQUIRYD_DATABASE_PATH does; both at once is refused.
    #[test]
    fn inquiryd_db_names_the_database_and_both_names_are_refused() {
        let none = ConfigSource::Default(PathBuf::from("/nonexistent/config.toml"));
        let env = vec![("INQUIRYD_DB".to_string(), "other.sqlite3".to_string())];
        let c = Config::load_with_env(&none, &Overrides::default(), &env).unwrap();
        assert_eq!(c.database.path, PathBuf::from("other.sqlite3"));
        let both = vec![
            ("INQUIRYD_DB".to_string(), "a.sqlite3".to_string()),
            (
                "INQUIRYD_DATABASE_PATH".to_string(),
                "b.sqlite3".to_string(),
            ),
        ];
        let err = Config::load_with_env(&none, &Overrides::default(), &both)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("INQUIRYD_DB") && err.contains("only one"),
            "{err}"
        );
    }

    #[test]
    fn mistyped_env_var_is_an_error() {
        let env = vec![("INQUIRYD_SERVER_BINDD".to_string(), "x".to_string())];
        let err = Config::load_with_env(
            &ConfigSource::Default("/nonexistent/config.toml".into()),
            &Overrides::default(),
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("INQUIRYD_SERVER_BINDD"), "{err}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let (d, path) = write("[database]\npath = \"x/db.sqlite3\"\n");
        let c = Config::load_with_env(&ConfigSource::Explicit(path), &Overrides::default(), &[])
            .unwrap();
        assert_eq!(c.database.path, d.path().join("x/db.sqlite3"));
    }

    #[test]
    fn login_slots_are_configurable_and_bounded() {
        let env = vec![
            (
                "INQUIRYD_AUTH_LOGIN_CONCURRENCY".to_string(),
                "4".to_string(),
            ),
            ("INQUIRYD_AUTH_LOGIN_WAIT_MS".to_string(), "100".to_string()),
        ];
        let none = ConfigSource::Default("/nonexistent/config.toml".into());
        let c = Config::load_with_env(&none, &Overrides::default(), &env).unwrap();
        assert_eq!((c.auth.login_concurrency, c.auth.login_wait_ms), (4, 100));
        for (name, value, key) in [
            (
                "INQUIRYD_AUTH_LOGIN_CONCURRENCY",
                "0",
                "auth.login_concurrency",
            ),
            ("INQUIRYD_AUTH_LOGIN_WAIT_MS", "60000", "auth.login_wait_ms"),
            (
                "INQUIRYD_AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS",
                "1000000",
                "auth.login_max_failures_per_address",
            ),
        ] {
            let env = vec![(name.to_string(), value.to_string())];
            let err = Config::load_with_env(&none, &Overrides::default(), &env)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn metrics_and_access_log_settings_come_from_file_and_env_and_bad_values_are_named() {
        let (_d, path) = write(
            "[metrics]\nenabled = false\nbind = \"127.0.0.1:9300\"\n[log]\naccess = \"errors\"\nslow_ms = 250\n",
        );
        let c = Config::load_with_env(&ConfigSource::Explicit(path), &Overrides::default(), &[])
            .unwrap();
        assert!(!c.metrics.enabled);
        assert_eq!(c.metrics.bind.as_deref(), Some("127.0.0.1:9300"));
        assert_eq!((c.log.access, c.log.slow_ms), (AccessLog::Errors, 250));
        let none = ConfigSource::Default("/nonexistent/config.toml".into());
        let env = vec![("INQUIRYD_LOG_ACCESS".to_string(), "off".to_string())];
        let c = Config::load_with_env(&none, &Overrides::default(), &env).unwrap();
        assert_eq!(c.log.access, AccessLog::Off);
        let (_d, path) = write("[log]\naccess = \"some\"\n");
        let err = Config::load_with_env(&ConfigSource::Explicit(path), &Overrides::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("access") && err.contains("errors"), "{err}");
        for (name, value, key) in [
            ("INQUIRYD_LOG_ACCESS", "most", "INQUIRYD_LOG_ACCESS"),
            ("INQUIRYD_METRICS_BIND", "localhost", "metrics.bind"),
            (
                "INQUIRYD_METRICS_ENABLED",
                "maybe",
                "INQUIRYD_METRICS_ENABLED",
            ),
        ] {
            let env = vec![(name.to_string(), value.to_string())];
            let err = Config::load_with_env(&none, &Overrides::default(), &env)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn connection_deadlines_come_from_file_and_env_and_zero_is_refused() {
        let (_d, path) = write("[server]\nrequest_timeout_secs = 3\nmax_connections = 500\n");
        let env = vec![(
            "INQUIRYD_SERVER_BODY_TIMEOUT_SECS".to_string(),
            "4".to_string(),
        )];
        let c = Config::load_with_env(&ConfigSource::Explicit(path), &Overrides::default(), &env)
            .unwrap();
        let t = c.timeouts();
        assert_eq!(t.request, Duration::from_secs(3));
        assert_eq!(t.body, Duration::from_secs(4));
        assert_eq!(t.send, Duration::from_secs(10));
        assert_eq!(c.server.max_connections, 500);
        let (_d, path) = write("[server]\nbody_timeout_secs = 0\n");
        let err = Config::load_with_env(&ConfigSource::Explicit(path), &Overrides::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.body_timeout_secs"), "{err}");
    }
}
