//! E-mail settings (`/api/configuration/management/email`): the SMTP server Custos sends
//! notifications through, and who receives them.
//!
//! The SPS reference names `admin_address` (in its changelog sample) but publishes no body, so
//! the rest of the shape is Custos's, in SPS's style (`selection` unions, `enabled` toggles).
//! System events (archive, cleanup and backup notifications) go to `admin_address`.
//! Encryption is `none` only for now, so SMTP authentication is refused: a password is never
//! sent in clear.

use serde::{Deserialize, Serialize};

use super::rules;
use crate::problem::Problems;
use crate::schema::{ConfigObject, Context};
use crate::secret::Secret;
use crate::union::NoFields;

pub const EMAIL: &str = "/api/configuration/management/email";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Receives system events (archive, cleanup, backup).
    #[serde(default)]
    pub admin_address: String,
    /// Receives alerts (reserved for alerting).
    #[serde(default)]
    pub alerting_address: String,
    /// The `From` of every message.
    #[serde(default)]
    pub sender_address: String,
    pub smtp_server: SmtpServer,
    pub authentication: Authentication,
    pub encryption: Encryption,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            admin_address: String::new(),
            alerting_address: String::new(),
            sender_address: String::new(),
            smtp_server: SmtpServer::None(NoFields {}),
            authentication: Authentication {
                enabled: false,
                username: None,
                password: None,
            },
            encryption: Encryption::None(NoFields {}),
        }
    }
}

crate::selection_union! {
    #[derive(Debug, Clone)]
    pub enum SmtpServer {
        "none" => None(NoFields),
        "address" => Address(ServerAddress),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAddress {
    /// Host name or IP address.
    pub address: String,
    #[serde(default = "smtp_port")]
    pub port: i64,
}

fn smtp_port() -> i64 {
    25
}

crate::selection_union! {
    #[derive(Debug, Clone)]
    pub enum Encryption {
        "none" => None(NoFields),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

/// An address a message can be sent to or from: `local@domain`, no spaces, no line breaks
/// (which would let a value inject SMTP commands or headers).
pub fn mail_address(problems: &mut Problems<'_>, field: &str, value: &str) {
    let ok = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && value
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | ',' | ';' | '"'))
    });
    if !ok {
        problems.add(field, format!("{value:?} is not an e-mail address"));
    }
}

impl ConfigObject for EmailSettings {
    fn validate(&self, _ctx: &Context<'_>, problems: &mut Problems<'_>) {
        for (field, value) in [
            ("admin_address", &self.admin_address),
            ("alerting_address", &self.alerting_address),
            ("sender_address", &self.sender_address),
        ] {
            if !value.is_empty() {
                mail_address(problems, field, value);
            }
        }
        if let SmtpServer::Address(server) = &self.smtp_server {
            rules::host(problems, "smtp_server.address", &server.address);
            if !(1..=65535).contains(&server.port) {
                problems.add("smtp_server.port", "must be 1–65535");
            }
            if self.sender_address.is_empty() {
                problems.add("sender_address", "is required when an SMTP server is set");
            }
        }
        if self.authentication.enabled {
            problems.add(
                "authentication.enabled",
                "SMTP authentication needs an encrypted connection, and only encryption none is supported yet: a password is never sent in clear",
            );
        } else if self.authentication.username.is_some() || self.authentication.password.is_some() {
            problems.add(
                "authentication",
                "username and password only apply when enabled is true",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Problem;

    fn check(body: serde_json::Value) -> Vec<Problem> {
        let settings: EmailSettings = serde_json::from_value(body).unwrap();
        let doc = crate::document::Document::default();
        let ctx = Context {
            doc: &doc,
            key: None,
            previous: None,
            now: 0,
        };
        let mut problems = Problems::new(EMAIL);
        settings.validate(&ctx, &mut problems);
        problems.into_vec()
    }

    #[test]
    fn addresses_are_checked_and_passwords_never_go_in_clear() {
        let ok = serde_json::json!({
            "admin_address": "admin@example.com",
            "sender_address": "custos@example.com",
            "smtp_server": {"selection": "address", "address": "127.0.0.1", "port": 2525},
            "authentication": {"enabled": false},
            "encryption": {"selection": "none"},
        });
        assert!(check(ok.clone()).is_empty());
        let mut bad = ok.clone();
        bad["admin_address"] = serde_json::json!("admin@example.com\r\nRCPT TO:<x@y>");
        bad["sender_address"] = serde_json::json!("");
        let problems = check(bad);
        let paths: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(paths, ["admin_address", "sender_address"]);
        let mut auth = ok;
        auth["authentication"] =
            serde_json::json!({"enabled": true, "username": "u", "password": "p"});
        assert_eq!(check(auth)[0].field, "authentication.enabled");
    }
}
