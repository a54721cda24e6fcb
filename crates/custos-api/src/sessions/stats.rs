//! `GET /api/audit/sessions/stats` (top values of a field, with `sub_fields`), `…/histogram`
//! (sessions per time or number bin) and `…/_count`, over the sessions the caller may see.
//!
//! Response bodies (SPS documents the parameters, not the shapes):
//! - stats: `{"field", "values": [{"value", "count", "sub_fields": {<f>: [{"value", "count"}]}}], "other_count"}`
//! - histogram: `{"field", "bin_size", "bins": [{"start", "count"}]}`
//! - `_count`: `{"count": n}`

use axum::http::StatusCode;
use custos_config::tree::AUDIT_SESSIONS;
use serde_json::{Value, json};

use super::params::SearchParams;
use super::{blocking, need, only, visibility};
use crate::envelope::base_meta;
use crate::error::ApiError;
use crate::request::{ApiRequest, Caller};
use crate::state::Api;
use crate::tree_engine::Reply;

/// Default and largest number of values in statistics.
const DEFAULT_SIZE: i64 = 10;
const MAX_SIZE: i64 = 1000;

fn mandatory<'r>(req: &'r ApiRequest, name: &str) -> Result<&'r str, ApiError> {
    req.query
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::Syntax {
            field: name.into(),
            message: format!("the {name} parameter is mandatory"),
        })
}

fn reply(req: &ApiRequest, caller: &Caller, path: &str, body: Value) -> Reply {
    let remaining = caller.login.remaining(req.now).as_secs();
    let meta = base_meta(path, AUDIT_SESSIONS, false, Some(remaining));
    (StatusCode::OK, json!({"body": body, "meta": meta}))
}

pub async fn stats(api: &Api, req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    caller.require(AUDIT_SESSIONS, need(req))?;
    only(req, &["GET"])?;
    let field = mandatory(req, "field")?.to_string();
    // SPS: "only accepts a single parameter; if more are listed, only the first is considered".
    let sub_field = req
        .query
        .get("sub_fields")
        .and_then(|s| s.split(',').map(str::trim).find(|s| !s.is_empty()))
        .map(String::from);
    let size = req.query_number("size", DEFAULT_SIZE)?;
    if !(1..=MAX_SIZE).contains(&size) {
        return Err(ApiError::Syntax {
            field: "size".into(),
            message: format!("size must be between 1 and {MAX_SIZE}"),
        });
    }
    let params = SearchParams::from_request(req)?;
    let visibility = visibility(api, caller);
    let index = api.search.clone();
    let body = blocking(move || {
        index.stats(
            &params.filter(),
            &visibility,
            &field,
            sub_field.as_deref(),
            size as usize,
        )
    })
    .await?;
    Ok(reply(req, caller, &format!("{AUDIT_SESSIONS}/stats"), body))
}

pub async fn histogram(api: &Api, req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    caller.require(AUDIT_SESSIONS, need(req))?;
    only(req, &["GET"])?;
    let field = mandatory(req, "field")?.to_string();
    let bin = req
        .query
        .get("bin-size")
        .or_else(|| req.query.get("bin_size"))
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "hour".into());
    let params = SearchParams::from_request(req)?;
    let visibility = visibility(api, caller);
    let index = api.search.clone();
    let body =
        blocking(move || index.histogram(&params.filter(), &visibility, &field, &bin)).await?;
    Ok(reply(
        req,
        caller,
        &format!("{AUDIT_SESSIONS}/histogram"),
        body,
    ))
}

pub async fn count(api: &Api, req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    caller.require(AUDIT_SESSIONS, need(req))?;
    only(req, &["GET"])?;
    let params = SearchParams::from_request(req)?;
    let visibility = visibility(api, caller);
    let index = api.search.clone();
    let count = blocking(move || index.count(&params.filter(), &visibility)).await?;
    Ok((StatusCode::OK, json!({ "count": count })))
}
