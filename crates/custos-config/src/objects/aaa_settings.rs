//! Authentication backend (`/api/configuration/aaa/settings`).
//!
//! The JSON shape is Custos's (the SPS reference does not publish this endpoint's body); it uses
//! SPS's `selection` unions. LDAP and RADIUS are stored and validated but not yet wired: while one
//! is selected, local accounts other than the built-in `admin` cannot log in (they are kept).

use serde::{Deserialize, Serialize};

use super::passwords::Passwords;
use super::rules;
use crate::problem::Problems;
use crate::reference::Ref;
use crate::schema::{ConfigObject, Context};
use crate::union::NoFields;

pub const AAA_SETTINGS: &str = "/api/configuration/aaa/settings";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AaaSettings {
    pub backend: Backend,
}

impl Default for AaaSettings {
    fn default() -> Self {
        AaaSettings {
            backend: Backend::Local(NoFields {}),
        }
    }
}

crate::selection_union! {
    #[derive(Debug)]
    pub enum Backend {
        "local" => Local(NoFields),
        "ldap" => Ldap(Ldap),
        "radius" => Radius(Radius),
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ldap {
    pub servers: Vec<Server>,
    pub encryption: LdapEncryption,
    pub base_dn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_password: Option<Ref<Passwords>>,
    #[serde(default = "default_user_attribute")]
    pub username_attribute: String,
    #[serde(default = "default_group_attribute")]
    pub group_membership_attribute: String,
}

fn default_user_attribute() -> String {
    "uid".into()
}
fn default_group_attribute() -> String {
    "memberUid".into()
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LdapEncryption {
    None,
    Starttls,
    Ssl,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Radius {
    pub servers: Vec<RadiusServer>,
    #[serde(default = "default_radius_timeout")]
    pub timeout: u32,
}

fn default_radius_timeout() -> u32 {
    5
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusServer {
    pub host: String,
    pub port: u16,
    pub shared_secret: Ref<Passwords>,
}

impl AaaSettings {
    /// Whether local passwords are honoured for users other than the built-in admin.
    pub fn local_accounts_enabled(&self) -> bool {
        matches!(self.backend, Backend::Local(_))
    }
}

fn servers<'a>(problems: &mut Problems<'_>, list: impl ExactSizeIterator<Item = (&'a str, u16)>) {
    if list.len() == 0 {
        problems.add("backend.servers", "at least one server is required");
    }
    for (i, (host, port)) in list.enumerate() {
        rules::host(problems, &format!("backend.servers[{i}].host"), host);
        if port == 0 {
            problems.add(format!("backend.servers[{i}].port"), "must be 1–65535");
        }
    }
}

impl ConfigObject for AaaSettings {
    fn validate(&self, _ctx: &Context<'_>, problems: &mut Problems<'_>) {
        match &self.backend {
            Backend::Local(_) => {}
            Backend::Ldap(ldap) => {
                servers(
                    problems,
                    ldap.servers.iter().map(|s| (s.host.as_str(), s.port)),
                );
                if ldap.base_dn.trim().is_empty() {
                    problems.add("backend.base_dn", "must not be empty");
                }
                if ldap.bind_dn.is_some() != ldap.bind_password.is_some() {
                    problems.add(
                        "backend.bind_password",
                        "bind_dn and bind_password go together",
                    );
                }
                rules::name(
                    problems,
                    "backend.username_attribute",
                    &ldap.username_attribute,
                );
                rules::name(
                    problems,
                    "backend.group_membership_attribute",
                    &ldap.group_membership_attribute,
                );
            }
            Backend::Radius(radius) => {
                servers(
                    problems,
                    radius.servers.iter().map(|s| (s.host.as_str(), s.port)),
                );
                if !(1..=300).contains(&radius.timeout) {
                    problems.add("backend.timeout", "must be 1–300 seconds");
                }
            }
        }
    }
}
