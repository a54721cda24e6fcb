//! Key material: SSH private keys (`/api/configuration/private_keys`, POST-only, single use) and
//! X.509 certificates with optional private keys (`/api/configuration/x509`).
//!
//! Clients POST PEM text; the stored object holds what readers may see (public key, subject,
//! issuer, fingerprint, validity) and the private part as a secret, which no reader ever gets
//! and the store seals at rest.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::problem::{Problem, Problems};
use crate::reference::RefTarget;
use crate::schema::{Context, Rejection, Schema, syntax_error};
use crate::secret::Secret;

pub const PRIVATE_KEYS: &str = "/api/configuration/private_keys";
pub const X509: &str = "/api/configuration/x509";

pub struct PrivateKeys;
impl RefTarget for PrivateKeys {
    const NODE: &'static str = PRIVATE_KEYS;
}

pub struct X509Store;
impl RefTarget for X509Store {
    const NODE: &'static str = X509;
}

/// Largest PEM accepted (an RSA-16384 key is well below this).
const MAX_PEM_BYTES: usize = 64 * 1024;

fn parse_input<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, Rejection> {
    if !input.is_object() {
        return Err(Rejection::Syntax {
            field: String::new(),
            message: "expected a JSON object".into(),
        });
    }
    serde_path_to_error::deserialize(input).map_err(syntax_error)
}

fn too_long(problems: &mut Problems<'_>, field: &str, pem: &str) -> bool {
    if pem.len() > MAX_PEM_BYTES {
        problems.add(field, format!("must be at most {MAX_PEM_BYTES} bytes"));
        return true;
    }
    false
}

fn check_fields(body: &Value, path: &str, fields: &[&str]) -> Vec<Problem> {
    let mut problems = Problems::new(path);
    for field in fields {
        if body.get(field).is_none() {
            problems.add(*field, "missing from the stored object");
        }
    }
    problems.into_vec()
}

fn public_view(body: &Value) -> Value {
    let mut shown = body.clone();
    crate::secret::redact(&mut shown);
    shown
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateKeyInput {
    #[serde(alias = "private_key")]
    key: String,
}

/// `POST /api/configuration/private_keys` with `{"key": "<PEM or OpenSSH private key>"}`.
pub struct PrivateKeySchema;

impl Schema for PrivateKeySchema {
    fn accept(&self, input: Value, path: &str, ctx: &Context<'_>) -> Result<Value, Rejection> {
        let input: PrivateKeyInput = parse_input(input)?;
        let mut problems = Problems::new(path);
        if too_long(&mut problems, "key", &input.key) {
            return Err(Rejection::Semantic(problems.into_vec()));
        }
        match custos_keys::parse_ssh_private_key(&custos_keys::unescape_pem(&input.key)) {
            Ok(key) => Ok(json!({
                "private_key": Secret::new(key.openssh_pem),
                "public_key": key.public_key,
                "algorithm": key.algorithm,
                "bits": key.bits,
                "fingerprint": key.fingerprint,
                "created": ctx.now,
            })),
            Err(e) => {
                problems.add("key", format!("is not a usable private key: {e}"));
                Err(Rejection::Semantic(problems.into_vec()))
            }
        }
    }

    fn check(&self, body: &Value, path: &str, _ctx: &Context<'_>) -> Vec<Problem> {
        check_fields(body, path, &["private_key", "public_key", "fingerprint"])
    }

    fn public(&self, body: &Value) -> Value {
        public_view(body)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateInput {
    certificate: String,
    #[serde(default)]
    private_key: Option<String>,
}

fn key_type(kind: &custos_keys::PublicKeyKind) -> (String, Option<u32>) {
    match kind {
        custos_keys::PublicKeyKind::Rsa { bits } => ("rsa".into(), Some(*bits)),
        custos_keys::PublicKeyKind::EcP256 => ("ecdsa-p256".into(), Some(256)),
        custos_keys::PublicKeyKind::Ed25519 => ("ed25519".into(), Some(256)),
        custos_keys::PublicKeyKind::Other(oid) => (format!("other ({oid})"), None),
    }
}

/// `POST /api/configuration/x509` with `{"certificate": "<PEM>", "private_key": "<PEM>"?}`.
/// With a private key (which must match the certificate) the object is an identity that can sign.
pub struct CertificateSchema;

impl Schema for CertificateSchema {
    fn accept(&self, input: Value, path: &str, _ctx: &Context<'_>) -> Result<Value, Rejection> {
        let input: CertificateInput = parse_input(input)?;
        let mut problems = Problems::new(path);
        if too_long(&mut problems, "certificate", &input.certificate)
            | input
                .private_key
                .as_deref()
                .is_some_and(|k| too_long(&mut problems, "private_key", k))
        {
            return Err(Rejection::Semantic(problems.into_vec()));
        }
        let certificate =
            match custos_keys::parse_certificate(&custos_keys::unescape_pem(&input.certificate)) {
                Ok(c) => c,
                Err(e) => {
                    problems.add(
                        "certificate",
                        format!("is not a valid X.509 certificate: {e}"),
                    );
                    return Err(Rejection::Semantic(problems.into_vec()));
                }
            };
        let private_key = match input
            .private_key
            .as_deref()
            .map(|k| custos_keys::parse_identity_key(&custos_keys::unescape_pem(k)))
        {
            None => None,
            Some(Ok(key)) if custos_keys::key_matches_certificate(&key, &certificate) => Some(key),
            Some(Ok(_)) => {
                problems.add("private_key", "does not belong to the certificate");
                return Err(Rejection::Semantic(problems.into_vec()));
            }
            Some(Err(e)) => {
                problems.add("private_key", format!("is not a usable private key: {e}"));
                return Err(Rejection::Semantic(problems.into_vec()));
            }
        };
        let (key_type, key_bits) = key_type(&certificate.key);
        let mut body = json!({
            "certificate": certificate.pem,
            "subject": certificate.subject,
            "issuer": certificate.issuer,
            "serial": certificate.serial,
            "fingerprint": certificate.fingerprint_sha256,
            "not_before": certificate.not_before,
            "not_after": certificate.not_after,
            "key_type": key_type,
            "key_bits": key_bits,
            "is_ca": certificate.is_ca,
            "chain_length": certificate.chain.len(),
            "has_private_key": private_key.is_some(),
        });
        if let Some(key) = private_key {
            body["private_key"] =
                serde_json::to_value(Secret::new(key.pkcs8_pem)).unwrap_or(Value::Null);
        }
        Ok(body)
    }

    fn check(&self, body: &Value, path: &str, _ctx: &Context<'_>) -> Vec<Problem> {
        check_fields(
            body,
            path,
            &["certificate", "subject", "issuer", "fingerprint"],
        )
    }

    fn public(&self, body: &Value) -> Value {
        public_view(body)
    }
}
