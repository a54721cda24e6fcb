//! The one error envelope, as SPS sends it and its public clients parse it:
//! `{"error": {"type", "message", "details"}, "meta": {"href", "parent"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custos_config::edit::EditError;
use custos_config::problem::Problem;
use serde_json::{Value, json};

#[derive(Debug)]
pub enum ApiError {
    /// No valid login: 401 with a Basic challenge.
    Unauthenticated,
    /// Wrong credentials.
    AuthenticationFailure,
    /// Too many failed logins from this user or address.
    Throttled {
        retry_after: u64,
    },
    /// Missing privilege.
    Unauthorized,
    NotFound,
    MethodNotAllowed {
        allowed: &'static [&'static str],
        reason: String,
    },
    NoTransaction,
    /// Another login holds the configuration lock.
    ConfigurationLocked {
        holder: String,
    },
    LengthRequired,
    PayloadTooLarge {
        limit: usize,
    },
    /// Malformed request: bad JSON, wrong type, unknown field, bad parameter.
    Syntax {
        field: String,
        message: String,
    },
    /// Violated configuration rules, each with its path.
    Semantic(Vec<Problem>),
    /// A search query (`q`) that cannot be parsed or run, with where the problem is if known.
    InvalidQuery {
        message: String,
        position: Option<usize>,
    },
    /// `DELETE /api/active-sessions` without a (non-empty) `id` query parameter.
    SessionIdMissing,
    /// No live session has this id (it never existed, or it has ended).
    SessionCouldNotBeFound {
        id: String,
    },
    /// The gateway did not close the session in time; the reason is in the log.
    SessionTerminationFailed {
        id: String,
    },
    /// The session exists but its audit trail cannot be served (none recorded, archived, or
    /// the file is gone); says why. SPS clients see the usual `NotFound` type.
    TrailNotAvailable(&'static str),
    /// The trail is archived but its archive cannot be read now (unreachable, refused, or its
    /// policy changed); says why. 503: trying again later may work.
    ArchiveUnavailable(String),
    /// A part of the server this request needs is not running on this node.
    Unavailable(&'static str),
    /// The server failed; details go to the log, not to the client.
    Internal(String),
}

impl From<EditError> for ApiError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::NotFound => ApiError::NotFound,
            EditError::MethodNotAllowed(reason) => ApiError::MethodNotAllowed {
                allowed: &[],
                reason,
            },
            EditError::Syntax { field, message } => ApiError::Syntax { field, message },
            EditError::Semantic(problems) => ApiError::Semantic(problems),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::AuthenticationFailure => StatusCode::UNAUTHORIZED,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::TrailNotAvailable(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NoTransaction | ApiError::ConfigurationLocked { .. } => StatusCode::CONFLICT,
            ApiError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Syntax { .. }
            | ApiError::Semantic(_)
            | ApiError::SessionIdMissing
            | ApiError::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
            ApiError::SessionCouldNotBeFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Internal(_) | ApiError::SessionTerminationFailed { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::ArchiveUnavailable(_) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "Unauthenticated",
            ApiError::AuthenticationFailure => "AuthenticationFailure",
            ApiError::Throttled { .. } => "AuthenticationThrottled",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::NotFound | ApiError::TrailNotAvailable(_) => "NotFound",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::NoTransaction => "NoTransaction",
            ApiError::ConfigurationLocked { .. } => "ConfigurationLocked",
            ApiError::LengthRequired => "LengthRequired",
            ApiError::PayloadTooLarge { .. } => "RequestTooLarge",
            ApiError::Syntax { .. } => "SyntacticError",
            ApiError::Semantic(_) => "SemanticError",
            ApiError::InvalidQuery { .. } => "InvalidQuery",
            ApiError::SessionIdMissing => "SessionIdMissing",
            ApiError::SessionCouldNotBeFound { .. } => "SessionCouldNotBeFound",
            ApiError::SessionTerminationFailed { .. } => "SessionTerminationFailed",
            ApiError::Internal(_) => "InternalError",
            ApiError::ArchiveUnavailable(_) => "ArchiveUnavailable",
            ApiError::Unavailable(_) => "ServiceUnavailable",
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated => "The requested resource cannot be retrieved because the client is not authenticated and the resource requires authorization to access it.".into(),
            ApiError::AuthenticationFailure => "Authenticating the user with the given credentials has failed.".into(),
            ApiError::Throttled { retry_after } => format!("Too many failed authentication attempts; try again in {retry_after} seconds."),
            ApiError::Unauthorized => "The requested resource cannot be retrieved because the client is not authorized to access it.".into(),
            ApiError::NotFound => "The requested object does not exist.".into(),
            ApiError::TrailNotAvailable(reason) => format!("The audit trail is not available: {reason}."),
            ApiError::MethodNotAllowed { reason, .. } => format!("The method is not allowed for this node: {reason}"),
            ApiError::NoTransaction => "No open transaction is available. You must open a transaction first (POST /api/transaction).".into(),
            ApiError::ConfigurationLocked { holder } => format!("The configuration is locked by an open transaction of {holder}. Wait until it is committed or rolled back."),
            ApiError::LengthRequired => "The request must carry a Content-Length header.".into(),
            ApiError::PayloadTooLarge { limit } => format!("The request body exceeds the limit of {limit} bytes."),
            ApiError::Syntax { field, message } if field.is_empty() => format!("The request is malformed: {message}"),
            ApiError::Syntax { field, message } => format!("The request is malformed at {field}: {message}"),
            ApiError::Semantic(problems) => format!(
                "The configuration contains semantic errors, inconsistencies or other problems that would put the system into an unreliable state if the configuration had been applied ({} problem(s)).",
                problems.len()
            ),
            ApiError::InvalidQuery { message, position: Some(at) } => format!("The search query is invalid at position {at}: {message}"),
            ApiError::InvalidQuery { message, position: None } => format!("The search query is invalid: {message}"),
            ApiError::SessionIdMissing => "No session ID is given in the \"id\" query parameter.".into(),
            ApiError::SessionCouldNotBeFound { .. } => "No session could be found for the given session ID. List the ongoing sessions with GET /api/active-sessions and give one's session ID as the \"id\" query parameter.".into(),
            ApiError::SessionTerminationFailed { .. } => "The session could not be terminated due to internal errors; the reason is in the server's log.".into(),
            ApiError::Internal(_) => "The server failed to complete the request; the reason is in its log.".into(),
            ApiError::ArchiveUnavailable(reason) => format!("The audit trail is archived, but the archive cannot be read now: {reason}."),
            ApiError::Unavailable(what) => format!("{what} is not running on this node."),
        }
    }

    fn details(&self, path: &str) -> Value {
        match self {
            ApiError::Syntax { field, message } => {
                json!({"path": path, "field": field, "error": message})
            }
            ApiError::Semantic(problems) => json!({"errors": problems}),
            ApiError::InvalidQuery { message, position } => {
                json!({"path": path, "field": "q", "position": position, "error": message})
            }
            ApiError::ConfigurationLocked { holder } => json!({"path": path, "locked_by": holder}),
            ApiError::SessionCouldNotBeFound { id } | ApiError::SessionTerminationFailed { id } => {
                json!({"path": path, "id": id})
            }
            _ => json!({"path": path}),
        }
    }

    /// Renders the envelope for a request to `path`.
    pub fn into_response_for(self, path: &str) -> Response {
        if let ApiError::Internal(reason) = &self {
            tracing::error!(%path, %reason, "request failed");
        }
        let parent = custos_config::tree::parent_of(path).unwrap_or("/api");
        let body = json!({
            "error": {"type": self.code(), "message": self.message(), "details": self.details(path)},
            "meta": {"href": path, "parent": parent},
        });
        let mut response = (self.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthenticated => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"Custos\""),
                );
            }
            ApiError::Throttled { retry_after } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::MethodNotAllowed { allowed, .. } if !allowed.is_empty() => {
                if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                    headers.insert(header::ALLOW, v);
                }
            }
            _ => {}
        }
        response
    }
}
