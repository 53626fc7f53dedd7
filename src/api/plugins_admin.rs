//! The admin console's plugin and preview routes, our own (Rocket.Chat has no declarative hooks),
//! under `/api/v1/inquiryd/` and in Rocket.Chat's conventions: `X-User-Id`/`X-Auth-Token`, the
//! legacy check order 401 → 400 → 403, bodies `{…, "success": true}` and refusals
//! `{"success": false, "error", "errorType"}`.
//!
//! Permission: `manage-apps` for every route here, preview included. Preview shows the stored
//! document unredacted beside what a caller gets, and whoever may see that may as well edit the
//! hooks that redact it; `view-livechat-manager` holders are exactly the callers plugins redact
//! for, so it is not enough.
//!
//! One truth: a draft is validated by [`crate::plugins::PluginHost::check_draft`], the parser,
//! checks and compiler the watcher and `inquiryd plugins check` use. A save writes the file
//! atomically (a temporary file in the same directory, fsynced, renamed over the name) and rescans
//! before answering, so the next request sees the saved version; the watcher sees the rename as
//! any editor's save. Two saves of one file: the later wins whole; a save that names the
//! `sha256` of the version it was edited from is refused with 409 when the file changed since.
//!
//! Every change here (save, delete, enable/disable) lands in the audit trail with the REST user as
//! its actor and the file's SHA-256 before and after (never its content).

use std::path::Path;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::errors::json as json_response;
use super::{AUTH_ONLY, ApiError, AppState, Caller, Ctx, NoParams, guarded, resource};
use crate::auth::UserEntry;
use crate::db;
use crate::plugins::format::MAX_FILE_BYTES;
use crate::plugins::{Location, PluginError, PluginHost};

/// The permission every route here requires.
pub const MANAGE_APPS: &str = "manage-apps";

/// The routes whose body carries a whole plugin file: their body limit is
/// [`crate::api::MAX_PLUGIN_BODY`].
pub const TAKES_A_FILE: &[&str] = &[
    "/api/v1/inquiryd/plugins.validate",
    "/api/v1/inquiryd/plugins.save",
    "/api/v1/inquiryd/plugins.preview",
];

/// Longest plugin file name accepted (a file name limit on every common file system).
const MAX_NAME_BYTES: usize = 255;

/// Rooms a search answers at most.
const MAX_ROOMS: i64 = 20;

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use super::not_allowed;
    // Declared AUTH_ONLY: each handler checks `manage-apps` itself, after its parameters, so a
    // malformed request is a 400 before the 403 as on Rocket.Chat's legacy routes.
    cfg.service(
        resource("/api/v1/inquiryd/plugins.list")
            .route(web::get().to(guarded(AUTH_ONLY, plugins_list)))
            .default_service(not_allowed("GET")),
    )
    .service(
        resource("/api/v1/inquiryd/plugins.get")
            .route(web::get().to(guarded(AUTH_ONLY, plugins_get)))
            .default_service(not_allowed("GET")),
    )
    .service(
        resource("/api/v1/inquiryd/rooms.search")
            .route(web::get().to(guarded(AUTH_ONLY, rooms_search)))
            .default_service(not_allowed("GET")),
    )
    .service(
        resource("/api/v1/inquiryd/plugins.validate")
            .route(web::post().to(guarded(AUTH_ONLY, plugins_validate)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/inquiryd/plugins.save")
            .route(web::post().to(guarded(AUTH_ONLY, plugins_save)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/inquiryd/plugins.delete")
            .route(web::post().to(guarded(AUTH_ONLY, plugins_delete)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/inquiryd/plugins.setEnabled")
            .route(web::post().to(guarded(AUTH_ONLY, plugins_set_enabled)))
            .default_service(not_allowed("POST")),
    )
    .service(
        resource("/api/v1/inquiryd/plugins.preview")
            .route(web::post().to(guarded(AUTH_ONLY, plugins_preview)))
            .default_service(not_allowed("POST")),
    );
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// A plugin file name as the routes accept it: `[A-Za-z0-9._-]+\.json`, no leading dot, not the
/// schema file; so never a path, and never a name the watcher would skip.
#[derive(Debug, Clone)]
struct PluginName(String);

impl PluginName {
    fn parse(name: &str) -> Result<PluginName, ApiError> {
        let why = if name.is_empty() {
            Some("is empty")
        } else if name.len() > MAX_NAME_BYTES {
            Some("is longer than 255 bytes")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            Some("may hold only letters, digits, '.', '_' and '-' (no path)")
        } else if !name.ends_with(".json") || name.len() == ".json".len() {
            Some("must end in .json")
        } else if name.starts_with('.') {
            Some("must not start with '.'")
        } else if !crate::plugins::load::is_plugin_file_name(name) {
            Some("is reserved (not a plugin file)")
        } else {
            None
        };
        match why {
            Some(why) => Err(ApiError::failure(
                format!(
                    "Invalid plugin file name {}: it {why}",
                    serde_json::Value::from(truncated(name))
                ),
                "error-invalid-plugin-name",
            )),
            None => Ok(PluginName(name.to_string())),
        }
    }
}

/// At most 64 characters of a client's text, for an error message.
fn truncated(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Parses a JSON body into `T` (which denies unknown fields): a 400 naming the problem otherwise.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid_params(format!("body is not valid JSON: {inner}"))
        } else if path == "." {
            ApiError::invalid_params(inner)
        } else {
            ApiError::invalid_params(format!("{path}: {inner}"))
        }
    })
}

/// The query string as a map of single values; a repeated or unknown key is a 400.
fn parse_query(
    query: &str,
    known: &[&str],
) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let mut map = std::collections::HashMap::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if !known.contains(&key.as_ref()) {
            return Err(ApiError::invalid_params(
                "must NOT have additional properties",
            ));
        }
        if map.insert(key.to_string(), value.to_string()).is_some() {
            return Err(ApiError::invalid_params(format!(
                "'{key}' must be given once"
            )));
        }
    }
    Ok(map)
}

/// The plugin file content of a request, held to the file limit.
fn content_bytes(content: &str) -> Result<&[u8], ApiError> {
    if content.len() as u64 > MAX_FILE_BYTES {
        return Err(ApiError::Failure {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: format!(
                "Plugin file too large: {} bytes, over the 1 MiB limit ({MAX_FILE_BYTES} bytes)",
                content.len()
            ),
            error_type: "error-plugin-too-large",
            details: None,
        });
    }
    Ok(content.as_bytes())
}

fn require(caller: &Caller, permission: &str) -> Result<(), ApiError> {
    if caller.has_permission(permission) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn ok(mut body: Value) -> HttpResponse {
    body["success"] = Value::Bool(true);
    json_response(StatusCode::OK, body.to_string())
}

/// Runs blocking file or database work off the worker thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|e| ApiError::Internal(format!("plugins worker: {e}")))?
}

// ---------------------------------------------------------------------------------------------
// Validation results
// ---------------------------------------------------------------------------------------------

/// One problem of a plugin file as the console shows it: the message, where (line and column,
/// and for a problem of meaning the JSON Pointer and the line and column of the value it points
/// at), and the text `plugins check` prints, with the file's name rather than its path.
fn problem_json(name: &str, content: Option<&[u8]>, e: &PluginError) -> Value {
    let text = PluginError {
        file: name.into(),
        ..e.clone()
    }
    .to_string();
    let (line, column, pointer) = match &e.location {
        Location::File => (None, None, None),
        Location::LineColumn(l, c) => (Some(*l), Some(*c), None),
        Location::Pointer(p) => {
            let at = content.and_then(|c| locate_pointer(c, p));
            (at.map(|a| a.0), at.map(|a| a.1), Some(p.clone()))
        }
    };
    json!({
        "message": e.message,
        "line": line,
        "column": column,
        "pointer": pointer,
        "text": text,
    })
}

/// The 1-based line and column where the value at JSON Pointer `pointer` starts in `text`, or
/// `None` when the text does not parse or holds no such value.
fn locate_pointer(text: &[u8], pointer: &str) -> Option<(usize, usize)> {
    let text = std::str::from_utf8(text).ok()?;
    let ast = jsonc_parser::parse_to_ast(
        text,
        &jsonc_parser::CollectOptions::default(),
        &jsonc_parser::ParseOptions {
            allow_comments: false,
            allow_loose_object_property_names: false,
            allow_trailing_commas: false,
            ..Default::default()
        },
    )
    .ok()?;
    let mut node = ast.value?;
    let mut start = jsonc_parser::common::Ranged::start(&node);
    if !pointer.is_empty() {
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            node = match node {
                jsonc_parser::ast::Value::Object(o) => {
                    let prop = o
                        .properties
                        .into_iter()
                        .find(|p| p.name.as_str() == token)?;
                    // point at the member's name: that is where a reader looks for it
                    start = jsonc_parser::common::Ranged::start(&prop.name);
                    prop.value
                }
                jsonc_parser::ast::Value::Array(a) => {
                    let v = a.elements.into_iter().nth(token.parse().ok()?)?;
                    start = jsonc_parser::common::Ranged::start(&v);
                    v
                }
                _ => return None,
            };
        }
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some((line, column))
}

/// The health entry of `name` from the host's health details, if the host tracks that file.
fn file_health(host: &PluginHost, name: &str) -> Value {
    let health = host.health();
    health["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["file"] == name).cloned())
        .unwrap_or(Value::Null)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// Serialises saves and deletes within this server, so that a version check and the rename that
/// follows it are one step.
static WRITES: Mutex<()> = Mutex::new(());

/// What is at `dir/name` now: its bytes, `None` when nothing is; an error for what no route
/// may read or replace (a symlink, a directory, a FIFO, a device, an unreadable file).
fn current_file(dir: &Path, name: &PluginName) -> Result<Option<Vec<u8>>, ApiError> {
    let path = dir.join(&name.0);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ApiError::Internal(format!("{}: {e}", path.display()))),
    };
    let refuse = |what: &str| {
        Err(ApiError::failure(
            format!(
                "Plugin file {:?} is {what}: not read or replaced over HTTP",
                name.0
            ),
            "error-plugin-not-regular",
        ))
    };
    if meta.file_type().is_symlink() {
        return refuse("a symlink");
    }
    if !meta.is_file() {
        return refuse("not a regular file");
    }
    match crate::plugins::input::read(dir, &path, MAX_FILE_BYTES) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(crate::plugins::input::ReadError::TooLarge(_)) => Err(ApiError::failure(
            format!("Plugin file {:?} is over the 1 MiB limit", name.0),
            "error-plugin-too-large",
        )),
        Err(e) => Err(ApiError::Internal(format!("{}: {e}", path.display()))),
    }
}

fn not_found(name: &PluginName) -> ApiError {
    ApiError::failure(
        format!("Plugin file {:?} not found", name.0),
        "error-plugin-not-found",
    )
}

/// Refuses with 409 when the client named the version it edited and the file is another now.
fn check_version(
    name: &PluginName,
    current: Option<&[u8]>,
    expected: Option<&str>,
) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let now = current.map(sha256_hex);
    // an empty expected version means "the file must not exist yet"
    let same = match &now {
        Some(sha) => sha.eq_ignore_ascii_case(expected),
        None => expected.is_empty(),
    };
    if same {
        return Ok(());
    }
    Err(ApiError::Failure {
        status: StatusCode::CONFLICT,
        error: format!(
            "Plugin file {:?} changed since it was opened (now {}); reload it and apply your change again",
            name.0,
            now.map_or_else(|| "deleted".to_string(), |sha| format!("sha256 {sha}"))
        ),
        error_type: "error-plugin-changed",
        details: None,
    })
}

/// Writes `bytes` to `dir/name` atomically: a hidden temporary file beside it (a name the watcher
/// skips), written and fsynced, then renamed over the name, then the directory fsynced. A reader
/// sees the old file or the new one, never a mix; on any error the temporary file is removed and
/// the old file is untouched.
fn write_atomically(dir: &Path, name: &PluginName, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut suffix = [0u8; 8];
    rand::fill(&mut suffix[..]);
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{}.{suffix}.tmp", name.0));
    let result = (|| {
        let mut file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(&name.0))?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// `GET /api/v1/inquiryd/plugins.list`: every plugin file the server tracks with its state
/// (`ok`, `disabled`, `error` with its `file:line:column` text, whether its last good version is
/// in force, which version is in force and which was read last), and the last reload's time and
/// errors. The health details of `/health`, for the console.
pub async fn plugins_list(ctx: Ctx, _: NoParams) -> Result<HttpResponse, ApiError> {
    let Ctx {
        caller, state, req, ..
    } = ctx;
    parse_query(req.query_string(), &[])?;
    require(&caller, MANAGE_APPS)?;
    let health = state.plugins.health();
    Ok(ok(json!({
        "plugins": health["files"],
        "dir": health["dir"],
        "lastReload": health["last_reload"],
        "lastError": health["last_error"],
    })))
}

/// `GET /api/v1/inquiryd/plugins.get?name=NAME`: the file's text, its SHA-256 (send it back with a
/// save to have a concurrent change refused) and its state.
pub async fn plugins_get(ctx: Ctx, _: NoParams) -> Result<HttpResponse, ApiError> {
    let Ctx {
        caller, state, req, ..
    } = ctx;
    let query = parse_query(req.query_string(), &["name"])?;
    let name = PluginName::parse(
        query
            .get("name")
            .ok_or_else(|| ApiError::invalid_params("must have required property 'name'"))?,
    )?;
    require(&caller, MANAGE_APPS)?;
    let st = state.clone();
    let n = name.clone();
    let bytes = blocking(move || current_file(st.plugins.dir(), &n))
        .await?
        .ok_or_else(|| not_found(&name))?;
    let content = String::from_utf8(bytes).map_err(|_| {
        ApiError::failure(
            format!("Plugin file {:?} is not UTF-8 text", name.0),
            "error-plugin-not-text",
        )
    })?;
    Ok(ok(json!({
        "plugin": {
            "name": name.0,
            "content": content,
            "sha256": sha256_hex(content.as_bytes()),
            "state": file_health(&state.plugins, &name.0),
        }
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftBody {
    name: String,
    content: String,
}

/// The outcome of validating a draft, as the console shows it.
fn verdict(
    name: &PluginName,
    content: &[u8],
    result: &Result<crate::plugins::compiled::CompiledPlugin, Vec<PluginError>>,
) -> Value {
    match result {
        Ok(p) => json!({
            "valid": true,
            "errors": [],
            "enabled": p.enabled,
            "hooks": p.hooks.len(),
        }),
        Err(errors) => json!({
            "valid": false,
            "errors": errors.iter().map(|e| problem_json(&name.0, Some(content), e)).collect::<Vec<_>>(),
        }),
    }
}

/// `POST /api/v1/inquiryd/plugins.validate {name, content}`: validates a draft as the server would
/// once it is saved, writing nothing. An invalid draft is a 200 with `valid: false` and its
/// problems (`message`, `line`, `column`, `pointer`, `text`): the request itself was fine.
pub async fn plugins_validate(ctx: Ctx, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let Ctx { caller, state, .. } = ctx;
    let body = super::read_body_within(payload, crate::api::MAX_PLUGIN_BODY).await?;
    let draft: DraftBody = parse_body(&body)?;
    let name = PluginName::parse(&draft.name)?;
    content_bytes(&draft.content)?;
    require(&caller, MANAGE_APPS)?;
    let st = state.clone();
    let verdict = blocking(move || {
        let bytes = draft.content.as_bytes();
        let result = st.plugins.check_draft(&name.0, bytes);
        Ok(verdict(&name, bytes, &result))
    })
    .await?;
    Ok(ok(verdict))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveBody {
    name: String,
    content: String,
    /// The SHA-256 of the version the edit started from (`""`: a new file); absent: the later
    /// save wins.
    #[serde(default)]
    sha256: Option<String>,
}

/// Validates `bytes` as `name`, then writes them atomically and rescans: the 200 answers once the
/// new version is in force. Invalid → 400 `error-invalid-plugin` with every problem in
/// `details.errors`, nothing written.
fn save(
    st: &AppState,
    actor: &str,
    kind: &str,
    name: &PluginName,
    bytes: &[u8],
    expected: Option<&str>,
) -> Result<Value, ApiError> {
    let host = &st.plugins;
    if let Err(errors) = host.check_draft(&name.0, bytes) {
        let first = PluginError {
            file: name.0.clone().into(),
            ..errors[0].clone()
        };
        return Err(ApiError::Failure {
            status: StatusCode::BAD_REQUEST,
            error: format!("Invalid plugin file: {first}"),
            error_type: "error-invalid-plugin",
            details: Some(json!({
                "errors": errors.iter().map(|e| problem_json(&name.0, Some(bytes), e)).collect::<Vec<_>>(),
            })),
        });
    }
    {
        let _one_at_a_time = WRITES.lock().unwrap_or_else(|e| e.into_inner());
        let current = current_file(host.dir(), name)?;
        check_version(name, current.as_deref(), expected)?;
        write_atomically(host.dir(), name, bytes)
            .map_err(|e| ApiError::Internal(format!("saving plugin file {}: {e}", name.0)))?;
        audit(
            st,
            actor,
            kind,
            name,
            current.as_deref().map(|c| json!({"sha256": sha256_hex(c)})),
            Some(json!({"sha256": sha256_hex(bytes)})),
        );
    }
    host.reload();
    log::info!(
        "plugins: {} saved over HTTP by {} (sha256 {})",
        name.0,
        super::logged::Logged::name(actor),
        sha256_hex(bytes)
    );
    Ok(json!({
        "plugin": {
            "name": name.0,
            "sha256": sha256_hex(bytes),
            "state": file_health(host, &name.0),
        }
    }))
}

/// Records a change of plugin file `name` by the REST user `actor` in the audit trail. The file is
/// already written by then, so a failure to record is logged as an error, not answered.
fn audit(
    st: &AppState,
    actor: &str,
    kind: &str,
    name: &PluginName,
    before: Option<Value>,
    after: Option<Value>,
) {
    let actor = crate::admin::Actor::Rest {
        user: actor.to_string(),
    };
    let recorded = st.pool.get().map_err(|e| e.to_string()).and_then(|conn| {
        crate::admin::audit::record(
            &conn,
            &actor,
            kind,
            &name.0,
            before.as_ref(),
            after.as_ref(),
        )
        .map_err(|e| e.to_string())
    });
    if let Err(e) = recorded {
        log::error!("audit: cannot record {kind} of plugin {}: {e}", name.0);
    }
}

/// `POST /api/v1/inquiryd/plugins.save {name, content, sha256?}`: see [`save`].
pub async fn plugins_save(ctx: Ctx, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let Ctx { caller, state, .. } = ctx;
    let body = super::read_body_within(payload, crate::api::MAX_PLUGIN_BODY).await?;
    let draft: SaveBody = parse_body(&body)?;
    let name = PluginName::parse(&draft.name)?;
    content_bytes(&draft.content)?;
    require(&caller, MANAGE_APPS)?;
    let actor = caller.user.username.clone();
    let st = state.clone();
    let saved = blocking(move || {
        save(
            &st,
            &actor,
            "plugin.save",
            &name,
            draft.content.as_bytes(),
            draft.sha256.as_deref(),
        )
    })
    .await?;
    Ok(ok(saved))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    name: String,
    #[serde(default)]
    sha256: Option<String>,
}

/// `POST /api/v1/inquiryd/plugins.delete {name, sha256?}`: removes the file; its hooks leave force
/// before the answer.
pub async fn plugins_delete(ctx: Ctx, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let Ctx { caller, state, .. } = ctx;
    let body = super::read_body(payload).await?;
    let del: DeleteBody = parse_body(&body)?;
    let name = PluginName::parse(&del.name)?;
    require(&caller, MANAGE_APPS)?;
    let actor = caller.user.username.clone();
    let st = state.clone();
    blocking(move || {
        {
            let _one_at_a_time = WRITES.lock().unwrap_or_else(|e| e.into_inner());
            let current = current_file(st.plugins.dir(), &name)?.ok_or_else(|| not_found(&name))?;
            check_version(&name, Some(&current), del.sha256.as_deref())?;
            std::fs::remove_file(st.plugins.dir().join(&name.0))
                .map_err(|e| ApiError::Internal(format!("deleting plugin file {}: {e}", name.0)))?;
            let before = json!({"sha256": sha256_hex(&current)});
            audit(&st, &actor, "plugin.delete", &name, Some(before), None);
        }
        st.plugins.reload_after_delete(&name.0);
        log::info!(
            "plugins: {} deleted over HTTP by {}",
            name.0,
            super::logged::Logged::name(&actor)
        );
        Ok(())
    })
    .await?;
    Ok(ok(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetEnabledBody {
    name: String,
    enabled: bool,
    #[serde(default)]
    sha256: Option<String>,
}

/// `POST /api/v1/inquiryd/plugins.setEnabled {name, enabled, sha256?}`: sets the file's
/// `"enabled"` member (keeping the order of the others; the file is re-indented) and saves it as
/// [`save`] does.
pub async fn plugins_set_enabled(
    ctx: Ctx,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Ctx { caller, state, .. } = ctx;
    let body = super::read_body(payload).await?;
    let req: SetEnabledBody = parse_body(&body)?;
    let name = PluginName::parse(&req.name)?;
    require(&caller, MANAGE_APPS)?;
    let actor = caller.user.username.clone();
    let st = state.clone();
    let saved = blocking(move || {
        let current = current_file(st.plugins.dir(), &name)?.ok_or_else(|| not_found(&name))?;
        let mut value: Value = serde_json::from_slice(&current).map_err(|e| {
            ApiError::failure(
                format!(
                    "Plugin file {:?} is not valid JSON ({e}); fix it in the editor first",
                    name.0
                ),
                "error-invalid-plugin",
            )
        })?;
        let Some(object) = value.as_object_mut() else {
            return Err(ApiError::failure(
                format!("Plugin file {:?} is not a JSON object", name.0),
                "error-invalid-plugin",
            ));
        };
        object.insert("enabled".into(), Value::Bool(req.enabled));
        let mut text = serde_json::to_string_pretty(&value)
            .map_err(|e| ApiError::Internal(format!("serialising plugin: {e}")))?;
        text.push('\n');
        // the version check is against the file read above, unless the client named its own
        let expected = req.sha256.unwrap_or_else(|| sha256_hex(&current));
        let kind = if req.enabled {
            "plugin.enable"
        } else {
            "plugin.disable"
        };
        save(&st, &actor, kind, &name, text.as_bytes(), Some(&expected))
    })
    .await?;
    Ok(ok(saved))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PreviewBody {
    room_id: String,
    /// Preview as this user (their roles and permissions as the server holds them now).
    #[serde(default)]
    username: Option<String>,
    /// Or as a caller holding exactly these roles.
    #[serde(default)]
    roles: Option<Vec<String>>,
    /// An unsaved version of one plugin file, previewed in place of the saved one.
    #[serde(default)]
    draft: Option<DraftBody>,
}

/// The most roles a preview caller may name.
const MAX_PREVIEW_ROLES: usize = 64;

/// `POST /api/v1/inquiryd/plugins.preview {roomId, username | roles, draft?}`: what
/// `livechat/inquiries.getOne?roomId=…` would answer that caller, with the plugins in force
/// (`saved`) and, given a draft, with the draft in place of its file (`draft`), beside the
/// `stored` document. Each answer is `{status, body}`, exactly what the live endpoint would send
/// (a 403 when the caller lacks `view-l-room`). A draft that does not validate gives
/// `draft: {valid: false, errors}` instead. Uses the live endpoint's own code
/// ([`super::livechat::respond`]).
pub async fn plugins_preview(ctx: Ctx, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let Ctx { caller, state, .. } = ctx;
    let body = super::read_body_within(payload, crate::api::MAX_PLUGIN_BODY).await?;
    let req: PreviewBody = parse_body(&body)?;
    let who = match (&req.username, &req.roles) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::invalid_params(
                "give exactly one of 'username' and 'roles'",
            ));
        }
        (Some(u), None) => Who::User(u.clone()),
        (None, Some(roles)) => {
            if roles.len() > MAX_PREVIEW_ROLES {
                return Err(ApiError::invalid_params(format!(
                    "'roles' may name at most {MAX_PREVIEW_ROLES} roles"
                )));
            }
            Who::Roles(roles.clone())
        }
    };
    let draft = match &req.draft {
        Some(d) => {
            let name = PluginName::parse(&d.name)?;
            content_bytes(&d.content)?;
            Some((name, d.content.clone()))
        }
        None => None,
    };
    require(&caller, MANAGE_APPS)?;
    let snapshot = state.auth.snapshot_full();
    let user = match who {
        Who::User(username) => snapshot.user_by_name(&username).cloned().ok_or_else(|| {
            ApiError::failure(
                format!("User {:?} not found", truncated(&username)),
                "error-invalid-user",
            )
        })?,
        Who::Roles(roles) => Arc::new(UserEntry {
            id: crate::model::UserId("preview".into()),
            username: "preview".into(),
            name: "Preview caller".into(),
            active: true,
            roles,
        }),
    };
    let as_caller = Caller {
        user: user.clone(),
        snapshot,
    };
    let st = state.clone();
    let room_id = req.room_id.clone();
    let result = blocking(move || {
        let conn = st.pool.get()?;
        let mut stored = Vec::new();
        let found = db::inquiries::append_by_rid(&conn, &room_id, &mut stored)?;
        let stored: Value = match found {
            Some(_) => serde_json::from_slice(&stored).unwrap_or(Value::Null),
            None => Value::Null,
        };
        let saved = st.plugins.current().clone();
        let answer = |set: &Arc<crate::plugins::PluginSet>| -> Value {
            let response = super::livechat::respond(&as_caller, &room_id, set, None, |rid, out| {
                Ok(db::inquiries::append_by_rid(&conn, rid, out)?)
            })
            .unwrap_or_else(|e| actix_web::ResponseError::error_response(&e));
            let status = response.status().as_u16();
            let body = futures_util::FutureExt::now_or_never(actix_web::body::to_bytes(
                response.into_body(),
            ))
            .and_then(Result::ok)
            .unwrap_or_default();
            json!({
                "status": status,
                "body": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            })
        };
        let mut out = json!({
            "roomId": room_id,
            "caller": {
                "username": as_caller.user.username,
                "roles": as_caller.user.roles,
                "active": as_caller.user.active,
            },
            "stored": stored,
            "saved": answer(&saved),
        });
        if let Some((name, content)) = draft {
            let bytes = content.as_bytes();
            out["draft"] = match st.plugins.check_draft(&name.0, bytes) {
                Ok(p) => {
                    let set = Arc::new(saved.with_draft(Arc::new(p)));
                    let mut v = answer(&set);
                    v["valid"] = Value::Bool(true);
                    v
                }
                Err(errors) => verdict(&name, bytes, &Err(errors)),
            };
        }
        Ok(out)
    })
    .await?;
    Ok(ok(result))
}

enum Who {
    User(String),
    Roles(Vec<String>),
}

/// `GET /api/v1/inquiryd/rooms.search?q=TEXT`: up to 20 stored inquiries whose room id or name
/// contains `q` (case-insensitive), for the preview's room picker: `{rooms: [{roomId, name,
/// status}]}`. An empty `q` lists the first ones by room id.
pub async fn rooms_search(ctx: Ctx, _: NoParams) -> Result<HttpResponse, ApiError> {
    let Ctx {
        caller, state, req, ..
    } = ctx;
    let query = parse_query(req.query_string(), &["q"])?;
    let q = query.get("q").cloned().unwrap_or_default();
    if q.len() > 256 {
        return Err(ApiError::invalid_params("'q' must be at most 256 bytes"));
    }
    require(&caller, MANAGE_APPS)?;
    let st = state.clone();
    let rooms = blocking(move || {
        let conn = st.pool.get()?;
        let like = format!(
            "%{}%",
            q.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        // A stored row that is not JSON has no name: json_valid guards json_extract, which
        // would fail the whole query on it.
        let mut stmt = conn.prepare_cached(
            "SELECT rid, name, status FROM (
                 SELECT rid,
                        CASE WHEN json_valid(doc) THEN json_extract(doc, '$.name') END AS name,
                        CASE WHEN json_valid(doc) THEN json_extract(doc, '$.status') END AS status
                 FROM inquiries)
             WHERE rid LIKE ?1 ESCAPE '\\' OR name LIKE ?1 ESCAPE '\\'
             ORDER BY rid LIMIT ?2",
        )?;
        let rows = stmt.query_map(rusqlite::params![like, MAX_ROOMS], |r| {
            Ok(json!({
                "roomId": r.get::<_, String>(0)?,
                "name": r.get::<_, Option<rusqlite::types::Value>>(1)?.map(sql_text),
                "status": r.get::<_, Option<rusqlite::types::Value>>(2)?.map(sql_text),
            }))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    Ok(ok(json!({ "rooms": rooms })))
}

/// A stored value as text (a name that is not a string still shows).
fn sql_text(v: rusqlite::types::Value) -> String {
    match v {
        rusqlite::types::Value::Text(t) => t,
        rusqlite::types::Value::Integer(i) => i.to_string(),
        rusqlite::types::Value::Real(f) => f.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_plain_json_file_names() {
        for good in ["a.json", "crm-enrich.json", "A_b.1.json"] {
            assert!(PluginName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".json",
            "../a.json",
            "a/b.json",
            ".hidden.json",
            "a.JSON",
            "a.txt",
            "plugin.schema.json",
            "a b.json",
            "a\0.json",
            "é.json",
        ] {
            assert!(PluginName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PluginName::parse(&format!("{}.json", "a".repeat(250))).is_ok());
        assert!(PluginName::parse(&format!("{}.json", "a".repeat(251))).is_err());
    }

    #[test]
    fn pointers_are_located_at_their_member() {
        let text = b"{\n  \"hooks\": [\n    {\"on\": \"x\",\n     \"do\": [1, {\"op\": \"maks\"}]}\n  ]\n}";
        assert_eq!(locate_pointer(text, "/hooks/0/do/1/op"), Some((4, 17)));
        assert_eq!(locate_pointer(text, "/hooks/0"), Some((3, 5)));
        assert_eq!(locate_pointer(text, ""), Some((1, 1)));
        assert_eq!(locate_pointer(text, "/nope"), None);
        assert_eq!(locate_pointer(b"{", "/a"), None);
    }
}
