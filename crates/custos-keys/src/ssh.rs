//! SSH private keys (client identities for rsync/SSH targets) and OpenSSH public keys
//! (pinned host keys).
//!
//! Output goes through `ssh-key` 0.7.0-rc.11, the exact crate the SSH gateway's russh uses, so
//! the re-encoded OpenSSH private key is byte-for-byte what russh will read back later.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use rsa09::traits::{PrivateKeyParts as _, PublicKeyParts as _};
use sha2::{Digest as _, Sha256};
use ssh_key::encoding::Encode as _;
use ssh_key::private::{
    EcdsaKeypair, EcdsaPrivateKey, Ed25519Keypair, KeypairData, RsaKeypair,
    RsaPrivateKey as SshRsaPrivate,
};
use ssh_key::public::{EcdsaPublicKey, KeyData, RsaPublicKey as SshRsaPublic};
use ssh_key::{Algorithm, LineEnding, Mpint};

use crate::KeyError;
use crate::privkey::{self, PrivateKeyMaterial, Purpose};

/// An SSH private key as uploaded, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPrivateKey {
    /// The key re-encoded in OpenSSH private key format (unencrypted), ready for an SSH client.
    pub openssh_pem: String,
    /// OpenSSH public key line without comment, e.g. "ssh-ed25519 AAAAC3Nz…".
    pub public_key: String,
    /// SSH algorithm name, e.g. "ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256".
    pub algorithm: String,
    /// `SHA256:<base64 without padding>`, exactly as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// Key size in bits (RSA modulus size, 256 for Ed25519/P-256).
    pub bits: u32,
}

/// An OpenSSH public key, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPublicKey {
    /// "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ssh-ed25519", …
    pub algorithm: String,
    /// The key blob, canonical base64 (standard alphabet, padded).
    pub base64: String,
    /// "SHA256:…" as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// Parses an SSH private key as uploaded.
///
/// Accepted: OpenSSH format ("-----BEGIN OPENSSH PRIVATE KEY-----"), PKCS#1 RSA PEM ("BEGIN RSA
/// PRIVATE KEY"), PKCS#8 ("BEGIN PRIVATE KEY": RSA, Ed25519, ECDSA P-256) and SEC1 EC ("BEGIN EC
/// PRIVATE KEY", P-256). Key types: RSA (1024–16384 bits), Ed25519, ECDSA P-256. Encrypted keys
/// (OpenSSH with a passphrase, "ENCRYPTED PRIVATE KEY", `Proc-Type: 4,ENCRYPTED`) are rejected
/// with "encrypted private keys are not supported; remove the passphrase", because the gateway
/// has nowhere to keep a passphrase. Surrounding whitespace is ignored.
///
/// The key is checked for internal consistency (RSA numbers agree, the private half matches
/// the embedded public half) and re-encoded from the checked values only. An OpenSSH key keeps
/// its comment in `openssh_pem`.
pub fn parse_ssh_private_key(text: &str) -> Result<SshPrivateKey, KeyError> {
    let decoded = privkey::decode(text, Purpose::Ssh)?;
    let (keypair, bits) = ssh_keypair(&decoded.material)?;
    let private = ssh_key::PrivateKey::new(keypair, decoded.comment.as_str())
        .map_err(|_| KeyError::new("could not build the OpenSSH private key"))?;
    let openssh_pem = private
        .to_openssh(LineEnding::LF)
        .map_err(|_| KeyError::new("could not encode the OpenSSH private key"))?
        .as_str()
        .to_owned();
    let public = describe_public(private.public_key().key_data())?;
    Ok(SshPrivateKey {
        openssh_pem,
        public_key: format!("{} {}", public.algorithm, public.base64),
        algorithm: public.algorithm,
        fingerprint: public.fingerprint,
        bits,
    })
}

/// Builds the `ssh-key` keypair for validated material, with its size in bits.
fn ssh_keypair(material: &PrivateKeyMaterial) -> Result<(KeypairData, u32), KeyError> {
    let failed = || KeyError::new("could not convert the key to OpenSSH form");
    match material {
        PrivateKeyMaterial::Rsa(key) => {
            let mpint = |n: &rsa09::BigUint| Mpint::from_positive_bytes(&n.to_bytes_be());
            let [p, q] = key.primes() else {
                return Err(failed());
            };
            let iqmp = key.crt_coefficient().ok_or_else(failed)?;
            let public = SshRsaPublic::new(mpint(key.e()), mpint(key.n())).map_err(|_| failed())?;
            let private = SshRsaPrivate::new(mpint(key.d()), mpint(&iqmp), mpint(p), mpint(q))
                .map_err(|_| failed())?;
            let pair = RsaKeypair::new(public, private).map_err(|_| failed())?;
            let bits = u32::try_from(key.n().bits()).map_err(|_| failed())?;
            Ok((KeypairData::from(pair), bits))
        }
        PrivateKeyMaterial::P256(secret) => {
            let point = secret.public_key().to_encoded_point(false);
            let EcdsaPublicKey::NistP256(public) =
                EcdsaPublicKey::from_sec1_bytes(point.as_bytes()).map_err(|_| failed())?
            else {
                return Err(failed());
            };
            let scalar: [u8; 32] = secret.to_bytes().into();
            let pair = EcdsaKeypair::NistP256 {
                public,
                private: EcdsaPrivateKey::from(scalar),
            };
            Ok((KeypairData::from(pair), 256))
        }
        PrivateKeyMaterial::Ed25519(seed) => {
            Ok((KeypairData::from(Ed25519Keypair::from_seed(seed)), 256))
        }
    }
}

/// Parses an OpenSSH public key: `ssh-rsa AAAA… [comment]` (comment optional), or the bare
/// base64 blob alone (the blob names its own algorithm, so no hint is needed).
///
/// Validates that the blob decodes completely and that its embedded algorithm equals the
/// prefix. Accepted algorithms are those a host key can have: ssh-rsa, ssh-dss,
/// ecdsa-sha2-nistp256/384/521 and ssh-ed25519; P-256 points are also checked to lie on the
/// curve. Certificates and security-key types are refused.
pub fn parse_ssh_public_key(text: &str) -> Result<SshPublicKey, KeyError> {
    let mut fields = text.split_whitespace();
    let (prefix, blob) = match (fields.next(), fields.next()) {
        (None, _) => return Err(KeyError::new("no SSH public key given")),
        (Some(blob), None) => (None, blob),
        (Some(prefix), Some(blob)) => (Some(prefix), blob),
    };
    if let Some(prefix) = prefix {
        if prefix.starts_with("-----BEGIN") {
            return Err(KeyError::new(
                "this is PEM text; an OpenSSH public key line (\"ssh-ed25519 AAAA…\") is required",
            ));
        }
        if !is_host_key_algorithm(prefix) {
            return Err(KeyError::new(format!(
                "unsupported SSH public key type {}; expected ssh-rsa, ssh-dss, ecdsa-sha2-nistp256/384/521 or ssh-ed25519",
                describe_algorithm_name(prefix)
            )));
        }
    }
    let bytes = STANDARD
        .decode(blob)
        .or_else(|_| STANDARD_NO_PAD.decode(blob))
        .map_err(|_| KeyError::new("the SSH public key is not valid base64"))?;
    let key = ssh_key::PublicKey::from_bytes(&bytes)
        .map_err(|_| KeyError::new("the SSH public key blob is malformed"))?;
    let public = describe_public(key.key_data())?;
    if let Some(prefix) = prefix
        && prefix != public.algorithm
    {
        return Err(KeyError::new(format!(
            "the key type in the blob ({}) does not match the prefix ({prefix})",
            public.algorithm
        )));
    }
    Ok(public)
}

/// Checks a public key and returns its algorithm, canonical blob and fingerprint.
fn describe_public(key: &KeyData) -> Result<SshPublicKey, KeyError> {
    let algorithm = key.algorithm();
    let name = algorithm.as_str();
    if key.is_certificate() {
        return Err(KeyError::new(
            "OpenSSH certificates are not supported here; give the plain public key",
        ));
    }
    if !is_host_key_algorithm(name) {
        return Err(KeyError::new(format!(
            "unsupported SSH public key type {}; expected ssh-rsa, ssh-dss, ecdsa-sha2-nistp256/384/521 or ssh-ed25519",
            describe_algorithm(Some(&algorithm))
        )));
    }
    if let Some(EcdsaPublicKey::NistP256(point)) = key.ecdsa() {
        p256::PublicKey::from_sec1_bytes(point.as_bytes())
            .map_err(|_| KeyError::new("the ECDSA P-256 public key is not a point on the curve"))?;
    }
    let blob = key
        .encode_vec()
        .map_err(|_| KeyError::new("could not encode the SSH public key"))?;
    Ok(SshPublicKey {
        algorithm: name.to_owned(),
        base64: STANDARD.encode(&blob),
        fingerprint: fingerprint(&blob),
    })
}

/// "SHA256:" + unpadded base64 of the SHA-256 of the key blob: OpenSSH's fingerprint format.
fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

fn is_host_key_algorithm(name: &str) -> bool {
    matches!(
        name,
        "ssh-rsa"
            | "ssh-dss"
            | "ssh-ed25519"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
    )
}

/// An algorithm name for messages (see [`describe_algorithm_name`]).
pub(crate) fn describe_algorithm(algorithm: Option<&Algorithm>) -> String {
    algorithm.map_or_else(
        || "(unknown)".to_owned(),
        |a| describe_algorithm_name(a.as_str()),
    )
}

/// Quotes an algorithm name if it looks like one; uploaded text is otherwise not echoed.
fn describe_algorithm_name(name: &str) -> String {
    let plausible = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '@' | '.' | '_')
        });
    if plausible {
        format!("'{name}'")
    } else {
        "(unrecognised)".to_owned()
    }
}

/// Maps between SSH algorithm names and SPS `host_key.selection` names, in both directions.
///
/// Algorithm → selection: "ssh-rsa" → "rsa", "ssh-dss" → "dss", "ssh-ed25519" → "ed25519",
/// "ecdsa-sha2-nistp256|384|521" → "ecdsa". Selection → algorithm (see
/// [`host_key_algorithm`]): "rsa" → "ssh-rsa", "dss"/"dsa" → "ssh-dss", "ed25519" →
/// "ssh-ed25519". The two sets of names are disjoint, so one function can serve both
/// directions. "ecdsa" returns `None`: the curve, and so the algorithm name, is only known from
/// the key blob; use [`ssh_public_key_from_selection`] for that case. Unknown names → `None`.
pub fn host_key_selection(algorithm: &str) -> Option<&'static str> {
    match algorithm {
        "ssh-rsa" => Some("rsa"),
        "ssh-dss" => Some("dss"),
        "ssh-ed25519" => Some("ed25519"),
        "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => Some("ecdsa"),
        other => host_key_algorithm(other),
    }
}

/// The inverse of [`host_key_selection`]: the SSH algorithm for an SPS selection name
/// ("rsa", "dss", "dsa", "ed25519"; case-insensitive). `None` for "ecdsa", whose algorithm
/// depends on the curve in the blob, and for unknown names.
pub fn host_key_algorithm(selection: &str) -> Option<&'static str> {
    match selection.trim().to_ascii_lowercase().as_str() {
        "rsa" => Some("ssh-rsa"),
        "dss" | "dsa" => Some("ssh-dss"),
        "ed25519" => Some("ssh-ed25519"),
        _ => None,
    }
}

/// Rebuilds an [`SshPublicKey`] from an SPS `{selection, value}` pair (value = base64 blob, a
/// full `type blob [comment]` line is accepted too) and checks that they agree; for "ecdsa" the
/// blob decides which curve.
pub fn ssh_public_key_from_selection(
    selection: &str,
    value: &str,
) -> Result<SshPublicKey, KeyError> {
    let wanted = match selection.trim().to_ascii_lowercase().as_str() {
        "rsa" => "rsa",
        "dss" | "dsa" => "dss",
        "ed25519" => "ed25519",
        "ecdsa" => "ecdsa",
        _ => {
            return Err(KeyError::new(
                "unknown host key selection; expected rsa, dss, ecdsa or ed25519",
            ));
        }
    };
    let key = parse_ssh_public_key(value)?;
    if host_key_selection(&key.algorithm) != Some(wanted) {
        return Err(KeyError::new(format!(
            "host key selection '{wanted}' does not match the key type {}",
            key.algorithm
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A public key made with `ssh-keygen -t ed25519`.
    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOYSRiSh/bz/dyJ0sRiIbQ78RskxH3SAvujRKAhWfp9l";

    #[test]
    fn host_key_selection_maps_both_directions() {
        assert_eq!(host_key_selection("ssh-rsa"), Some("rsa"));
        assert_eq!(host_key_selection("ecdsa-sha2-nistp384"), Some("ecdsa"));
        assert_eq!(host_key_selection("rsa"), Some("ssh-rsa"));
        assert_eq!(host_key_selection("dsa"), Some("ssh-dss"));
        assert_eq!(host_key_selection("ecdsa"), None);
        assert_eq!(host_key_selection("ssh-xmss@openssh.com"), None);
    }

    #[test]
    fn bare_blob_and_prefixed_line_agree() {
        let bare = parse_ssh_public_key(ED25519).unwrap();
        let line = parse_ssh_public_key(&format!("ssh-ed25519 {ED25519} me@host")).unwrap();
        assert_eq!(bare, line);
        assert_eq!(bare.algorithm, "ssh-ed25519");
        assert_eq!(bare.base64, ED25519);
    }

    #[test]
    fn fingerprint_is_unpadded_sha256_base64() {
        let fp = fingerprint(b"");
        assert_eq!(fp, "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
    }

    #[test]
    fn garbage_algorithm_prefix_is_not_echoed() {
        let err = parse_ssh_public_key(&format!("SECRET{} {ED25519}", "x".repeat(10))).unwrap_err();
        assert!(!err.0.contains("SECRET"), "{err}");
    }
}
