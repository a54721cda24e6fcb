//! Endpoints that are not configuration nodes: authentication, transaction, info, user info,
//! endpoint list and the configuration changelog.

use std::time::Instant;

use axum::http::{Method, StatusCode};
use custos_config::acl::{Permission, Privileges};
use custos_config::tree::{ACTIVE_SESSIONS, AUDIT_SESSIONS, Kind, Node, tree};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::envelope::{self, base_meta};
use crate::error::ApiError;
use crate::login::Login;
use crate::request::{ApiRequest, Caller};
use crate::state::Api;
use crate::transaction::render_change;
use crate::tree_engine::{Reply, allowed_methods};

fn method_not_allowed(allowed: &'static [&'static str], path: &str) -> ApiError {
    ApiError::MethodNotAllowed {
        allowed,
        reason: format!("{path} supports {}", allowed.join(", ")),
    }
}

/// `GET /api/info`: anonymous callers get the public subset.
pub fn info(api: &Api, req: &ApiRequest, caller: Option<&Login>) -> Result<Reply, ApiError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(&["GET"], &req.path));
    }
    let id = &api.options.identity;
    let mut body = json!({
        "domainname": id.domainname,
        "hostname": id.hostname,
        "nickname": null,
        "plugin_sdk_version": {"feature": "1.4", "full": "1.4.4"},
        "support_link": "https://github.com/custos-psm/custos/issues",
    });
    let mut meta = base_meta("/api/info", "/api", false, None);
    if let Some(login) = caller {
        let snapshot = api.committed();
        let config_hash = hex::encode(Sha256::digest(format!(
            "{}:{}",
            id.node_id, snapshot.revision
        )));
        body["analytics_enabled"] = json!(false);
        body["build_date"] = Value::Null;
        body["config_hash"] = json!(config_hash);
        // Clients accept SPS 7.3–8.2; Custos implements the 8.0 REST API.
        body["firmware_version"] = json!("8.0.0");
        body["version"] = json!("8.0.0");
        body["roles"] = json!(["search-local"]);
        body["node_id"] = json!(id.node_id);
        body["product"] = json!("Custos");
        body["custos_version"] = json!(env!("CARGO_PKG_VERSION"));
        meta.insert(
            "remaining_seconds".into(),
            json!(login.remaining(req.now).as_secs()),
        );
    }
    Ok((
        StatusCode::OK,
        json!({"key": "about_info", "body": body, "meta": meta}),
    ))
}

/// The endpoints a login may use and with which methods, derived from the tree and its guards.
fn endpoints(login: &Login) -> Vec<Value> {
    let privileges = &login.privileges;
    let mut out = Vec::new();
    for node in tree().nodes() {
        if !privileges.allows(node.guard, Permission::Read) {
            continue;
        }
        let writable = privileges.allows(node.guard, Permission::Write);
        let methods: Vec<&str> = match &node.kind {
            Kind::Service => service_methods(node, privileges),
            _ => allowed_methods(node, None)
                .iter()
                .copied()
                .filter(|m| *m == "GET" || writable)
                .collect(),
        };
        if !methods.is_empty() {
            out.push(json!({"url": node.path, "methods": methods}));
        }
        if node.path == AUDIT_SESSIONS {
            out.push(json!({"url": format!("{AUDIT_SESSIONS}/<key>"), "methods": ["GET"]}));
        }
        if let Kind::Collection(spec) = &node.kind {
            let member: Vec<&str> = spec
                .member_methods(None)
                .iter()
                .copied()
                .filter(|m| *m == "GET" || writable)
                .collect();
            out.push(json!({"url": format!("{}/<key>", node.path), "methods": member}));
        }
    }
    out
}

fn service_methods(node: &Node, privileges: &Privileges) -> Vec<&'static str> {
    match node.path {
        "/api/authentication" => vec!["DELETE", "GET", "POST"],
        // Terminating is writing.
        ACTIVE_SESSIONS if privileges.allows(node.guard, Permission::Write) => {
            vec!["DELETE", "GET"]
        }
        // Opening a transaction takes the configuration lock: only for logins that may write.
        "/api/transaction" if privileges.may_write_somewhere() => {
            vec!["DELETE", "GET", "POST", "PUT"]
        }
        _ => vec!["GET"],
    }
}

/// `GET /api/user_info` (and its aliases).
pub fn user_info(req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(&["GET"], &req.path));
    }
    let login = &caller.login;
    let mut meta = base_meta(
        &req.path,
        "/api",
        false,
        Some(login.remaining(req.now).as_secs()),
    );
    meta.remove("parent");
    meta.insert("parent".into(), json!("/api"));
    Ok((
        StatusCode::OK,
        json!({"user": {"name": login.user}, "endpoints": endpoints(login), "meta": meta}),
    ))
}

/// `GET /api/endpoints`.
pub fn endpoint_list(req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(&["GET"], &req.path));
    }
    let meta = base_meta(
        "/api/endpoints",
        "/api",
        false,
        Some(caller.login.remaining(req.now).as_secs()),
    );
    Ok((
        StatusCode::OK,
        json!({"endpoints": endpoints(&caller.login), "meta": meta}),
    ))
}

/// `GET|POST|PUT|DELETE /api/transaction` and `GET /api/transaction/changes`.
pub async fn transaction(api: &Api, req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    let login = &caller.login;
    if req.path == "/api/transaction/changes" {
        if req.method != Method::GET {
            return Err(method_not_allowed(&["GET"], &req.path));
        }
        let slot = api.slot().await;
        let changes: Vec<Value> = match slot.as_ref().filter(|t| t.owner == login.id) {
            Some(tx) => tx
                .work
                .changes_since(&tx.base.doc)
                .iter()
                .map(render_change)
                .collect(),
            None => Vec::new(),
        };
        let meta = json!({"href": "/api/transaction/changes", "parent": "/api/transaction", "transaction": "/api/transaction"});
        return Ok((StatusCode::OK, json!({"changes": changes, "meta": meta})));
    }
    let mut slot = api.slot().await;
    match req.method.as_str() {
        "GET" => {}
        "POST" => {
            if !req.has_declared_length() {
                return Err(ApiError::LengthRequired);
            }
            api.open_in(&mut slot, login)?;
        }
        "PUT" => {
            let body = req.json(false)?;
            let status = body.get("status").and_then(Value::as_str);
            if status != Some("commit") {
                return Err(ApiError::Syntax {
                    field: "status".into(),
                    message: "expected {\"status\": \"commit\"} (optionally with \"message\")"
                        .into(),
                });
            }
            for field in body.as_object().into_iter().flat_map(|o| o.keys()) {
                if !["status", "message", "commit_message"].contains(&field.as_str()) {
                    return Err(ApiError::Syntax {
                        field: field.clone(),
                        message: format!("unknown field `{field}`"),
                    });
                }
            }
            let message = match body.get("message").or_else(|| body.get("commit_message")) {
                None => "",
                Some(Value::String(m)) => m.as_str(),
                Some(_) => {
                    return Err(ApiError::Syntax {
                        field: "message".into(),
                        message: "must be a string".into(),
                    });
                }
            };
            api.commit(&mut slot, login, message).await?;
        }
        "DELETE" => {
            api.rollback(&mut slot, login)?;
            return Ok((
                StatusCode::OK,
                json!({"meta": {"href": "/api/transaction", "parent": "/api"}}),
            ));
        }
        _ => {
            return Err(method_not_allowed(
                &["DELETE", "GET", "POST", "PUT"],
                &req.path,
            ));
        }
    }
    let own = slot.as_ref().filter(|t| t.owner == login.id);
    let status = if own.is_some() { "open" } else { "closed" };
    let mut remaining = login.remaining(req.now).as_secs();
    let mut meta = base_meta("/api/transaction", "/api", false, None);
    if let Some(tx) = own {
        remaining = remaining.min(tx.remaining(Instant::now()).as_secs());
        if !tx.work.changes_since(&tx.base.doc).is_empty() {
            meta.insert("changes".into(), json!("/api/transaction/changes"));
        }
    }
    meta.insert("remaining_seconds".into(), json!(remaining));
    Ok((
        StatusCode::OK,
        json!({
            "key": "transaction",
            "body": {"status": status, "commit_message": "optional"},
            "transaction": {"status": status},
            "meta": meta,
        }),
    ))
}

/// `GET /api/changelog[/<revision>]`: the committed revisions, newest first.
pub async fn changelog(api: &Api, req: &ApiRequest, caller: &Caller) -> Result<Reply, ApiError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(&["GET"], &req.path));
    }
    let remaining = Some(caller.login.remaining(req.now).as_secs());
    let internal = |e: custos_store::StoreError| ApiError::Internal(e.to_string());
    if let Some(id) = req.path.strip_prefix("/api/changelog/") {
        let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
        let revision = api
            .store
            .revision(id)
            .await
            .map_err(internal)?
            .ok_or(ApiError::NotFound)?;
        let body = json!({
            "author": revision.author,
            "committed_at": revision.committed_at,
            "message": revision.message,
            "schema_version": revision.schema_version,
            "changes": revision.changes,
        });
        let meta = base_meta(&req.path, "/api/changelog", false, remaining);
        return Ok((
            StatusCode::OK,
            envelope::object(&id.to_string(), body, meta),
        ));
    }
    let limit = req.query_number("limit", 100)?.min(1000);
    let offset = req.query_number("offset", 0)?;
    let total = api.store.revision_count().await.map_err(internal)?;
    let items = api
        .store
        .revisions(offset, limit)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|r| {
            json!({"key": r.id.to_string(), "meta": {"href": format!("/api/changelog/{}", r.id)},
                   "body": {"author": r.author, "committed_at": r.committed_at, "message": r.message}})
        })
        .collect();
    let mut meta = base_meta("/api/changelog", "/api", false, remaining);
    meta.insert("limit".into(), json!(limit));
    meta.insert("offset".into(), json!(offset));
    meta.insert("match_count".into(), json!(total));
    Ok((StatusCode::OK, envelope::listing(items, meta)))
}

/// `GET /api/authentication/types` and `/login_methods` (anonymous, as SPS 6 documents).
pub fn authentication_info(req: &ApiRequest) -> Result<Reply, ApiError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(&["GET"], &req.path));
    }
    let meta = base_meta(&req.path, "/api/authentication", false, None);
    if req.path.ends_with("/types") {
        Ok((
            StatusCode::OK,
            json!({"types": {"basic": {}}, "meta": meta}),
        ))
    } else {
        Ok((
            StatusCode::OK,
            json!({"login_methods": [{"name": "local", "type": "basic"}], "meta": meta}),
        ))
    }
}
