//! `GET /api/audit/sessions/<key>/content?q=…`: where a text query hits in one session's
//! terminal text, each hit with its time (absolute, and seconds into the session for
//! `custos replay --at`). As SPS documents, a missing or empty `q` gives an empty list.

use axum::http::StatusCode;
use custos_config::tree::AUDIT_SESSIONS;
use custos_search::time::iso;
use serde_json::json;

use super::audit::{REACHABLE, visible_record};
use super::paging::Page;
use super::params::carried;
use super::{blocking, need, only};
use crate::envelope::{self, base_meta};
use crate::error::ApiError;
use crate::request::{ApiRequest, Caller};
use crate::state::Api;
use crate::tree_engine::Reply;

pub async fn search(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
    key: &str,
) -> Result<Reply, ApiError> {
    caller.require(AUDIT_SESSIONS, need(req))?;
    only(req, &["GET"])?;
    let record = visible_record(api, caller, key).await?;
    let page = Page::from_request(req)?;
    let q = req
        .query
        .get("q")
        .map(|q| q.trim().to_string())
        .unwrap_or_default();
    let hits = if q.is_empty() {
        Vec::new()
    } else {
        let index = api.search.clone();
        let key = key.to_string();
        blocking(move || index.content(&key, &q, REACHABLE)).await?
    };
    let href = format!("{AUDIT_SESSIONS}/{key}/content");
    let items = hits
        .iter()
        .enumerate()
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .map(|(n, hit)| {
            json!({
                "key": n.to_string(),
                "body": {
                    "time": iso(record.start_time.saturating_add(hit.at)),
                    "offset": hit.at as f64 / 1e6,
                    "kind": hit.kind,
                    "text": hit.text,
                },
            })
        })
        .collect();
    let remaining = caller.login.remaining(req.now).as_secs();
    let mut meta = base_meta(
        &href,
        &format!("{AUDIT_SESSIONS}/{key}"),
        false,
        Some(remaining),
    );
    page.add_meta_with(
        &href,
        i64::try_from(hits.len()).unwrap_or(i64::MAX),
        "",
        &carried(req, &["q"]),
        &mut meta,
    );
    Ok((StatusCode::OK, envelope::listing(items, meta)))
}
