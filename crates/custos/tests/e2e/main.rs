//! Black-box end-to-end tests: each test starts the real `custos` binary on loopback and talks
//! HTTPS to it, as SPS clients do.

mod harness;

mod acl_matrix;
mod archive;
mod audit_sessions;
mod audit_trail_download;
mod authentication;
mod bad_input;
mod durability;
mod evidence;
mod gateway;
mod key_material;
mod local_database;
mod management_certificates;
mod navigation;
mod policies;
mod search;
mod transactions;
