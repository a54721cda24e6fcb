//! `GET /api/audit/sessions` (the listing, paged) and `GET /api/audit/sessions/<key>` (one record).

use axum::http::StatusCode;
use custos_config::tree::AUDIT_SESSIONS;
use serde_json::json;

use super::paging::Page;
use super::{internal, need, now_micros, only, sees_all_sessions};
use crate::envelope::{self, base_meta};
use crate::error::ApiError;
use crate::request::{ApiRequest, Caller};
use crate::state::Api;
use crate::tree_engine::Reply;

/// The listing: keys and links, newest first. `q`, `fields`, `sort` and the rest of the query
/// language come with the search engine; other unknown parameters are ignored, as SPS does.
pub async fn list(api: &Api, req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    caller.require(AUDIT_SESSIONS, need(req))?;
    only(req, &["GET"])?;
    // A filter that is silently ignored would return sessions the client asked to exclude.
    if req.query.get("q").is_some_and(|q| !q.trim().is_empty()) {
        return Err(ApiError::Syntax {
            field: "q".into(),
            message: "searching with q is not supported by this version of Custos yet; list without q (paging with limit and offset) and filter on the client".into(),
        });
    }
    let page = Page::from_request(req)?;
    let (records, total) = if sees_all_sessions(caller) {
        api.store
            .sessions(page.offset, page.limit)
            .await
            .map_err(internal)?
    } else {
        (Vec::new(), 0)
    };
    let items = records
        .iter()
        .map(|r| envelope::item(&r.key, &format!("{AUDIT_SESSIONS}/{}", r.key)))
        .collect();
    let remaining = caller.login.remaining(req.now).as_secs();
    let mut meta = base_meta(AUDIT_SESSIONS, "/api/audit", false, Some(remaining));
    page.add_meta(AUDIT_SESSIONS, total, &mut meta);
    meta.insert("fields".into(), json!([]));
    Ok((StatusCode::OK, envelope::listing(items, meta)))
}

/// The record of session `key`: a session in progress as it is live (the stored copy is only
/// as fresh as the gateway's last save), an ended one as stored.
pub(super) async fn find_record(
    api: &Api,
    key: &str,
) -> Result<custos_sessions::SessionRecord, ApiError> {
    match api.live.list().into_iter().find(|r| r.key == key) {
        Some(record) => Ok(record),
        None => api
            .store
            .session(key)
            .await
            .map_err(internal)?
            .ok_or(ApiError::NotFound),
    }
}

/// One record. A session in progress shows its live state (the stored copy is only as fresh as
/// the gateway's last save); an ended one, its stored record.
pub async fn member(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
    key: &str,
) -> Result<Reply, ApiError> {
    caller.require(AUDIT_SESSIONS, need(req))?;
    only(req, &["GET"])?;
    // Sub-resources (`audit_trail`, …) do not exist yet; records the caller may not see are
    // indistinguishable from missing ones.
    if key.contains('/') || !sees_all_sessions(caller) {
        return Err(ApiError::NotFound);
    }
    let record = find_record(api, key).await?;
    let href = format!("{AUDIT_SESSIONS}/{key}");
    let remaining = caller.login.remaining(req.now).as_secs();
    let meta = base_meta(&href, AUDIT_SESSIONS, false, Some(remaining));
    Ok((
        StatusCode::OK,
        envelope::object(key, record.to_sps_body(now_micros()), meta),
    ))
}
