//! Secrets inside configuration objects (SMB passwords, private keys).
//!
//! A secret travels in a body as `{"$secret": "<value>"}`. Clients send the plain string; nobody
//! ever reads it back: every public view drops secret fields ([`redact`]), so GET, change lists
//! and the changelog cannot show them. The store seals them before they reach the disk.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The marker key of a secret value in a body.
pub const SECRET_KEY: &str = "$secret";

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the component that must use it (never for display).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(SECRET_KEY, &self.0)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
                let mut value = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != SECRET_KEY {
                        return Err(de::Error::unknown_field(&key, &[SECRET_KEY]));
                    }
                    value = Some(map.next_value::<String>()?);
                }
                value
                    .map(Secret)
                    .ok_or_else(|| de::Error::missing_field(SECRET_KEY))
            }
        }
        deserializer.deserialize_any(SecretVisitor)
    }
}

/// Whether a JSON value is a secret (`{"$secret": "…"}`).
pub fn is_secret(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.get(SECRET_KEY).is_some_and(Value::is_string))
}

/// Drops every secret field from a body, at any depth.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !is_secret(v));
            map.values_mut().for_each(redact);
        }
        Value::Array(items) => {
            items.retain(|v| !is_secret(v));
            items.iter_mut().for_each(redact);
        }
        _ => {}
    }
}

/// Applies `f` to every secret in a body (the store seals and unseals with it).
pub fn map_secrets<E>(
    value: &mut Value,
    f: &mut impl FnMut(&mut Value) -> Result<(), E>,
) -> Result<(), E> {
    if is_secret(value) || is_sealed(value) {
        return f(value);
    }
    match value {
        Value::Object(map) => map.values_mut().try_for_each(|v| map_secrets(v, f)),
        Value::Array(items) => items.iter_mut().try_for_each(|v| map_secrets(v, f)),
        _ => Ok(()),
    }
}

/// The marker key of a sealed secret as stored on disk.
pub const SEALED_KEY: &str = "$sealed";

pub fn is_sealed(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.get(SEALED_KEY).is_some_and(Value::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_accepted_plain_stored_marked_and_never_shown() {
        let s: Secret = serde_json::from_value(json!("hunter2")).unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "Secret(…)");
        let stored = serde_json::to_value(&s).unwrap();
        assert_eq!(stored, json!({"$secret": "hunter2"}));
        let again: Secret = serde_json::from_value(stored).unwrap();
        assert_eq!(again, s);

        let mut body = json!({"user": "u", "password": {"$secret": "hunter2"},
                              "list": [{"k": {"$secret": "x"}}]});
        redact(&mut body);
        assert_eq!(body, json!({"user": "u", "list": [{}]}));
    }
}
