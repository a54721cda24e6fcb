//! The generic tree engine: GET, POST, PUT and DELETE on any node of the configuration tree,
//! driven only by the node's kind and schema. No endpoint has a handler of its own here.

use axum::http::{Method, StatusCode};
use custos_config::acl::Permission;
use custos_config::document::{Document, object_path};
use custos_config::edit;
use custos_config::tree::{Kind, Node, Target, tree};
use serde_json::{Value, json};

use crate::envelope;
use crate::error::ApiError;
use crate::request::{ApiRequest, Caller};
use crate::state::Api;
use crate::transaction::unix_now;

pub type Reply = (StatusCode, Value);

/// The methods a target supports, for 405 answers and `GET /api/user_info`.
pub fn allowed_methods(node: &Node, member: Option<&str>) -> &'static [&'static str] {
    match (&node.kind, member) {
        (Kind::Directory | Kind::Computed(_), None) => &["GET"],
        (Kind::Singleton { .. }, None) => &["GET", "PUT"],
        (Kind::Collection(spec), None) if spec.listable => &["GET", "POST"],
        (Kind::Collection(_), None) => &["POST"],
        (Kind::Collection(spec), Some(key)) => spec.member_methods(Some(key)),
        _ => &[],
    }
}

pub async fn handle(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
    target: Target<'_>,
) -> Result<Reply, ApiError> {
    let (node, member) = match &target {
        Target::Node(node) => (*node, None),
        Target::Member(node, key) => (*node, Some(key.as_str())),
    };
    let need = if req.method == Method::GET {
        Permission::Read
    } else {
        Permission::Write
    };
    if !caller.login.privileges.allows(node.guard, need) {
        return Err(ApiError::Unauthorized);
    }
    let allowed = allowed_methods(node, member);
    if !allowed.contains(&req.method.as_str()) {
        return Err(ApiError::MethodNotAllowed {
            allowed,
            reason: format!("{} supports {}", req.path, allowed.join(", ")),
        });
    }
    if req.method == Method::GET {
        read(api, req, caller, node, member).await
    } else {
        write(api, req, caller, node, member).await
    }
}

async fn read(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
    node: &Node,
    member: Option<&str>,
) -> Result<Reply, ApiError> {
    let now = req.now;
    let mut remaining = caller.login.remaining(now).as_secs();
    // The owner of the open transaction reads its own uncommitted changes.
    if api.lock_owner() == Some(caller.login.id) {
        let slot = api.slot().await;
        if let Some(tx) = slot.as_ref().filter(|t| t.owner == caller.login.id) {
            remaining = remaining.min(tx.remaining(now).as_secs());
            return render(&tx.work, node, member, remaining);
        }
    }
    let snapshot = api.committed();
    render(&snapshot.doc, node, member, remaining)
}

fn render(
    doc: &Document,
    node: &Node,
    member: Option<&str>,
    remaining: u64,
) -> Result<Reply, ApiError> {
    let remaining = Some(remaining);
    let value = match (&node.kind, member) {
        (Kind::Directory, None) => {
            let items = tree()
                .children(node.path)
                .iter()
                .map(|c| envelope::item(c.name(), c.path))
                .collect();
            envelope::listing(items, envelope::node_meta(node, remaining))
        }
        (Kind::Computed(compute), None) => envelope::object(
            node.name(),
            compute(doc),
            envelope::node_meta(node, remaining),
        ),
        (Kind::Singleton { schema, .. }, None) => {
            let stored = doc.singleton(node.path).ok_or(ApiError::NotFound)?;
            envelope::object(
                node.name(),
                schema.public(&stored.body),
                envelope::node_meta(node, remaining),
            )
        }
        (Kind::Collection(spec), None) => {
            let items = doc
                .collection(node.path)
                .map(|c| {
                    c.iter()
                        .map(|(k, stored)| {
                            let mut item = envelope::item(k, &object_path(node.path, Some(k)));
                            if spec.embed_bodies {
                                item["body"] = spec.schema.public(&stored.body);
                            }
                            item
                        })
                        .collect()
                })
                .unwrap_or_default();
            envelope::listing(items, envelope::node_meta(node, remaining))
        }
        (Kind::Collection(spec), Some(key)) => {
            let stored = doc.object(node.path, Some(key)).ok_or(ApiError::NotFound)?;
            envelope::object(
                key,
                spec.schema.public(&stored.body),
                envelope::member_meta(node, key, doc, remaining),
            )
        }
        _ => return Err(ApiError::NotFound),
    };
    Ok((StatusCode::OK, value))
}

async fn write(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
    node: &Node,
    member: Option<&str>,
) -> Result<Reply, ApiError> {
    let mut slot = api.slot().await;
    // The order of answers follows SPS: unknown object (404), then no transaction (409), then
    // the body (400). The caller's view of the object is its transaction's, if it owns one.
    if let Some(key) = member {
        let own = slot.as_ref().filter(|t| t.owner == caller.login.id);
        let exists = match own {
            Some(tx) => tx.work.object(node.path, Some(key)).is_some(),
            None => api.committed().doc.object(node.path, Some(key)).is_some(),
        };
        if !exists {
            return Err(ApiError::NotFound);
        }
    }
    let tx = api.writable(&mut slot, &caller.login)?;
    let input = if req.method == Method::DELETE {
        Value::Null
    } else {
        req.json(false)?
    };
    let now = unix_now();
    match (req.method.as_str(), member) {
        ("POST", None) => {
            let key = edit::create(&mut tx.work, node, input, now)?;
            let href = object_path(node.path, Some(&key));
            tracing::info!(user = %caller.login.user, path = %href, "object created");
            Ok((
                StatusCode::CREATED,
                json!({"key": key, "meta": envelope::write_meta(&href)}),
            ))
        }
        ("PUT", key) => {
            edit::replace(&mut tx.work, node, key, input, now)?;
            let href = object_path(node.path, key);
            tracing::info!(user = %caller.login.user, path = %href, "object replaced");
            Ok((
                StatusCode::OK,
                json!({"key": key.unwrap_or(node.name()), "meta": envelope::write_meta(&href)}),
            ))
        }
        ("DELETE", Some(key)) => {
            edit::delete(&mut tx.work, node, key)?;
            let href = object_path(node.path, Some(key));
            tracing::info!(user = %caller.login.user, path = %href, "object deleted");
            Ok((
                StatusCode::OK,
                json!({"meta": {"href": href, "parent": node.path}}),
            ))
        }
        _ => Err(ApiError::MethodNotAllowed {
            allowed: allowed_methods(node, member),
            reason: "unsupported".into(),
        }),
    }
}
