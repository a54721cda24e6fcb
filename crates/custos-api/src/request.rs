//! One REST request as the engine sees it, and the login that made it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use custos_config::acl::Permission;
use custos_config::tree::tree;
use serde_json::Value;

use crate::error::ApiError;
use crate::login::Login;

pub struct ApiRequest {
    pub method: Method,
    pub version: axum::http::Version,
    /// The path without a trailing slash.
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: IpAddr,
    pub now: Instant,
}

impl ApiRequest {
    /// Whether the body length is known: HTTP/1 needs `Content-Length` for that (SPS answers 411
    /// otherwise); HTTP/2 and later frame the body, so the header is optional there.
    pub fn has_declared_length(&self) -> bool {
        self.version >= axum::http::Version::HTTP_2 || self.header("content-length").is_some()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `session_id` cookie, if sent.
    pub fn session_cookie(&self) -> Option<&str> {
        self.headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == "session_id")
            .map(|(_, value)| value.trim())
    }

    /// The request body as JSON; an empty body is `{}` only where `empty_ok`.
    pub fn json(&self, empty_ok: bool) -> Result<Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return if empty_ok {
                Ok(Value::Object(Default::default()))
            } else {
                Err(ApiError::Syntax {
                    field: String::new(),
                    message: "the request body is empty; expected a JSON object".into(),
                })
            };
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Syntax {
            field: String::new(),
            message: format!(
                "invalid JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
        })
    }

    /// A non-negative integer query parameter, with a default.
    pub fn query_number(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.query.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::Syntax {
                    field: name.to_string(),
                    message: format!("query parameter {name}={v:?} is not a non-negative integer"),
                }),
        }
    }
}

/// How the caller authenticated, and so what the response must set.
pub struct Caller {
    pub login: Login,
    /// A cookie to (re)send: the session id, refreshed on every response for the sliding timeout.
    pub cookie: Option<String>,
}

impl Caller {
    /// Checks the guard of the tree node at `path` (for endpoints served outside the tree engine,
    /// which keep their guard in the tree all the same). A path missing from the tree denies.
    pub fn require(&self, path: &str, need: Permission) -> Result<(), ApiError> {
        let guard = tree()
            .node(path)
            .map(|n| n.guard)
            .ok_or(ApiError::NotFound)?;
        if self.login.privileges.allows(guard, need) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}
