//! Schemas: how a typed configuration object is parsed, completed, validated and shown.
//!
//! Adding an endpoint means writing a type that implements [`ConfigObject`] and registering it in
//! [`crate::tree`]; the REST engine, transactions, references and ACLs come for free.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::document::Document;
use crate::problem::{Problem, Problems};

/// What a schema may consult while it completes or validates an object.
pub struct Context<'a> {
    /// The document the object is (to be) part of.
    pub doc: &'a Document,
    /// The object's key (`None` for singletons).
    pub key: Option<&'a str>,
    /// The stored body it replaces, if any.
    pub previous: Option<&'a Value>,
    /// Unix seconds, for server-set timestamps.
    pub now: i64,
}

/// A typed configuration object.
pub trait ConfigObject: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Fills server-set fields and normalises shorthands before the object is stored.
    fn complete(&mut self, _ctx: &Context<'_>) {}

    /// Checks the rules that the type system cannot express. References are checked generically.
    fn validate(&self, _ctx: &Context<'_>, _problems: &mut Problems<'_>) {}

    /// Removes secrets from a stored body before anybody sees it (GET, change lists, logs).
    fn redact(_body: &mut Value) {}
}

/// Why a body was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// Malformed: wrong type, unknown or missing field. `field` names the offending place.
    Syntax { field: String, message: String },
    /// Well-formed but breaks a rule.
    Semantic(Vec<Problem>),
}

/// The object-safe face of a [`ConfigObject`] type, stored in the tree.
pub trait Schema: Send + Sync {
    /// Parses a request body into the canonical stored form.
    fn accept(&self, input: Value, path: &str, ctx: &Context<'_>) -> Result<Value, Rejection>;
    /// Validates a stored body again (at commit).
    fn check(&self, body: &Value, path: &str, ctx: &Context<'_>) -> Vec<Problem>;
    /// The body as shown to readers.
    fn public(&self, body: &Value) -> Value;
}

/// Adapts a [`ConfigObject`] type to [`Schema`].
pub struct Typed<T>(PhantomData<fn() -> T>);

impl<T> Typed<T> {
    pub const fn new() -> Self {
        Typed(PhantomData)
    }
}

impl<T> Default for Typed<T> {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn syntax_error(err: serde_path_to_error::Error<serde_json::Error>) -> Rejection {
    let outer = err.path().to_string();
    let outer = if outer == "." { String::new() } else { outer };
    let (field, message) = crate::union::locate(&outer, &err.into_inner().to_string());
    Rejection::Syntax { field, message }
}

/// serde's derived structs also accept JSON arrays (as tuples); SPS bodies are objects, so an
/// array where the schema has an object is an error. Returns the path of the first such place.
fn array_for_object(input: &Value, canonical: &Value, path: &mut String) -> Option<String> {
    match (input, canonical) {
        (Value::Array(_), Value::Object(_)) => Some(path.clone()),
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(name, value)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
            let found = b
                .get(name)
                .and_then(|canon| array_for_object(value, canon, path));
            path.truncate(len);
            found
        }),
        (Value::Array(a), Value::Array(b)) => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = array_for_object(x, y, path);
                path.truncate(len);
                found
            })
        }
        _ => None,
    }
}

impl<T: ConfigObject> Schema for Typed<T> {
    fn accept(&self, input: Value, path: &str, ctx: &Context<'_>) -> Result<Value, Rejection> {
        if !input.is_object() {
            return Err(Rejection::Syntax {
                field: String::new(),
                message: "expected a JSON object".into(),
            });
        }
        let original = input.clone();
        let mut object: T = serde_path_to_error::deserialize(input).map_err(syntax_error)?;
        object.complete(ctx);
        let mut problems = Problems::new(path);
        object.validate(ctx, &mut problems);
        if !problems.is_empty() {
            return Err(Rejection::Semantic(problems.into_vec()));
        }
        let canonical = serde_json::to_value(&object).map_err(|e| Rejection::Syntax {
            field: String::new(),
            message: e.to_string(),
        })?;
        if let Some(field) = array_for_object(&original, &canonical, &mut String::new()) {
            return Err(Rejection::Syntax {
                field,
                message: "expected a JSON object, found an array".into(),
            });
        }
        Ok(canonical)
    }

    fn check(&self, body: &Value, path: &str, ctx: &Context<'_>) -> Vec<Problem> {
        let mut problems = Problems::new(path);
        match T::deserialize(body) {
            Ok(object) => object.validate(ctx, &mut problems),
            Err(e) => problems.add(
                "",
                format!("stored object no longer matches its schema: {e}"),
            ),
        }
        problems.into_vec()
    }

    fn public(&self, body: &Value) -> Value {
        let mut shown = body.clone();
        crate::secret::redact(&mut shown);
        T::redact(&mut shown);
        shown
    }
}
