//! CMS `SignedData` signatures over a trail's chain head.
//!
//! A signature is detached (the chain head is stored next to it, not inside), digest SHA-256,
//! with the signer certificate embedded so an auditor needs nothing but the file and the CA
//! they trust: `openssl cms -verify -binary -content head.bin -CAfile ca.pem` checks it.
//! Verification here ([`verify_detached`]) proves *who* signed; whether that signer is trusted
//! is a separate decision ([`check_issued_by`]) because the caller reports the two apart.

use const_oid::db::rfc5911::ID_DATA;
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, SHA_256_WITH_RSA_ENCRYPTION};
use der::asn1::AnyRef;
use der::{Decode as _, Reader as _, SliceReader};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::DecodePrivateKey as _;
use rand_core06::OsRng;
use sha2::{Digest as _, Sha256};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::EvidenceError;
use crate::cms_common::{self, SignRequest};

/// An X.509 certificate and its private key (RSA or ECDSA P-256), ready to sign.
#[derive(Clone)]
pub struct SigningIdentity {
    certificate_der: Vec<u8>,
    certificate: Certificate,
    subject: String,
    key: PrivateKey,
}

/// Both key types zeroize themselves on drop.
#[derive(Clone)]
enum PrivateKey {
    Rsa(Box<rsa09::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
}

/// Shows the subject and key type only: the key must never reach a log.
impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = match self.key {
            PrivateKey::Rsa(_) => "rsa",
            PrivateKey::P256(_) => "ecdsa-p256",
        };
        f.debug_struct("SigningIdentity")
            .field("subject", &self.subject)
            .field("key", &key)
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// Certificate PEM (one CERTIFICATE block) and its private key PEM (PKCS#8, PKCS#1
    /// "RSA PRIVATE KEY" or SEC1 "EC PRIVATE KEY"); refuses a key that does not match the
    /// certificate. SPS's escaped one-line PEM (`\n` sequences) is accepted too.
    pub fn from_pem(
        certificate_pem: &str,
        private_key_pem: &str,
    ) -> Result<SigningIdentity, EvidenceError> {
        let certificate = custos_keys::parse_certificate(&custos_keys::unescape_pem(
            certificate_pem,
        ))
        .map_err(|e| EvidenceError::new(format!("the signing certificate is not usable: {e}")))?;
        if !certificate.chain.is_empty() {
            return Err(EvidenceError::new(format!(
                "the signing certificate PEM holds {} certificates; give the signer's \
                 certificate only",
                certificate.chain.len() + 1
            )));
        }
        let key_pem = Zeroizing::new(custos_keys::unescape_pem(private_key_pem));
        let mut key = custos_keys::parse_identity_key(&key_pem)
            .map_err(|e| EvidenceError::new(format!("the signing key is not usable: {e}")))?;
        let matches = custos_keys::key_matches_certificate(&key, &certificate);
        let pkcs8 = Zeroizing::new(std::mem::take(&mut key.pkcs8_pem));
        if !matches {
            return Err(EvidenceError::new(
                "the private key does not belong to the signing certificate",
            ));
        }
        let unreadable = || EvidenceError::new("the signing key could not be loaded");
        let key = match key.kind {
            custos_keys::PublicKeyKind::Rsa { .. } => PrivateKey::Rsa(Box::new(
                rsa09::RsaPrivateKey::from_pkcs8_pem(&pkcs8).map_err(|_| unreadable())?,
            )),
            custos_keys::PublicKeyKind::EcP256 => PrivateKey::P256(
                p256::ecdsa::SigningKey::from_pkcs8_pem(&pkcs8).map_err(|_| unreadable())?,
            ),
            _ => {
                return Err(EvidenceError::new(
                    "the signing key must be RSA or ECDSA P-256",
                ));
            }
        };
        let parsed = Certificate::from_der(&certificate.der).map_err(|_| {
            EvidenceError::new("the signing certificate is not a valid X.509 certificate")
        })?;
        Ok(SigningIdentity {
            certificate_der: certificate.der,
            certificate: parsed,
            subject: certificate.subject,
            key,
        })
    }

    /// DER of the certificate.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The certificate's subject, RFC 4514 style, e.g. "CN=Custos TSA".
    pub fn subject(&self) -> String {
        self.subject.clone()
    }

    pub(crate) fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// Signs `message` with SHA-256: RSA PKCS#1 v1.5 (blinded, hence the RNG) or
    /// deterministic ECDSA P-256 (RFC 6979) with a DER signature. Returns the signature
    /// AlgorithmIdentifier for a SignerInfo and the signature.
    pub(crate) fn sign_sha256(
        &self,
        message: &[u8],
    ) -> Result<(AlgorithmIdentifierOwned, Vec<u8>), EvidenceError> {
        let failed = || EvidenceError::new("signing failed");
        match &self.key {
            PrivateKey::Rsa(key) => {
                let hashed = Sha256::digest(message);
                let signature = key
                    .sign_with_rng(&mut OsRng, rsa09::Pkcs1v15Sign::new::<Sha256>(), &hashed)
                    .map_err(|_| failed())?;
                // RFC 4055 §5: sha256WithRSAEncryption carries NULL parameters.
                let algorithm = AlgorithmIdentifierOwned {
                    oid: SHA_256_WITH_RSA_ENCRYPTION,
                    parameters: Some(der::asn1::Null.into()),
                };
                Ok((algorithm, signature))
            }
            PrivateKey::P256(key) => {
                let signature: p256::ecdsa::Signature =
                    key.try_sign(message).map_err(|_| failed())?;
                // RFC 5758 §3.2: ecdsa-with-SHA256 has no parameters.
                let algorithm = AlgorithmIdentifierOwned {
                    oid: ECDSA_WITH_SHA_256,
                    parameters: None,
                };
                Ok((algorithm, signature.to_der().as_bytes().to_vec()))
            }
        }
    }
}

/// DER of a ContentInfo(SignedData), detached (no eContent), digest SHA-256, the signer
/// certificate embedded, signed attributes content-type (id-data), message-digest and
/// signing-time. RSA: PKCS#1 v1.5 with SHA-256; ECDSA P-256 with SHA-256 (DER signature).
pub fn sign_detached(
    identity: &SigningIdentity,
    content: &[u8],
    signing_time: OffsetDateTime,
) -> Result<Vec<u8>, EvidenceError> {
    cms_common::sign(
        identity,
        SignRequest {
            content_type: ID_DATA,
            encapsulated: None,
            content_digest: Sha256::digest(content).into(),
            extra_attributes: Vec::new(),
            signing_time,
            embed_certificate: true,
        },
    )
}

/// What a verified detached signature says about its signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInfo {
    /// RFC 4514 subject of the signer certificate.
    pub signer_subject: String,
    /// RFC 4514 issuer of the signer certificate.
    pub signer_issuer: String,
    pub signer_certificate_der: Vec<u8>,
    /// The signing-time attribute, when the signer set one.
    pub signing_time: Option<OffsetDateTime>,
    /// "rsa-sha256" or "ecdsa-p256-sha256" for our signatures; other signers may also yield
    /// "rsa-sha384", "rsa-sha512", "ecdsa-p256-sha384" or "ecdsa-p256-sha512".
    pub algorithm: String,
}

/// Verifies a detached signature made by any conforming signer (ours, or `openssl cms -sign`
/// without `-nodetach`): message-digest attribute == hash of `content`, content-type attribute
/// == eContentType, and the signature over the DER SET OF signed attributes with the embedded
/// signer certificate's key (matched by issuerAndSerialNumber or subjectKeyIdentifier).
/// Does NOT decide trust; see [`check_issued_by`].
pub fn verify_detached(
    signature_der: &[u8],
    content: &[u8],
) -> Result<SignatureInfo, EvidenceError> {
    let verified = cms_common::verify(signature_der, Some(content))?;
    let described = cms_common::describe_certificate(&verified.certificate_der)?;
    Ok(SignatureInfo {
        signer_subject: described.subject,
        signer_issuer: described.issuer,
        signer_certificate_der: verified.certificate_der,
        signing_time: verified.signing_time,
        algorithm: verified.algorithm,
    })
}

/// All CERTIFICATE blocks of a PEM bundle, as DER, in order. Other blocks (keys, requests)
/// are refused, so a key pasted where a CA bundle belongs is caught.
pub fn certificates_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, EvidenceError> {
    let first = custos_keys::parse_certificate(&custos_keys::unescape_pem(pem))
        .map_err(|e| EvidenceError::new(format!("the certificate bundle is not usable: {e}")))?;
    let mut all = Vec::with_capacity(1 + first.chain.len());
    all.push(first.der);
    all.extend(first.chain);
    Ok(all)
}

/// Trust decision for `--ca`: `Ok(subject of the trusted CA)` if `certificate_der` is one of
/// `trusted`, or its issuer name equals a trusted certificate's subject and its signature
/// verifies under that certificate's public key (RSA PKCS#1 v1.5 SHA-256/384/512, ECDSA P-256
/// SHA-256/384/512). One level only: intermediate CAs must themselves be in `trusted`.
/// Validity periods are reported by the caller, not checked here.
pub fn check_issued_by(
    certificate_der: &[u8],
    trusted: &[Vec<u8>],
) -> Result<String, EvidenceError> {
    let certificate = Certificate::from_der(certificate_der).map_err(|_| {
        EvidenceError::new("the signer certificate is not a valid X.509 certificate")
    })?;
    if let Some(same) = trusted.iter().find(|t| t.as_slice() == certificate_der) {
        return Ok(cms_common::describe_certificate(same)?.subject);
    }
    // RFC 5280 §4.1.1.2: the outer algorithm must repeat the signed one; otherwise an
    // attacker could relabel the signature.
    if certificate.signature_algorithm != certificate.tbs_certificate.signature {
        return Err(EvidenceError::new(
            "the certificate's signature algorithm fields disagree",
        ));
    }
    let signature = certificate.signature.as_bytes().ok_or_else(|| {
        EvidenceError::new("the certificate's signature is not a whole number of octets")
    })?;
    let tbs = signed_part(certificate_der)?;
    for candidate in trusted {
        let Ok(ca) = Certificate::from_der(candidate) else {
            continue;
        };
        if ca.tbs_certificate.subject != certificate.tbs_certificate.issuer {
            continue;
        }
        if cms_common::verify_signature(
            &ca.tbs_certificate.subject_public_key_info,
            &certificate.signature_algorithm,
            None,
            tbs,
            signature,
        )
        .is_ok()
        {
            return Ok(cms_common::describe_certificate(candidate)?.subject);
        }
    }
    let issuer = cms_common::describe_certificate(certificate_der)
        .map(|c| c.issuer)
        .unwrap_or_default();
    Err(EvidenceError::new(format!(
        "the certificate (issuer \"{issuer}\") was not issued by any of the trusted certificates"
    )))
}

/// The DER of the tbsCertificate exactly as it appears in `certificate_der`: the signature
/// covers those bytes, and re-encoding a decoded certificate could differ from them.
fn signed_part(certificate_der: &[u8]) -> Result<&[u8], EvidenceError> {
    let malformed = |_| EvidenceError::new("the certificate is not valid DER");
    let outer = AnyRef::from_der(certificate_der).map_err(malformed)?;
    let mut reader = SliceReader::new(outer.value()).map_err(malformed)?;
    reader.tlv_bytes().map_err(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_signatures_are_errors_not_panics() {
        let inputs: [&[u8]; 6] = [
            b"",
            b"\x30",
            b"\x30\x80\x00\x00",
            b"\x30\x03\x06\x01\x00",
            b"\xff\xff\xff\xff",
            b"garbage that is not DER at all",
        ];
        for input in inputs {
            assert!(verify_detached(input, b"content").is_err());
            assert!(check_issued_by(input, &[input.to_vec()]).is_err());
            assert!(check_issued_by(input, &[]).is_err());
        }
    }

    #[test]
    fn truncated_or_corrupted_signatures_never_panic() {
        let generated =
            crate::tsa_identity::generate_tsa_identity("Unit signer", OffsetDateTime::now_utc())
                .unwrap();
        let identity =
            SigningIdentity::from_pem(&generated.certificate_pem, &generated.private_key_pem)
                .unwrap();
        let signature = sign_detached(&identity, b"head", OffsetDateTime::now_utc()).unwrap();
        verify_detached(&signature, b"head").unwrap();
        for len in 0..signature.len() {
            assert!(verify_detached(&signature[..len], b"head").is_err());
        }
        for i in (0..signature.len()).step_by(5) {
            let mut corrupted = signature.clone();
            corrupted[i] ^= 0x01;
            let _ = verify_detached(&corrupted, b"head");
        }
        let certificate = identity.certificate_der().to_vec();
        for len in 0..certificate.len() {
            assert!(
                check_issued_by(&certificate[..len], std::slice::from_ref(&certificate)).is_err()
            );
        }
    }

    #[test]
    fn truncated_openssl_like_structures_are_errors() {
        // A ContentInfo(signed-data) header followed by nothing useful, at every length.
        let mut bytes = vec![
            0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0,
            0x0d, 0x30, 0x0b, 0x02, 0x01, 0x01, 0x31, 0x00, 0x30, 0x04, 0x06, 0x02, 0x2a, 0x03,
        ];
        for len in 0..bytes.len() {
            assert!(verify_detached(&bytes[..len], b"x").is_err());
        }
        bytes.push(0);
        assert!(verify_detached(&bytes, b"x").is_err());
    }
}
