//! The typed configuration objects, one module per area of the tree.

pub mod aaa_settings;
pub mod audit_data;
pub mod audit_policy;
pub mod email;
pub mod key_material;
pub mod local_database;
pub mod management_certificates;
pub mod passwords;
pub mod retention;
mod rules;
pub mod ssh;
