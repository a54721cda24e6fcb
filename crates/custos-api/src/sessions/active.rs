//! `GET /api/active-sessions` lists the sessions in progress; `DELETE ?id=<session id>`
//! terminates one and answers once its gateway has closed it.

use axum::http::{Method, StatusCode};
use custos_config::tree::{ACTIVE_SESSIONS, AUDIT_SESSIONS};
use custos_sessions::TerminateError;
use serde_json::json;

use super::{need, now_micros, only};
use crate::envelope::{self, base_meta};
use crate::error::ApiError;
use crate::request::{ApiRequest, Caller};
use crate::state::Api;
use crate::tree_engine::Reply;

pub async fn handle(api: &Api, req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    caller.require(ACTIVE_SESSIONS, need(req))?;
    only(req, &["DELETE", "GET"])?;
    if req.method == Method::DELETE {
        terminate(api, req, caller).await
    } else {
        Ok(list(api, req, caller))
    }
}

/// Items are keyed by session id (what `DELETE ?id=` takes) and link to the audit record.
fn list(api: &Api, req: &ApiRequest, caller: &Caller) -> Reply {
    let now = now_micros();
    let items = api
        .live
        .list()
        .iter()
        .map(|r| {
            json!({
                "key": r.session_id,
                "body": r.to_sps_body(now),
                "meta": {"href": format!("{AUDIT_SESSIONS}/{}", r.key)},
            })
        })
        .collect();
    let remaining = caller.login.remaining(req.now).as_secs();
    let meta = base_meta(ACTIVE_SESSIONS, "/api", false, Some(remaining));
    (StatusCode::OK, envelope::listing(items, meta))
}

async fn terminate(api: &Api, req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    let id = req
        .query
        .get("id")
        .filter(|id| !id.is_empty())
        .ok_or(ApiError::SessionIdMissing)?;
    let user = &caller.login.user;
    // The recorded session's id is no secret (unlike REST login ids): it names what was ended.
    match api.live.terminate(id, api.terminate_within).await {
        Ok(()) => {
            tracing::info!(%user, address = %req.peer, session = %id, "terminated an active session");
            Ok((
                StatusCode::OK,
                json!({"meta": {"href": ACTIVE_SESSIONS, "parent": "/api"}}),
            ))
        }
        Err(TerminateError::NotFound) => Err(ApiError::SessionCouldNotBeFound { id: id.clone() }),
        Err(TerminateError::Failed(within)) => {
            tracing::error!(%user, session = %id, ?within, "an active session did not end when asked to terminate");
            Err(ApiError::SessionTerminationFailed { id: id.clone() })
        }
    }
}
