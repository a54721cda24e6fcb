//! The configuration of Custos: one typed, versioned document, the tree of REST endpoints that
//! exposes it, and the rules it must satisfy.
//!
//! **Invariant:** this crate does no I/O. It knows nothing of HTTP, SQL or files; the store
//! persists what it produces and the API crate speaks JSON envelopes around it.

pub mod acl;
pub mod bootstrap;
pub mod document;
pub mod edit;
pub mod objects;
pub mod problem;
pub mod reference;
pub mod schema;
pub mod secret;
pub mod tree;
pub mod union;

pub use objects::management_certificates::tsa_identity;

/// Version of the document's layout; stored with every revision so that a later Custos can
/// migrate older revisions.
pub const SCHEMA_VERSION: i64 = 1;
