//! References between configuration objects.
//!
//! SPS renders a reference as `{"key": "<id>", "meta": {"href": "<collection>/<id>"}}` and accepts the
//! bare key on write; clients also PUT back what they GET, so writes accept the rendered form too.
//! Stored bodies always hold the rendered form, which lets the engine find every reference in any
//! body generically (see [`find_references`]) without per-type code.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A collection that objects may refer to.
pub trait RefTarget {
    /// The collection's path, e.g. `/api/configuration/passwords`.
    const NODE: &'static str;
}

/// A typed reference to an object of collection `T`.
pub struct Ref<T> {
    key: String,
    target: PhantomData<fn() -> T>,
}

impl<T> Ref<T> {
    pub fn new(key: impl Into<String>) -> Self {
        Ref {
            key: key.into(),
            target: PhantomData,
        }
    }
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl<T> Clone for Ref<T> {
    fn clone(&self) -> Self {
        Ref::new(self.key.clone())
    }
}
impl<T> PartialEq for Ref<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<T> Eq for Ref<T> {}
impl<T> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ref({})", self.key)
    }
}

impl<T: RefTarget> Serialize for Ref<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("key", &self.key)?;
        map.serialize_entry(
            "meta",
            &Meta {
                href: href(T::NODE, &self.key),
            },
        )?;
        map.end()
    }
}

#[derive(Serialize)]
struct Meta {
    href: String,
}

pub fn href(node: &str, key: &str) -> String {
    format!("{node}/{key}")
}

impl<'de, T: RefTarget> Deserialize<'de> for Ref<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RefVisitor::<T>(PhantomData))
    }
}

struct RefVisitor<T>(PhantomData<fn() -> T>);

impl<'de, T: RefTarget> Visitor<'de> for RefVisitor<T> {
    type Value = Ref<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a key of an object in {} (a string, or {{\"key\": …, \"meta\": {{\"href\": …}}}})",
            T::NODE
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        check_key(v).map_err(E::custom)?;
        Ok(Ref::new(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut key: Option<String> = None;
        let mut link: Option<String> = None;
        while let Some(name) = map.next_key::<String>()? {
            match name.as_str() {
                "key" => key = Some(map.next_value()?),
                "meta" => {
                    let meta: RefMeta = map.next_value()?;
                    link = meta.href;
                }
                other => {
                    return Err(de::Error::unknown_field(other, &["key", "meta"]));
                }
            }
        }
        // SPS samples sometimes render a reference by its href alone (backup policies' auth_key).
        let key = match (key, &link) {
            (Some(key), _) => key,
            (None, Some(link)) => link
                .strip_prefix(T::NODE)
                .and_then(|rest| rest.strip_prefix('/'))
                .map(str::to_string)
                .ok_or_else(|| {
                    de::Error::custom(format!(
                        "meta.href {link:?} is not an object of {}",
                        T::NODE
                    ))
                })?,
            (None, None) => return Err(de::Error::missing_field("key")),
        };
        check_key(&key).map_err(de::Error::custom)?;
        if let Some(link) = link {
            let expected = href(T::NODE, &key);
            if link != expected {
                return Err(de::Error::custom(format!(
                    "meta.href {link:?} does not match the key; expected {expected:?}"
                )));
            }
        }
        Ok(Ref::new(key))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefMeta {
    href: Option<String>,
}

/// Keys are path segments: non-empty, at most 128 characters, no `/`, `#`, `?` or whitespace.
pub fn check_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.chars().count() <= 128
        && !key
            .chars()
            .any(|c| c == '/' || c == '#' || c == '?' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!("{key:?} is not a valid object key"))
    }
}

/// A reference found in a stored body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundReference {
    /// Where in the body, e.g. `members[1]` or `password`.
    pub field: String,
    /// The referenced collection path.
    pub node: String,
    pub key: String,
}

/// Finds every rendered reference in a stored body.
pub fn find_references(body: &Value) -> Vec<FoundReference> {
    let mut out = Vec::new();
    walk(body, &mut String::new(), &mut out);
    out
}

fn walk(value: &Value, field: &mut String, out: &mut Vec<FoundReference>) {
    match value {
        Value::Object(map) => {
            if let Some(found) = as_reference(map, field) {
                out.push(found);
                return;
            }
            for (name, child) in map {
                let len = field.len();
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(name);
                walk(child, field, out);
                field.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = field.len();
                field.push_str(&format!("[{i}]"));
                walk(child, field, out);
                field.truncate(len);
            }
        }
        _ => {}
    }
}

fn as_reference(map: &serde_json::Map<String, Value>, field: &str) -> Option<FoundReference> {
    if map.len() != 2 {
        return None;
    }
    let key = map.get("key")?.as_str()?;
    let meta = map.get("meta")?.as_object()?;
    if meta.len() != 1 {
        return None;
    }
    let link = meta.get("href")?.as_str()?;
    let node = link.strip_suffix(key)?.strip_suffix('/')?;
    Some(FoundReference {
        field: field.to_string(),
        node: node.to_string(),
        key: key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Users;
    impl RefTarget for Users {
        const NODE: &'static str = "/api/configuration/aaa/local_database/users";
    }

    #[test]
    fn accepts_bare_key_and_rendered_form() {
        let a: Ref<Users> = serde_json::from_value(json!("abc")).unwrap();
        let b: Ref<Users> = serde_json::from_value(
            json!({"key": "abc", "meta": {"href": "/api/configuration/aaa/local_database/users/abc"}}),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"key": "abc", "meta": {"href": "/api/configuration/aaa/local_database/users/abc"}})
        );
    }

    #[test]
    fn accepts_a_reference_by_href_alone() {
        let r: Ref<Users> = serde_json::from_value(
            json!({"meta": {"href": "/api/configuration/aaa/local_database/users/abc"}}),
        )
        .unwrap();
        assert_eq!(r.key(), "abc");
        assert!(
            serde_json::from_value::<Ref<Users>>(json!({"meta": {"href": "/api/x/abc"}})).is_err()
        );
    }

    #[test]
    fn rejects_href_of_another_collection_and_bad_keys() {
        let wrong = json!({"key": "abc", "meta": {"href": "/api/configuration/passwords/abc"}});
        assert!(serde_json::from_value::<Ref<Users>>(wrong).is_err());
        assert!(serde_json::from_value::<Ref<Users>>(json!("a/b")).is_err());
        assert!(serde_json::from_value::<Ref<Users>>(json!("")).is_err());
        assert!(serde_json::from_value::<Ref<Users>>(json!(7)).is_err());
    }

    #[test]
    fn finds_references_with_their_fields() {
        let body = json!({"name": "g", "members": [
            {"key": "u1", "meta": {"href": "/api/x/users/u1"}},
            {"key": "u2", "meta": {"href": "/api/x/users/u2"}}]});
        let found = find_references(&body);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].field, "members[1]");
        assert_eq!(found[1].node, "/api/x/users");
        assert_eq!(found[1].key, "u2");
    }
}
