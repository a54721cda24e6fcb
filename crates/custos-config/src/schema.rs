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

fn syntax_error(err: serde_path_to_error::Error<serde_json::Error>) -> Rejection {
    let field = err.path().to_string();
    let field = if field == "." { String::new() } else { field };
    Rejection::Syntax {
        field,
        message: err.into_inner().to_string(),
    }
}

impl<T: ConfigObject> Schema for Typed<T> {
    fn accept(&self, input: Value, path: &str, ctx: &Context<'_>) -> Result<Value, Rejection> {
        let mut object: T = serde_path_to_error::deserialize(input).map_err(syntax_error)?;
        object.complete(ctx);
        let mut problems = Problems::new(path);
        object.validate(ctx, &mut problems);
        if !problems.is_empty() {
            return Err(Rejection::Semantic(problems.into_vec()));
        }
        serde_json::to_value(&object).map_err(|e| Rejection::Syntax {
            field: String::new(),
            message: e.to_string(),
        })
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
        T::redact(&mut shown);
        shown
    }
}
