//! Decoding of uploaded private keys into validated key material.
//!
//! Both the SSH side and the X.509 identity side accept the same PEM formats (OpenSSH,
//! PKCS#1, PKCS#8, SEC1), so there is one decoder. It produces [`PrivateKeyMaterial`]: RSA keys
//! checked by `rsa` 0.9 (n = p·q, d·e ≡ 1), P-256 scalars with any embedded public key checked,
//! and Ed25519 seeds with any embedded public key checked. The callers then re-encode from the
//! validated material only, so nothing inconsistent or unparsed from the upload survives.
//!
//! Errors are fixed sentences; library error texts are not forwarded because some of them
//! quote decoded bytes, and decoded bytes here are secret.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1};
use const_oid::db::rfc8410::ID_ED_25519;
use der::Decode as _;
use der::asn1::OctetStringRef;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use rsa09::BigUint;
use rsa09::traits::PublicKeyParts as _;
use ssh_key::private::KeypairData;
use zeroize::Zeroizing;

use crate::KeyError;
use crate::pem::{self, PemBlock};

/// The message every encrypted-key path returns, so callers and tests can rely on it.
pub(crate) const ENCRYPTED: &str =
    "encrypted private keys are not supported; remove the passphrase";

/// RSA moduli outside this range are refused: below 1024 bits OpenSSH refuses them too, and
/// above 16384 bits (OpenSSH's own maximum) they only serve to make validation slow.
const RSA_MIN_BITS: u64 = 1024;
const RSA_MAX_BITS: u64 = 16384;

/// A private key after decoding and consistency checks.
pub(crate) enum PrivateKeyMaterial {
    /// Two-prime RSA, validated and with CRT values precomputed.
    Rsa(Box<rsa09::RsaPrivateKey>),
    /// NIST P-256 secret scalar.
    P256(p256::SecretKey),
    /// Ed25519 seed (the 32-byte private key of RFC 8032).
    Ed25519(Zeroizing<[u8; 32]>),
}

/// A decoded private key plus the comment an OpenSSH key carried (empty otherwise).
pub(crate) struct DecodedKey {
    pub material: PrivateKeyMaterial,
    pub comment: String,
}

/// What the uploaded text is meant to be; it decides which neighbouring blocks are tolerated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// An SSH client key: exactly one private key block.
    Ssh,
    /// An X.509 identity key: certificates next to the key are tolerated (combined files).
    Identity,
}

/// A public key in a form that compares equal exactly when the keys are the same.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PublicMaterial {
    /// Big-endian modulus and exponent without leading zero bytes.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point.
    P256(Vec<u8>),
    Ed25519([u8; 32]),
}

impl PrivateKeyMaterial {
    /// The public half, for comparison with a certificate.
    pub(crate) fn public(&self) -> PublicMaterial {
        match self {
            Self::Rsa(key) => PublicMaterial::Rsa {
                n: key.n().to_bytes_be(),
                e: key.e().to_bytes_be(),
            },
            Self::P256(key) => {
                PublicMaterial::P256(key.public_key().to_encoded_point(false).as_bytes().to_vec())
            }
            Self::Ed25519(seed) => PublicMaterial::Ed25519(ed25519_public(seed)),
        }
    }
}

/// The Ed25519 public key of `seed` (RFC 8032 §5.1.5).
pub(crate) fn ed25519_public(seed: &[u8; 32]) -> [u8; 32] {
    ssh_key::private::Ed25519Keypair::from_seed(seed).public.0
}

/// Decodes one private key from uploaded text.
pub(crate) fn decode(text: &str, purpose: Purpose) -> Result<DecodedKey, KeyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(KeyError::new("no private key given"));
    }
    reject_foreign_formats(text)?;

    let blocks = pem::parse_blocks(text)?;
    if blocks.is_empty() {
        return Err(KeyError::new(format!(
            "not a PEM private key (expected a line such as -----BEGIN OPENSSH PRIVATE KEY----- \
             or -----BEGIN PRIVATE KEY-----){}",
            pem::escaped_newline_hint(text)
        )));
    }

    let mut keys = Vec::new();
    let mut saw_certificate = false;
    for block in &blocks {
        match block.label.as_str() {
            // `openssl ecparam -genkey` writes the curve as its own block before the key.
            "EC PARAMETERS" => {}
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => saw_certificate = true,
            _ => keys.push(block),
        }
    }
    if saw_certificate && purpose == Purpose::Ssh {
        return Err(KeyError::new(
            "expected an SSH private key but the text contains a certificate",
        ));
    }
    match keys.as_slice() {
        [] if saw_certificate => Err(KeyError::new(
            "expected a private key but found only a certificate",
        )),
        [] => Err(KeyError::new("no private key block found")),
        [block] => decode_block(block),
        _ => Err(KeyError::new(format!(
            "the text holds {} key blocks; upload exactly one private key",
            keys.len()
        ))),
    }
}

/// Recognisable non-PEM key formats get a message that says what to do instead.
fn reject_foreign_formats(text: &str) -> Result<(), KeyError> {
    if text.starts_with("PuTTY-User-Key-File-") {
        return Err(KeyError::new(
            "PuTTY .ppk keys are not supported; export the key in OpenSSH format with PuTTYgen",
        ));
    }
    if text.starts_with("---- BEGIN SSH2") {
        return Err(KeyError::new(
            "SSH2 (RFC 4716) key files are not supported; convert the key with ssh-keygen",
        ));
    }
    let first = text.split_whitespace().next().unwrap_or_default();
    if first.starts_with("ssh-") || first.starts_with("ecdsa-") || first.starts_with("sk-") {
        return Err(KeyError::new(
            "this is an SSH public key; a private key is required",
        ));
    }
    Ok(())
}

fn decode_block(block: &PemBlock) -> Result<DecodedKey, KeyError> {
    let plain = |material| {
        Ok(DecodedKey {
            material,
            comment: String::new(),
        })
    };
    match block.label.as_str() {
        "OPENSSH PRIVATE KEY" => decode_openssh(&block.der),
        "ENCRYPTED PRIVATE KEY" => Err(KeyError::new(ENCRYPTED)),
        _ if block.has_encryption_headers() => Err(KeyError::new(ENCRYPTED)),
        "RSA PRIVATE KEY" => plain(decode_pkcs1(&block.der)?),
        "PRIVATE KEY" => plain(decode_pkcs8(&block.der)?),
        "EC PRIVATE KEY" => plain(decode_sec1(&block.der)?),
        "DSA PRIVATE KEY" => Err(KeyError::new(
            "DSA keys are not supported; use Ed25519, RSA or ECDSA P-256",
        )),
        "PUBLIC KEY" | "RSA PUBLIC KEY" | "SSH2 PUBLIC KEY" => Err(KeyError::new(
            "this is a public key; a private key is required",
        )),
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Err(KeyError::new(
            "this is a certificate signing request; a private key is required",
        )),
        other => Err(KeyError::new(format!(
            "unsupported PEM block {}; expected a private key",
            pem::describe_label(other)
        ))),
    }
}

/// OpenSSH's own format (`openssh-key-v1`), as written by `ssh-keygen`.
fn decode_openssh(der: &[u8]) -> Result<DecodedKey, KeyError> {
    let key = ssh_key::PrivateKey::from_bytes(der)
        .map_err(|_| KeyError::new("malformed OpenSSH private key"))?;
    if key.is_encrypted() {
        return Err(KeyError::new(ENCRYPTED));
    }
    let material = match key.key_data() {
        KeypairData::Rsa(pair) => {
            let public = pair.public();
            let private = pair.private();
            let part = |m: &ssh_key::Mpint| {
                m.as_positive_bytes()
                    .map(BigUint::from_bytes_be)
                    .ok_or_else(|| KeyError::new("malformed OpenSSH RSA private key"))
            };
            rsa_from_parts(
                part(public.n())?,
                part(public.e())?,
                part(private.d())?,
                part(private.p())?,
                part(private.q())?,
            )?
        }
        KeypairData::Ed25519(pair) => {
            let seed = Zeroizing::new(pair.private.to_bytes());
            if ed25519_public(&seed) != pair.public.0 {
                return Err(mismatch());
            }
            PrivateKeyMaterial::Ed25519(seed)
        }
        KeypairData::Ecdsa(ssh_key::private::EcdsaKeypair::NistP256 { public, private }) => {
            let secret = p256::SecretKey::from_slice(private.as_slice())
                .map_err(|_| KeyError::new("malformed OpenSSH ECDSA private key"))?;
            check_p256_public(&secret, public.as_bytes())?;
            PrivateKeyMaterial::P256(secret)
        }
        other => {
            return Err(KeyError::new(format!(
                "unsupported SSH private key type {}; use Ed25519, RSA or ECDSA P-256",
                crate::ssh::describe_algorithm(other.algorithm().ok().as_ref())
            )));
        }
    };
    Ok(DecodedKey {
        material,
        comment: key.comment().as_str_lossy().to_owned(),
    })
}

/// PKCS#1 `RSAPrivateKey` ("BEGIN RSA PRIVATE KEY").
fn decode_pkcs1(der: &[u8]) -> Result<PrivateKeyMaterial, KeyError> {
    let key = rsa09::pkcs1::RsaPrivateKey::from_der(der)
        .map_err(|_| KeyError::new("malformed PKCS#1 RSA private key"))?;
    if key.other_prime_infos.is_some() {
        return Err(KeyError::new("multi-prime RSA keys are not supported"));
    }
    let int = |u: der::asn1::UintRef<'_>| BigUint::from_bytes_be(u.as_bytes());
    rsa_from_parts(
        int(key.modulus),
        int(key.public_exponent),
        int(key.private_exponent),
        int(key.prime1),
        int(key.prime2),
    )
}

/// PKCS#8 `PrivateKeyInfo`/`OneAsymmetricKey` ("BEGIN PRIVATE KEY").
fn decode_pkcs8(der: &[u8]) -> Result<PrivateKeyMaterial, KeyError> {
    let info = rsa09::pkcs8::PrivateKeyInfo::from_der(der)
        .map_err(|_| KeyError::new("malformed PKCS#8 private key"))?;
    let oid = info.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        decode_pkcs1(info.private_key)
    } else if oid == ID_EC_PUBLIC_KEY {
        let curve = info
            .algorithm
            .parameters_oid()
            .map_err(|_| KeyError::new("PKCS#8 EC private key does not name its curve"))?;
        require_p256(curve)?;
        let secret = p256::SecretKey::try_from(info)
            .map_err(|_| KeyError::new("malformed or inconsistent PKCS#8 EC private key"))?;
        Ok(PrivateKeyMaterial::P256(secret))
    } else if oid == ID_ED_25519 {
        if info.algorithm.parameters.is_some() {
            return Err(KeyError::new("malformed PKCS#8 Ed25519 private key"));
        }
        let seed: [u8; 32] = OctetStringRef::from_der(info.private_key)
            .ok()
            .and_then(|octets| octets.as_bytes().try_into().ok())
            .ok_or_else(|| KeyError::new("malformed PKCS#8 Ed25519 private key"))?;
        let seed = Zeroizing::new(seed);
        if let Some(public) = info.public_key
            && public != ed25519_public(&seed).as_slice()
        {
            return Err(mismatch());
        }
        Ok(PrivateKeyMaterial::Ed25519(seed))
    } else {
        Err(KeyError::new(format!(
            "unsupported private key algorithm {}; use RSA, ECDSA P-256 or Ed25519",
            describe_oid(oid)
        )))
    }
}

/// SEC1 `ECPrivateKey` ("BEGIN EC PRIVATE KEY").
fn decode_sec1(der: &[u8]) -> Result<PrivateKeyMaterial, KeyError> {
    let key = sec1::EcPrivateKey::from_der(der)
        .map_err(|_| KeyError::new("malformed SEC1 EC private key"))?;
    match key.parameters.and_then(|p| p.named_curve()) {
        Some(curve) => require_p256(curve)?,
        // Without parameters the curve can only be guessed from the scalar size.
        None if key.private_key.len() == 32 => {}
        None => return Err(KeyError::new("SEC1 EC private key does not name its curve")),
    }
    let secret = p256::SecretKey::try_from(key)
        .map_err(|_| KeyError::new("malformed or inconsistent SEC1 EC private key"))?;
    Ok(PrivateKeyMaterial::P256(secret))
}

fn require_p256(curve: ObjectIdentifier) -> Result<(), KeyError> {
    if curve == SECP_256_R_1 {
        Ok(())
    } else {
        Err(KeyError::new(format!(
            "unsupported elliptic curve {}; only P-256 (prime256v1) keys are accepted",
            describe_oid(curve)
        )))
    }
}

/// A name for an OID in messages: the registered name when known, else the dotted form.
pub(crate) fn describe_oid(oid: ObjectIdentifier) -> String {
    match const_oid::db::DB.by_oid(&oid) {
        Some(name) => format!("{name} ({oid})"),
        None => oid.to_string(),
    }
}

fn check_p256_public(secret: &p256::SecretKey, public: &[u8]) -> Result<(), KeyError> {
    let expected = p256::PublicKey::from_sec1_bytes(public).map_err(|_| mismatch())?;
    if secret.public_key() == expected {
        Ok(())
    } else {
        Err(mismatch())
    }
}

fn mismatch() -> KeyError {
    KeyError::new("the private key does not match the public key stored with it")
}

/// Builds and validates a two-prime RSA key. The CRT values of the upload are ignored and
/// recomputed, so a corrupted `dP`/`qInv` cannot reach a signer.
fn rsa_from_parts(
    n: BigUint,
    e: BigUint,
    d: BigUint,
    p: BigUint,
    q: BigUint,
) -> Result<PrivateKeyMaterial, KeyError> {
    let bits = n.bits() as u64;
    if bits < RSA_MIN_BITS {
        return Err(KeyError::new(format!(
            "RSA key of {bits} bits is too short; at least {RSA_MIN_BITS} bits are required"
        )));
    }
    if bits > RSA_MAX_BITS {
        return Err(KeyError::new(format!(
            "RSA keys longer than {RSA_MAX_BITS} bits are not supported"
        )));
    }
    let key = rsa09::RsaPrivateKey::from_components(n, e, d, vec![p, q])
        .map_err(|_| KeyError::new("inconsistent RSA private key (its numbers do not agree)"))?;
    if key.crt_coefficient().is_none() {
        return Err(KeyError::new(
            "inconsistent RSA private key (its numbers do not agree)",
        ));
    }
    Ok(PrivateKeyMaterial::Rsa(Box::new(key)))
}
