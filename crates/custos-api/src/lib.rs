//! The SPS-compatible REST API of Custos.
//!
//! A request travels: HTTP → [`dispatch`] → authentication ([`login`], [`credentials`]) →
//! resolution in the configuration tree → the node's ACL guard → the generic [`tree_engine`] (or a
//! [`services`] endpoint) → the [`transaction`] and the store.
//!
//! **Invariant:** only this crate speaks JSON envelopes and HTTP; every error leaves through
//! [`error::ApiError`], so clients always get the SPS error envelope.

pub mod credentials;
pub mod envelope;
pub mod error;
pub mod login;
pub mod request;
pub mod retention;
pub mod services;
pub mod sessions;
pub mod state;
pub mod throttle;
pub mod transaction;
pub mod tree_engine;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custos_config::bootstrap;
use custos_config::tree::tree;
use custos_sessions::LiveSessions;
use custos_store::Store;
use serde_json::json;

use crate::error::ApiError;
use crate::login::IDLE_TIMEOUT;
use crate::request::{ApiRequest, Caller};
pub use crate::state::{Api, ApiOptions, ServerIdentity, Snapshot};

/// Largest request body accepted (configuration objects are small).
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Oversized bodies up to this size are read and discarded before the 413 is sent.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// What [`Api::open`] did on first start.
pub enum FirstStart {
    /// The database already held a configuration.
    Existing,
    /// A fresh configuration was created with the given admin password.
    Created,
}

impl Api {
    /// Loads the last committed configuration, or creates the first one with `admin_password`.
    /// `store` and `live` are shared with the gateways: they save session records into the one and
    /// register sessions in progress with the other; the API lists and terminates them.
    pub async fn open(
        store: Arc<Store>,
        live: LiveSessions,
        search: Arc<custos_search::SearchIndex>,
        options: ApiOptions,
        admin_password: &str,
    ) -> Result<(Arc<Api>, FirstStart), String> {
        let loaded = store.load().await.map_err(|e| e.to_string())?;
        match loaded {
            Some((revision, mut doc)) => {
                // Commits validate only what they change, trusting that the base was valid; check
                // the whole document once at startup so a violation cannot hide.
                let problems = custos_config::edit::validate_all(&doc, transaction::unix_now());
                for problem in &problems {
                    tracing::error!(path = %problem.path, field = %problem.field, message = %problem.message, "stored configuration is invalid");
                }
                let base = doc.clone();
                let upgraded = bootstrap::add_builtins(&mut doc, transaction::unix_now());
                if custos_config::tsa_identity(&doc).is_none() {
                    tracing::error!(
                        "the configuration names no usable built-in time-stamping identity (management/certificates)"
                    );
                }
                let api = Api::new(
                    store,
                    live,
                    search,
                    Snapshot {
                        revision,
                        doc: base.clone(),
                    },
                    options,
                );
                if upgraded {
                    let changes = doc.changes_since(&base);
                    let revision = api
                        .write_revision(
                            &changes,
                            "custos",
                            "built-in objects of this version",
                            transaction::unix_now(),
                        )
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                    api.publish(Snapshot { revision, doc });
                    tracing::info!(revision, "added the built-in objects of this version");
                }
                Ok((Arc::new(api), FirstStart::Existing))
            }
            None => {
                let doc = bootstrap::initial_document(admin_password, transaction::unix_now())
                    .map_err(|e| format!("cannot build the initial configuration: {e:?}"))?;
                let api = Api::new(
                    store,
                    live,
                    search,
                    Snapshot {
                        revision: 0,
                        doc: Default::default(),
                    },
                    options,
                );
                api.commit_initial(doc)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                Ok((Arc::new(api), FirstStart::Created))
            }
        }
    }
}

/// The axum router serving `/api`.
pub fn router(api: Arc<Api>) -> Router {
    Router::new().fallback(serve).with_state(api)
}

async fn serve(State(api): State<Arc<Api>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let (parts, body) = request.into_parts();
    let raw_path = parts.uri.path();
    let trimmed = match raw_path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let Some(path) = decode_path(trimmed) else {
        return ApiError::NotFound.into_response_for(trimmed);
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        // Read (and drop) a moderately oversized body so that the client, still writing it, can
        // read the 413; beyond that, answer at once and let the connection close.
        if declared.is_some_and(|n| n <= DRAIN_LIMIT) {
            let _ = axum::body::to_bytes(body, DRAIN_LIMIT).await;
        }
        return ApiError::PayloadTooLarge { limit: BODY_LIMIT }.into_response_for(&path);
    }
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::PayloadTooLarge { limit: BODY_LIMIT }.into_response_for(&path),
    };
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let req = ApiRequest {
        method: parts.method,
        version: parts.version,
        path,
        query,
        headers: parts.headers,
        body,
        peer,
        now: Instant::now(),
    };
    if let Some(key) = sessions::download::audit_trail_key(&req.path) {
        return download(&api, &req, key).await;
    }
    match dispatch(&api, &req).await {
        Ok((status, body, cookie)) => {
            let mut response = if req.path == custos_config::tree::AUDIT_SESSIONS
                && status == StatusCode::OK
                && sessions::csv::wanted(&req)
            {
                sessions::csv::response(&body)
            } else {
                (status, axum::Json(body)).into_response()
            };
            if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => error.into_response_for(&req.path),
    }
}

/// `GET /api/audit/sessions/<key>/audit_trail`: authenticated like every request, answered with
/// the file itself (or the error envelope).
async fn download(api: &Api, req: &ApiRequest, key: &str) -> Response {
    let caller = match authenticate(api, req).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response_for(&req.path),
    };
    match sessions::download::audit_trail(api, req, &caller, key).await {
        Ok(mut response) => {
            if let Some(cookie) = caller.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => error.into_response_for(&req.path),
    }
}

/// Decodes `%XX` escapes (and `+` as space in query strings); works on bytes, so any input is safe.
fn percent_decode_bytes(s: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s, true)).into_owned()
}

/// Decodes each path segment; `None` if a segment decodes to something that cannot be a key
/// (invalid UTF-8, or a `/` that would change the path's shape).
fn decode_path(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    for (i, segment) in raw.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let decoded = String::from_utf8(percent_decode_bytes(segment, false)).ok()?;
        if decoded.contains('/') {
            return None;
        }
        out.push_str(&decoded);
    }
    Some(out)
}

/// `Set-Cookie` for a session id; re-sent on every response so that `Expires` follows the
/// sliding idle timeout (clients such as SafeguardJava check it).
fn session_cookie(session_id: &str) -> String {
    let expires = time::OffsetDateTime::now_utc() + IDLE_TIMEOUT;
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let expires = expires.format(&format).unwrap_or_default();
    format!("session_id={session_id}; Path=/; Secure; HttpOnly; SameSite=Strict; Expires={expires}")
}

type Outcome = (StatusCode, serde_json::Value, Option<String>);

async fn dispatch(api: &Api, req: &ApiRequest) -> Result<Outcome, ApiError> {
    if req.path != "/api" && !req.path.starts_with("/api/") {
        return Err(ApiError::NotFound);
    }
    match req.path.as_str() {
        "/api/authentication" => return authentication(api, req).await,
        "/api/authentication/types" | "/api/authentication/login_methods" => {
            let (status, body) = services::authentication_info(req)?;
            return Ok((status, body, None));
        }
        "/api/info" => {
            let caller = authenticate(api, req).await.ok();
            let (status, body) = services::info(api, req, caller.as_ref().map(|c| &c.login))?;
            return Ok((status, body, caller.and_then(|c| c.cookie)));
        }
        _ => {}
    }
    let caller = authenticate(api, req).await?;
    let (status, body) = route(api, req, &caller).await?;
    Ok((status, body, caller.cookie))
}

async fn route(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
) -> Result<tree_engine::Reply, ApiError> {
    let path = req.path.as_str();
    match path {
        "/api/transaction" | "/api/transaction/changes" => {
            return services::transaction(api, req, caller).await;
        }
        "/api/user_info" | "/api/user/info" | "/api/userinfo" => {
            return services::user_info(req, caller);
        }
        "/api/endpoints" => return services::endpoint_list(req, caller),
        _ => {}
    }
    if path == "/api/changelog" || path.starts_with("/api/changelog/") {
        caller.require("/api/changelog", custos_config::acl::Permission::Read)?;
        return services::changelog(api, req, caller).await;
    }
    if let Some(reply) = sessions::route(api, req, caller).await {
        return reply;
    }
    if let Some(reply) = retention::route(api, req, caller).await {
        return reply;
    }
    let target = tree().resolve(path).ok_or(ApiError::NotFound)?;
    tree_engine::handle(api, req, caller, target).await
}

/// Identifies the caller by cookie, or by Basic credentials when no valid cookie is sent.
/// Basic next to a valid cookie is ignored, so it never starts a new login or drops a transaction.
async fn authenticate(api: &Api, req: &ApiRequest) -> Result<Caller, ApiError> {
    if let Some(session_id) = req.session_cookie()
        && let Some(login) = api.logins.touch(session_id, req.now)
    {
        return Ok(Caller {
            login,
            cookie: Some(session_cookie(session_id)),
        });
    }
    let Some((user, password)) = req
        .header("authorization")
        .and_then(credentials::parse_basic)
    else {
        return Err(ApiError::Unauthenticated);
    };
    let key = api.verify(&user, &password, req.peer).await?;
    let snapshot = api.committed();
    // Each cookie-less Basic request is a login in its own right, so it sees the privileges of
    // the configuration in force now.
    let privileges = credentials::privileges_of(&snapshot.doc, &key);
    let login = api
        .logins
        .basic(&user, privileges, snapshot.revision, req.now);
    Ok(Caller {
        login,
        cookie: None,
    })
}

/// `GET`/`POST /api/authentication` logs in with Basic credentials; `DELETE` logs out.
async fn authentication(api: &Api, req: &ApiRequest) -> Result<Outcome, ApiError> {
    let meta = |remaining: u64| json!({"meta": {"href": "/api/authentication", "parent": "/api", "remaining_seconds": remaining}});
    match req.method {
        Method::GET | Method::POST => {
            let Some((user, password)) = req
                .header("authorization")
                .and_then(credentials::parse_basic)
            else {
                // No credentials: an existing login is fine; otherwise challenge (SafeguardJava waits for it).
                let caller = authenticate(api, req).await?;
                let remaining = caller.login.remaining(req.now).as_secs();
                return Ok((StatusCode::OK, meta(remaining), caller.cookie));
            };
            let key = api.verify(&user, &password, req.peer).await?;
            let snapshot = api.committed();
            let privileges = credentials::privileges_of(&snapshot.doc, &key);
            let (session_id, login) = api.logins.start(&user, privileges, req.now);
            tracing::info!(user = %user, address = %req.peer, "logged in");
            Ok((
                StatusCode::OK,
                meta(login.remaining(req.now).as_secs()),
                Some(session_cookie(&session_id)),
            ))
        }
        Method::DELETE => {
            let caller = authenticate(api, req).await?;
            {
                let mut slot = api.slot().await;
                if slot.as_ref().is_some_and(|t| t.owner == caller.login.id) {
                    let _ = api.rollback(&mut slot, &caller.login);
                }
            }
            api.logins.end(&caller.login.id);
            tracing::info!(user = %caller.login.user, "logged out");
            let expired =
                "session_id=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0".to_string();
            Ok((
                StatusCode::OK,
                json!({"meta": {"href": "/api/authentication", "parent": "/api"}}),
                Some(expired),
            ))
        }
        _ => Err(ApiError::MethodNotAllowed {
            allowed: &["DELETE", "GET", "POST"],
            reason: "use GET or POST to log in, DELETE to log out".into(),
        }),
    }
}

/// Keeps the body type nameable for the binary's router composition.
pub type ApiBody = Body;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_never_panics_and_decodes() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%aé%"), "%aé%");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(decode_path("/api/x/%2D1").as_deref(), Some("/api/x/-1"));
        assert_eq!(decode_path("/api/x/a%2Fb"), None);
        assert_eq!(decode_path("/api/x/%FF"), None);
    }
}
