//! The appliance's own certificates (`/api/configuration/management/certificates`, API notes
//! §11): for now the identity of the built-in time-stamping authority, which signs RFC 3161
//! tokens over audit trails whose audit policy selects the local TSA.
//!
//! SPS's body also names `ca` and `server`; Custos's web server identity lives in its data
//! directory and it issues no certificates, so only `tsa` exists here (unknown fields are
//! refused, so a client is not led to believe that the others took effect).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::key_material::{X509, X509Store};
use crate::document::Document;
use crate::problem::Problems;
use crate::reference::Ref;
use crate::schema::{ConfigObject, Context};
use crate::secret::Secret;

pub const MANAGEMENT_CERTIFICATES: &str = "/api/configuration/management/certificates";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementCertificates {
    /// The built-in TSA's identity: an X.509 object with a private key and a certificate for
    /// time stamping only.
    pub tsa: Ref<X509Store>,
}

impl ConfigObject for ManagementCertificates {
    fn validate(&self, ctx: &Context<'_>, problems: &mut Problems<'_>) {
        // A reference to a missing object is reported by the generic reference check.
        let Some(stored) = ctx.doc.object(X509, Some(self.tsa.key())) else {
            return;
        };
        if let Some(problem) = tsa_problem(&stored.body) {
            problems.add("tsa", problem);
        }
    }
}

/// Why a stored X.509 object cannot serve as the time-stamping authority's identity.
fn tsa_problem(body: &Value) -> Option<String> {
    if body.get("private_key").is_none() {
        return Some(
            "the certificate has no private key; the time-stamping authority needs an identity (certificate and key)".into(),
        );
    }
    let pem = body
        .get("certificate")
        .and_then(Value::as_str)
        .unwrap_or("");
    let usage = custos_keys::parse_certificate(pem)
        .and_then(|certificate| custos_keys::extended_key_usage(&certificate));
    match usage {
        Ok(Some(usage)) if usage.is_time_stamping_only() => None,
        // RFC 3161 §2.3: verifiers (`openssl ts -verify` among them) refuse tokens whose signer
        // lacks exactly this extension, so such an identity would make unverifiable evidence.
        Ok(_) => Some(
            "the certificate is not a time-stamping certificate: RFC 3161 requires a critical extendedKeyUsage with timeStamping as its only purpose".into(),
        ),
        Err(e) => Some(format!("the certificate cannot be read: {e}")),
    }
}

/// The built-in time-stamping authority's certificate and private key (both PEM), as the
/// gateway needs them to sign time-stamp tokens; `None` if the configuration names none (it
/// always does once bootstrapped) or its private key is missing.
pub fn tsa_identity(doc: &Document) -> Option<(String, String)> {
    let settings: ManagementCertificates =
        serde_json::from_value(doc.singleton(MANAGEMENT_CERTIFICATES)?.body.clone()).ok()?;
    let body = &doc.object(X509, Some(settings.tsa.key()))?.body;
    let certificate = body.get("certificate")?.as_str()?.to_string();
    let key: Secret = serde_json::from_value(body.get("private_key")?.clone()).ok()?;
    Some((certificate, key.expose().to_string()))
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;
    use crate::bootstrap;
    use crate::edit::{self, EditError};
    use crate::tree::{Node, tree};

    const NOW: i64 = 1_780_000_000;

    fn node(path: &str) -> &'static Node {
        tree().node(path).unwrap()
    }

    fn fresh() -> Document {
        bootstrap::initial_document("pw-for-admin", NOW).unwrap()
    }

    fn upload(doc: &mut Document, certificate: &str, key: Option<&str>) -> String {
        let mut body = json!({"certificate": certificate});
        if let Some(key) = key {
            body["private_key"] = json!(key);
        }
        edit::create(doc, node(X509), body, NOW).unwrap()
    }

    fn point_tsa_to(doc: &mut Document, tsa: Value) -> Result<(), EditError> {
        edit::replace(
            doc,
            node(MANAGEMENT_CERTIFICATES),
            None,
            json!({"tsa": tsa}),
            NOW,
        )
    }

    fn tsa_problem_of(result: Result<(), EditError>) -> String {
        match result {
            Err(EditError::Semantic(problems)) => {
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert_eq!(problems[0].path, MANAGEMENT_CERTIFICATES);
                assert_eq!(problems[0].field, "tsa");
                problems[0].message.clone()
            }
            other => panic!("expected a semantic error, got {other:?}"),
        }
    }

    #[test]
    fn a_fresh_installation_names_a_built_in_tsa_identity_with_a_sealed_key() {
        let doc = fresh();
        let settings = &doc.singleton(MANAGEMENT_CERTIFICATES).unwrap().body;
        let key = settings["tsa"]["key"].as_str().unwrap();
        assert_eq!(
            settings["tsa"]["meta"]["href"],
            format!("{X509}/{key}"),
            "rendered as a reference"
        );
        let stored = &doc.object(X509, Some(key)).unwrap().body;
        assert_eq!(stored["has_private_key"], true);
        assert!(
            crate::secret::is_secret(&stored["private_key"]),
            "a Secret, sealed by the store"
        );
        assert_eq!(stored["subject"], "CN=Custos built-in TSA");
        let shown = match &node(X509).kind {
            crate::tree::Kind::Collection(spec) => spec.schema.public(stored),
            _ => unreachable!(),
        };
        assert!(shown.get("private_key").is_none(), "never shown");
        assert!(!shown.to_string().contains("PRIVATE KEY"));

        let (certificate, private_key) = tsa_identity(&doc).unwrap();
        let parsed = custos_keys::parse_certificate(&certificate).unwrap();
        let identity = custos_keys::parse_identity_key(&private_key).unwrap();
        assert!(custos_keys::key_matches_certificate(&identity, &parsed));
        assert!(
            custos_keys::extended_key_usage(&parsed)
                .unwrap()
                .unwrap()
                .is_time_stamping_only()
        );
        assert!(crate::edit::validate_all(&doc, NOW).is_empty());
    }

    #[test]
    fn an_upgrade_adds_the_tsa_once_and_never_replaces_it() {
        let fresh = fresh();
        // An installation of a version without management/certificates.
        let mut old = Document::default();
        for (path, key, stored) in fresh.objects() {
            match key {
                _ if path == MANAGEMENT_CERTIFICATES || path == X509 => {}
                None => old.set_singleton(path, stored.clone()),
                Some(key) => old.put(path, key, stored.clone()),
            }
        }
        assert!(tsa_identity(&old).is_none());
        assert!(bootstrap::add_builtins(&mut old, NOW));
        let (certificate, _) = tsa_identity(&old).unwrap();
        assert!(crate::edit::validate_all(&old, NOW).is_empty());

        assert!(
            !bootstrap::add_builtins(&mut old, NOW),
            "nothing more to add"
        );
        assert_eq!(tsa_identity(&old).unwrap().0, certificate, "kept");
        let mut doc = fresh.clone();
        assert!(!bootstrap::add_builtins(&mut doc, NOW));
        assert_eq!(tsa_identity(&doc), tsa_identity(&fresh));
    }

    #[test]
    fn initial_document_works_with_the_clock_tests_use() {
        let doc = bootstrap::initial_document("pw", 1).unwrap();
        assert!(tsa_identity(&doc).is_some());
    }

    #[test]
    fn the_tsa_may_point_to_another_time_stamping_identity() {
        let mut doc = fresh();
        let (certificate, key) = custos_testkit::pki::self_signed_pem(
            "other",
            "ec",
            &[
                "extendedKeyUsage=critical,timeStamping",
                "keyUsage=critical,digitalSignature",
            ],
        );
        let other = upload(&mut doc, &certificate, Some(&key));
        point_tsa_to(&mut doc, json!(other)).unwrap();
        assert_eq!(tsa_identity(&doc).unwrap().0, certificate);
        // The rendered form that GET shows is accepted back.
        let rendered = doc.singleton(MANAGEMENT_CERTIFICATES).unwrap().body["tsa"].clone();
        assert_eq!(rendered["meta"]["href"], format!("{X509}/{other}"));
        point_tsa_to(&mut doc, rendered).unwrap();
    }

    #[test]
    fn an_identity_without_a_critical_time_stamping_only_usage_is_refused() {
        let mut doc = fresh();
        for ext in [
            None,
            Some("extendedKeyUsage=timeStamping"),
            Some("extendedKeyUsage=critical,timeStamping,serverAuth"),
            Some("extendedKeyUsage=critical,codeSigning"),
        ] {
            let (certificate, key) =
                custos_testkit::pki::self_signed_pem("other", "ec", ext.as_slice());
            let key = upload(&mut doc, &certificate, Some(&key));
            let message = tsa_problem_of(point_tsa_to(&mut doc, json!(key)));
            assert!(
                message.contains("critical extendedKeyUsage"),
                "{ext:?}: {message}"
            );
        }
    }

    #[test]
    fn a_certificate_without_a_private_key_is_refused() {
        let mut doc = fresh();
        let (certificate, _) = tsa_identity(&doc).unwrap();
        let key = upload(&mut doc, &certificate, None);
        let message = tsa_problem_of(point_tsa_to(&mut doc, json!(key)));
        assert!(message.contains("no private key"), "{message}");
    }

    #[test]
    fn missing_references_and_unknown_fields_are_refused() {
        let mut doc = fresh();
        let message = tsa_problem_of(point_tsa_to(&mut doc, json!("no-such-key")));
        assert!(message.contains("does not exist"), "{message}");
        let wrong = json!({"key": "k", "meta": {"href": "/api/configuration/passwords/k"}});
        assert!(matches!(
            point_tsa_to(&mut doc, wrong),
            Err(EditError::Syntax { ref field, .. }) if field == "tsa"
        ));
        let (key, _) = (
            doc.singleton(MANAGEMENT_CERTIFICATES).unwrap().body["tsa"].clone(),
            (),
        );
        let err = edit::replace(
            &mut doc,
            node(MANAGEMENT_CERTIFICATES),
            None,
            json!({"tsa": key, "ca": key}),
            NOW,
        )
        .unwrap_err();
        assert!(matches!(err, EditError::Syntax { ref message, .. } if message.contains("ca")));
        let err = edit::replace(
            &mut doc,
            node(MANAGEMENT_CERTIFICATES),
            None,
            json!({}),
            NOW,
        )
        .unwrap_err();
        assert!(matches!(err, EditError::Syntax { ref message, .. } if message.contains("tsa")));
    }

    #[test]
    fn the_referenced_identity_cannot_be_deleted() {
        let mut doc = fresh();
        let key = doc.singleton(MANAGEMENT_CERTIFICATES).unwrap().body["tsa"]["key"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(matches!(
            edit::delete(&mut doc, node(X509), &key),
            Err(EditError::Semantic(_))
        ));
    }
}
