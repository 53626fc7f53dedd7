//! What every handler shares, and the one bridge from a handler to blocking database work:
//! [`blocking`] for reads, [`write`] for changes (one IMMEDIATE transaction, then the auth
//! snapshot refreshed before the response, so the next request sees the change).

use std::sync::Arc;

use actix_web::web;

use super::ApiError;
use crate::auth::AuthCache;
use crate::auth::throttle::Throttle;
use crate::db::{self, Pool};
use crate::plugins::PluginHost;

/// Largest request body accepted; more is a 413.
pub const MAX_BODY: usize = 64 * 1024;

/// What every handler shares.
pub struct AppState {
    pub pool: Pool,
    /// Whether the database path still names the file in use (`/health`, 503s).
    pub db_watch: Arc<db::file::DbWatch>,
    pub auth: Arc<AuthCache>,
    pub plugins: Arc<PluginHost>,
    pub throttle: Throttle,
    pub token_ttl_days: u32,
    /// `[audit] retention_days`: readers hide what is past it even before the daily prune.
    pub audit_retention_days: u32,
    /// The password verification slots (bounded concurrency and memory for logins).
    pub verifier: crate::auth::passwords::Verifier,
}

/// Runs `f` with a pooled connection on the blocking thread pool. Fails with what `f` returns, or
/// a 500/503 when no connection can be had.
pub async fn blocking<T, F>(state: &web::Data<AppState>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut rusqlite::Connection) -> Result<T, ApiError> + Send + 'static,
{
    let st = state.clone();
    web::block(move || -> Result<T, ApiError> {
        let mut conn = st.pool.get()?;
        f(&mut conn)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("blocking worker: {e}")))?
}

/// Runs `f` in one IMMEDIATE transaction and commits it when `f` succeeds (nothing is applied
/// when it fails), then refreshes the auth snapshot synchronously: the change is in force for
/// the very next request. A refresh that fails after the commit is logged, not answered: the
/// change stands, and the auth poller brings the snapshot up to date.
pub async fn write<T, F>(state: &web::Data<AppState>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Transaction) -> Result<T, ApiError> + Send + 'static,
{
    let st = state.clone();
    blocking(state, move |conn| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        // The change is applied: answering an error now would tell the client otherwise. If the
        // snapshot cannot be rebuilt at once, the auth poller retries within its interval.
        if let Err(e) = st.auth.refresh() {
            log::error!("auth: refresh after a committed change failed (the poller retries): {e}");
        }
        Ok(out)
    })
    .await
}

/// Largest request body of the console's plugin routes that carry a whole plugin file: the file
/// may be 1 MiB ([`crate::plugins::format::MAX_FILE_BYTES`]), and JSON string escaping can make it
/// up to a few times longer in a request body. The file itself is still held to 1 MiB.
pub const MAX_PLUGIN_BODY: usize = 4 * 1024 * 1024;

/// The body limit of a request to `path`: [`MAX_PLUGIN_BODY`] for the routes that take a plugin
/// file, [`MAX_BODY`] for every other.
pub fn body_limit(path: &str) -> usize {
    if super::plugins_admin::TAKES_A_FILE.contains(&path) {
        MAX_PLUGIN_BODY
    } else {
        MAX_BODY
    }
}

/// The 413 for a body over `limit` bytes (see [`body_limit`]).
pub fn body_too_large(limit: usize) -> ApiError {
    if limit == MAX_BODY {
        ApiError::PayloadTooLarge
    } else {
        ApiError::Failure {
            status: actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            error: format!("Request body too large (limit {} MiB)", limit >> 20),
            error_type: "error-payload-too-large",
            details: None,
        }
    }
}
