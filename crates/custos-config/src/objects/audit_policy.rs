//! Audit policies (`/api/configuration/policies/audit_policies`): how trails are encrypted,
//! signed and timestamped (SPS 8.0 reference, seed 003). The built-in `default` policy has key
//! `-1`; connection policies pre-select it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::key_material::{X509, X509Store};
use super::rules;
use crate::problem::Problems;
use crate::reference::Ref;
use crate::schema::{ConfigObject, Context};

pub const AUDIT_POLICIES: &str = "/api/configuration/policies/audit_policies";
pub const DEFAULT_AUDIT_POLICY_KEY: &str = "-1";
pub struct AuditPolicies;
impl crate::reference::RefTarget for AuditPolicies {
    const NODE: &'static str = AUDIT_POLICIES;
}

pub const INTERVAL_RANGE: std::ops::RangeInclusive<i64> = 10..=100_000;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPolicy {
    pub name: String,
    pub encryption: Encryption,
    pub signing: Signing,
    pub timestamping: Timestamping,
    #[serde(default = "default_interval")]
    pub signing_and_timestamping_interval: i64,
}

fn default_interval() -> i64 {
    30
}

pub fn default_audit_policy() -> Value {
    json!({
        "name": "default",
        "encryption": {"enabled": false},
        "signing": {"enabled": false},
        "timestamping": {"enabled": false},
        "signing_and_timestamping_interval": 30,
    })
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<EncryptionCertificate>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub different_certificates_for_upstream: Option<Upstream>,
    /// Custos extension: whether the terminal text of sessions encrypted by this policy may be
    /// put into the search index (which is not encrypted). Absent means no: only their
    /// metadata is searchable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_content: Option<bool>,
}

/// A certificate whose RSA key a trail's data key is wrapped to; with `four_eyes_certificate`,
/// both private keys are needed to read the trail. PEM, also in the `\n`-escaped one-line form.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionCertificate {
    pub certificate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub four_eyes_certificate: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<EncryptionCertificate>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_identity: Option<Ref<X509Store>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timestamping {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<TimestampServer>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampServer {
    pub selection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<PolicyOid>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOid {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_oid: Option<String>,
}

/// An encryption certificate must be an X.509 certificate with an RSA key (the data key is
/// wrapped with RSA).
fn encryption_certificate(problems: &mut Problems<'_>, field: &str, pem: &str) {
    match custos_keys::parse_certificate(&custos_keys::unescape_pem(pem)) {
        Ok(cert) => {
            if !matches!(cert.key, custos_keys::PublicKeyKind::Rsa { .. }) {
                problems.add(
                    field,
                    "must be a certificate with an RSA key (the trail key is wrapped with RSA)",
                );
            }
        }
        Err(e) => problems.add(field, format!("is not a valid X.509 certificate: {e}")),
    }
}

fn certificate_list(
    problems: &mut Problems<'_>,
    field: &str,
    list: Option<&Vec<EncryptionCertificate>>,
) {
    match list {
        None => problems.add(field, "is required when encryption is enabled"),
        Some(list) if list.is_empty() => problems.add(field, "needs at least one certificate"),
        Some(list) => {
            for (i, entry) in list.iter().enumerate() {
                encryption_certificate(
                    problems,
                    &format!("{field}[{i}].certificate"),
                    &entry.certificate,
                );
                if let Some(second) = &entry.four_eyes_certificate {
                    let second_field = format!("{field}[{i}].four_eyes_certificate");
                    encryption_certificate(problems, &second_field, second);
                    if custos_keys::unescape_pem(second).trim()
                        == custos_keys::unescape_pem(&entry.certificate).trim()
                    {
                        problems.add(
                            second_field,
                            "must differ from certificate (joint encryption needs two keys)",
                        );
                    }
                }
            }
        }
    }
}

/// A dotted object identifier: at least two arcs, the first 0–2.
fn valid_oid(oid: &str) -> bool {
    let arcs: Vec<&str> = oid.split('.').collect();
    arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.len() <= 20 && a.bytes().all(|b| b.is_ascii_digit()))
        && matches!(arcs[0], "0" | "1" | "2")
}

impl ConfigObject for AuditPolicy {
    fn validate(&self, ctx: &Context<'_>, problems: &mut Problems<'_>) {
        rules::name(problems, "name", &self.name);
        if self.encryption.enabled {
            certificate_list(
                problems,
                "encryption.certificates",
                self.encryption.certificates.as_ref(),
            );
            match &self.encryption.different_certificates_for_upstream {
                None => problems.add(
                    "encryption.different_certificates_for_upstream",
                    "is required when encryption is enabled",
                ),
                Some(upstream) if upstream.enabled => certificate_list(
                    problems,
                    "encryption.different_certificates_for_upstream.certificates",
                    upstream.certificates.as_ref(),
                ),
                Some(_) => {}
            }
        }
        if self.signing.enabled {
            match &self.signing.x509_identity {
                None => problems.add(
                    "signing.x509_identity",
                    "is required when signing is enabled",
                ),
                Some(identity) => {
                    let has_key = ctx
                        .doc
                        .object(X509, Some(identity.key()))
                        .is_some_and(|c| c.body.get("private_key").is_some());
                    let exists = ctx.doc.object(X509, Some(identity.key())).is_some();
                    if exists && !has_key {
                        problems.add(
                            "signing.x509_identity",
                            "the certificate has no private key; signing needs an identity (certificate and key)",
                        );
                    }
                }
            }
        }
        if self.timestamping.enabled {
            match &self.timestamping.server {
                None => problems.add(
                    "timestamping.server",
                    "is required when timestamping is enabled",
                ),
                Some(server) => {
                    match server.selection.as_str() {
                        "local" => {
                            if server.server_url.is_some() {
                                problems.add(
                                    "timestamping.server.server_url",
                                    "only applies when selection is remote",
                                );
                            }
                        }
                        "remote" => match &server.server_url {
                            None => problems.add(
                                "timestamping.server.server_url",
                                "is required when selection is remote",
                            ),
                            Some(url)
                                if !(url.starts_with("http://") || url.starts_with("https://"))
                                    || url.len() <= "https://".len()
                                    || url.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                            {
                                problems.add(
                                    "timestamping.server.server_url",
                                    format!("{url:?} is not an http or https URL"),
                                );
                            }
                            Some(_) => {}
                        },
                        _ => {
                            problems.add("timestamping.server.selection", "must be local or remote")
                        }
                    }
                    if let Some(oid) = &server.oid
                        && oid.enabled
                    {
                        match &oid.policy_oid {
                            None => problems.add(
                                "timestamping.server.oid.policy_oid",
                                "is required when oid is enabled",
                            ),
                            Some(value) if !valid_oid(value) => problems.add(
                                "timestamping.server.oid.policy_oid",
                                format!("{value:?} is not an object identifier such as 1.2.3.4"),
                            ),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        if !INTERVAL_RANGE.contains(&self.signing_and_timestamping_interval) {
            problems.add(
                "signing_and_timestamping_interval",
                "must be a whole number of seconds from 10 to 100,000",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids() {
        assert!(valid_oid("2.3.5.3.1.5.32.322.32"));
        assert!(valid_oid("1.2"));
        assert!(!valid_oid("3.1"));
        assert!(!valid_oid("1"));
        assert!(!valid_oid("1..2"));
        assert!(!valid_oid("1.2.x"));
    }
}
