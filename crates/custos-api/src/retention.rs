//! `POST /api/cleanup/cleanup_now` runs every archive/cleanup policy now and answers when they
//! are done (SPS's response, plus the jobs it ran in `body.jobs`); `POST /api/backup/backup_now`
//! (Custos) does the same for backup policies; `GET /api/cleanup/jobs`
//! (Custos) is the history of archive, cleanup and backup jobs, newest first, paged with
//! `limit`/`offset`; `GET /api/cleanup/jobs/<id>` is one job.

use axum::http::StatusCode;
use custos_config::tree::{BACKUP_NOW, CLEANUP_NOW, RETENTION_JOBS};
use custos_retention::{Outcome, Retention};
use custos_store::JobRow;
use serde_json::{Value, json};

use crate::envelope::{self, base_meta};
use crate::error::ApiError;
use crate::request::{ApiRequest, Caller};
use crate::sessions::{need, only};
use crate::state::Api;
use crate::tree_engine::Reply;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

pub async fn route(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
) -> Option<Result<Reply, ApiError>> {
    let path = req.path.as_str();
    if path == CLEANUP_NOW {
        return Some(run_now(api, req, caller, CLEANUP_NOW).await);
    }
    if path == BACKUP_NOW {
        return Some(run_now(api, req, caller, BACKUP_NOW).await);
    }
    if path == RETENTION_JOBS {
        return Some(jobs(api, req, caller).await);
    }
    let id = path.strip_prefix(RETENTION_JOBS)?.strip_prefix('/')?;
    Some(job(api, req, caller, id).await)
}

fn engine(api: &Api) -> Result<&std::sync::Arc<Retention>, ApiError> {
    api.retention
        .get()
        .ok_or(ApiError::Unavailable("The retention engine"))
}

fn time(micros: Option<i64>) -> Value {
    micros
        .and_then(custos_sessions::iso_time)
        .map_or(Value::Null, Value::String)
}

fn job_body(job: &JobRow) -> Value {
    json!({
        "kind": job.kind,
        "policy": {"key": job.policy_id, "name": job.policy},
        "trigger": job.trigger,
        "state": job.state,
        "start_time": time(Some(job.started)),
        "end_time": time(job.finished),
        "result": job.detail,
    })
}

fn job_item(job: &JobRow) -> Value {
    json!({
        "key": job.id.to_string(),
        "body": job_body(job),
        "meta": {"href": format!("{RETENTION_JOBS}/{}", job.id)},
    })
}

/// `cleanup_now` (every archive/cleanup policy) or `backup_now` (every backup policy).
async fn run_now(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
    path: &'static str,
) -> Result<Reply, ApiError> {
    caller.require(path, need(req))?;
    only(req, &["POST"])?;
    let engine = engine(api)?;
    tracing::info!(user = %caller.login.user, address = %req.peer, %path, "retention policies run on request");
    let outcomes = if path == BACKUP_NOW {
        engine.backup_all("backup_now").await
    } else {
        engine.run_all("cleanup_now").await
    };
    let jobs: Vec<Value> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Ran(job) => job_item(job),
            Outcome::AlreadyRunning { policy_id, policy } => json!({
                "key": null,
                "body": {"policy": {"key": policy_id, "name": policy}, "state": "already_running"},
            }),
        })
        .collect();
    let remaining = caller.login.remaining(req.now).as_secs();
    let parent = custos_config::tree::parent_of(path).unwrap_or("/api");
    let meta = base_meta(path, parent, false, Some(remaining));
    Ok((
        StatusCode::OK,
        json!({"meta": meta, "body": {"jobs": jobs}}),
    ))
}

fn number(req: &ApiRequest, name: &str, default: i64, max: i64) -> Result<i64, ApiError> {
    match req.query.get(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| ApiError::Syntax {
                field: name.into(),
                message: format!("must be a whole number from 0 to {max}"),
            }),
    }
}

async fn jobs(api: &Api, req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    caller.require(RETENTION_JOBS, need(req))?;
    only(req, &["GET"])?;
    let limit = number(req, "limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let offset = number(req, "offset", 0, i64::MAX)?;
    let (rows, total) = engine(api)?
        .jobs(offset, limit)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let remaining = caller.login.remaining(req.now).as_secs();
    let mut meta = base_meta(RETENTION_JOBS, "/api/cleanup", false, Some(remaining));
    meta.insert("limit".into(), json!(limit));
    meta.insert("offset".into(), json!(offset));
    meta.insert("match_count".into(), json!(total));
    let next = (offset + limit < total)
        .then(|| format!("{RETENTION_JOBS}?limit={limit}&offset={}", offset + limit));
    meta.insert("next".into(), json!(next));
    Ok((
        StatusCode::OK,
        envelope::listing(rows.iter().map(job_item).collect(), meta),
    ))
}

async fn job(api: &Api, req: &ApiRequest, caller: &Caller, id: &str) -> Result<Reply, ApiError> {
    caller.require(RETENTION_JOBS, need(req))?;
    only(req, &["GET"])?;
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let job = api
        .store
        .job(id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or(ApiError::NotFound)?;
    let href = format!("{RETENTION_JOBS}/{id}");
    let remaining = caller.login.remaining(req.now).as_secs();
    let meta = base_meta(&href, RETENTION_JOBS, false, Some(remaining));
    Ok((
        StatusCode::OK,
        envelope::object(&job.id.to_string(), job_body(&job), meta),
    ))
}
