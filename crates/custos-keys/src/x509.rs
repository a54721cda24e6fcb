//! X.509 certificates and the private keys of X.509 identities.
//!
//! Built on the RustCrypto 0.2 generation (`x509-cert` 0.2, `der` 0.7, `rsa` 0.9, `p256` 0.13)
//! because that is what `cms` 0.2 and `x509-tsp` 0.1 consume when these identities sign audit
//! trails later; the DER and PKCS#8 PEM stored here feed straight into them.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280::{ID_CE_BASIC_CONSTRAINTS, ID_CE_EXT_KEY_USAGE};
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1};
use const_oid::db::rfc8410::ID_ED_25519;
use der::{DateTime, Decode as _};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::EncodePrivateKey as _;
use rsa09::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::ext::pkix::ExtendedKeyUsage as EkuExtension;
use x509_cert::time::Time;

use crate::KeyError;
use crate::name::rfc4514;
use crate::pem;
use crate::privkey::{self, PrivateKeyMaterial, PublicMaterial, Purpose};

/// One parsed X.509 certificate (plus any further certificates that came with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// DER of the certificate, exactly as uploaded.
    pub der: Vec<u8>,
    /// Canonical PEM of `der` (64 columns, LF).
    pub pem: String,
    /// Subject as an RFC 4514 string (last RDN first), e.g. "O=Example,CN=Custos test".
    pub subject: String,
    /// Issuer as an RFC 4514 string.
    pub issuer: String,
    /// Serial number, lowercase hex without separators, leading zero octets removed
    /// (the digits `openssl x509 -serial` prints); negative serials get a leading "-".
    pub serial: String,
    /// RFC 3339 UTC, e.g. "2026-11-22T23:00:00Z".
    pub not_before: String,
    pub not_after: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    /// SHA-256 of `der`, lowercase hex with ':' separators.
    pub fingerprint_sha256: String,
    /// The subject public key.
    pub key: PublicKeyKind,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// DER of further certificates in the PEM, in order.
    pub chain: Vec<Vec<u8>>,
}

/// The kind of a public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyKind {
    Rsa {
        bits: u32,
    },
    EcP256,
    Ed25519,
    /// Anything else; holds the algorithm OID in dotted form (for EC keys on other curves this
    /// is id-ecPublicKey, 1.2.840.10045.2.1).
    Other(String),
}

/// A private key for an X.509 identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityKey {
    pub kind: PublicKeyKind,
    /// The key as canonical unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY").
    pub pkcs8_pem: String,
}

/// Parses PEM text holding one X.509 certificate, optionally followed by more certificates
/// (a chain), which are validated as X.509 and returned as `chain`.
///
/// Private keys, CSRs and other blocks are refused with a message that names what was found,
/// so a key pasted into a certificate field is caught rather than stored.
pub fn parse_certificate(pem: &str) -> Result<Certificate, KeyError> {
    let text = pem.trim();
    if text.is_empty() {
        return Err(KeyError::new("no certificate given"));
    }
    let blocks = pem::parse_blocks(text)?;
    if blocks.is_empty() {
        return Err(KeyError::new(format!(
            "not a PEM certificate (expected a line -----BEGIN CERTIFICATE-----){}",
            pem::escaped_newline_hint(text)
        )));
    }
    let mut ders = Vec::with_capacity(blocks.len());
    for block in &blocks {
        match block.label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" => ders.push(block.der.to_vec()),
            label if label.contains("PRIVATE KEY") => {
                return Err(KeyError::new(
                    "expected a certificate but found a private key; \
                     upload the private key separately, never in a certificate field",
                ));
            }
            "TRUSTED CERTIFICATE" => {
                return Err(KeyError::new(
                    "OpenSSL 'TRUSTED CERTIFICATE' blocks are not supported; \
                     export the certificate without -trustout",
                ));
            }
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
                return Err(KeyError::new(
                    "this is a certificate signing request, not a certificate",
                ));
            }
            "PUBLIC KEY" | "RSA PUBLIC KEY" => {
                return Err(KeyError::new("this is a public key, not a certificate"));
            }
            other => {
                return Err(KeyError::new(format!(
                    "unexpected PEM block {} where a certificate is expected",
                    pem::describe_label(other)
                )));
            }
        }
    }
    let mut ders = ders.into_iter();
    let Some(first) = ders.next() else {
        return Err(KeyError::new("no certificate found"));
    };
    let mut certificate = describe(first)?;
    for (i, der) in ders.enumerate() {
        x509_cert::Certificate::from_der(&der).map_err(|e| {
            KeyError::new(format!(
                "certificate {} in the PEM is not a valid X.509 certificate: {e}",
                i + 2
            ))
        })?;
        certificate.chain.push(der);
    }
    Ok(certificate)
}

/// Decodes one certificate and extracts the fields callers show and check.
fn describe(der: Vec<u8>) -> Result<Certificate, KeyError> {
    let cert = x509_cert::Certificate::from_der(&der)
        .map_err(|e| KeyError::new(format!("not a valid X.509 certificate: {e}")))?;
    let tbs = &cert.tbs_certificate;
    let (not_before, not_before_unix) = time(&tbs.validity.not_before)?;
    let (not_after, not_after_unix) = time(&tbs.validity.not_after)?;
    let mut is_ca = false;
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id == ID_CE_BASIC_CONSTRAINTS {
            let constraints =
                BasicConstraints::from_der(ext.extn_value.as_bytes()).map_err(|_| {
                    KeyError::new("certificate has a malformed basicConstraints extension")
                })?;
            is_ca = constraints.ca;
        }
    }
    let (key, _) = public_key(&tbs.subject_public_key_info)?;
    let fingerprint_sha256 = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(Certificate {
        pem: pem::encode("CERTIFICATE", &der),
        subject: rfc4514(&tbs.subject),
        issuer: rfc4514(&tbs.issuer),
        serial: serial_hex(tbs.serial_number.as_bytes()),
        not_before,
        not_after,
        not_before_unix,
        not_after_unix,
        fingerprint_sha256,
        key,
        is_ca,
        chain: Vec::new(),
        der,
    })
}

/// RFC 3339 text and Unix seconds of a certificate time.
fn time(t: &Time) -> Result<(String, i64), KeyError> {
    let dt: DateTime = t.to_date_time();
    let text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minutes(),
        dt.seconds()
    );
    let unix = i64::try_from(dt.unix_duration().as_secs())
        .map_err(|_| KeyError::new("certificate validity date is out of range"))?;
    Ok((text, unix))
}

/// Hex of a DER INTEGER's two's-complement content octets, as OpenSSL prints serials: the
/// magnitude without leading zero octets (one "00" for zero), "-" for negative values.
fn serial_hex(bytes: &[u8]) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude: Vec<u8> = if negative {
        // Two's complement negation: invert, then add one from the least significant end.
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
        m
    } else {
        bytes.to_vec()
    };
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len().saturating_sub(1));
    let digits = hex::encode(magnitude.get(start..).unwrap_or_default());
    let digits = if digits.is_empty() {
        "00".to_owned()
    } else {
        digits
    };
    if negative {
        format!("-{digits}")
    } else {
        digits
    }
}

/// The kind of a subject public key and, for the kinds an identity can have, its comparable
/// value. Malformed keys of a known kind are errors; unknown kinds are `Other`.
fn public_key(
    spki: &SubjectPublicKeyInfoOwned,
) -> Result<(PublicKeyKind, Option<PublicMaterial>), KeyError> {
    let oid = spki.algorithm.oid;
    let bits = spki.subject_public_key.as_bytes();
    if oid == RSA_ENCRYPTION {
        let key = bits
            .and_then(|b| rsa09::pkcs1::RsaPublicKey::from_der(b).ok())
            .ok_or_else(|| KeyError::new("certificate holds a malformed RSA public key"))?;
        let n = key.modulus.as_bytes();
        let bits = match n.first() {
            Some(&top) => (n.len() as u64) * 8 - u64::from(top.leading_zeros()),
            None => 0,
        };
        let bits = u32::try_from(bits)
            .map_err(|_| KeyError::new("certificate holds an oversized RSA public key"))?;
        let material = PublicMaterial::Rsa {
            n: n.to_vec(),
            e: key.public_exponent.as_bytes().to_vec(),
        };
        Ok((PublicKeyKind::Rsa { bits }, Some(material)))
    } else if oid == ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if curve != Some(SECP_256_R_1) {
            return Ok((PublicKeyKind::Other(oid.to_string()), None));
        }
        let point = bits
            .and_then(|b| p256::PublicKey::from_sec1_bytes(b).ok())
            .ok_or_else(|| KeyError::new("certificate holds a malformed P-256 public key"))?;
        let material = PublicMaterial::P256(point.to_encoded_point(false).as_bytes().to_vec());
        Ok((PublicKeyKind::EcP256, Some(material)))
    } else if oid == ID_ED_25519 {
        let key: [u8; 32] = bits
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeyError::new("certificate holds a malformed Ed25519 public key"))?;
        Ok((PublicKeyKind::Ed25519, Some(PublicMaterial::Ed25519(key))))
    } else {
        Ok((PublicKeyKind::Other(oid.to_string()), None))
    }
}

/// Parses the private key of an X.509 identity: PKCS#1 RSA, PKCS#8 (RSA or EC P-256) or SEC1
/// EC P-256 PEM (an unencrypted OpenSSH RSA/P-256 key works too). Certificate blocks next to
/// the key are ignored, so a combined "cert + key" file is accepted. Encrypted keys are
/// rejected with "encrypted private keys are not supported; remove the passphrase".
///
/// Ed25519 keys are refused: identities sign CMS with RSA or ECDSA P-256 only.
pub fn parse_identity_key(pem: &str) -> Result<IdentityKey, KeyError> {
    let decoded = privkey::decode(pem, Purpose::Identity)?;
    let encode_failed = || KeyError::new("could not encode the private key as PKCS#8");
    match decoded.material {
        PrivateKeyMaterial::Rsa(key) => {
            let bits = u32::try_from(key.n().bits()).map_err(|_| encode_failed())?;
            let pkcs8_pem = rsa09::pkcs8::EncodePrivateKey::to_pkcs8_pem(
                key.as_ref(),
                rsa09::pkcs8::LineEnding::LF,
            )
            .map_err(|_| encode_failed())?;
            Ok(IdentityKey {
                kind: PublicKeyKind::Rsa { bits },
                pkcs8_pem: pkcs8_pem.as_str().to_owned(),
            })
        }
        PrivateKeyMaterial::P256(secret) => {
            let pkcs8_pem = secret
                .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                .map_err(|_| encode_failed())?;
            Ok(IdentityKey {
                kind: PublicKeyKind::EcP256,
                pkcs8_pem: pkcs8_pem.as_str().to_owned(),
            })
        }
        PrivateKeyMaterial::Ed25519(_) => Err(KeyError::new(
            "Ed25519 keys cannot be used for X.509 identities here; use RSA or ECDSA P-256",
        )),
    }
}

/// Whether `key` is the private key of `certificate`: true exactly when the certificate's
/// subject public key equals the public half of `key` (RSA modulus and exponent, or the P-256
/// point). Anything that does not parse yields `false`.
pub fn key_matches_certificate(key: &IdentityKey, certificate: &Certificate) -> bool {
    let Ok(decoded) = privkey::decode(&key.pkcs8_pem, Purpose::Identity) else {
        return false;
    };
    let Ok(cert) = x509_cert::Certificate::from_der(&certificate.der) else {
        return false;
    };
    match public_key(&cert.tbs_certificate.subject_public_key_info) {
        Ok((_, Some(public))) => public == decoded.material.public(),
        _ => false,
    }
}

/// id-kp-timeStamping (RFC 5280 §4.2.1.12), dotted.
pub const ID_KP_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";

/// A certificate's extendedKeyUsage extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedKeyUsage {
    pub critical: bool,
    /// The key purposes as dotted OIDs, in certificate order.
    pub purposes: Vec<String>,
}

impl ExtendedKeyUsage {
    /// What RFC 3161 §2.3 demands of a time-stamping authority's certificate: exactly one
    /// purpose, id-kp-timeStamping, in a critical extension.
    pub fn is_time_stamping_only(&self) -> bool {
        self.critical
            && self.purposes.len() == 1
            && self.purposes.contains(&ID_KP_TIME_STAMPING.into())
    }
}

/// The extendedKeyUsage extension of `certificate`, `None` when it has none. A malformed or
/// repeated extension (RFC 5280 §4.2 allows one instance) is an error, so that a verifier that
/// reads another instance cannot disagree with what was checked here.
pub fn extended_key_usage(certificate: &Certificate) -> Result<Option<ExtendedKeyUsage>, KeyError> {
    let cert = x509_cert::Certificate::from_der(&certificate.der)
        .map_err(|e| KeyError::new(format!("not a valid X.509 certificate: {e}")))?;
    let mut found = None;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != ID_CE_EXT_KEY_USAGE {
            continue;
        }
        if found.is_some() {
            return Err(KeyError::new(
                "certificate has more than one extendedKeyUsage extension",
            ));
        }
        let usage = EkuExtension::from_der(ext.extn_value.as_bytes())
            .map_err(|_| KeyError::new("certificate has a malformed extendedKeyUsage extension"))?;
        found = Some(ExtendedKeyUsage {
            critical: ext.critical,
            purposes: usage.0.iter().map(ToString::to_string).collect(),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_hex_matches_openssl_digits() {
        assert_eq!(serial_hex(&[0x00, 0x9a, 0x01]), "9a01");
        assert_eq!(serial_hex(&[0x01]), "01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x0a, 0xbc]), "0abc");
        assert_eq!(serial_hex(&[0xff]), "-01");
        assert_eq!(serial_hex(&[0xff, 0x00]), "-0100");
        assert_eq!(serial_hex(&[]), "00");
    }
}
