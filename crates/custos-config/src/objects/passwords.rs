//! Password objects (`/api/configuration/passwords`): created by POSTing `{"plain": …}`, referenced
//! once, never shown. Only an argon2id hash is stored, so a stolen database does not reveal them.

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::problem::{Problem, Problems};
use crate::reference::RefTarget;
use crate::schema::{Context, Rejection, Schema};

pub const PASSWORDS: &str = "/api/configuration/passwords";
/// Longest accepted password, to bound hashing work per request.
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub struct Passwords;
impl RefTarget for Passwords {
    const NODE: &'static str = PASSWORDS;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordInput {
    plain: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPassword {
    hash: String,
    created: i64,
}

/// Hashes a password with argon2id (OWASP parameters: 19 MiB, 2 passes).
pub fn hash_password(plain: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(plain.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks `plain` against a stored password body in constant time (argon2 compares digests so).
pub fn verify_password(stored_body: &Value, plain: &str) -> bool {
    let Some(hash) = stored_body.get("hash").and_then(Value::as_str) else {
        return false;
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(plain.as_bytes(), &parsed)
        .is_ok()
}

pub struct PasswordSchema;

impl Schema for PasswordSchema {
    fn accept(&self, input: Value, path: &str, ctx: &Context<'_>) -> Result<Value, Rejection> {
        if !input.is_object() {
            return Err(Rejection::Syntax {
                field: String::new(),
                message: "expected a JSON object".into(),
            });
        }
        let input: PasswordInput =
            serde_path_to_error::deserialize(input).map_err(crate::schema::syntax_error)?;
        let mut problems = Problems::new(path);
        if input.plain.is_empty() {
            problems.add("plain", "must not be empty");
        } else if input.plain.len() > MAX_PASSWORD_BYTES {
            problems.add(
                "plain",
                format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
            );
        }
        if !problems.is_empty() {
            return Err(Rejection::Semantic(problems.into_vec()));
        }
        let hash = hash_password(&input.plain).map_err(|message| Rejection::Syntax {
            field: "plain".into(),
            message,
        })?;
        Ok(serde_json::to_value(StoredPassword {
            hash,
            created: ctx.now,
        })
        .unwrap_or(Value::Null))
    }

    fn check(&self, body: &Value, path: &str, _ctx: &Context<'_>) -> Vec<Problem> {
        let mut problems = Problems::new(path);
        if StoredPassword::deserialize(body).is_err() {
            problems.add("", "not a stored password");
        }
        problems.into_vec()
    }

    fn public(&self, body: &Value) -> Value {
        // Never the hash: only when it was set.
        json!({"created": body.get("created").cloned().unwrap_or(Value::Null)})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let body = json!({"hash": hash, "created": 1});
        assert!(verify_password(&body, "s3cret"));
        assert!(!verify_password(&body, "s3cret "));
        assert!(!verify_password(&json!({}), "s3cret"));
    }
}
