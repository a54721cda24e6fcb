//! Black-box end-to-end tests: each test starts the real `custos` binary on loopback and talks
//! HTTPS to it, as SPS clients do.

mod harness;

mod acl_matrix;
mod audit_sessions;
mod authentication;
mod bad_input;
mod durability;
mod gateway;
mod key_material;
mod local_database;
mod navigation;
mod policies;
mod transactions;
