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
use crate::text::plural;

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
    /// `serve`'s flags, so that `inquiryd --bind ADDR` works as no command means `serve`; with
    /// another command they are refused (see `dispatch`) rather than silently ignored.
    #[command(flatten, next_help_heading = "Serve options (no command means serve)")]
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
    /// Check plugin files, print their JSON Schema, preview a response, enable or disable one
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Copy the database to FILE while the server runs (SQLite's online backup; mode 0600)
    #[command(long_about = "\
Copy the database to FILE while the server runs and writes, through SQLite's online backup API:
a consistent snapshot, written to a new file with mode 0600 (it holds password and token hashes),
checked, and left as one self-contained file. An existing FILE is never replaced unless --force
is given.")]
    Backup {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace FILE if it exists
        #[arg(long)]
        force: bool,
    },
    /// Replace the database with a backup (the server must be stopped; the old file is kept)
    #[command(long_about = "\
Replace the database with the one in FILE. FILE must be an inquiryd database of a schema version
this build knows, and pass SQLite's integrity check. Refused while a server runs on the database
(stop it first; a server started meanwhile waits until the restore is done). The new file is
swapped in with one rename; the previous one is kept beside it as NAME.before-restore-TIMESTAMP.
A backup from an older inquiryd is migrated when the server next starts.")]
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Check a configuration and print the settings in force, with where each came from
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (e.g. `inquiryd completions bash > /etc/bash_completion.d/inquiryd`)
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write man pages (inquiryd.1, inquiryd-serve.1, …) into DIR, or print inquiryd.1
    Man {
        /// Directory to write every page into [default: print inquiryd.1 on stdout]
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file, INQUIRYD_* variables, flags) and print it, each value
    /// with its origin; exit 2 with the error when it is not valid
    Check(ServeArgs),
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
    /// Create a login token, or with --name a personal access token; prints
    /// {"userId":…,"authToken":…} (the secret is shown this once; only its hash is kept)
    Create {
        username: String,
        /// Make a personal access token of this name (it never expires; users.getPersonalAccessTokens
        /// lists it, users.removePersonalAccessToken removes it) instead of a login token
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// List a user's login and personal access tokens: kind, name, created, expires and the last
    /// six characters; never the secret or its hash
    List {
        username: String,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
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
    /// Write every stored inquiry to FILE (or stdout), in a shape `inquiry import` reads back
    Export {
        /// ndjson: each document exactly as stored; mongoexport: dates as {"$date": …}
        #[arg(long, value_enum, default_value = "ndjson")]
        format: crate::export::Format,
        /// File to write (created with mode 0600) [default: stdout]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Replace FILE if it exists
        #[arg(long)]
        force: bool,
    },
    /// Delete the inquiry of a room, or the inquiry with an id
    #[command(group(clap::ArgGroup::new("which").required(true).args(["room", "id"])))]
    Delete {
        /// Room id (`rid`): deletes the room's inquiry
        #[arg(long, value_name = "RID")]
        room: Option<String>,
        /// Inquiry id (`_id`)
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
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
    /// Switch a plugin on: DIR/NAME.json, or the shipped example DIR/examples/NAME.json copied in
    Enable {
        /// The plugin's file name without .json, e.g. hide-visitor-token
        name: String,
    },
    /// Switch a plugin off ("enabled": false in DIR/NAME.json)
    Disable {
        /// The plugin's file name without .json
        name: String,
    },
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
    let (source, overrides) = config_inputs(cli, serve);
    Config::load(&source, &overrides).map_err(|e| Failure::usage(e.to_string()))
}

/// Where the configuration comes from: the file named (or the default one), and the flags.
fn config_inputs(cli: &Cli, serve: Option<&ServeArgs>) -> (ConfigSource, Overrides) {
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
    (source, overrides)
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
        Some(Command::Role(command)) => with_db(&cli, |_, pool| role(command, pool)),
        Some(Command::Audit(args)) => with_db(&cli, |config, pool| {
            audit(&*pool.get()?, args, config.audit.retention_days)
        }),
        Some(Command::Inquiry(command)) => inquiry(&cli, command),
        Some(Command::Plugins(command)) => plugins(&cli, command),
        Some(Command::Backup { file, force }) => backup(&cli, file, *force),
        Some(Command::Restore { file }) => restore(&cli, file),
        Some(Command::Config(ConfigCommand::Check(args))) => config_check(&cli, args),
        Some(Command::Completions { shell }) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "inquiryd", &mut script);
            print_bytes(&script)
        }
        Some(Command::Man { dir }) => man(dir.as_deref()),
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

fn user(command: &UserCommand, pool: &db::Pool) -> Result<(), Failure> {
    let mut conn = pool.get()?;
    let actor = admin::Actor::cli();
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
            let revoked = admin::in_transaction(&mut conn, |tx| {
                admin::user_set_active(tx, &actor, username, false)
            })?;
            println!(
                "deactivated user {username} (revoked {})",
                plural(revoked, "token", "tokens")
            );
        }
        UserCommand::Activate { username } => {
            admin::in_transaction(&mut conn, |tx| {
                admin::user_set_active(tx, &actor, username, true)
            })?;
            println!("activated user {username}");
        }
        UserCommand::SetRoles { username, roles } => {
            for role in roles {
                check_name("role", role)?;
            }
            admin::in_transaction(&mut conn, |tx| {
                admin::user_set_roles(tx, &actor, username, roles)
            })?;
            println!("user {username} now has roles: {}", roles.join(", "));
        }
    }
    Ok(())
}

fn token(command: &TokenCommand, config: &Config, pool: &db::Pool) -> Result<(), Failure> {
    let mut conn = pool.get()?;
    let actor = admin::Actor::cli();
    match command {
        TokenCommand::Create {
            username,
            name: Some(token_name),
        } => {
            let user = find_user(&conn, username)?;
            if token_name.trim().is_empty() || token_name.chars().any(char::is_control) {
                return Err(Failure::usage(format!(
                    "--name {token_name:?}: give a name of visible characters"
                )));
            }
            let token = tokens::generate();
            let created = admin::in_transaction(&mut conn, |tx| {
                admin::users::pat_create(tx, &actor, username, token_name, &token, false)
            })?;
            if !created {
                return Err(Failure::runtime(format!(
                    "user {username:?} already has a personal access token named {token_name:?}"
                )));
            }
            println!(
                "{}",
                serde_json::json!({"userId": user.id.as_str(), "authToken": token, "name": token_name})
            );
        }
        TokenCommand::List { username, json } => {
            let user = find_user(&conn, username)?;
            let list = db::tokens::list(&conn, &user.id, false)?;
            let date = |secs: i64| {
                chrono::DateTime::from_timestamp(secs, 0).map_or_else(
                    || "never".to_string(),
                    |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                )
            };
            if !*json {
                println!(
                    "{:<9} {:<24} {:<21} {:<21} LAST",
                    "KIND", "NAME", "CREATED", "EXPIRES"
                );
            }
            for t in list {
                let expires = if t.expires_at == db::tokens::NEVER {
                    "never".to_string()
                } else {
                    date(t.expires_at)
                };
                let last = t.last_part.as_deref().unwrap_or("-");
                if *json {
                    println!(
                        "{}",
                        serde_json::json!({"kind": t.kind, "name": t.name, "createdAt": date(t.created_at),
                            "expiresAt": expires, "lastTokenPart": t.last_part, "bypassTwoFactor": t.bypass_two_factor})
                    );
                } else {
                    println!(
                        "{:<9} {:<24} {:<21} {:<21} {last}",
                        t.kind,
                        t.name.as_deref().unwrap_or("-"),
                        date(t.created_at),
                        expires
                    );
                }
            }
        }
        TokenCommand::Create {
            username,
            name: None,
        } => {
            let user = find_user(&conn, username)?;
            if !user.active {
                eprintln!(
                    "inquiryd: warning: user {username:?} is deactivated; the token will not work until it is activated"
                );
            }
            let token = tokens::generate();
            let expires = db::now_secs() + i64::from(config.auth.token_ttl_days) * 86_400;
            admin::in_transaction(&mut conn, |tx| {
                admin::token_create(tx, &actor, &user.id, username, &token, expires)
            })?;
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
                    println!("revoked {} of {username}", plural(n, "token", "tokens"));
                }
            }
        }
    }
    Ok(())
}

fn role(command: &RoleCommand, pool: &db::Pool) -> Result<(), Failure> {
    let mut conn = pool.get()?;
    let actor = admin::Actor::cli();
    match command {
        RoleCommand::List => {
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
        RoleCommand::Add {
            name,
            scope,
            description,
        } => {
            check_name("role", name)?;
            admin::in_transaction(&mut conn, |tx| {
                admin::role_add(tx, &actor, name, scope, description)
            })?;
            println!("added role {name}");
        }
        RoleCommand::Remove { name } => {
            admin::in_transaction(&mut conn, |tx| admin::role_remove(tx, &actor, name))?;
            println!("removed role {name}");
        }
    }
    Ok(())
}

fn permission(command: &PermissionCommand, pool: &db::Pool) -> Result<(), Failure> {
    let mut conn = pool.get()?;
    let actor = admin::Actor::cli();
    match command {
        PermissionCommand::List => {
            for (permission, roles) in db::permissions::list(&conn)? {
                println!("{permission:<36} {}", roles.join(", "));
            }
        }
        PermissionCommand::Grant { permission, role } => {
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
        PermissionCommand::Revoke { permission, role } => {
            if admin::in_transaction(&mut conn, |tx| {
                admin::permission_revoke(tx, &actor, permission, role)
            })? {
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
        InquiryCommand::Export {
            format,
            file,
            force,
        } => with_db(cli, |_, pool| {
            export(pool, *format, file.as_deref(), *force)
        }),
        InquiryCommand::Delete { room, id } => with_db(cli, |_, pool| {
            delete_inquiry(pool, room.as_deref(), id.as_deref())
        }),
    }
}

/// `inquiry export`: to a new file (mode 0600, placed whole at the end) or to stdout.
fn export(
    pool: &db::Pool,
    format: crate::export::Format,
    file: Option<&std::path::Path>,
    force: bool,
) -> Result<(), Failure> {
    let mut conn = pool.get()?;
    let failed = |e: crate::db::inquiries::ExportError| Failure::runtime(format!("export: {e}"));
    let done = match file {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            crate::export::export(&mut conn, format, &mut out).map_err(failed)?
        }
        Some(path) => {
            let mut out = crate::newfile::NewFile::create(path, force)
                .map_err(|e| Failure::runtime(format!("{}: {e}", path.display())))?;
            let done = crate::export::export(&mut conn, format, &mut out).map_err(failed)?;
            out.place()
                .map_err(|e| Failure::runtime(format!("{}: {e}", path.display())))?;
            eprintln!(
                "inquiryd: exported {} to {}",
                plural(done.written, "inquiry", "inquiries"),
                path.display()
            );
            done
        }
    };
    for bad in &done.skipped {
        eprintln!("inquiryd: warning: {bad}");
    }
    if !done.skipped.is_empty() {
        return Err(Failure::runtime(format!(
            "{} not exported: the server cannot serve {} and an import would refuse {}",
            plural(done.skipped.len(), "stored inquiry", "stored inquiries"),
            if done.skipped.len() == 1 {
                "it"
            } else {
                "them"
            },
            if done.skipped.len() == 1 {
                "it"
            } else {
                "them"
            },
        )));
    }
    Ok(())
}

/// `inquiry delete --room RID | --id ID`.
fn delete_inquiry(pool: &db::Pool, room: Option<&str>, id: Option<&str>) -> Result<(), Failure> {
    let conn = pool.get()?;
    match (room, id) {
        (Some(rid), _) => {
            let ids = db::inquiries::delete_by_rid(&conn, rid)?;
            if ids.is_empty() {
                return Err(Failure::runtime(format!("no inquiry in room {rid:?}")));
            }
            println!(
                "deleted {} of room {rid} (id {})",
                plural(ids.len(), "inquiry", "inquiries"),
                ids.join(", ")
            );
        }
        (None, Some(id)) => match db::inquiries::delete_by_id(&conn, id)? {
            Some(rid) => println!("deleted inquiry {id} (room {rid})"),
            None => return Err(Failure::runtime(format!("no inquiry with id {id:?}"))),
        },
        (None, None) => return Err(Failure::usage("give --room RID or --id ID")),
    }
    Ok(())
}

/// `plugins enable|disable NAME` (see `plugins::switch`).
fn switch_plugin(cli: &Cli, name: &str, enabled: bool) -> Result<(), Failure> {
    use crate::plugins::switch::Switched;
    let config = load_config(cli, None)?;
    let verb = if enabled { "enabled" } else { "disabled" };
    let done = crate::plugins::switch::switch(&config.plugins.dir, name, enabled)
        .map_err(Failure::runtime)?;
    report_switch(name, verb, &done);
    if !matches!(done, Switched::Already(_)) {
        audit_plugin_switch(&config, name, enabled);
    }
    Ok(())
}

/// Records `plugins enable|disable` in the database's audit trail, when there is a database:
/// switching a plugin never creates one (it may run before the first start, or as another user).
fn audit_plugin_switch(config: &Config, name: &str, enabled: bool) {
    if !config.database.path.is_file() {
        log::info!(
            "audit: no database at {} yet: the switch of {name} is not recorded",
            config.database.path.display()
        );
        return;
    }
    let kind = if enabled {
        "plugin.enable"
    } else {
        "plugin.disable"
    };
    let recorded = db::open(&config.database.path, 1)
        .map_err(|e| e.to_string())
        .and_then(|pool| pool.get().map_err(|e| e.to_string()))
        .and_then(|conn| {
            admin::audit::record(
                &conn,
                &admin::Actor::cli(),
                kind,
                &format!("{name}.json"),
                Some(&serde_json::json!({ "enabled": !enabled })),
                Some(&serde_json::json!({ "enabled": enabled })),
            )
            .map_err(|e| e.to_string())
        });
    if let Err(e) = recorded {
        eprintln!("inquiryd: warning: the switch is done but not in the audit trail: {e}");
    }
}

fn report_switch(name: &str, verb: &str, done: &crate::plugins::switch::Switched) {
    use crate::plugins::switch::Switched;
    match done {
        Switched::Changed(file) => {
            log::info!("plugins: {verb} {name} ({})", file.display());
            println!("{verb} plugin {name} ({})", file.display());
        }
        Switched::CopiedIn { from, to } => {
            log::info!(
                "plugins: {verb} {name} (copied {} to {})",
                from.display(),
                to.display()
            );
            println!(
                "{verb} plugin {name}: copied {} to {}",
                from.display(),
                to.display()
            );
        }
        Switched::Already(file) => println!("plugin {name} is already {verb} ({})", file.display()),
    }
}

/// `audit`: the audit trail, oldest first, as a table or JSON lines.
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

/// `backup FILE`: a consistent copy while the server runs (see `db::backup`).
fn backup(cli: &Cli, file: &std::path::Path, force: bool) -> Result<(), Failure> {
    let config = load_config(cli, None)?;
    db::file::check_beside_server(&config.database.path)?;
    let done = db::backup::backup(&config.database.path, file, force)?;
    println!(
        "backed up {} to {} ({}) in {:.2?}",
        config.database.path.display(),
        file.display(),
        done.summary,
        done.took
    );
    Ok(())
}

/// `restore FILE`: swaps a checked backup in, the server stopped (see `db::backup`).
fn restore(cli: &Cli, file: &std::path::Path) -> Result<(), Failure> {
    let config = load_config(cli, None)?;
    config
        .check_database_dir()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let done = db::backup::restore(file, &config.database.path)?;
    println!(
        "restored {} from {} ({})",
        config.database.path.display(),
        file.display(),
        done.summary
    );
    if let Some(previous) = done.previous {
        println!("the previous database is kept as {}", previous.display());
    }
    Ok(())
}

/// `config check`: the effective configuration, each value with its origin.
fn config_check(cli: &Cli, args: &ServeArgs) -> Result<(), Failure> {
    let args = args.or(&cli.serve);
    let (source, overrides) = config_inputs(cli, Some(&args));
    let explained =
        crate::config::explain(&source, &overrides).map_err(|e| Failure::usage(e.to_string()))?;
    print!("{explained}");
    Ok(())
}

/// Writes generated text to stdout; a reader that stopped early (`| head`) is not an error.
fn print_bytes(bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::runtime(format!("stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// `man [DIR]`: man pages from the clap definitions.
fn man(dir: Option<&std::path::Path>) -> Result<(), Failure> {
    let command = <Cli as clap::CommandFactory>::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| Failure::runtime(format!("man: {e}")))?;
            print_bytes(&page)
        }
        Some(dir) => {
            if !dir.is_dir() {
                return Err(Failure::usage(format!(
                    "man: {}: not a directory",
                    dir.display()
                )));
            }
            clap_mangen::generate_to(command, dir)
                .map_err(|e| Failure::runtime(format!("man: {}: {e}", dir.display())))?;
            println!("wrote man pages to {}", dir.display());
            Ok(())
        }
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
        PluginsCommand::Enable { name } => switch_plugin(cli, name, true),
        PluginsCommand::Disable { name } => switch_plugin(cli, name, false),
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
