//! Evidence for audit trails, independent of the trail format and of HTTP servers:
//!
//! - [`signature`]: CMS `SignedData` (detached) over a trail's chain head, by an X.509 identity
//!   with an RSA or ECDSA P-256 key, and its verification (`openssl cms -verify` accepts it);
//! - [`timestamp`]: RFC 3161 time-stamp requests, the built-in time-stamping authority, a client
//!   for remote TSAs over HTTP(S), and token verification (`openssl ts -verify` accepts ours);
//! - [`tsa_identity`]: the built-in TSA's certificate and key, created at setup;
//! - [`envelope`]: a trail's data keys wrapped to X.509 certificates with RSA-OAEP, jointly
//!   (four-eyes) when two certificates are paired.
//!
//! Everything here parses untrusted input (uploaded PEM, files from auditors, TSA responses):
//! no function panics on any input.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

mod cms_common;
pub mod envelope;
pub mod signature;
pub mod timestamp;
pub mod tsa_identity;

/// Why evidence could not be made or checked: a sentence for humans, without key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvidenceError(pub String);

impl EvidenceError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
