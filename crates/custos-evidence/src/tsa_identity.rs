//! The built-in time-stamping authority's identity: an ECDSA P-256 key and a self-signed
//! certificate, made once at setup and stored as an X.509 object of the configuration.
//!
//! RFC 3161 §2.3 demands that a TSA certificate carry exactly one extended key usage,
//! id-kp-timeStamping, in a critical extension; `openssl ts -verify` and other verifiers refuse
//! tokens signed under anything else. The certificate is self-signed because the built-in TSA
//! vouches only for "this Custos saw these bytes at this time": auditors pin this certificate
//! (or replace it with one from their own CA through `management/certificates`).

use std::str::FromStr as _;
use std::time::Duration;

use const_oid::db::rfc5280::ID_KP_TIME_STAMPING;
use der::EncodePem as _;
use der::pem::LineEnding;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::EncodePrivateKey as _;
use rand_core06::{OsRng, RngCore as _};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::{Builder as _, CertificateBuilder, Profile};
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::EvidenceError;

/// A freshly generated identity, as PEM text ready for `POST /api/configuration/x509`.
pub struct GeneratedIdentity {
    pub certificate_pem: String,
    /// The private key as unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY").
    pub private_key_pem: String,
}

// Redacted by hand: the private key must never reach a log through `{:?}`.
impl std::fmt::Debug for GeneratedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedIdentity")
            .field("certificate_pem", &self.certificate_pem)
            .field("private_key_pem", &"…")
            .finish()
    }
}

/// How many calendar years the built-in TSA certificate is valid. Tokens stay verifiable after
/// it expires (verifiers check the signing time against the validity), so a long life only
/// spares administrators a renewal; ten years outlives most retention periods.
const VALIDITY_YEARS: i32 = 10;
/// Backdating of notBefore, so that a verifier whose clock is a little behind ours still
/// accepts tokens made right after setup.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// The built-in time-stamping authority's identity, made at setup: ECDSA P-256, self-signed,
/// subject `CN=<common_name>`, a critical extendedKeyUsage of id-kp-timeStamping only
/// (RFC 3161 §2.3), a critical keyUsage of digitalSignature and nonRepudiation, a critical
/// basicConstraints with cA false, a subjectKeyIdentifier, a random positive serial number,
/// valid from `now` − 1 h (the Unix epoch at the earliest) for 10 years.
pub fn generate_tsa_identity(
    common_name: &str,
    now: time::OffsetDateTime,
) -> Result<GeneratedIdentity, EvidenceError> {
    let subject = subject_name(common_name)?;
    let signing_key = SigningKey::random(&mut OsRng);
    let public_key = SubjectPublicKeyInfoOwned::from_key(*signing_key.verifying_key())
        .map_err(|e| EvidenceError::new(format!("cannot encode the TSA public key: {e}")))?;
    let validity = validity(now)?;
    // The Leaf profile adds the subject and authority key identifiers, basicConstraints
    // (cA false, critical) and keyUsage digitalSignature + nonRepudiation (critical); with the
    // subject as issuer the certificate is self-signed by `signing_key`.
    let profile = Profile::Leaf {
        issuer: subject.clone(),
        enable_key_agreement: false,
        enable_key_encipherment: false,
    };
    let mut builder = CertificateBuilder::new(
        profile,
        random_serial()?,
        validity,
        subject,
        public_key,
        &signing_key,
    )
    .map_err(|e| EvidenceError::new(format!("cannot build the TSA certificate: {e}")))?;
    // x509-cert marks an extendedKeyUsage critical unless it holds anyExtendedKeyUsage, which
    // this one does not: critical, as RFC 3161 §2.3 requires.
    builder
        .add_extension(&ExtendedKeyUsage(vec![ID_KP_TIME_STAMPING]))
        .map_err(|e| EvidenceError::new(format!("cannot add the extended key usage: {e}")))?;
    let certificate = builder
        .build::<DerSignature>()
        .map_err(|e| EvidenceError::new(format!("cannot sign the TSA certificate: {e}")))?;
    let certificate_pem = certificate
        .to_pem(LineEnding::LF)
        .map_err(|e| EvidenceError::new(format!("cannot encode the TSA certificate: {e}")))?;
    let private_key_pem = signing_key
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|_| EvidenceError::new("cannot encode the TSA private key as PKCS#8"))?
        .as_str()
        .to_owned();
    Ok(GeneratedIdentity {
        certificate_pem,
        private_key_pem,
    })
}

/// `CN=<common_name>`, with the characters that RFC 4514 treats specially escaped, so that the
/// name is always exactly one attribute whatever the caller passes.
fn subject_name(common_name: &str) -> Result<Name, EvidenceError> {
    if common_name.trim().is_empty() {
        return Err(EvidenceError::new("the TSA common name must not be empty"));
    }
    let mut escaped = String::with_capacity(common_name.len() + 8);
    for (i, c) in common_name.char_indices() {
        let at_edge =
            i == 0 && (c == ' ' || c == '#') || c == ' ' && i + c.len_utf8() == common_name.len();
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') || at_edge {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    Name::from_str(&format!("CN={escaped}"))
        .map_err(|e| EvidenceError::new(format!("invalid TSA common name: {e}")))
}

fn validity(now: time::OffsetDateTime) -> Result<Validity, EvidenceError> {
    let out_of_range = || EvidenceError::new("the current time is out of the certificate range");
    // Certificates cannot express times before 1970; a clock that early (tests start at Unix
    // time 1) starts the validity at the epoch instead of failing.
    let not_before = now
        .checked_sub(BACKDATE)
        .ok_or_else(out_of_range)?
        .max(time::OffsetDateTime::UNIX_EPOCH);
    let year = not_before.year() + VALIDITY_YEARS;
    // 29 February has no counterpart in most years: end on the 28th then.
    let not_after = not_before
        .replace_year(year)
        .or_else(|_| {
            not_before
                .replace_day(28)
                .and_then(|d| d.replace_year(year))
        })
        .map_err(|_| out_of_range())?;
    // Through Unix seconds rather than `From`, which panics on overflow.
    let system_time = |t: time::OffsetDateTime| {
        u64::try_from(t.unix_timestamp())
            .ok()
            .and_then(|s| std::time::UNIX_EPOCH.checked_add(Duration::from_secs(s)))
            .ok_or_else(out_of_range)
    };
    let (not_before, not_after) = (system_time(not_before)?, system_time(not_after)?);
    Ok(Validity {
        not_before: Time::try_from(not_before).map_err(|_| out_of_range())?,
        not_after: Time::try_from(not_after).map_err(|_| out_of_range())?,
    })
}

/// 128 random bits with the top bit clear (a positive INTEGER of at most 16 octets, RFC 5280
/// §4.1.2.2) and the next bit set, so the serial is never zero and always 16 octets long.
fn random_serial() -> Result<SerialNumber, EvidenceError> {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes)
        .map_err(|e| EvidenceError::new(format!("cannot encode the serial number: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    #[test]
    fn the_identity_parses_and_its_key_matches_the_certificate() {
        let identity = generate_tsa_identity("Custos built-in TSA", now()).unwrap();
        let certificate = custos_keys::parse_certificate(&identity.certificate_pem).unwrap();
        let key = custos_keys::parse_identity_key(&identity.private_key_pem).unwrap();
        assert!(custos_keys::key_matches_certificate(&key, &certificate));
        assert_eq!(certificate.key, custos_keys::PublicKeyKind::EcP256);
        assert_eq!(certificate.subject, "CN=Custos built-in TSA");
        assert_eq!(certificate.issuer, certificate.subject, "self-signed");
        assert!(!certificate.is_ca);
        assert!(
            identity
                .private_key_pem
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(!format!("{identity:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn validity_starts_an_hour_back_and_lasts_ten_years() {
        let at = time::macros::datetime!(2026-03-01 12:00:00 UTC);
        let identity = generate_tsa_identity("t", at).unwrap();
        let certificate = custos_keys::parse_certificate(&identity.certificate_pem).unwrap();
        assert_eq!(certificate.not_before, "2026-03-01T11:00:00Z");
        assert_eq!(certificate.not_after, "2036-03-01T11:00:00Z");
        let leap = time::macros::datetime!(2028-02-29 13:00:00 UTC);
        let identity = generate_tsa_identity("t", leap).unwrap();
        let certificate = custos_keys::parse_certificate(&identity.certificate_pem).unwrap();
        assert_eq!(certificate.not_after, "2038-02-28T12:00:00Z");
        let early = time::OffsetDateTime::from_unix_timestamp(1).unwrap();
        let identity = generate_tsa_identity("t", early).unwrap();
        let certificate = custos_keys::parse_certificate(&identity.certificate_pem).unwrap();
        assert_eq!(certificate.not_before, "1970-01-01T00:00:00Z");
        assert_eq!(certificate.not_after, "1980-01-01T00:00:00Z");
    }

    #[test]
    fn serials_are_random_positive_and_sixteen_octets() {
        let a = generate_tsa_identity("t", now()).unwrap();
        let b = generate_tsa_identity("t", now()).unwrap();
        let serial = |i: &GeneratedIdentity| {
            custos_keys::parse_certificate(&i.certificate_pem)
                .unwrap()
                .serial
        };
        assert_ne!(serial(&a), serial(&b));
        assert_eq!(serial(&a).len(), 32);
        assert!(!serial(&a).starts_with('-'));
    }

    #[test]
    fn the_common_name_is_one_attribute_whatever_it_holds() {
        let identity = generate_tsa_identity("a,O=evil+b", now()).unwrap();
        let certificate = custos_keys::parse_certificate(&identity.certificate_pem).unwrap();
        // custos-keys prints RFC 4514, which escapes ',' and '+' but not '=' inside a value.
        assert_eq!(certificate.subject, "CN=a\\,O=evil\\+b");
        assert!(generate_tsa_identity("  ", now()).is_err());
    }

    #[test]
    fn openssl_sees_a_critical_time_stamping_key_usage_and_verifies_the_purpose() {
        let identity = generate_tsa_identity("Custos built-in TSA", now()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tsa.pem");
        std::fs::write(&cert, &identity.certificate_pem).unwrap();

        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl is installed");
        assert!(text.status.success());
        let text = String::from_utf8_lossy(&text.stdout);
        let eku = text
            .lines()
            .position(|l| l.contains("X509v3 Extended Key Usage: critical"))
            .unwrap_or_else(|| panic!("no critical EKU in:\n{text}"));
        assert_eq!(
            text.lines().nth(eku + 1).map(str::trim),
            Some("Time Stamping")
        );
        assert!(text.contains("X509v3 Key Usage: critical"));
        assert!(text.contains("Digital Signature, Non Repudiation"));
        assert!(text.contains("CA:FALSE"));
        assert!(text.contains("X509v3 Subject Key Identifier"));
        assert!(text.contains("ecdsa-with-SHA256"));

        let verify = Command::new("openssl")
            .args(["verify", "-purpose", "timestampsign", "-CAfile"])
            .arg(&cert)
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}
