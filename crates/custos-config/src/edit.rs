//! Edits to a document, and the validation a commit runs over the whole result.
//!
//! Each write is checked on its own at once (syntax, field rules, references resolve, single-use
//! objects not reused) so that clients get the error on the request that caused it. Rules that
//! involve several objects (unique names, dangling references) are checked again over the whole
//! document when the transaction commits; the commit is all or nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand::Rng;
use serde_json::Value;

use crate::document::{Change, ChangeKind, Document, Stored, object_path};
use crate::problem::Problem;
use crate::schema::{Context, Rejection};
use crate::tree::{CollectionSpec, KeyStyle, Kind, Node, tree};

#[derive(Debug)]
pub enum EditError {
    NotFound,
    MethodNotAllowed(String),
    Syntax { field: String, message: String },
    Semantic(Vec<Problem>),
}

impl From<Rejection> for EditError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Syntax { field, message } => EditError::Syntax { field, message },
            Rejection::Semantic(problems) => EditError::Semantic(problems),
        }
    }
}

/// Whether a member is a built-in that cannot be deleted: negative keys, as in SPS.
pub fn is_builtin(key: &str) -> bool {
    key.starts_with('-')
}

fn new_key(style: KeyStyle) -> String {
    let hex = || {
        let bytes: [u8; 11] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    match style {
        KeyStyle::Hex => hex(),
        KeyStyle::Uuid => uuid::Uuid::new_v4().to_string(),
        KeyStyle::Prefixed(prefix) => format!("{prefix}{}", hex()),
    }
}

/// Creates a collection member from a request body; returns its key.
pub fn create(
    doc: &mut Document,
    node: &Node,
    input: Value,
    now: i64,
) -> Result<String, EditError> {
    let Kind::Collection(spec) = &node.kind else {
        return Err(EditError::MethodNotAllowed(format!(
            "objects cannot be created under {}",
            node.path
        )));
    };
    let mut key = new_key(spec.keys);
    while doc.object(node.path, Some(&key)).is_some() {
        key = new_key(spec.keys);
    }
    let stored = accept(doc, node, spec.schema, Some(&key), None, input, now)?;
    doc.put(node.path, &key, stored);
    Ok(key)
}

/// Replaces a singleton (`key` = None) or an existing collection member.
pub fn replace(
    doc: &mut Document,
    node: &Node,
    key: Option<&str>,
    input: Value,
    now: i64,
) -> Result<(), EditError> {
    match (&node.kind, key) {
        (Kind::Singleton { schema, .. }, None) => {
            let previous = doc.singleton(node.path).cloned();
            let stored = accept(
                doc,
                node,
                *schema,
                None,
                previous.as_ref().map(|p| &p.body),
                input,
                now,
            )?;
            doc.set_singleton(node.path, stored);
            Ok(())
        }
        (Kind::Collection(spec), Some(key)) => {
            let previous = doc
                .object(node.path, Some(key))
                .cloned()
                .ok_or(EditError::NotFound)?;
            check_allowed(spec, spec.replaceable, key, "replaced")?;
            let stored = accept(
                doc,
                node,
                spec.schema,
                Some(key),
                Some(&previous.body),
                input,
                now,
            )?;
            doc.put(node.path, key, stored);
            Ok(())
        }
        _ => Err(EditError::MethodNotAllowed(format!(
            "{} cannot be replaced",
            object_path(node.path, key)
        ))),
    }
}

/// Deletes a collection member unless it is built in or something refers to it.
pub fn delete(doc: &mut Document, node: &Node, key: &str) -> Result<(), EditError> {
    let Kind::Collection(spec) = &node.kind else {
        return Err(EditError::MethodNotAllowed(format!(
            "{} cannot be deleted",
            node.path
        )));
    };
    if doc.object(node.path, Some(key)).is_none() {
        return Err(EditError::NotFound);
    }
    check_allowed(spec, spec.deletable, key, "deleted")?;
    if is_builtin(key) {
        return Err(EditError::MethodNotAllowed(
            "built-in objects cannot be deleted".into(),
        ));
    }
    let path = object_path(node.path, Some(key));
    let referrers = doc.referrers(node.path, key);
    if !referrers.is_empty() {
        return Err(EditError::Semantic(
            referrers
                .into_iter()
                .map(|(referrer, field)| Problem {
                    path: path.clone(),
                    field: String::new(),
                    message: format!("cannot be deleted: {referrer} refers to it in {field}"),
                })
                .collect(),
        ));
    }
    doc.remove(node.path, key);
    Ok(())
}

fn check_allowed(
    spec: &CollectionSpec,
    allowed: bool,
    key: &str,
    verb: &str,
) -> Result<(), EditError> {
    if !allowed {
        return Err(EditError::MethodNotAllowed(format!(
            "these objects cannot be {verb}; create a new one and refer to it instead"
        )));
    }
    if spec.read_only_keys.contains(&key) {
        return Err(EditError::MethodNotAllowed(format!(
            "{key} is generated by Custos and cannot be {verb}"
        )));
    }
    Ok(())
}

fn accept(
    doc: &Document,
    node: &Node,
    schema: &dyn crate::schema::Schema,
    key: Option<&str>,
    previous: Option<&Value>,
    input: Value,
    now: i64,
) -> Result<Arc<Stored>, EditError> {
    let path = object_path(node.path, key);
    let ctx = Context {
        doc,
        key,
        previous,
        now,
    };
    let body = schema.accept(input, &path, &ctx)?;
    let stored = Stored::new(body);
    let mut problems = Vec::new();
    reference_problems(doc, &path, &stored, &mut problems);
    if problems.is_empty() {
        Ok(stored)
    } else {
        Err(EditError::Semantic(problems))
    }
}

/// References of one object that point nowhere, or reuse a single-use object.
fn reference_problems(doc: &Document, path: &str, stored: &Stored, out: &mut Vec<Problem>) {
    for r in stored.refs.iter() {
        let target = object_path(&r.node, Some(&r.key));
        let Some(spec) = tree().node(&r.node).and_then(Node::collection) else {
            out.push(problem(
                path,
                &r.field,
                format!("{target} is not a referable object"),
            ));
            continue;
        };
        if doc.object(&r.node, Some(&r.key)).is_none() {
            out.push(problem(
                path,
                &r.field,
                format!("refers to {target}, which does not exist"),
            ));
            continue;
        }
        if spec.single_use {
            for (referrer, field) in doc.referrers(&r.node, &r.key) {
                if referrer != path {
                    out.push(problem(
                        path,
                        &r.field,
                        format!(
                            "{target} is already used by {referrer} ({field}); a password object can be used only once"
                        ),
                    ));
                }
            }
        }
    }
}

fn problem(path: &str, field: &str, message: String) -> Problem {
    Problem {
        path: path.to_string(),
        field: field.to_string(),
        message,
    }
}

/// Removes single-use objects (passwords) that the objects changed by `changes` used and `doc` no
/// longer does, so a replaced password does not linger. Returns whether anything was removed (the
/// change list is then stale). The cost follows the size of the change.
pub fn collect_garbage(doc: &mut Document, changes: &[Change]) -> bool {
    let mut candidates: Vec<(String, String)> = changes
        .iter()
        .filter_map(|change| change.old.as_ref())
        .flat_map(|old| old.refs.iter())
        .filter(|r| is_single_use(&r.node))
        .map(|r| (r.node.clone(), r.key.clone()))
        .collect();
    if candidates.is_empty() {
        return false;
    }
    let used: HashSet<(&str, &str)> = doc
        .objects()
        .flat_map(|(_, _, stored)| stored.refs.iter())
        .map(|r| (r.node.as_str(), r.key.as_str()))
        .collect();
    candidates.retain(|(node, key)| !used.contains(&(node.as_str(), key.as_str())));
    let removed = !candidates.is_empty();
    for (node, key) in candidates {
        doc.remove(&node, &key);
    }
    removed
}

fn is_single_use(node: &str) -> bool {
    tree()
        .node(node)
        .and_then(Node::collection)
        .is_some_and(|spec| spec.single_use)
}

/// Everything wrong with `doc`, the result of applying `changes` to a valid document; empty means
/// it may be committed.
///
/// Every committed revision was valid, so only what a change can break is examined: the changed
/// objects (schemas, their references, single use of what they refer to), references to deleted
/// objects, and uniqueness within changed collections. With `changes` against an empty document
/// (every object created) this is a check of the whole document.
pub fn validate(doc: &Document, changes: &[Change], now: i64) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut single_use_targets: HashSet<(&str, &str)> = HashSet::new();
    for change in changes {
        let (Some(new), Some(node)) = (&change.new, tree().node(&change.node)) else {
            continue;
        };
        let schema = match &node.kind {
            Kind::Singleton { schema, .. } => *schema,
            Kind::Collection(spec) => spec.schema,
            _ => continue,
        };
        let path = change.path();
        let ctx = Context {
            doc,
            key: change.key.as_deref(),
            previous: change.old.as_ref().map(|o| &o.body),
            now,
        };
        problems.extend(schema.check(&new.body, &path, &ctx));
        for r in new.refs.iter() {
            let target = object_path(&r.node, Some(&r.key));
            let spec = tree().node(&r.node).and_then(Node::collection);
            if spec.is_none() || doc.object(&r.node, Some(&r.key)).is_none() {
                problems.push(problem(
                    &path,
                    &r.field,
                    format!("refers to {target}, which does not exist"),
                ));
            } else if spec.is_some_and(|s| s.single_use) {
                single_use_targets.insert((&r.node, &r.key));
            }
        }
    }

    let deleted: HashSet<(&str, &str)> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Delete)
        .filter_map(|c| Some((c.node.as_str(), c.key.as_deref()?)))
        .collect();
    if !deleted.is_empty() || !single_use_targets.is_empty() {
        let mut uses: HashMap<(&str, &str), Vec<(String, &str)>> = HashMap::new();
        for (node, key, stored) in doc.objects() {
            for r in stored.refs.iter() {
                let target = (r.node.as_str(), r.key.as_str());
                if deleted.contains(&target) {
                    problems.push(problem(
                        &object_path(node, key),
                        &r.field,
                        format!(
                            "refers to {}, which is deleted",
                            object_path(target.0, Some(target.1))
                        ),
                    ));
                }
                if single_use_targets.contains(&target) {
                    uses.entry(target)
                        .or_default()
                        .push((object_path(node, key), &r.field));
                }
            }
        }
        let mut reused: Vec<_> = uses.into_iter().filter(|(_, u)| u.len() > 1).collect();
        reused.sort();
        for ((node, key), users) in reused {
            let target = object_path(node, Some(key));
            let names: Vec<&str> = users.iter().map(|(p, _)| p.as_str()).collect();
            for (path, field) in &users {
                problems.push(problem(
                    path,
                    field,
                    format!(
                        "{target} is used by {}; a password object can be used only once",
                        names.join(", ")
                    ),
                ));
            }
        }
    }

    let changed_nodes: HashSet<&str> = changes.iter().map(|c| c.node.as_str()).collect();
    for node in tree()
        .nodes()
        .iter()
        .filter(|n| changed_nodes.contains(n.path))
    {
        let (Some(spec), Some(collection)) = (node.collection(), doc.collection(node.path)) else {
            continue;
        };
        let Some(field) = spec.unique else { continue };
        let mut seen: HashMap<&str, Vec<&str>> = HashMap::with_capacity(collection.len());
        for (key, stored) in collection.iter() {
            if let Some(value) = stored.body.get(field).and_then(Value::as_str) {
                seen.entry(value).or_default().push(key);
            }
        }
        let mut duplicates: Vec<_> = seen
            .into_iter()
            .filter(|(_, keys)| keys.len() > 1)
            .collect();
        duplicates.sort();
        for (value, keys) in duplicates {
            for key in &keys {
                problems.push(problem(
                    &object_path(node.path, Some(key)),
                    field,
                    format!(
                        "{field} {value:?} is used by {} objects; it must be unique",
                        keys.len()
                    ),
                ));
            }
        }
    }
    problems
}

/// Checks a whole document (e.g. after loading it), as if every object had just been created.
pub fn validate_all(doc: &Document, now: i64) -> Vec<Problem> {
    validate(doc, &doc.changes_since(&Document::default()), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap;
    use crate::objects::local_database::{GROUPS, USERS};
    use crate::objects::passwords::PASSWORDS;
    use serde_json::json;

    fn node(path: &str) -> &'static Node {
        tree().node(path).unwrap()
    }

    fn fresh() -> Document {
        bootstrap::initial_document("pw-for-admin", 1).unwrap()
    }

    #[test]
    fn unknown_member_is_a_semantic_error() {
        let mut doc = fresh();
        let err = create(
            &mut doc,
            node(GROUPS),
            json!({"name": "g", "members": ["nobody"]}),
            1,
        )
        .unwrap_err();
        let EditError::Semantic(problems) = err else {
            panic!("{err:?}")
        };
        assert_eq!(problems[0].field, "members[0]");
    }

    #[test]
    fn unknown_field_and_wrong_type_name_the_path() {
        let mut doc = fresh();
        let err = create(&mut doc, node(GROUPS), json!({"name": "g", "color": 1}), 1).unwrap_err();
        assert!(matches!(err, EditError::Syntax { ref message, .. } if message.contains("color")));
        let err = create(&mut doc, node(GROUPS), json!({"name": 5}), 1).unwrap_err();
        assert!(matches!(err, EditError::Syntax { ref field, .. } if field == "name"));
    }

    #[test]
    fn password_objects_are_single_use_and_collected_when_replaced() {
        let base = fresh();
        let mut doc = base.clone();
        let pw = create(&mut doc, node(PASSWORDS), json!({"plain": "a"}), 1).unwrap();
        create(
            &mut doc,
            node(USERS),
            json!({"name": "u1", "password": pw}),
            1,
        )
        .unwrap();
        let err = create(
            &mut doc,
            node(USERS),
            json!({"name": "u2", "password": pw}),
            1,
        )
        .unwrap_err();
        assert!(matches!(err, EditError::Semantic(_)));
        assert!(validate(&doc, &doc.changes_since(&base), 1).is_empty());

        // Repoint the admin to a new password: the old one is collected at commit.
        let old_admin_pw = doc.object(USERS, Some("-1")).unwrap().refs[0].key.clone();
        let pw2 = create(&mut doc, node(PASSWORDS), json!({"plain": "b"}), 1).unwrap();
        replace(
            &mut doc,
            node(USERS),
            Some("-1"),
            json!({"name": "admin", "password": pw2}),
            2,
        )
        .unwrap();
        let changes = doc.changes_since(&base);
        assert!(collect_garbage(&mut doc, &changes));
        assert!(doc.object(PASSWORDS, Some(&old_admin_pw)).is_none());
        assert!(doc.object(PASSWORDS, Some(&pw2)).is_some());
    }

    #[test]
    fn duplicate_names_fail_the_whole_document_check() {
        let base = fresh();
        let mut doc = base.clone();
        create(&mut doc, node(GROUPS), json!({"name": "ops"}), 1).unwrap();
        create(&mut doc, node(GROUPS), json!({"name": "ops"}), 1).unwrap();
        let problems = validate(&doc, &doc.changes_since(&base), 1);
        assert_eq!(problems.len(), 2);
        assert!(problems.iter().all(|p| p.field == "name"));
    }

    #[test]
    fn referenced_and_builtin_objects_cannot_be_deleted() {
        let mut doc = fresh();
        let user = create(&mut doc, node(USERS), json!({"name": "u"}), 1).unwrap();
        create(
            &mut doc,
            node(GROUPS),
            json!({"name": "g", "members": [user]}),
            1,
        )
        .unwrap();
        assert!(matches!(
            delete(&mut doc, node(USERS), &user),
            Err(EditError::Semantic(_))
        ));
        assert!(matches!(
            delete(&mut doc, node(USERS), "-1"),
            Err(EditError::MethodNotAllowed(_))
        ));
        assert!(matches!(
            delete(&mut doc, node(USERS), "nope"),
            Err(EditError::NotFound)
        ));
    }

    #[test]
    fn password_created_follows_the_password_reference() {
        let mut doc = fresh();
        let pw = create(&mut doc, node(PASSWORDS), json!({"plain": "a"}), 1).unwrap();
        let user = create(
            &mut doc,
            node(USERS),
            json!({"name": "u", "password": pw}),
            100,
        )
        .unwrap();
        replace(
            &mut doc,
            node(USERS),
            Some(&user),
            json!({"name": "u2", "password": pw, "password_created": 5}),
            200,
        )
        .unwrap();
        let body = &doc.object(USERS, Some(&user)).unwrap().body;
        assert_eq!(body["password_created"], 100);
    }
}
