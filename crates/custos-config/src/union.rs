//! SPS's tagged unions: `{"selection": "<variant>", …the variant's fields…}`.
//!
//! serde's internally tagged enums buffer their input, which loses the path of an error inside a
//! variant and silently ignores unknown fields next to a field-less variant. [`selection_union!`]
//! deserialises the tag first and then the variant's own struct (which denies unknown fields), and
//! carries the inner path out in the error so clients are told exactly which field is wrong.

use serde::de::{DeserializeOwned, Deserializer, Error};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Separates an inner field path from the message in errors raised inside a union variant.
pub(crate) const PATH_MARK: char = '\u{1}';

/// The fields of a variant that has none (e.g. `{"selection": "local"}`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// Reads the `selection` tag and hands the remaining fields to `build`.
pub fn deserialize_union<'de, D, T>(
    deserializer: D,
    tags: &'static [&'static str],
    build: impl FnOnce(&str, Value) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let Value::Object(mut map) = Value::deserialize(deserializer)? else {
        return Err(D::Error::custom(format!(
            "expected an object with \"selection\" (one of {})",
            tags.join(", ")
        )));
    };
    let tag = match map.remove("selection") {
        Some(Value::String(tag)) => tag,
        Some(_) => return Err(D::Error::custom("\"selection\" must be a string")),
        None => return Err(D::Error::missing_field("selection")),
    };
    if !tags.contains(&tag.as_str()) {
        return Err(D::Error::unknown_variant(&tag, tags));
    }
    build(&tag, Value::Object(map)).map_err(D::Error::custom)
}

/// Deserialises a variant's fields, keeping the path of any error for the caller.
pub fn variant<T: DeserializeOwned>(fields: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(fields).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        format!("{PATH_MARK}{path}{PATH_MARK}{}", e.into_inner())
    })
}

/// Serialises a variant as its fields plus `selection`.
pub fn serialize_union<S: serde::Serializer, T: Serialize>(
    serializer: S,
    tag: &str,
    fields: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = match serde_json::to_value(fields).map_err(serde::ser::Error::custom)? {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    map.insert("selection".into(), Value::String(tag.into()));
    map.serialize(serializer)
}

/// Splits an error message into the inner field path (joined to `outer`) and the message proper.
pub(crate) fn locate(outer: &str, message: &str) -> (String, String) {
    let mut field = outer.to_string();
    let mut rest = message;
    while let Some(stripped) = rest.strip_prefix(PATH_MARK) {
        let Some((inner, tail)) = stripped.split_once(PATH_MARK) else {
            break;
        };
        if !inner.is_empty() {
            if !field.is_empty() && !inner.starts_with('[') {
                field.push('.');
            }
            field.push_str(inner);
        }
        rest = tail;
    }
    (field, rest.to_string())
}

/// Declares an enum that (de)serialises as an SPS selection union. Each variant holds a struct
/// whose fields stand next to `selection`; use [`NoFields`] for a variant without fields.
#[macro_export]
macro_rules! selection_union {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $( $tag:literal => $variant:ident($ty:ty) ),+ $(,)? }
    ) => {
        $(#[$meta])*
        $vis enum $name { $( $variant($ty) ),+ }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( $name::$variant(fields) => $crate::union::serialize_union(serializer, $tag, fields), )+
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::union::deserialize_union(deserializer, &[$($tag),+], |tag, fields| match tag {
                    $( $tag => $crate::union::variant(fields).map($name::$variant), )+
                    other => Err(format!("unknown selection {other:?}")),
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Fix {
        address: String,
        port: u16,
    }

    selection_union! {
        #[derive(Debug, PartialEq)]
        enum Target { "original" => Original(NoFields), "fix" => Fix(Fix) }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        target: Target,
    }

    fn error_of(v: Value) -> (String, String) {
        let e = serde_path_to_error::deserialize::<_, Outer>(v).unwrap_err();
        let outer = e.path().to_string();
        locate(&outer, &e.into_inner().to_string())
    }

    #[test]
    fn round_trips_with_selection_next_to_fields() {
        let v = json!({"selection": "fix", "address": "10.0.0.1", "port": 22});
        let t: Target = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            t,
            Target::Fix(Fix {
                address: "10.0.0.1".into(),
                port: 22
            })
        );
        assert_eq!(serde_json::to_value(&t).unwrap(), v);
        let o: Target = serde_json::from_value(json!({"selection": "original"})).unwrap();
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            json!({"selection": "original"})
        );
    }

    #[test]
    fn errors_name_the_field_inside_the_variant() {
        let (field, msg) =
            error_of(json!({"target": {"selection": "fix", "address": "a", "port": "x"}}));
        assert_eq!(field, "target.port");
        assert!(msg.contains("invalid type"), "{msg}");
        let (field, msg) = error_of(json!({"target": {"selection": "original", "zzz": 1}}));
        assert_eq!(field, "target.zzz");
        assert!(msg.contains("zzz"), "{msg}");
        let (_, msg) = error_of(json!({"target": {"selection": "nat"}}));
        assert!(msg.contains("unknown variant"), "{msg}");
        let (_, msg) = error_of(json!({"target": {"address": "a"}}));
        assert!(msg.contains("selection"), "{msg}");
        let (_, msg) = error_of(json!({"target": ["fix"]}));
        assert!(msg.contains("expected an object"), "{msg}");
    }
}
