//! The command line (clap): `serve` and the admin commands. Each command is a thin call into the
//! library, so the CLI and the server share one implementation of every rule. Exit codes: 0 ok,
//! 1 runtime failure, 2 bad usage or bad configuration.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::app::Application;
use crate::auth::{passwords, tokens};
use crate::config::{Config, ConfigSource, Overrides};
use crate::db;
use crate::model::UserId;
use crate::text::plural;

const ABOUT: &str = "Rocket.Chat's livechat inquiry endpoint, served offline from SQLite";
const LONG_ABOUT: &str = "\
inquiryd serves Rocket.Chat's GET /api/v1/livechat/inquiries.getOne (plus login, logout, me and
info) from one SQLite file, with its own users, login tokens, roles and permissions, and plugin
hooks that enrich or redact responses.

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
    /// `serve`'s flags, so that `inquiryd --bind ADDR` works as no command means `serve`; with
    /// another command they are refused (see `dispatch`) rather than silently ignored.
    #[command(flatten)]
    pub serve: ServeArgs,
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
    /// Import or list livechat inquiries
    #[command(subcommand)]
    Inquiry(InquiryCommand),
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

impl ServeArgs {
    /// These flags, each taken from `outer` when not given here (`inquiryd --bind A serve`).
    fn or(&self, outer: &ServeArgs) -> ServeArgs {
        ServeArgs {
            bind: self.bind.clone().or_else(|| outer.bind.clone()),
            plugins: self.plugins.clone().or_else(|| outer.plugins.clone()),
            workers: self.workers.or(outer.workers),
        }
    }

    fn any(&self) -> bool {
        self.bind.is_some() || self.plugins.is_some() || self.workers.is_some()
    }
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
    match &cli.command {
        None => serve(&cli, &cli.serve),
        Some(Command::Serve(args)) => serve(&cli, &args.or(&cli.serve)),
        Some(_) if cli.serve.any() => Err(Failure::usage(
            "--bind, --plugins and --workers apply to `serve` only (the default command)",
        )),
        Some(Command::User(command)) => with_db(&cli, |_, pool| user(command, pool)),
        Some(Command::Token(command)) => with_db(&cli, |config, pool| token(command, config, pool)),
        Some(Command::Permission(command)) => with_db(&cli, |_, pool| permission(command, pool)),
        Some(Command::Inquiry(command)) => inquiry(&cli, command),
        Some(Command::Plugins(command)) => plugins(&cli, command),
    }
}

/// Runs `f` with the configuration and a pool on its database.
fn with_db(
    cli: &Cli,
    f: impl FnOnce(&Config, &db::Pool) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let config = load_config(cli, None)?;
    config
        .check_database_dir()
        .map_err(|e| Failure::usage(e.to_string()))?;
    // Never a new or another database beside a server that has the old one open.
    db::file::check_beside_server(&config.database.path)?;
    let pool = db::open(&config.database.path, 2)?;
    f(&config, &pool)
}

fn serve(cli: &Cli, args: &ServeArgs) -> Result<(), Failure> {
    let config = load_config(cli, Some(args))?;
    log::info!("{}", config.file_in_force());
    config
        .check_database_dir()
        .map_err(|e| Failure::usage(e.to_string()))?;
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
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "{what} {value:?}: use 1-128 letters, digits, '.', '-', '_' or '@'"
        )))
    }
}

fn find_user(conn: &rusqlite::Connection, username: &str) -> Result<db::users::UserRow, Failure> {
    db::users::by_username(conn, username)?
        .ok_or_else(|| Failure::runtime(format!("no user named {username:?}")))
}

fn user(command: &UserCommand, pool: &db::Pool) -> Result<(), Failure> {
    let mut conn = pool.get()?;
    match command {
        UserCommand::Add {
            username,
            name,
            roles,
            password_stdin,
        } => {
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
            db::users::add(&mut conn, &id, username, &display, hash.as_deref(), roles)?;
            println!(
                "added user {username} (id {id}, roles: {})",
                if roles.is_empty() {
                    "none".to_string()
                } else {
                    roles.join(", ")
                }
            );
        }
        UserCommand::List => {
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
        UserCommand::Deactivate { username } => {
            db::users::set_active(&conn, username, false)?;
            println!("deactivated user {username}");
        }
        UserCommand::Activate { username } => {
            db::users::set_active(&conn, username, true)?;
            println!("activated user {username}");
        }
        UserCommand::SetRoles { username, roles } => {
            for role in roles {
                check_name("role", role)?;
            }
            db::users::set_roles(&mut conn, username, roles)?;
            println!("user {username} now has roles: {}", roles.join(", "));
        }
    }
    Ok(())
}

fn token(command: &TokenCommand, config: &Config, pool: &db::Pool) -> Result<(), Failure> {
    let conn = pool.get()?;
    match command {
        TokenCommand::Create { username } => {
            let user = find_user(&conn, username)?;
            if !user.active {
                eprintln!(
                    "inquiryd: warning: user {username:?} is deactivated; the token will not work until it is activated"
                );
            }
            let token = tokens::generate();
            let expires = db::now_secs() + i64::from(config.auth.token_ttl_days) * 86_400;
            db::tokens::insert(&conn, &tokens::hash(&token), &user.id, expires)?;
            println!(
                "{}",
                serde_json::json!({"userId": user.id.as_str(), "authToken": token})
            );
        }
        TokenCommand::Revoke {
            username,
            all: _,
            token,
        } => {
            let user = find_user(&conn, username)?;
            match token {
                Some(t) => {
                    if !db::tokens::revoke(&conn, &user.id, &tokens::hash(t))? {
                        return Err(Failure::runtime(format!(
                            "user {username:?} has no such token"
                        )));
                    }
                    println!("revoked 1 token of {username}");
                }
                None => {
                    let n = db::tokens::revoke_all(&conn, &user.id)?;
                    println!("revoked {} of {username}", plural(n, "token", "tokens"));
                }
            }
        }
    }
    Ok(())
}

fn permission(command: &PermissionCommand, pool: &db::Pool) -> Result<(), Failure> {
    let conn = pool.get()?;
    match command {
        PermissionCommand::List => {
            for (permission, roles) in db::permissions::list(&conn)? {
                println!("{permission:<36} {}", roles.join(", "));
            }
        }
        PermissionCommand::Grant { permission, role } => {
            check_name("permission", permission)?;
            check_name("role", role)?;
            if db::permissions::grant(&conn, permission, role)? {
                println!("granted {permission} to {role}");
            } else {
                println!("{role} already holds {permission}");
            }
        }
        PermissionCommand::Revoke { permission, role } => {
            if db::permissions::revoke(&conn, permission, role)? {
                println!("revoked {permission} from {role}");
            } else {
                println!("{role} did not hold {permission}");
            }
        }
    }
    Ok(())
}

fn inquiry(cli: &Cli, command: &InquiryCommand) -> Result<(), Failure> {
    match command {
        InquiryCommand::Import { files } => {
            let config = load_config(cli, None)?;
            config
                .check_database_dir()
                .map_err(|e| Failure::usage(e.to_string()))?;
            db::file::check_beside_server(&config.database.path)?;
            import(&config.database.path, files)
        }
        InquiryCommand::List => with_db(cli, |_, pool| list_inquiries(pool)),
    }
}

/// `inquiry list`: a row the server cannot serve is named on stderr and the rest listed: the
/// listing itself succeeded, so the exit code stays 0.
fn list_inquiries(pool: &db::Pool) -> Result<(), Failure> {
    let conn = pool.get()?;

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
    Ok(())
}

fn plugins(cli: &Cli, command: &PluginsCommand) -> Result<(), Failure> {
    match command {
        PluginsCommand::Schema => {
            let schema = serde_json::to_string_pretty(&crate::plugins::schema())
                .map_err(Failure::runtime)?;
            println!("{schema}");
            Ok(())
        }
        PluginsCommand::Check { dir } => {
            let (dir, is_default) = match dir {
                Some(d) => (d.clone(), false),
                None => {
                    let plugins = load_config(cli, None)?.plugins;
                    (plugins.dir, plugins.dir_is_default)
                }
            };
            // As `serve` decides: the default directory is created empty, another must exist.
            if !dir.is_dir() {
                if is_default {
                    println!(
                        "plugins directory {} does not exist: serve creates it empty; no plugins",
                        dir.display()
                    );
                    return Ok(());
                }
                return Err(Failure::usage(
                    crate::app::StartError::PluginsDirMissing(dir.display().to_string())
                        .to_string(),
                ));
            }
            match crate::plugins::check_command(&dir) {
                0 => Ok(()),
                code => Err(Failure {
                    code,
                    message: format!("plugins check: {} has errors", dir.display()),
                }),
            }
        }
        PluginsCommand::Preview { room, as_user } => {
            with_db(cli, |config, pool| preview(config, pool, room, as_user))
        }
    }
}

/// `inquiry import FILE…`: each file in its own transaction, all of it or none (the strategy is
/// `import::import_files`); prints what each file stored.
fn import(path: &std::path::Path, files: &[std::path::PathBuf]) -> Result<(), Failure> {
    let results = crate::import::import_files(path, files)?;
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
            "{failed} of {} not imported",
            plural(files.len(), "file", "files")
        )));
    }
    Ok(())
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
