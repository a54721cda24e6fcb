//! The configuration document: an immutable snapshot of every configuration node.
//!
//! Snapshots are cheap to clone (collections and objects are shared behind `Arc`), so a
//! transaction works on its own copy and only the collections it touches are copied. Comparing
//! two snapshots by pointer gives the change list in time proportional to what changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::reference::{FoundReference, find_references};

/// A stored object body with the references found in it (computed once, when stored).
#[derive(Debug)]
pub struct Stored {
    pub body: Value,
    pub refs: Box<[FoundReference]>,
}

impl Stored {
    pub fn new(body: Value) -> Arc<Self> {
        let refs = find_references(&body).into_boxed_slice();
        Arc::new(Stored { body, refs })
    }
}

/// An ordered set of objects addressed by key. Members live in a vector in order (so iterating
/// and comparing snapshots touch no hash table) with an index from key to position.
#[derive(Clone, Debug, Default)]
pub struct Collection {
    members: Vec<(String, Arc<Stored>)>,
    index: HashMap<String, usize>,
}

impl Collection {
    pub fn get(&self, key: &str) -> Option<&Arc<Stored>> {
        self.index.get(key).map(|i| &self.members[*i].1)
    }
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.members.iter().map(|(k, _)| k.as_str())
    }
    /// The key at a position.
    pub fn key_at(&self, position: usize) -> Option<&str> {
        self.members.get(position).map(|(k, _)| k.as_str())
    }
    pub fn len(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Stored>)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Position of `key` among its siblings.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }
    fn upsert(&mut self, key: &str, value: Arc<Stored>) {
        match self.index.get(key) {
            Some(i) => self.members[*i].1 = value,
            None => {
                self.index.insert(key.to_string(), self.members.len());
                self.members.push((key.to_string(), value));
            }
        }
    }
    fn remove(&mut self, key: &str) -> Option<Arc<Stored>> {
        let at = self.index.remove(key)?;
        let (_, old) = self.members.remove(at);
        for (i, (k, _)) in self.members.iter().enumerate().skip(at) {
            if let Some(slot) = self.index.get_mut(k) {
                *slot = i;
            }
        }
        Some(old)
    }
}

#[derive(Clone, Debug)]
enum NodeData {
    Singleton(Arc<Stored>),
    Collection(Arc<Collection>),
}

/// One snapshot of the whole configuration, keyed by node path.
#[derive(Clone, Debug, Default)]
pub struct Document {
    nodes: BTreeMap<String, NodeData>,
}

impl Document {
    pub fn singleton(&self, node: &str) -> Option<&Arc<Stored>> {
        match self.nodes.get(node)? {
            NodeData::Singleton(s) => Some(s),
            NodeData::Collection(_) => None,
        }
    }

    pub fn collection(&self, node: &str) -> Option<&Collection> {
        match self.nodes.get(node)? {
            NodeData::Collection(c) => Some(c),
            NodeData::Singleton(_) => None,
        }
    }

    /// The object at `node` (singleton) or `node/key` (collection member).
    pub fn object(&self, node: &str, key: Option<&str>) -> Option<&Arc<Stored>> {
        match key {
            None => self.singleton(node),
            Some(key) => self.collection(node)?.get(key),
        }
    }

    pub fn set_singleton(&mut self, node: &str, value: Arc<Stored>) {
        self.nodes
            .insert(node.to_string(), NodeData::Singleton(value));
    }

    /// Inserts or replaces a collection member; new members go last.
    pub fn put(&mut self, node: &str, key: &str, value: Arc<Stored>) {
        let entry = self
            .nodes
            .entry(node.to_string())
            .or_insert_with(|| NodeData::Collection(Arc::default()));
        if let NodeData::Collection(c) = entry {
            Arc::make_mut(c).upsert(key, value);
        }
    }

    pub fn remove(&mut self, node: &str, key: &str) -> Option<Arc<Stored>> {
        match self.nodes.get_mut(node)? {
            NodeData::Collection(c) => {
                c.get(key)?;
                Arc::make_mut(c).remove(key)
            }
            NodeData::Singleton(_) => None,
        }
    }

    /// Every stored object with its node and key.
    pub fn objects(&self) -> impl Iterator<Item = (&str, Option<&str>, &Arc<Stored>)> {
        self.nodes.iter().flat_map(|(node, data)| {
            let items: Box<dyn Iterator<Item = _>> = match data {
                NodeData::Singleton(s) => Box::new(std::iter::once((node.as_str(), None, s))),
                NodeData::Collection(c) => {
                    Box::new(c.iter().map(move |(k, v)| (node.as_str(), Some(k), v)))
                }
            };
            items
        })
    }

    /// Objects that refer to `node/key`, as (referrer path, field) pairs.
    pub fn referrers(&self, node: &str, key: &str) -> Vec<(String, String)> {
        self.objects()
            .flat_map(|(n, k, stored)| {
                stored
                    .refs
                    .iter()
                    .filter(|r| r.node == node && r.key == key)
                    .map(move |r| (object_path(n, k), r.field.clone()))
            })
            .collect()
    }

    /// What changed from `base` to `self`, in node order, then collection order.
    pub fn changes_since(&self, base: &Document) -> Vec<Change> {
        let mut out = Vec::new();
        for (node, data) in &self.nodes {
            match (base.nodes.get(node), data) {
                (Some(NodeData::Singleton(old)), NodeData::Singleton(new)) => {
                    if !Arc::ptr_eq(old, new) && old.body != new.body {
                        out.push(Change::replace(node, None, old, new));
                    }
                }
                (None, NodeData::Singleton(new)) => out.push(Change {
                    kind: ChangeKind::Create,
                    node: node.clone(),
                    key: None,
                    old: None,
                    new: Some(new.clone()),
                }),
                (Some(NodeData::Collection(old)), NodeData::Collection(new)) => {
                    if !Arc::ptr_eq(old, new) {
                        diff_collection(node, old, new, &mut out);
                    }
                }
                (None, NodeData::Collection(new)) => {
                    diff_collection(node, &Collection::default(), new, &mut out)
                }
                (Some(_), _) => {}
            }
        }
        out
    }
}

fn diff_collection(node: &str, old: &Collection, new: &Collection, out: &mut Vec<Change>) {
    // Same members in the same order (the common case: objects replaced in place): compare
    // pointers along both vectors without hashing.
    let same_keys = old.len() == new.len() && old.keys().zip(new.keys()).all(|(a, b)| a == b);
    if same_keys {
        for ((key, before), (_, after)) in old.iter().zip(new.iter()) {
            if !Arc::ptr_eq(before, after) && before.body != after.body {
                out.push(Change::replace(node, Some(key), before, after));
            }
        }
        return;
    }
    for (key, before) in old.iter() {
        match new.get(key) {
            None => out.push(Change {
                kind: ChangeKind::Delete,
                node: node.to_string(),
                key: Some(key.to_string()),
                old: Some(before.clone()),
                new: None,
            }),
            Some(after) => {
                if !Arc::ptr_eq(before, after) && before.body != after.body {
                    out.push(Change::replace(node, Some(key), before, after));
                }
            }
        }
    }
    for (key, after) in new.iter() {
        if old.get(key).is_none() {
            out.push(Change {
                kind: ChangeKind::Create,
                node: node.to_string(),
                key: Some(key.to_string()),
                old: None,
                new: Some(after.clone()),
            });
        }
    }
}

/// The REST path of an object.
pub fn object_path(node: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{node}/{key}"),
        None => node.to_string(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Delete,
    Replace,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Delete => "delete",
            ChangeKind::Replace => "replace",
        }
    }
}

/// One difference between two snapshots.
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: ChangeKind,
    pub node: String,
    pub key: Option<String>,
    pub old: Option<Arc<Stored>>,
    pub new: Option<Arc<Stored>>,
}

impl Change {
    fn replace(node: &str, key: Option<&str>, old: &Arc<Stored>, new: &Arc<Stored>) -> Change {
        Change {
            kind: ChangeKind::Replace,
            node: node.to_string(),
            key: key.map(str::to_string),
            old: Some(old.clone()),
            new: Some(new.clone()),
        }
    }

    pub fn path(&self) -> String {
        object_path(&self.node, self.key.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_copy_shares_until_written_and_diffs_by_pointer() {
        let mut base = Document::default();
        base.put("/c", "a", Stored::new(json!({"n": 1})));
        base.put("/c", "b", Stored::new(json!({"n": 2})));
        let mut work = base.clone();
        assert!(work.changes_since(&base).is_empty());

        work.put("/c", "b", Stored::new(json!({"n": 3})));
        work.put("/c", "z", Stored::new(json!({"n": 4})));
        work.remove("/c", "a");
        let kinds: Vec<_> = work
            .changes_since(&base)
            .iter()
            .map(|c| (c.kind, c.key.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (ChangeKind::Delete, "a".into()),
                (ChangeKind::Replace, "b".into()),
                (ChangeKind::Create, "z".into())
            ]
        );
        // The base is untouched.
        assert_eq!(base.collection("/c").unwrap().len(), 2);
        let keys: Vec<_> = work.collection("/c").unwrap().keys().collect();
        assert_eq!(keys, ["b", "z"]);
    }

    #[test]
    fn rewriting_an_identical_body_is_not_a_change() {
        let mut base = Document::default();
        base.set_singleton("/s", Stored::new(json!({"x": true})));
        let mut work = base.clone();
        work.set_singleton("/s", Stored::new(json!({"x": true})));
        assert!(work.changes_since(&base).is_empty());
    }

    #[test]
    fn referrers_are_found() {
        let mut doc = Document::default();
        doc.put(
            "/g",
            "g1",
            Stored::new(json!({"members": [{"key": "u1", "meta": {"href": "/u/u1"}}]})),
        );
        assert_eq!(
            doc.referrers("/u", "u1"),
            vec![("/g/g1".to_string(), "members[0]".to_string())]
        );
        assert!(doc.referrers("/u", "u2").is_empty());
    }
}
