//! A trail's data keys, wrapped to X.509 certificates: the envelope carried by a key segment.
//!
//! Format (JSON, so that a third party can read it with any JSON parser and `openssl`):
//!
//! ```json
//! {"format": "custos-key-envelope-1", "cipher": "AES-256-GCM", "wrap": "RSA-OAEP-SHA256",
//!  "recipients": [{"shares": [{"certificate_sha256": "<hex>", "spki_sha256": "<hex>",
//!                              "subject": "CN=…", "serial": "<hex>",
//!                              "wrapped_key": "<base64 RSA-OAEP ciphertext>"}]}]}
//! ```
//!
//! Any one recipient opens the envelope; a recipient needs all of its shares. The data key is
//! the XOR of the recipient's unwrapped shares (32 bytes each). A plain certificate is a
//! recipient with one share, the key itself; a four-eyes pair is a recipient with two shares,
//! a random one and the key XOR it, so either private key alone learns nothing.
//! RSA-OAEP uses SHA-256 for both the hash and MGF1 (`openssl pkeyutl -decrypt -pkeyopt
//! rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand_core06::{OsRng, RngCore};
use rsa09::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa09::{Oaep, RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::EvidenceError;

const FORMAT: &str = "custos-key-envelope-1";
const CIPHER: &str = "AES-256-GCM";
const WRAP: &str = "RSA-OAEP-SHA256";
/// Largest envelope accepted when reading (a key segment may hold 1 MiB; this is plenty).
const MAX_ENVELOPE: usize = 1 << 20;

/// One way to open the envelope: a certificate, or a pair of certificates whose private keys
/// are both needed (four-eyes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientCertificates {
    pub certificate_pem: String,
    pub four_eyes_pem: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    format: String,
    cipher: String,
    wrap: String,
    recipients: Vec<Recipient>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Recipient {
    shares: Vec<Share>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Share {
    certificate_sha256: String,
    spki_sha256: String,
    subject: String,
    serial: String,
    wrapped_key: String,
}

/// A fresh random 256-bit data key.
pub fn new_data_key() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(key.as_mut_slice());
    key
}

struct RsaCertificate {
    public: RsaPublicKey,
    der_sha256: String,
    spki_sha256: String,
    subject: String,
    serial: String,
}

fn rsa_certificate(pem: &str) -> Result<RsaCertificate, EvidenceError> {
    let cert = custos_keys::parse_certificate(&custos_keys::unescape_pem(pem))
        .map_err(|e| EvidenceError::new(format!("encryption certificate: {e}")))?;
    let parsed = <x509_cert::Certificate as der::Decode>::from_der(&cert.der)
        .map_err(|_| EvidenceError::new("encryption certificate: not DER X.509"))?;
    let spki = der::Encode::to_der(&parsed.tbs_certificate.subject_public_key_info)
        .map_err(|_| EvidenceError::new("encryption certificate: bad public key"))?;
    let public = RsaPublicKey::from_public_key_der(&spki).map_err(|_| {
        EvidenceError::new(format!(
            "encryption certificate {}: its key is not RSA (trail keys are wrapped with RSA-OAEP)",
            cert.subject
        ))
    })?;
    Ok(RsaCertificate {
        public,
        der_sha256: hex::encode(Sha256::digest(&cert.der)),
        spki_sha256: hex::encode(Sha256::digest(&spki)),
        subject: cert.subject,
        serial: cert.serial,
    })
}

fn wrap_share(cert: &RsaCertificate, share: &[u8; 32]) -> Result<Share, EvidenceError> {
    let wrapped = cert
        .public
        .encrypt(&mut OsRng, Oaep::new::<Sha256>(), share)
        .map_err(|_| EvidenceError::new("RSA-OAEP wrapping failed"))?;
    Ok(Share {
        certificate_sha256: cert.der_sha256.clone(),
        spki_sha256: cert.spki_sha256.clone(),
        subject: cert.subject.clone(),
        serial: cert.serial.clone(),
        wrapped_key: STANDARD.encode(wrapped),
    })
}

/// Wraps `data_key` to every recipient; the JSON envelope of a key segment.
pub fn seal_data_key(
    data_key: &Zeroizing<[u8; 32]>,
    recipients: &[RecipientCertificates],
) -> Result<Vec<u8>, EvidenceError> {
    if recipients.is_empty() {
        return Err(EvidenceError::new("no certificate to encrypt the trail to"));
    }
    let mut out = Vec::with_capacity(recipients.len());
    for r in recipients {
        let first = rsa_certificate(&r.certificate_pem)?;
        let shares = match &r.four_eyes_pem {
            None => vec![wrap_share(&first, data_key)?],
            Some(second_pem) => {
                let second = rsa_certificate(second_pem)?;
                let mask = new_data_key();
                let mut rest = Zeroizing::new([0u8; 32]);
                for ((o, k), m) in rest.iter_mut().zip(data_key.iter()).zip(mask.iter()) {
                    *o = k ^ m;
                }
                vec![wrap_share(&first, &mask)?, wrap_share(&second, &rest)?]
            }
        };
        out.push(Recipient { shares });
    }
    serde_json::to_vec(&Envelope {
        format: FORMAT.into(),
        cipher: CIPHER.into(),
        wrap: WRAP.into(),
        recipients: out,
    })
    .map_err(|e| EvidenceError::new(format!("envelope: {e}")))
}

/// An auditor's RSA private key, for opening envelopes.
pub struct OpeningKey {
    key: RsaPrivateKey,
    spki_sha256: String,
}

impl OpeningKey {
    /// PEM of an RSA private key (PKCS#1 or PKCS#8, unencrypted).
    pub fn from_pem(pem: &str) -> Result<OpeningKey, EvidenceError> {
        let identity = custos_keys::parse_identity_key(&custos_keys::unescape_pem(pem))
            .map_err(|e| EvidenceError::new(format!("private key: {e}")))?;
        let key = RsaPrivateKey::from_pkcs8_pem(&identity.pkcs8_pem)
            .map_err(|_| EvidenceError::new("private key: not an RSA key"))?;
        let spki = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| EvidenceError::new("private key: cannot encode its public key"))?;
        Ok(OpeningKey {
            key,
            spki_sha256: hex::encode(Sha256::digest(spki.as_bytes())),
        })
    }
}

fn parse(envelope: &[u8]) -> Result<Envelope, EvidenceError> {
    if envelope.len() > MAX_ENVELOPE {
        return Err(EvidenceError::new("key envelope too large"));
    }
    let parsed: Envelope = serde_json::from_slice(envelope)
        .map_err(|e| EvidenceError::new(format!("key envelope is not valid: {e}")))?;
    if parsed.format != FORMAT || parsed.cipher != CIPHER || parsed.wrap != WRAP {
        return Err(EvidenceError::new(format!(
            "key envelope format {}/{}/{} is not supported",
            parsed.format, parsed.cipher, parsed.wrap
        )));
    }
    Ok(parsed)
}

/// Opens the envelope with the auditors' private keys: the first recipient whose every share
/// has a matching key yields the data key.
pub fn open_data_key(
    envelope: &[u8],
    keys: &[OpeningKey],
) -> Result<Zeroizing<[u8; 32]>, EvidenceError> {
    let parsed = parse(envelope)?;
    let mut partial = false;
    for recipient in &parsed.recipients {
        let holders: Vec<Option<&OpeningKey>> = recipient
            .shares
            .iter()
            .map(|s| keys.iter().find(|k| k.spki_sha256 == s.spki_sha256))
            .collect();
        if recipient.shares.is_empty() || holders.iter().any(Option::is_none) {
            partial |= holders.iter().any(Option::is_some);
            continue;
        }
        let mut data_key = Zeroizing::new([0u8; 32]);
        for (share, holder) in recipient.shares.iter().zip(holders.into_iter().flatten()) {
            let wrapped = STANDARD
                .decode(&share.wrapped_key)
                .map_err(|_| EvidenceError::new("key envelope: wrapped key is not base64"))?;
            let plain = Zeroizing::new(
                holder
                    .key
                    .decrypt(Oaep::new::<Sha256>(), &wrapped)
                    .map_err(|_| EvidenceError::new("key envelope: a share does not unwrap"))?,
            );
            if plain.len() != 32 {
                return Err(EvidenceError::new("key envelope: a share is not 32 bytes"));
            }
            for (d, p) in data_key.iter_mut().zip(plain.iter()) {
                *d ^= p;
            }
        }
        return Ok(data_key);
    }
    Err(EvidenceError::new(if partial {
        "the trail is jointly (four-eyes) encrypted: give both private keys of a certificate pair"
    } else {
        "none of the given private keys belongs to a certificate this trail was encrypted to"
    }))
}

/// Who can open the envelope: per recipient, the subjects of its certificates (two for a
/// four-eyes pair). For `custos trail verify` output.
pub fn recipients(envelope: &[u8]) -> Result<Vec<Vec<String>>, EvidenceError> {
    Ok(parse(envelope)?
        .recipients
        .into_iter()
        .map(|r| r.shares.into_iter().map(|s| s.subject).collect())
        .collect())
}
