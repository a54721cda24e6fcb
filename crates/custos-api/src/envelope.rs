//! The `{key, body, meta}` and `{items, meta}` envelopes and their `meta`, with SPS's sibling
//! navigation (`first`, `last`, `previous`, `next` among the children of the same parent).

use custos_config::document::{Document, object_path};
use custos_config::tree::{Node, parent_of, tree};
use serde_json::{Map, Value, json};

/// `first`/`last`/`previous`/`next` for the sibling at `index` of `count`; `href(i)` names the
/// i-th sibling. With no siblings, first and last are the node itself.
fn navigation(
    meta: &mut Map<String, Value>,
    count: usize,
    index: Option<usize>,
    me: &str,
    href: impl Fn(usize) -> String,
) {
    let at = |i: Option<usize>| -> Value {
        i.filter(|i| *i < count)
            .map_or(Value::Null, |i| Value::String(href(i)))
    };
    let or_me = |v: Value| if v.is_null() { json!(me) } else { v };
    meta.insert("first".into(), or_me(at(Some(0))));
    meta.insert("last".into(), or_me(at(count.checked_sub(1))));
    meta.insert("previous".into(), at(index.and_then(|i| i.checked_sub(1))));
    meta.insert("next".into(), at(index.map(|i| i + 1)));
}

/// The meta of a node (directory, singleton, listing): navigation among the parent's children.
pub fn node_meta(node: &Node, remaining: Option<u64>) -> Map<String, Value> {
    let mut meta = base_meta(
        node.path,
        node.parent().unwrap_or("/api"),
        node.config,
        remaining,
    );
    if node.navigates() {
        let siblings: Vec<String> = node
            .parent()
            .map(|p| tree().children(p))
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.navigates())
            .map(|n| n.path.to_string())
            .collect();
        let index = siblings.iter().position(|s| s == node.path);
        navigation(&mut meta, siblings.len(), index, node.path, |i| {
            siblings[i].clone()
        });
    }
    meta
}

/// The meta of a collection member: navigation among the collection's members, in stored order.
pub fn member_meta(
    node: &Node,
    key: &str,
    doc: &Document,
    remaining: Option<u64>,
) -> Map<String, Value> {
    let href = object_path(node.path, Some(key));
    let mut meta = base_meta(&href, node.path, node.config, remaining);
    if node.navigates()
        && let Some(collection) = doc.collection(node.path)
    {
        navigation(
            &mut meta,
            collection.len(),
            collection.position(key),
            &href,
            |i| object_path(node.path, collection.key_at(i)),
        );
    }
    meta
}

pub fn base_meta(
    href: &str,
    parent: &str,
    config: bool,
    remaining: Option<u64>,
) -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert("href".into(), json!(href));
    meta.insert("parent".into(), json!(parent));
    if config {
        meta.insert("transaction".into(), json!("/api/transaction"));
    }
    if let Some(remaining) = remaining {
        meta.insert("remaining_seconds".into(), json!(remaining));
    }
    meta
}

pub fn object(key: &str, body: Value, meta: Map<String, Value>) -> Value {
    json!({"key": key, "body": body, "meta": meta})
}

pub fn item(key: &str, href: &str) -> Value {
    json!({"key": key, "meta": {"href": href}})
}

pub fn listing(items: Vec<Value>, meta: Map<String, Value>) -> Value {
    json!({"items": items, "meta": meta})
}

/// Meta for the response to a create or replace: where the object is and which transaction holds it.
pub fn write_meta(href: &str) -> Value {
    let parent = parent_of(href).unwrap_or("/api");
    json!({"href": href, "parent": parent, "transaction": "/api/transaction"})
}
