//! Recorded and live sessions over REST: `GET /api/audit/sessions[/<key>]` (search, API notes §8)
//! and `GET`/`DELETE /api/active-sessions` (seed 000).
//!
//! `GET /api/audit/sessions/<key>/audit_trail` downloads a session's trail file ([`download`]);
//! it answers a file rather than JSON, so the server calls it before the JSON dispatcher.
//!
//! Searching (`q`, `stats`, `histogram`, `_count`, `<key>/content`) asks the embedded index
//! (`custos_search`); the records shown come from the store, which the gateways write through
//! `custos_sessions::SessionStore`; sessions in progress come from `custos_sessions::LiveSessions`,
//! which also terminates them. The guards live in the tree like every other endpoint's; they are
//! checked here, first, because these nodes are services and so bypass the tree engine.
//!
//! **Audit-data access rules** are applied here, in one place: [`visibility`] turns the caller's
//! groups and the rules of `/api/acl/audit_data` into a `custos_search::Visibility`, which every
//! search, statistic, histogram, content search, record and trail download goes through.

mod active;
mod audit;
mod content;
pub mod csv;
pub mod download;
pub mod paging;
mod params;
mod stats;

use axum::http::Method;
use custos_config::acl::{Permission, object};
use custos_config::objects::audit_data::{AUDIT_DATA, AuditDataRule};
use custos_config::tree::{ACTIVE_SESSIONS, AUDIT_SESSIONS};
use custos_search::{SearchError, Visibility};

use crate::error::ApiError;
use crate::request::{ApiRequest, Caller};
use crate::state::Api;
use crate::tree_engine::Reply;

/// Serves `req` if it addresses a session endpoint; `None` lets the router go on.
pub async fn route(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
) -> Option<Result<Reply, ApiError>> {
    let path = req.path.as_str();
    if path == ACTIVE_SESSIONS {
        return Some(active::handle(api, req, caller).await);
    }
    if path == AUDIT_SESSIONS {
        return Some(audit::list(api, req, caller).await);
    }
    let rest = path.strip_prefix(AUDIT_SESSIONS)?.strip_prefix('/')?;
    Some(match rest {
        "stats" => stats::stats(api, req, caller).await,
        "histogram" => stats::histogram(api, req, caller).await,
        "_count" => stats::count(api, req, caller).await,
        _ => match rest.split_once('/') {
            Some((key, "content")) => content::search(api, req, caller, key).await,
            _ => audit::member(api, req, caller, rest).await,
        },
    })
}

/// Reading needs read, anything else write (as in the tree engine).
pub(crate) fn need(req: &ApiRequest) -> Permission {
    if req.method == Method::GET {
        Permission::Read
    } else {
        Permission::Write
    }
}

pub(crate) fn only(req: &ApiRequest, allowed: &'static [&'static str]) -> Result<(), ApiError> {
    if allowed.contains(&req.method.as_str()) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed {
            allowed,
            reason: format!("{} supports {}", req.path, allowed.join(", ")),
        })
    }
}

/// Which recorded sessions the caller may see: all of them with "search in all connections"
/// (and as `admin`); otherwise those matching a query of an audit-data rule that names one of
/// the caller's groups; with neither, none (deny by default). Rules are read from the committed
/// configuration at each request, so a changed rule applies at once.
pub fn visibility(api: &Api, caller: &Caller) -> Visibility {
    let privileges = &caller.login.privileges;
    if privileges.holds(object::SEARCH_ALL, Permission::Read) {
        return Visibility::All;
    }
    let snapshot = api.committed();
    let groups = privileges.groups();
    let rules = snapshot
        .doc
        .collection(AUDIT_DATA)
        .into_iter()
        .flat_map(|rules| rules.iter())
        .filter_map(|(_, rule)| serde_json::from_value::<AuditDataRule>(rule.body.clone()).ok())
        .filter(|rule| rule.groups.iter().any(|g| groups.contains(g)))
        .filter_map(|rule| custos_query::parse(&rule.query).ok())
        .collect();
    Visibility::Rules(rules)
}

/// Whether session `key` is visible to a caller with `visibility` (indexed sessions only: a
/// session becomes visible to rule-restricted users once indexed, within about a second).
async fn may_see(api: &Api, visibility: &Visibility, key: &str) -> Result<bool, ApiError> {
    if matches!(visibility, Visibility::All) {
        return Ok(true);
    }
    let index = api.search.clone();
    let (key, visibility) = (key.to_string(), visibility.clone());
    blocking(move || index.visible(&key, &visibility)).await
}

/// Runs a search on a blocking thread (the index reads files and burns CPU).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("search task: {e}")))?
        .map_err(search_error)
}

fn search_error(e: SearchError) -> ApiError {
    match e {
        SearchError::Query(q) => ApiError::InvalidQuery {
            message: q.message,
            position: q.position,
        },
        SearchError::Index(e) => ApiError::Internal(e.to_string()),
    }
}

/// Now, in Unix microseconds (the unit of session records).
pub(crate) fn now_micros() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn internal(e: custos_store::StoreError) -> ApiError {
    ApiError::Internal(e.to_string())
}

#[cfg(test)]
mod tests;
