//! The command line (clap): `serve` and the admin commands. Each command is a thin call into the
//! library, so the CLI and the server share one implementation of every rule. Exit codes: 0 ok,
//! 1 runtime failure, 2 bad usage or bad configuration.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::admin;
use crate::app::Application;
use crate::auth::{passwords, tokens};
use crate::config::{Config, ConfigSource, Overrides};
use crate::db;
use crate::model::UserId;

const ABOUT: &str = "Rocket.Chat's livechat inquiry endpoint, served offline from SQLite";
const LONG_ABOUT: &str = "\
inquiryd serves Rocket.Chat's GET /api/v1/livechat/inquiries.getOne (plus login, logout, me, info
and Rocket.Chat's permissions and roles admin routes) from one SQLite file, with its own users,
login tokens, roles and permissions, an audit trail of every change, and plugin hooks that enrich
or redact responses.

With no command, `inquiryd` runs `serve` with ./config.toml.
Changes made with these commands reach a running server within a second.";

#[derive(Debug, Parser)]
#[command(name = "inquiryd", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Configuration file [default: ./config.toml, optional]
    #[arg(long, global = true, value_name = "FILE", env = "INQUIRYD_CONFIG")]
    pub config: Option<PathBuf>,
    /// SQLite database file (overrides [database] path)
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default command)
    Serve(ServeArgs),
    /// Add, list, activate, deactivate users and set their roles
    #[command(subcommand)]
    User(UserCommand),
    /// Create or revoke login tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// List, grant or revoke role permissions
    #[command(subcommand)]
    Permission(PermissionCommand),
    /// List, add or remove roles (custom roles; Rocket.Chat's own are protected)
    #[command(subcommand)]
    Role(RoleCommand),
    /// Import or list livechat inquiries
    #[command(subcommand)]
    Inquiry(InquiryCommand),
    /// Print the audit trail: who changed what, oldest first
    ///
    /// Every change to users, roles, tokens and permissions (from the CLI or REST), every plugin
    /// file change the server's watcher acted on, and every import; oldest first, newest last,
    /// like a log.
    Audit(AuditArgs),
    /// Check plugin files, print their JSON Schema, preview a response
    #[command(subcommand)]
    Plugins(PluginsCommand),
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:3000 (overrides [server] bind)
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Plugins directory (overrides [plugins] dir)
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Worker threads, 0 = one per core (overrides [server] workers)
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  inquiryd audit --since 1h
  inquiryd audit --since 2026-12-01T09:00:00Z --actor alice --kind user
  inquiryd audit --kind plugin --json | jq .

Records older than [audit] retention_days (default 90) are not kept.")]
pub struct AuditArgs {
    /// Only records at or after TIME: RFC 3339 (2026-12-01T09:00:00Z), a date (2026-12-01,
    /// midnight UTC) or a span back from now (30m, 1h, 7d, 2w)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only changes by NAME: a REST username, the OS user of a CLI command, or `watcher`
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    /// Only records of kind K (e.g. user.roles), or of a family (user, role, token, permission,
    /// plugin, inquiry)
    #[arg(long, value_name = "K")]
    pub kind: Option<String>,
    /// One JSON object per line (the fields of GET /api/v1/inquiryd/audit.list's entries)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user
    Add {
        username: String,
        /// Display name [default: the username]
        #[arg(long)]
        name: Option<String>,
        /// A role, e.g. livechat-agent (repeatable)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Read the password from standard input (without it the user can only use tokens)
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users
    List,
    /// Deactivate a user: their tokens stop working at once
    Deactivate { username: String },
    /// Activate a user again
    Activate { username: String },
    /// Replace a user's roles
    SetRoles {
        username: String,
        #[arg(required = true, value_name = "ROLE")]
        roles: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a login token; prints {"userId":…,"authToken":…}
    Create { username: String },
    /// Revoke a user's tokens (all of them unless --token is given)
    Revoke {
        username: String,
        /// Revoke every token of the user (the default)
        #[arg(long, conflicts_with = "token")]
        all: bool,
        /// Revoke only this token
        // Tokens are base64url: one in 64 starts with '-', which must not read as a flag.
        #[arg(long, value_name = "TOKEN", allow_hyphen_values = true)]
        token: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PermissionCommand {
    /// List permissions and the roles that hold them
    List,
    /// Grant a permission to a role
    Grant { permission: String, role: String },
    /// Revoke a permission from a role
    Revoke { permission: String, role: String },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// List roles: name, scope, protected, description
    List,
    /// Add a custom role
    Add {
        name: String,
        /// Users (a global role) or Subscriptions (a per-room role)
        #[arg(long, default_value = "Users")]
        scope: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Remove a custom role no user and no permission refers to
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum InquiryCommand {
    /// Import inquiries from JSON array, NDJSON or mongoexport files (each file all-or-nothing)
    Import {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// List stored inquiries (room id, id, status)
    List,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Validate every plugin file; non-zero exit on any error
    Check {
        /// Plugins directory [default: from the configuration]
        dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of plugin files
    Schema,
    /// Print the getOne response a user would get, with the plugins on disk applied
    Preview {
        #[arg(long, value_name = "RID")]
        room: String,
        #[arg(long = "as", value_name = "USERNAME")]
        as_user: String,
    },
}

/// A failed command: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    fn runtime(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl From<db::DbError> for Failure {
    fn from(e: db::DbError) -> Self {
        Failure::runtime(e)
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::runtime(format!("database: {e}"))
    }
}

impl From<r2d2::Error> for Failure {
    fn from(e: r2d2::Error) -> Self {
        Failure::runtime(format!("database pool: {e}"))
    }
}

impl From<crate::admin::AdminError> for Failure {
    fn from(e: crate::admin::AdminError) -> Self {
        if e.is_usage() {
            Failure::usage(e.to_string())
        } else {
            Failure::runtime(e)
        }
    }
}

impl From<db::users::UserError> for Failure {
    fn from(e: db::users::UserError) -> Self {
        Failure::runtime(e)
    }
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match dispatch(cli) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("inquiryd: {}", f.message);
            f.code
        }
    }
}

fn load_config(cli: &Cli, serve: Option<&ServeArgs>) -> Result<Config, Failure> {
    let source = match &cli.config {
        Some(path) => ConfigSource::Explicit(path.clone()),
        None => ConfigSource::Default(PathBuf::from("config.toml")),
    };
    let overrides = Overrides {
        db: cli.db.clone(),
        bind: serve.and_then(|s| s.bind.clone()),
        plugins: serve.and_then(|s| s.plugins.clone()),
        workers: serve.and_then(|s| s.workers),
    };
    Config::load(&source, &overrides).map_err(|e| Failure::usage(e.to_string()))
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    let default_serve = ServeArgs::default();
    match &cli.command {
        None => serve(&cli, &default_serve),
        Some(Command::Serve(args)) => serve(&cli, args),
        Some(Command::Plugins(PluginsCommand::Schema)) => {
            let schema = serde_json::to_string_pretty(&crate::plugins::schema())
                .map_err(Failure::runtime)?;
            println!("{schema}");
            Ok(())
        }
        Some(Command::Plugins(PluginsCommand::Check { dir })) => {
            let dir = match dir {
                Some(d) => d.clone(),
                None => load_config(&cli, None)?.plugins.dir,
            };
            match crate::plugins::check_command(&dir) {
                0 => Ok(()),
                code => Err(Failure {
                    code,
                    message: format!("plugins check: {} has errors", dir.display()),
                }),
            }
        }
        Some(Command::Inquiry(InquiryCommand::Import { files })) => {
            let config = load_config(&cli, None)?;
            db::file::check_beside_server(&config.database.path)?;
            import(&config.database.path, files)
        }
        Some(command) => {
            let config = load_config(&cli, None)?;
            // Never a new or another database beside a server that has the old one open.
            db::file::check_beside_server(&config.database.path)?;
            let pool = db::open(&config.database.path, 2)?;
            admin(command, &config, &pool)
        }
    }
}

fn serve(cli: &Cli, args: &ServeArgs) -> Result<(), Failure> {
    let config = load_config(cli, Some(args))?;
    let system = actix_web::rt::System::new();
    system.block_on(async {
        let app = Application::build(&config).map_err(|e| Failure {
            code: e.exit_code(),
            message: e.to_string(),
        })?;
        app.run_until_stopped().await.map_err(Failure::runtime)?;
        log::info!("inquiryd stopped");
        Ok(())
    })
}

fn check_name(what: &str, value: &str) -> Result<(), Failure> {
    if admin::valid_name(value) {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "{what} {value:?}: {}",
            admin::NAME_RULE
        )))
    }
}

fn find_user(conn: &rusqlite::Connection, username: &str) -> Result<db::users::UserRow, Failure> {
    db::users::by_username(conn, username)?
        .ok_or_else(|| Failure::runtime(format!("no user named {username:?}")))
}

fn admin(command: &Command, config: &Config, pool: &db::Pool) -> Result<(), Failure> {
    let mut conn = pool.get()?;
    let actor = admin::Actor::cli();
    match command {
        Command::User(UserCommand::Add {
            username,
            name,
            roles,
            password_stdin,
        }) => {
            check_name("username", username)?;
            for role in roles {
                check_name("role", role)?;
            }
            let hash = if *password_stdin {
                let mut input = String::new();
                std::io::stdin()
                    .read_to_string(&mut input)
                    .map_err(|e| Failure::runtime(format!("reading password from stdin: {e}")))?;
                let password = input
                    .strip_suffix('\n')
                    .map(|p| p.strip_suffix('\r').unwrap_or(p))
                    .unwrap_or(&input);
                if password.is_empty() {
                    return Err(Failure::usage(
                        "--password-stdin: standard input held no password",
                    ));
                }
                Some(passwords::hash_password(password).map_err(Failure::runtime)?)
            } else {
                None
            };
            let id = UserId::random();
            let display = name.clone().unwrap_or_else(|| username.clone());
            admin::in_transaction(&mut conn, |tx| {
                admin::user_add(tx, &actor, &id, username, &display, hash.as_deref(), roles)
            })?;
            println!(
                "added user {username} (id {id}, roles: {})",
                if roles.is_empty() {
                    "none".to_string()
                } else {
                    roles.join(", ")
                }
            );
        }
        Command::User(UserCommand::List) => {
            println!(
                "{:<17}  {:<24}  {:<8}  {:<40}  NAME",
                "ID", "USERNAME", "ACTIVE", "ROLES"
            );
            for u in db::users::list(&conn)? {
                println!(
                    "{:<17}  {:<24}  {:<8}  {:<40}  {}",
                    u.id,
                    u.username,
                    if u.active { "yes" } else { "no" },
                    u.roles.join(","),
                    u.name
                );
            }
        }
        Command::User(UserCommand::Deactivate { username }) => {
            let revoked = admin::in_transaction(&mut conn, |tx| {
                admin::user_set_active(tx, &actor, username, false)
            })?;
            println!("deactivated user {username} (revoked {revoked} token(s))");
        }
        Command::User(UserCommand::Activate { username }) => {
            admin::in_transaction(&mut conn, |tx| {
                admin::user_set_active(tx, &actor, username, true)
            })?;
            println!("activated user {username}");
        }
        Command::User(UserCommand::SetRoles { username, roles }) => {
            for role in roles {
                check_name("role", role)?;
            }
            admin::in_transaction(&mut conn, |tx| {
                admin::user_set_roles(tx, &actor, username, roles)
            })?;
            println!("user {username} now has roles: {}", roles.join(", "));
        }
        Command::Token(TokenCommand::Create { username }) => {
            let user = find_user(&conn, username)?;
            if !user.active {
                eprintln!(
                    "inquiryd: warning: user {username:?} is deactivated; the token will not work until it is activated"
                );
            }
            let token = tokens::generate();
            let expires = db::now_secs() + i64::from(config.auth.token_ttl_days) * 86_400;
            admin::in_transaction(&mut conn, |tx| {
                admin::token_create(
                    tx,
                    &actor,
                    &user.id,
                    username,
                    &tokens::hash(&token),
                    expires,
                )
            })?;
            println!(
                "{}",
                serde_json::json!({"userId": user.id.as_str(), "authToken": token})
            );
        }
        Command::Token(TokenCommand::Revoke {
            username,
            all: _,
            token,
        }) => {
            find_user(&conn, username)?;
            match token {
                Some(t) => {
                    let hashed = tokens::hash(t);
                    let n = admin::in_transaction(&mut conn, |tx| {
                        admin::token_revoke(tx, &actor, username, Some(&hashed))
                    })?;
                    if n == 0 {
                        return Err(Failure::runtime(format!(
                            "user {username:?} has no such token"
                        )));
                    }
                    println!("revoked 1 token of {username}");
                }
                None => {
                    let n = admin::in_transaction(&mut conn, |tx| {
                        admin::token_revoke(tx, &actor, username, None)
                    })?;
                    println!("revoked {n} token(s) of {username}");
                }
            }
        }
        Command::Permission(PermissionCommand::List) => {
            for (permission, roles) in db::permissions::list(&conn)? {
                println!("{permission:<36} {}", roles.join(", "));
            }
        }
        Command::Permission(PermissionCommand::Grant { permission, role }) => {
            check_name("permission", permission)?;
            check_name("role", role)?;
            if admin::in_transaction(&mut conn, |tx| {
                admin::permission_grant(tx, &actor, permission, role)
            })? {
                println!("granted {permission} to {role}");
            } else {
                println!("{role} already holds {permission}");
            }
        }
        Command::Permission(PermissionCommand::Revoke { permission, role }) => {
            if admin::in_transaction(&mut conn, |tx| {
                admin::permission_revoke(tx, &actor, permission, role)
            })? {
                println!("revoked {permission} from {role}");
            } else {
                println!("{role} did not hold {permission}");
            }
        }
        Command::Role(RoleCommand::List) => {
            println!(
                "{:<24}  {:<13}  {:<9}  DESCRIPTION",
                "NAME", "SCOPE", "PROTECTED"
            );
            for r in db::roles::list(&conn)? {
                println!(
                    "{:<24}  {:<13}  {:<9}  {}",
                    r.name,
                    r.scope,
                    if r.protected { "yes" } else { "no" },
                    r.description
                );
            }
        }
        Command::Role(RoleCommand::Add {
            name,
            scope,
            description,
        }) => {
            check_name("role", name)?;
            admin::in_transaction(&mut conn, |tx| {
                admin::role_add(tx, &actor, name, scope, description)
            })?;
            println!("added role {name}");
        }
        Command::Role(RoleCommand::Remove { name }) => {
            admin::in_transaction(&mut conn, |tx| admin::role_remove(tx, &actor, name))?;
            println!("removed role {name}");
        }
        Command::Audit(args) => return audit(&conn, args, config.audit.retention_days),
        Command::Inquiry(InquiryCommand::List) => {
            // A row the server cannot serve is named on stderr and the rest listed: the listing
            // itself succeeded, so the exit code stays 0.
            println!("{:<24}  {:<24}  STATUS", "ROOM ID", "ID");
            let mut unservable = 0usize;
            crate::db::inquiries::for_each(&conn, |row| match row {
                crate::db::inquiries::Listed::Servable { id, rid, status } => {
                    println!("{rid:<24}  {id:<24}  {}", status.unwrap_or("-"));
                }
                crate::db::inquiries::Listed::Unservable(bad) => {
                    unservable += 1;
                    eprintln!("inquiryd: warning: {bad}");
                }
            })?;
            if unservable > 0 {
                eprintln!(
                    "inquiryd: warning: {unservable} stored inquir{} cannot be served (getOne answers 500 for their rooms) and {} not listed",
                    if unservable == 1 { "y" } else { "ies" },
                    if unservable == 1 { "is" } else { "are" }
                );
            }
        }
        Command::Plugins(PluginsCommand::Preview { room, as_user }) => {
            drop(conn);
            return preview(config, pool, room, as_user);
        }
        Command::Serve(_)
        | Command::Plugins(_)
        | Command::Inquiry(InquiryCommand::Import { .. }) => {
            unreachable!("dispatched before")
        }
    }
    Ok(())
}

/// `inquiry import FILE…`: each file in its own transaction, all of it or none. Into a database
/// that does not exist yet, the files are loaded into a new file beside it that is moved into
/// place at the end (see `db::fresh`): written once instead of twice, and never seen half-built.
/// Into an existing one, through a rollback journal or the WAL (see `db::bulk`).
fn import(path: &std::path::Path, files: &[std::path::PathBuf]) -> Result<(), Failure> {
    let results = match import_into_new(path, files)? {
        Some(results) => results,
        None => import_into_existing(path, files)?,
    };
    let mut failed = 0;
    for (file, result) in files.iter().zip(results) {
        match result {
            Ok(n) => {
                let noun = if n == 1 { "inquiry" } else { "inquiries" };
                println!("{}: imported {n} {noun}", file.display());
            }
            Err(e) => {
                eprintln!("inquiryd: {e}");
                if let crate::import::ImportError::Db { source, .. } = &e
                    && let Some(cause) = db::unavailable(source)
                {
                    eprintln!(
                        "inquiryd: {}: {cause}; nothing of this file was stored: free some space (or raise the file size limit) and import it again",
                        file.display()
                    );
                }
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(Failure::runtime(format!(
            "{failed} of {} file(s) not imported",
            files.len()
        )));
    }
    Ok(())
}

/// One result per file, in order.
type ImportResults = Vec<Result<usize, crate::import::ImportError>>;

/// Imports into a database built beside `path`, when `path` does not exist yet; `None` when it
/// does (or appeared meanwhile, then nothing was written to it): the caller imports into it.
fn import_into_new(
    path: &std::path::Path,
    files: &[std::path::PathBuf],
) -> Result<Option<ImportResults>, Failure> {
    let Some(mut fresh) = db::fresh::FreshDatabase::create(path)? else {
        return Ok(None);
    };
    let results = files
        .iter()
        .map(|f| crate::import::import_file(fresh.conn(), f))
        .collect();
    let started = std::time::Instant::now();
    match fresh.place()? {
        db::fresh::Placed::Yes => {
            log::debug!(
                "database {}: flushed and moved into place in {:.2?}",
                path.display(),
                started.elapsed()
            );
            Ok(Some(results))
        }
        db::fresh::Placed::No(why) => {
            log::warn!(
                "database {}: built aside but not placed ({why}); importing into it directly",
                path.display()
            );
            Ok(None)
        }
    }
}

fn import_into_existing(
    path: &std::path::Path,
    files: &[std::path::PathBuf],
) -> Result<ImportResults, Failure> {
    let pool = db::open(path, 1)?;
    let mut conn = pool.get()?;
    Ok(db::bulk::write_through_journal_if_alone(
        &mut conn,
        path,
        |conn| {
            files
                .iter()
                .map(|f| crate::import::import_file(conn, f))
                .collect()
        },
    ))
}

/// `inquiryd audit`: the records `args` select, oldest first, as a table or JSON lines.
fn audit(
    conn: &rusqlite::Connection,
    args: &AuditArgs,
    retention_days: u32,
) -> Result<(), Failure> {
    use crate::admin::audit::{self, Filter, Order};
    let since_ms = args
        .since
        .as_deref()
        .map(|s| audit::parse_since(s, db::now_ms()))
        .transpose()
        .map_err(|why| Failure::usage(format!("--since: {why}")))?;
    let filter = Filter {
        since_ms,
        actor: args.actor.clone(),
        kind: args.kind.clone(),
        retention_days,
    };
    let (entries, _) = audit::query(conn, &filter, Order::OldestFirst, 0, -1)?;
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let compact = |v: &Option<serde_json::Value>| v.as_ref().map_or("-".into(), |v| v.to_string());
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    let written = if args.json {
        entries.iter().try_for_each(|e| {
            let line = serde_json::json!({
                "at": crate::api::permissions::iso(e.at_ms), "actor": e.actor, "actorKind": e.actor_kind, "kind": e.kind,
                "subject": e.subject, "before": e.before, "after": e.after,
            });
            writeln!(out, "{line}")
        })
    } else {
        writeln!(
            out,
            "{:<20}  {:<20}  {:<18}  {:<24}  CHANGE",
            "TIME (UTC)", "ACTOR", "KIND", "SUBJECT"
        )
        .and_then(|()| {
            entries.iter().try_for_each(|e| {
                let actor = match e.actor_kind.as_str() {
                    "cli" | "rest" => format!("{}:{}", e.actor_kind, e.actor),
                    _ => e.actor.clone(),
                };
                writeln!(
                    out,
                    "{:<20}  {actor:<20}  {:<18}  {:<24}  {} -> {}",
                    time(e.at_ms),
                    e.kind,
                    e.subject,
                    compact(&e.before),
                    compact(&e.after)
                )
            })
        })
    };
    match written {
        // A closed pipe (`| head`) is no failure.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::runtime(e)),
        _ => Ok(()),
    }
}

fn preview(config: &Config, pool: &db::Pool, room: &str, username: &str) -> Result<(), Failure> {
    let plugins = crate::plugins::load_dir(&config.plugins.dir).map_err(|errs| Failure {
        code: 1,
        message: errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    })?;
    let auth = crate::auth::AuthCache::load(pool.clone())?;
    let snapshot = auth.snapshot_full();
    let user = snapshot
        .user_by_name(username)
        .cloned()
        .ok_or_else(|| Failure::runtime(format!("no user named {username:?}")))?;
    if !user.active {
        eprintln!("inquiryd: note: user {username:?} is deactivated; the server would answer 401");
    }
    let caller = crate::api::Caller { user, snapshot };
    let plugins = std::sync::Arc::new(plugins);
    let response = crate::api::livechat::respond(&caller, room, &plugins, None, |rid, out| {
        let conn = pool.get()?;
        Ok(db::inquiries::append_by_rid(&conn, rid, out)?)
    })
    .unwrap_or_else(|e| actix_web::ResponseError::error_response(&e));
    let status = response.status();
    let body = actix_web::body::to_bytes(response.into_body());
    let body = futures_util::FutureExt::now_or_never(body)
        .and_then(Result::ok)
        .unwrap_or_default();
    println!("{}", String::from_utf8_lossy(&body));
    if !status.is_success() {
        eprintln!("inquiryd: the server would answer {status}");
    }
    Ok(())
}
