//! What a connection policy's audit policy asks of its trails: encryption to certificates,
//! signatures over chain heads and RFC 3161 time-stamps, resolved from one configuration
//! revision (sessions keep the revision they started with, like their other rules).
//!
//! A policy that asks for evidence the gateway cannot produce (a signing identity without its
//! key, an unparsable certificate) fails closed: sessions under it are refused with the reason,
//! rather than recorded with less protection than the policy promises.

use std::sync::Arc;
use std::time::Duration;

use custos_config::document::Document;
use custos_config::objects::audit_policy::{AUDIT_POLICIES, AuditPolicy, EncryptionCertificate};
use custos_config::objects::key_material::X509;
use custos_evidence::envelope::{RecipientCertificates, new_data_key, seal_data_key};
use custos_evidence::signature::{SigningIdentity, sign_detached};
use custos_evidence::timestamp::{LocalTsa, request, request_remote};
use custos_trail::{ChainHead, Protection, SealPayload, StreamKey};
use serde::Deserialize;

use sha2::{Digest, Sha256};

/// How long a remote TSA may take to answer before the seal goes without a time-stamp.
pub const REMOTE_TSA_TIMEOUT: Duration = Duration::from_secs(10);

/// Who time-stamps chain heads.
pub enum Stamper {
    /// The built-in TSA (its identity is under `/api/configuration/management/certificates`).
    Local(Arc<LocalTsa>),
    /// An RFC 3161 server over HTTP(S).
    Remote(String),
}

/// The evidence settings of one audit policy, ready to use.
#[derive(Default)]
pub struct EvidencePolicy {
    /// The audit policy's name, for logs.
    pub name: String,
    /// Recipients of the data keys of stream 0 (output and metadata) and stream 1 (what the
    /// client sent); empty: that stream is not encrypted.
    pub recipients: [Vec<RecipientCertificates>; 2],
    pub signer: Option<Arc<SigningIdentity>>,
    pub stamper: Option<Stamper>,
    pub policy_oid: Option<String>,
    /// How often the chain head is sealed while the session runs.
    pub interval: Duration,
    /// Why the policy cannot be applied (sessions under it are refused), if it cannot.
    pub unusable: Option<String>,
    /// The policy encrypts but allows the terminal text into the (unencrypted) search index.
    pub index_encrypted_content: bool,
}

impl std::fmt::Debug for EvidencePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidencePolicy")
            .field("name", &self.name)
            .field(
                "encrypted",
                &self.recipients.each_ref().map(|r| !r.is_empty()),
            )
            .field("signed", &self.signer.is_some())
            .field("stamped", &self.stamper.is_some())
            .field("unusable", &self.unusable)
            .finish()
    }
}

fn recipients(list: Option<&Vec<EncryptionCertificate>>) -> Vec<RecipientCertificates> {
    list.map(|l| {
        l.iter()
            .map(|c| RecipientCertificates {
                certificate_pem: c.certificate.clone(),
                four_eyes_pem: c.four_eyes_certificate.clone(),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The certificate and private key PEM of an `/api/configuration/x509` object.
pub fn x509_identity(doc: &Document, key: &str) -> Option<(String, String)> {
    let body = &doc.object(X509, Some(key))?.body;
    let certificate = body.get("certificate")?.as_str()?.to_string();
    let private_key = custos_config::secret::Secret::deserialize(body.get("private_key")?).ok()?;
    Some((certificate, private_key.expose().to_string()))
}

impl EvidencePolicy {
    /// Resolves the audit policy `key` of `doc`. `tsa` is the built-in TSA of that revision.
    pub fn load(doc: &Document, key: &str, tsa: Option<&Arc<LocalTsa>>) -> EvidencePolicy {
        let Some(stored) = doc.object(AUDIT_POLICIES, Some(key)) else {
            return EvidencePolicy::unusable(format!("audit policy {key} does not exist"));
        };
        let policy = match AuditPolicy::deserialize(&stored.body) {
            Ok(p) => p,
            Err(e) => return EvidencePolicy::unusable(format!("audit policy {key}: {e}")),
        };
        let mut out = EvidencePolicy {
            name: policy.name.clone(),
            interval: Duration::from_secs(policy.signing_and_timestamping_interval.max(1) as u64),
            ..EvidencePolicy::default()
        };
        if policy.encryption.enabled {
            let main = recipients(policy.encryption.certificates.as_ref());
            let upstream = policy
                .encryption
                .different_certificates_for_upstream
                .as_ref()
                .filter(|u| u.enabled)
                .map(|u| recipients(u.certificates.as_ref()));
            out.recipients = [main.clone(), upstream.unwrap_or(main)];
            out.index_encrypted_content = policy.encryption.index_content.unwrap_or(false);
        }
        if policy.signing.enabled {
            let identity = policy
                .signing
                .x509_identity
                .as_ref()
                .and_then(|r| x509_identity(doc, r.key()));
            match identity.map(|(c, k)| SigningIdentity::from_pem(&c, &k)) {
                Some(Ok(identity)) => out.signer = Some(Arc::new(identity)),
                Some(Err(e)) => out.unusable = Some(format!("the signing identity: {e}")),
                None => {
                    out.unusable = Some("the signing identity or its private key is missing".into())
                }
            }
        }
        if policy.timestamping.enabled {
            let server = policy.timestamping.server.as_ref();
            out.policy_oid = server
                .and_then(|s| s.oid.as_ref())
                .filter(|o| o.enabled)
                .and_then(|o| o.policy_oid.clone());
            match server.map(|s| (s.selection.as_str(), s.server_url.clone())) {
                Some(("remote", Some(url))) => out.stamper = Some(Stamper::Remote(url)),
                _ => match tsa {
                    Some(tsa) => out.stamper = Some(Stamper::Local(tsa.clone())),
                    None => out.unusable = Some("the built-in TSA has no usable identity".into()),
                },
            }
        }
        out
    }

    fn unusable(reason: String) -> EvidencePolicy {
        EvidencePolicy {
            unusable: Some(reason),
            ..EvidencePolicy::default()
        }
    }

    /// Whether the session's terminal text may go into the search index. The index is not
    /// encrypted, so the text of an encrypted trail goes there only with the policy's consent
    /// (`encryption.index_content`); otherwise only its metadata is searchable.
    pub fn indexes_content(&self) -> bool {
        let encrypted = self.recipients.iter().any(|r| !r.is_empty());
        !encrypted || self.index_encrypted_content
    }

    /// Whether trails get seal segments.
    pub fn seals(&self) -> bool {
        self.signer.is_some() || self.stamper.is_some()
    }

    /// Fresh data keys, wrapped to the recipients, for one new trail.
    pub fn protection(&self) -> Result<Protection, String> {
        if let Some(why) = &self.unusable {
            return Err(format!("audit policy {}: {why}", self.name));
        }
        let mut protection = Protection {
            seals: self.seals(),
            ..Protection::default()
        };
        for (slot, recipients) in protection.stream_keys.iter_mut().zip(&self.recipients) {
            if recipients.is_empty() {
                continue;
            }
            let data_key = new_data_key();
            let envelope = seal_data_key(&data_key, recipients).map_err(|e| e.to_string())?;
            *slot = Some(StreamKey { data_key, envelope });
        }
        Ok(protection)
    }

    /// Signs `head` and, with the built-in TSA, time-stamps it. A remote time-stamp is for the
    /// caller to fetch ([`stamp_remote`](Self::stamp_remote)), so that a slow TSA never holds
    /// the recording up. Failures are logged and leave that part empty.
    pub fn seal_now(&self, head: ChainHead) -> SealPayload {
        let statement = head.statement();
        let now = time::OffsetDateTime::now_utc();
        let signature = self
            .signer
            .as_ref()
            .and_then(|identity| match sign_detached(identity, &statement, now) {
                Ok(sig) => Some(sig),
                Err(e) => {
                    tracing::error!(policy = %self.name, error = %e, "cannot sign a trail head");
                    None
                }
            })
            .unwrap_or_default();
        let timestamp = match &self.stamper {
            Some(Stamper::Local(tsa)) => {
                let digest: [u8; 32] = Sha256::digest(statement).into();
                match tsa.stamp(&digest, self.policy_oid.as_deref(), None, now) {
                    Ok(token) => token,
                    Err(e) => {
                        tracing::error!(policy = %self.name, error = %e, "the built-in TSA failed");
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        };
        SealPayload {
            head,
            signature,
            timestamp,
        }
    }

    /// The remote TSA's URL, if time-stamps come from one.
    pub fn remote_tsa(&self) -> Option<&str> {
        match &self.stamper {
            Some(Stamper::Remote(url)) => Some(url),
            _ => None,
        }
    }

    /// Fetches a time-stamp token for `head` from the remote TSA.
    pub async fn stamp_remote(&self, head: ChainHead) -> Result<Vec<u8>, String> {
        let Some(url) = self.remote_tsa() else {
            return Err("no remote TSA configured".into());
        };
        let digest: [u8; 32] = Sha256::digest(head.statement()).into();
        let req = request(&digest, self.policy_oid.as_deref()).map_err(|e| e.to_string())?;
        request_remote(url, &req, REMOTE_TSA_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The built-in TSA of a revision, if its identity is configured and usable.
pub fn local_tsa(doc: &Document) -> Option<Arc<LocalTsa>> {
    let (certificate, key) = custos_config::tsa_identity(doc)?;
    let identity = SigningIdentity::from_pem(&certificate, &key)
        .map_err(|e| tracing::error!(error = %e, "the built-in TSA identity is not usable"))
        .ok()?;
    LocalTsa::new(identity)
        .map_err(|e| tracing::error!(error = %e, "the built-in TSA identity is not usable"))
        .ok()
        .map(Arc::new)
}
