//! inquiryd's own `GET /api/v1/inquiryd/audit.list`: the audit trail, newest first, paginated the
//! Rocket.Chat way (`offset`, `count` default 50, at most 100, 0 for all; `total`), filtered by
//! `actor`, `kind` (`user.roles`, or a family: `user`) and `since` (RFC 3339, a date, or a span
//! back from now such as `1h` or `7d`). Needs `access-permissions`. Declared like Rocket.Chat's
//! legacy routes: 401, then the query (400 `invalid-params` for an unknown or repeated parameter,
//! `error-invalid-since` for a `since` that is no time), then 403.

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use serde_json::json;

use super::errors::json as json_response;
use super::paging::Page;
use super::permissions::iso;
use super::{ApiError, Ctx};
use crate::admin::audit::{self, Filter, Order};

/// The query of `audit.list`.
pub struct ListQuery {
    filter: Filter,
    page: Page,
}

impl FromRequest for ListQuery {
    type Error = ApiError;
    type Future = std::future::Ready<Result<ListQuery, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string(), crate::db::now_ms()))
    }
}

fn parse_query(query: &str, now_ms: i64) -> Result<ListQuery, ApiError> {
    let mut values: [Option<String>; 5] = Default::default();
    const KEYS: [&str; 5] = ["offset", "count", "actor", "kind", "since"];
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let Some(i) = KEYS.iter().position(|k| *k == key) else {
            return Err(ApiError::invalid_params(
                "must NOT have additional properties",
            ));
        };
        if values[i].replace(value.into_owned()).is_some() {
            return Err(ApiError::invalid_params("must be string"));
        }
    }
    let [offset, count, actor, kind, since] = values;
    let since_ms = match since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(audit::parse_since(text, now_ms).map_err(|why| {
            ApiError::failure(
                format!("The \"since\" query parameter: {why} [error-invalid-since]"),
                "error-invalid-since",
            )
        })?),
    };
    Ok(ListQuery {
        page: Page::from_params(offset.as_deref(), count.as_deref()),
        filter: Filter {
            since_ms,
            actor: actor.filter(|a| !a.is_empty()),
            kind: kind.filter(|k| !k.is_empty()),
            retention_days: 0,
        },
    })
}

/// `GET /api/v1/inquiryd/audit.list`: `{entries, count, offset, total, success}`.
pub async fn list(ctx: Ctx, query: ListQuery) -> Result<HttpResponse, ApiError> {
    let ListQuery { mut filter, page } = query;
    filter.retention_days = ctx.state.audit_retention_days;
    let body = super::blocking(&ctx.state, move |conn| {
        let (entries, total) = audit::query(
            conn,
            &filter,
            Order::NewestFirst,
            page.offset,
            page.sql_limit(),
        )?;
        let entries: Vec<_> = entries
            .into_iter()
            .map(|e| {
                json!({
                    "at": iso(e.at_ms),
                    "actor": e.actor,
                    "actorKind": e.actor_kind,
                    "kind": e.kind,
                    "subject": e.subject,
                    "before": e.before,
                    "after": e.after,
                })
            })
            .collect();
        Ok(json!({
            "entries": entries,
            "count": entries.len(),
            "offset": page.offset,
            "total": total,
            "success": true,
        }))
    })
    .await?;
    Ok(json_response(StatusCode::OK, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_refuses_unknown_repeated_and_undated() {
        assert!(parse_query("count=5&kind=user&since=1h", 10_000_000).is_ok());
        assert!(parse_query("x=1", 0).is_err());
        assert!(parse_query("actor=a&actor=b", 0).is_err());
        assert!(parse_query("since=yesterday", 0).is_err());
        let q = parse_query("since=&actor=", 0).unwrap();
        assert!(q.filter.since_ms.is_none() && q.filter.actor.is_none());
    }
}
