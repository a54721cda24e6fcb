//! `GET /api/audit/sessions` (the search: `q`, `start`, `end`, `fields`, `sort`, paging, CSV)
//! and `GET /api/audit/sessions/<key>` (one record).

use std::collections::HashMap;

use axum::http::StatusCode;
use custos_config::tree::AUDIT_SESSIONS;
use custos_search::Sort;
use custos_sessions::SessionRecord;
use serde_json::{Map, Value, json};

use super::paging::{MAX_LIMIT, MAX_OFFSET, Page};
use super::params::{SearchParams, carried, encode};
use super::{blocking, csv, internal, may_see, need, now_micros, only, visibility};
use crate::envelope::{self, base_meta};
use crate::error::ApiError;
use crate::request::{ApiRequest, Caller};
use crate::state::Api;
use crate::tree_engine::Reply;

/// The listing: the sessions the caller may see that match the search, one page of them, in
/// `sort` order (newest first by default), with `body` when `fields` asks for it.
pub async fn list(api: &Api, req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    caller.require(AUDIT_SESSIONS, need(req))?;
    only(req, &["GET"])?;
    let page = Page::from_request(req)?;
    let params = SearchParams::from_request(req)?;
    let sort = Sort::parse(req.query.get("sort").map_or("", String::as_str)).map_err(|e| {
        ApiError::Syntax {
            field: "sort".into(),
            message: e.message,
        }
    })?;
    let mut fields = requested_fields(req);
    if fields.is_empty() && csv::wanted(req) {
        fields = csv::DEFAULT_COLUMNS.iter().map(|c| c.to_string()).collect();
    }
    let visibility = visibility(api, caller);
    let index = api.search.clone();
    let (offset, limit) = (page.offset as usize, page.limit as usize);
    let result =
        blocking(move || index.search(&params.filter(), &visibility, sort, offset, limit)).await?;

    let records = records_of(api, &result.keys).await?;
    let now = now_micros();
    let items = result
        .keys
        .iter()
        .filter_map(|key| {
            let record = records.get(key)?;
            let mut item = envelope::item(key, &format!("{AUDIT_SESSIONS}/{key}"));
            if !fields.is_empty() {
                item["body"] = select(&record.to_sps_body(now), &fields);
            }
            Some(item)
        })
        .collect();
    let remaining = caller.login.remaining(req.now).as_secs();
    let mut meta = base_meta(AUDIT_SESSIONS, "/api/audit", false, Some(remaining));
    let total = i64::try_from(result.total).unwrap_or(i64::MAX);
    let fields_param = encode(&fields.join(","));
    page.add_meta_with(
        AUDIT_SESSIONS,
        total,
        &fields_param,
        &carried(req, &["q", "start", "end", "sort", "format"]),
        &mut meta,
    );
    meta.insert("fields".into(), json!(fields));
    Ok((StatusCode::OK, envelope::listing(items, meta)))
}

/// `fields=a,b.c`: the record paths to show; `*` is the whole body.
fn requested_fields(req: &ApiRequest) -> Vec<String> {
    req.query
        .get("fields")
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The records of `keys`: live ones as they are now, ended ones as stored.
async fn records_of(
    api: &Api,
    keys: &[String],
) -> Result<HashMap<String, SessionRecord>, ApiError> {
    let mut records: HashMap<String, SessionRecord> = api
        .store
        .sessions_by_keys(keys)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect();
    for live in api.live.list() {
        if records.contains_key(&live.key) {
            records.insert(live.key.clone(), live);
        }
    }
    Ok(records)
}

/// The parts of `body` that `fields` names, nested as in the body; a path the body does not
/// have is `null`, so every item has the same shape (and CSV the same columns).
pub fn select(body: &Value, fields: &[String]) -> Value {
    if fields.iter().any(|f| f == "*") {
        return body.clone();
    }
    let mut out = Value::Object(Map::new());
    for field in fields {
        let value = field
            .split('.')
            .try_fold(body, |node, part| node.get(part))
            .cloned()
            .unwrap_or(Value::Null);
        let mut node = &mut out;
        let parts: Vec<&str> = field.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let Some(map) = node.as_object_mut() else {
                break;
            };
            if i + 1 == parts.len() {
                map.insert((*part).to_string(), value.clone());
                break;
            }
            node = map
                .entry((*part).to_string())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}

/// The record of session `key`: a session in progress as it is live (the stored copy is only
/// as fresh as the gateway's last save), an ended one as stored.
pub(super) async fn find_record(api: &Api, key: &str) -> Result<SessionRecord, ApiError> {
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

/// The record of session `key` if the caller may see it; a session the caller may not see is
/// indistinguishable from a missing one (404).
pub(super) async fn visible_record(
    api: &Api,
    caller: &Caller,
    key: &str,
) -> Result<SessionRecord, ApiError> {
    if key.is_empty() || key.contains('/') {
        return Err(ApiError::NotFound);
    }
    if !may_see(api, &visibility(api, caller), key).await? {
        return Err(ApiError::NotFound);
    }
    find_record(api, key).await
}

/// One record.
pub async fn member(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
    key: &str,
) -> Result<Reply, ApiError> {
    caller.require(AUDIT_SESSIONS, need(req))?;
    only(req, &["GET"])?;
    let record = visible_record(api, caller, key).await?;
    let href = format!("{AUDIT_SESSIONS}/{key}");
    let remaining = caller.login.remaining(req.now).as_secs();
    let meta = base_meta(&href, AUDIT_SESSIONS, false, Some(remaining));
    Ok((
        StatusCode::OK,
        envelope::object(key, record.to_sps_body(now_micros()), meta),
    ))
}

/// The window a listing can reach (for content hits, which page the same way).
pub const REACHABLE: usize = (MAX_OFFSET + MAX_LIMIT) as usize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_keeps_the_nesting_and_fills_missing_paths_with_null() {
        let body = json!({"protocol": "SSH", "client": {"ip": "1.2.3.4", "port": 5}, "x": 1});
        assert_eq!(
            select(
                &body,
                &["client.ip".into(), "protocol".into(), "no.such".into()]
            ),
            json!({"client": {"ip": "1.2.3.4"}, "protocol": "SSH", "no": {"such": null}})
        );
        assert_eq!(select(&body, &["*".into()]), body);
    }
}
