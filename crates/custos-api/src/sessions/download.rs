//! `GET /api/audit/sessions/<key>/audit_trail`: the session's trail file, as stored (API notes
//! §8.3, §13 item 20: exactly 200 with `application/octet-stream`).
//!
//! The file is streamed from disk in chunks, so a multi-gigabyte trail costs no more memory than
//! a small one. A session in progress gets what its recorder has written so far. An archived
//! trail is read from its archive while that is reachable (503 `ArchiveUnavailable` when not),
//! and checked against the digest taken when it was archived as it is sent; a trail deleted by
//! a cleanup policy answers 404 saying so.

use std::path::{Component, Path};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use custos_config::tree::AUDIT_SESSIONS;
use custos_sessions::SessionRecord;
use std::io::Read as _;

use tokio::io::AsyncReadExt as _;
use tokio_util::io::ReaderStream;

use super::{need, only};
use crate::error::ApiError;
use crate::request::{ApiRequest, Caller};
use crate::state::Api;

/// The last segment of a download path.
const AUDIT_TRAIL: &str = "audit_trail";
/// Bytes read from the file per chunk sent: large enough that a fast client is not held back
/// by per-chunk costs, small enough that slow clients do not pin much memory.
const CHUNK: usize = 256 * 1024;

/// The session key if `path` is `/api/audit/sessions/<key>/audit_trail`.
pub fn audit_trail_key(path: &str) -> Option<&str> {
    let key = path
        .strip_prefix(AUDIT_SESSIONS)?
        .strip_prefix('/')?
        .strip_suffix(AUDIT_TRAIL)?
        .strip_suffix('/')?;
    (!key.is_empty() && !key.contains('/')).then_some(key)
}

/// Serves the trail of session `key`. The guard, the visibility rule and the 404 for unknown
/// sessions are those of `GET /api/audit/sessions/<key>`, so the download reveals nothing the
/// record does not.
pub async fn audit_trail(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
    key: &str,
) -> Result<Response, ApiError> {
    caller.require(AUDIT_SESSIONS, need(req))?;
    only(req, &["GET"])?;
    let record = super::audit::visible_record(api, caller, key).await?;
    let relative = record.trail.as_deref().ok_or(ApiError::TrailNotAvailable(
        "this session has no audit trail (nothing was recorded)",
    ))?;
    if let Some(archive) = &record.archive {
        if !archive.is_archived() {
            return Err(ApiError::TrailNotAvailable(
                "the audit trail was deleted by its archive/cleanup policy",
            ));
        }
        return archived(api, req, caller, &record).await;
    }
    let missing = || {
        ApiError::TrailNotAvailable(
            "the audit trail file is not available on this node (it may have been archived or removed)",
        )
    };
    // Records are written by the gateway, not by clients; still, a path that could leave the
    // data directory is never opened.
    if !Path::new(relative)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        tracing::warn!(session = %record.session_id, trail = %relative, "a session record names a trail outside the data directory");
        return Err(missing());
    }
    let path = api.store.directory().join(relative);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => {
            return Err(ApiError::Internal(format!(
                "cannot open {}: {e}",
                path.display()
            )));
        }
    };
    let size = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read {}: {e}", path.display())))?
        .len();
    if should_log(api, &record) {
        tracing::info!(
            target: "custos::audit",
            user = %caller.login.user,
            session = %record.session_id,
            key = %record.key,
            trail = %relative,
            bytes = size,
            address = %req.peer,
            "audit trail downloaded"
        );
    }

    let name = file_name(relative, key);
    let response = if record.active {
        // Still being written: send whatever the file holds until its end when read, with no
        // promised length (the recorder may append, or rewrite its partial last block).
        Response::new(Body::from_stream(ReaderStream::with_capacity(file, CHUNK)))
    } else {
        // A finished trail no longer changes: announce its length and send exactly that.
        let mut response = Response::new(Body::from_stream(ReaderStream::with_capacity(
            file.take(size),
            CHUNK,
        )));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        response
    };
    Ok(attachment(response, &name))
}

/// Status and headers of a trail download.
fn attachment(mut response: Response, name: &str) -> Response {
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    // Recorded sessions are sensitive: no shared or browser cache may keep a copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Serves an archived trail from its archive. The bytes are hashed as they go; if they do not
/// match what was verified at archiving, the transfer is aborted (the client sees a failed
/// download, never a silently different file) and the mismatch is logged as an event.
async fn archived(
    api: &Api,
    req: &ApiRequest,
    caller: &Caller,
    record: &SessionRecord,
) -> Result<Response, ApiError> {
    let engine = api
        .retention
        .get()
        .ok_or(ApiError::Unavailable("The retention engine"))?;
    let (mut reader, archive) = engine.open_archived(record).await.map_err(|e| match e {
        custos_retention::RetentionError::Store(e) => ApiError::Internal(e.to_string()),
        other => ApiError::ArchiveUnavailable(other.to_string()),
    })?;
    if should_log(api, record) {
        tracing::info!(
            target: "custos::audit",
            user = %caller.login.user,
            session = %record.session_id,
            key = %record.key,
            archive = %archive.location().unwrap_or_default(),
            bytes = archive.size,
            address = %req.peer,
            "archived audit trail downloaded"
        );
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let (expected_size, expected_digest) = (archive.size, archive.blake3.clone());
    let location = archive.location().unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        // The last chunk is held back until the digest is known: with the length announced,
        // the client would otherwise have every byte before it could learn of a mismatch.
        let mut held: Option<bytes::Bytes> = None;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            buf.truncate(n);
            hasher.update(&buf);
            size += n as u64;
            if let Some(chunk) = held.replace(bytes::Bytes::from(buf))
                && tx.blocking_send(Ok(chunk)).is_err()
            {
                return; // the client went away
            }
        }
        let digest = hasher.finalize().to_hex().to_string();
        if size != expected_size || expected_digest.as_deref().is_some_and(|d| d != digest) {
            tracing::error!(target: "custos::events", archive = %location, size, expected_size, "an archived trail no longer matches what was verified when it was archived");
            let _ = tx.blocking_send(Err(std::io::Error::other(
                "the archived trail does not match its digest",
            )));
        } else if let Some(chunk) = held {
            let _ = tx.blocking_send(Ok(chunk));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(archive.size));
    let relative = record.trail.as_deref().unwrap_or_default();
    Ok(attachment(response, &file_name(relative, &record.key)))
}

/// Whether the session's connection policy asks for downloads to be logged. A policy that no
/// longer exists (deleted, or renamed away after the session) cannot say no, so the download
/// is logged: an audit line too many is harmless, a missing one is not.
pub(super) fn should_log(api: &Api, record: &SessionRecord) -> bool {
    let node = format!(
        "/api/configuration/{}/connections",
        record.protocol.to_ascii_lowercase()
    );
    let snapshot = api.committed();
    snapshot
        .doc
        .object(&node, Some(&record.connection_policy_id))
        .and_then(|policy| policy.body.get("log_audit_trail_downloads"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true)
}

/// The name offered to the client: the stored file's own name, reduced to characters that
/// need no quoting in a header (trail names are `<key>.trail`, so this normally changes
/// nothing).
fn file_name(relative: &str, key: &str) -> String {
    let name = Path::new(relative)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(key);
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
