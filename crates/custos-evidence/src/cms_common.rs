//! CMS `SignedData` (RFC 5652) assembly and verification shared by chain-head signatures
//! ([`crate::signature`]) and time-stamp tokens ([`crate::timestamp`]).
//!
//! Both always sign *signed attributes* (content-type, message-digest, signing-time, plus the
//! ESS attribute of a token), so one signer-info path serves both, and the verifier insists on
//! them: without signed attributes nothing binds the signature to the content type, which is
//! what stops a chain-head signature from passing as a time-stamp token or the reverse.
//!
//! Signatures are RSA PKCS#1 v1.5 or ECDSA P-256 with SHA-2. Everything else is refused with
//! a sentence naming the algorithm, because auditors must be told why a file does not verify.

use std::time::Duration;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER;
use const_oid::db::rfc5911::{
    ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA, ID_SIGNING_TIME,
};
use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512, ID_EC_PUBLIC_KEY, ID_SHA_256,
    ID_SHA_384, ID_SHA_512, RSA_ENCRYPTION, SECP_256_R_1, SHA_256_WITH_RSA_ENCRYPTION,
    SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
};
use der::asn1::{GeneralizedTime, OctetString, SetOfVec, UtcTime};
use der::{Any, DateTime, Decode, Encode as _, Tag, Tagged as _};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::attr::{Attribute, Attributes};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::time::Time;

use crate::EvidenceError;
use crate::signature::SigningIdentity;

/// RSA moduli above this size are refused before any arithmetic; OpenSSH and most CAs stop
/// at 16384 bits, and `rsa`'s own default limit (4096) would refuse real 8192-bit CAs.
const RSA_MAX_BITS: usize = 16384;

/// The SHA-2 functions accepted for CMS digests and X.509/CMS signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The hash a digest AlgorithmIdentifier names; parameters must be absent or NULL
    /// (RFC 5754 §2 allows both).
    pub(crate) fn from_identifier(algorithm: &AlgorithmIdentifierOwned) -> Option<Hash> {
        if !parameters_absent_or_null(algorithm) {
            return None;
        }
        match algorithm.oid {
            ID_SHA_256 => Some(Hash::Sha256),
            ID_SHA_384 => Some(Hash::Sha384),
            ID_SHA_512 => Some(Hash::Sha512),
            _ => None,
        }
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => Sha384::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        }
    }

    fn pkcs1v15(self) -> rsa09::Pkcs1v15Sign {
        match self {
            Hash::Sha256 => rsa09::Pkcs1v15Sign::new::<Sha256>(),
            Hash::Sha384 => rsa09::Pkcs1v15Sign::new::<Sha384>(),
            Hash::Sha512 => rsa09::Pkcs1v15Sign::new::<Sha512>(),
        }
    }
}

/// True when an AlgorithmIdentifier has no parameters or an explicit NULL.
pub(crate) fn parameters_absent_or_null(algorithm: &AlgorithmIdentifierOwned) -> bool {
    algorithm
        .parameters
        .as_ref()
        .is_none_or(|p| p.tag() == Tag::Null && p.value().is_empty())
}

/// The SHA-256 AlgorithmIdentifier as OpenSSL writes it (parameters absent, RFC 5754 §2).
pub(crate) fn sha256_identifier() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA_256,
        parameters: None,
    }
}

/// What [`sign`] needs besides the identity.
pub(crate) struct SignRequest<'a> {
    /// eContentType, repeated in the content-type signed attribute.
    pub content_type: ObjectIdentifier,
    /// The encapsulated content, or `None` for a detached signature.
    pub encapsulated: Option<&'a [u8]>,
    /// SHA-256 of the content (of `encapsulated` when it is given).
    pub content_digest: [u8; 32],
    /// Signed attributes beyond content-type, message-digest and signing-time.
    pub extra_attributes: Vec<Attribute>,
    pub signing_time: OffsetDateTime,
    /// Whether the signer certificate goes into `certificates` (RFC 3161 lets a client ask
    /// for a token without it).
    pub embed_certificate: bool,
}

/// DER of a ContentInfo(SignedData) with one SignerInfo by `identity`, digest SHA-256.
pub(crate) fn sign(
    identity: &SigningIdentity,
    request: SignRequest<'_>,
) -> Result<Vec<u8>, EvidenceError> {
    let encoding = |_| EvidenceError::new("could not encode the CMS signed-data structure");
    let certificate = identity.certificate();
    let mut attributes = vec![
        attribute(ID_CONTENT_TYPE, &request.content_type).map_err(encoding)?,
        attribute(ID_SIGNING_TIME, &der_time(request.signing_time)?).map_err(encoding)?,
        attribute(
            ID_MESSAGE_DIGEST,
            &OctetString::new(request.content_digest.to_vec()).map_err(encoding)?,
        )
        .map_err(encoding)?,
    ];
    attributes.extend(request.extra_attributes);
    // SET OF must be in DER order, since the signature covers the DER encoding of the set
    // (RFC 5652 §5.4); `try_from` sorts.
    let signed_attributes = SignedAttributes::try_from(attributes).map_err(encoding)?;
    let to_be_signed = signed_attributes.to_der().map_err(encoding)?;
    let (signature_algorithm, signature) = identity.sign_sha256(&to_be_signed)?;

    let signer_info = SignerInfo {
        // v1 because the signer is named by issuer and serial number (RFC 5652 §5.3).
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: certificate.tbs_certificate.issuer.clone(),
            serial_number: certificate.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256_identifier(),
        signed_attrs: Some(signed_attributes),
        signature_algorithm,
        signature: OctetString::new(signature).map_err(encoding)?,
        unsigned_attrs: None,
    };
    let econtent = match request.encapsulated {
        Some(content) => Some(Any::new(Tag::OctetString, content).map_err(encoding)?),
        None => None,
    };
    let certificates = if request.embed_certificate {
        Some(
            CertificateSet::try_from(vec![CertificateChoices::Certificate(certificate.clone())])
                .map_err(encoding)?,
        )
    } else {
        None
    };
    let signed_data = SignedData {
        // RFC 5652 §5.1: version 3 when eContentType is not id-data, else 1 (only X.509
        // certificates and v1 signer infos here).
        version: if request.content_type == ID_DATA {
            CmsVersion::V1
        } else {
            CmsVersion::V3
        },
        digest_algorithms: SetOfVec::try_from(vec![sha256_identifier()]).map_err(encoding)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: request.content_type,
            econtent,
        },
        certificates,
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info]).map_err(encoding)?,
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)
}

/// A single-valued attribute.
fn attribute<T: der::Encode>(oid: ObjectIdentifier, value: &T) -> der::Result<Attribute> {
    let value = Any::from_der(&value.to_der()?)?;
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

/// What a verified SignedData tells.
pub(crate) struct Verified {
    /// DER of the certificate whose key made the signature.
    pub certificate_der: Vec<u8>,
    pub certificate: Certificate,
    pub signing_time: Option<OffsetDateTime>,
    /// e.g. "rsa-sha256", "ecdsa-p256-sha256".
    pub algorithm: String,
    pub content_type: ObjectIdentifier,
    /// The encapsulated content, when the structure carries it.
    pub encapsulated: Option<Vec<u8>>,
    pub signed_attributes: SignedAttributes,
}

/// Decodes a DER ContentInfo(SignedData).
pub(crate) fn decode_signed_data(der: &[u8]) -> Result<SignedData, EvidenceError> {
    let content_info = ContentInfo::from_der(der)
        .map_err(|_| EvidenceError::new("not a DER-encoded CMS ContentInfo"))?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(EvidenceError::new(format!(
            "the CMS structure is of content type {}, not signed-data",
            content_info.content_type
        )));
    }
    content_info
        .content
        .decode_as::<SignedData>()
        .map_err(|e| EvidenceError::new(format!("the CMS signed-data structure is malformed: {e}")))
}

/// The encapsulated content of `signed_data`, if any; it must be an OCTET STRING.
pub(crate) fn encapsulated_content(
    signed_data: &SignedData,
) -> Result<Option<Vec<u8>>, EvidenceError> {
    match &signed_data.encap_content_info.econtent {
        None => Ok(None),
        Some(any) if any.tag() == Tag::OctetString => Ok(Some(any.value().to_vec())),
        Some(_) => Err(EvidenceError::new(
            "the encapsulated content is not an OCTET STRING",
        )),
    }
}

/// Verifies the one SignerInfo of a ContentInfo(SignedData): the message-digest attribute
/// against the content (`detached` when given, else the encapsulated content), the
/// content-type attribute against eContentType, and the signature over the DER SET OF signed
/// attributes with the key of the embedded certificate the signer identifier names.
pub(crate) fn verify(der: &[u8], detached: Option<&[u8]>) -> Result<Verified, EvidenceError> {
    let signed_data = decode_signed_data(der)?;
    let encapsulated = encapsulated_content(&signed_data)?;
    let content: &[u8] = match (detached, encapsulated.as_deref()) {
        (Some(content), None) => content,
        (None, Some(content)) => content,
        (Some(_), Some(_)) => {
            return Err(EvidenceError::new(
                "the signature encapsulates its content; a detached signature was expected",
            ));
        }
        (None, None) => {
            return Err(EvidenceError::new(
                "the signed-data structure carries no content",
            ));
        }
    };
    let signers = signed_data.signer_infos.0.as_slice();
    let [signer] = signers else {
        return Err(EvidenceError::new(format!(
            "the signed-data structure has {} signers; exactly one is supported",
            signers.len()
        )));
    };
    let digest_hash = Hash::from_identifier(&signer.digest_alg).ok_or_else(|| {
        EvidenceError::new(format!(
            "the signer's digest algorithm {} is not supported (SHA-256, SHA-384 or SHA-512)",
            signer.digest_alg.oid
        ))
    })?;
    let certificate = signer_certificate(&signed_data, &signer.sid)?;
    let signed_attributes = signer.signed_attrs.as_ref().ok_or_else(|| {
        EvidenceError::new(
            "the signature has no signed attributes; only signatures over signed attributes \
             (content-type and message-digest) are accepted",
        )
    })?;

    let content_type: ObjectIdentifier = single_attribute(signed_attributes, ID_CONTENT_TYPE)?
        .ok_or_else(|| EvidenceError::new("the signed attributes lack content-type"))?
        .decode_as()
        .map_err(|_| EvidenceError::new("the content-type attribute is malformed"))?;
    if content_type != signed_data.encap_content_info.econtent_type {
        return Err(EvidenceError::new(
            "the content-type attribute does not match the encapsulated content type",
        ));
    }
    let message_digest: OctetString = single_attribute(signed_attributes, ID_MESSAGE_DIGEST)?
        .ok_or_else(|| EvidenceError::new("the signed attributes lack message-digest"))?
        .decode_as()
        .map_err(|_| EvidenceError::new("the message-digest attribute is malformed"))?;
    if message_digest.as_bytes() != digest_hash.digest(content).as_slice() {
        return Err(EvidenceError::new(
            "the content does not match the signature (message digest differs)",
        ));
    }
    let signing_time = match single_attribute(signed_attributes, ID_SIGNING_TIME)? {
        None => None,
        Some(any) => {
            let time: Time = decode_any(any)
                .map_err(|_| EvidenceError::new("the signing-time attribute is malformed"))?;
            Some(offset_date_time(time.to_unix_duration())?)
        }
    };

    // The signature covers the DER of the attributes as a SET OF (tag 0x31), not the
    // [0] IMPLICIT form they travel in (RFC 5652 §5.4).
    let to_be_verified = signed_attributes
        .to_der()
        .map_err(|_| EvidenceError::new("the signed attributes cannot be re-encoded"))?;
    let algorithm = verify_signature(
        &certificate.tbs_certificate.subject_public_key_info,
        &signer.signature_algorithm,
        Some(digest_hash),
        &to_be_verified,
        signer.signature.as_bytes(),
    )
    .map_err(|e| EvidenceError::new(format!("the signature does not verify: {e}")))?;
    let certificate_der = certificate
        .to_der()
        .map_err(|_| EvidenceError::new("the signer certificate cannot be re-encoded"))?;
    Ok(Verified {
        certificate_der,
        certificate: certificate.clone(),
        signing_time,
        algorithm,
        content_type,
        encapsulated,
        signed_attributes: signed_attributes.clone(),
    })
}

/// The embedded certificate that `sid` names (by issuer and serial, or by subject key id).
fn signer_certificate<'a>(
    signed_data: &'a SignedData,
    sid: &SignerIdentifier,
) -> Result<&'a Certificate, EvidenceError> {
    let certificates = signed_data
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            CertificateChoices::Certificate(certificate) => Some(certificate),
            CertificateChoices::Other(_) => None,
        });
    for certificate in certificates {
        let tbs = &certificate.tbs_certificate;
        let matches = match sid {
            SignerIdentifier::IssuerAndSerialNumber(id) => {
                tbs.issuer == id.issuer && tbs.serial_number == id.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(id) => {
                tbs.extensions.iter().flatten().any(|extension| {
                    extension.extn_id == ID_CE_SUBJECT_KEY_IDENTIFIER
                        && SubjectKeyIdentifier::from_der(extension.extn_value.as_bytes())
                            .is_ok_and(|ski| ski == *id)
                })
            }
        };
        if matches {
            return Ok(certificate);
        }
    }
    Err(EvidenceError::new(
        "the signer certificate is not embedded in the signature",
    ))
}

/// The value of an attribute that must occur at most once with exactly one value
/// (content-type, message-digest, signing-time, ESS signing-certificate: RFC 5652 §11,
/// RFC 5035 §5.4).
pub(crate) fn single_attribute(
    attributes: &Attributes,
    oid: ObjectIdentifier,
) -> Result<Option<&Any>, EvidenceError> {
    let mut found = attributes.iter().filter(|a| a.oid == oid);
    let Some(first) = found.next() else {
        return Ok(None);
    };
    let values = first.values.as_slice();
    match (found.next(), values) {
        (None, [value]) => Ok(Some(value)),
        _ => Err(EvidenceError::new(format!(
            "the signed attribute {oid} must occur once with one value"
        ))),
    }
}

/// Decodes an `Any` as `T` through its DER, for CHOICE types that `decode_as` cannot take.
pub(crate) fn decode_any<T: for<'a> Decode<'a>>(any: &Any) -> der::Result<T> {
    T::from_der(&any.to_der()?)
}

/// Verifies `signature` over `message` with the subject public key `spki`.
///
/// `algorithm` is the signature AlgorithmIdentifier: sha{256,384,512}WithRSAEncryption,
/// ecdsa-with-SHA{256,384,512}, or, as CMS signers may write, bare rsaEncryption or
/// id-ecPublicKey, in which case `digest_hash` (the SignerInfo's digest) is the hash.
/// Returns a short algorithm label such as "rsa-sha256" or "ecdsa-p256-sha256".
pub(crate) fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    algorithm: &AlgorithmIdentifierOwned,
    digest_hash: Option<Hash>,
    message: &[u8],
    signature: &[u8],
) -> Result<String, EvidenceError> {
    enum Kind {
        Rsa,
        Ecdsa,
    }
    let unsupported = || {
        EvidenceError::new(format!(
            "signature algorithm {} is not supported (RSA PKCS#1 v1.5 or ECDSA P-256 with SHA-2)",
            algorithm.oid
        ))
    };
    let (kind, hash) = match algorithm.oid {
        SHA_256_WITH_RSA_ENCRYPTION => (Kind::Rsa, Hash::Sha256),
        SHA_384_WITH_RSA_ENCRYPTION => (Kind::Rsa, Hash::Sha384),
        SHA_512_WITH_RSA_ENCRYPTION => (Kind::Rsa, Hash::Sha512),
        ECDSA_WITH_SHA_256 => (Kind::Ecdsa, Hash::Sha256),
        ECDSA_WITH_SHA_384 => (Kind::Ecdsa, Hash::Sha384),
        ECDSA_WITH_SHA_512 => (Kind::Ecdsa, Hash::Sha512),
        RSA_ENCRYPTION => (Kind::Rsa, digest_hash.ok_or_else(unsupported)?),
        ID_EC_PUBLIC_KEY => (Kind::Ecdsa, digest_hash.ok_or_else(unsupported)?),
        _ => return Err(unsupported()),
    };
    let hashed = hash.digest(message);
    let key_bits = spki.subject_public_key.as_bytes().ok_or_else(|| {
        EvidenceError::new("the certificate's public key is not a whole number of octets")
    })?;
    match kind {
        Kind::Rsa => {
            if spki.algorithm.oid != RSA_ENCRYPTION {
                return Err(EvidenceError::new(
                    "an RSA signature was made with a certificate whose key is not RSA",
                ));
            }
            let public = rsa09::pkcs1::RsaPublicKey::from_der(key_bits)
                .map_err(|_| EvidenceError::new("the certificate's RSA public key is malformed"))?;
            let key = rsa09::RsaPublicKey::new_with_max_size(
                rsa09::BigUint::from_bytes_be(public.modulus.as_bytes()),
                rsa09::BigUint::from_bytes_be(public.public_exponent.as_bytes()),
                RSA_MAX_BITS,
            )
            .map_err(|_| EvidenceError::new("the certificate's RSA public key is not usable"))?;
            key.verify(hash.pkcs1v15(), &hashed, signature)
                .map_err(|_| EvidenceError::new("the RSA signature is not valid"))?;
            Ok(format!("rsa-{}", hash.name()))
        }
        Kind::Ecdsa => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            if spki.algorithm.oid != ID_EC_PUBLIC_KEY || curve != Some(SECP_256_R_1) {
                return Err(EvidenceError::new(
                    "an ECDSA signature was made with a certificate whose key is not P-256",
                ));
            }
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bits).map_err(|_| {
                EvidenceError::new("the certificate's P-256 public key is malformed")
            })?;
            let signature = p256::ecdsa::Signature::from_der(signature)
                .map_err(|_| EvidenceError::new("the ECDSA signature is not DER-encoded"))?;
            key.verify_prehash(&hashed, &signature)
                .map_err(|_| EvidenceError::new("the ECDSA signature is not valid"))?;
            Ok(format!("ecdsa-p256-{}", hash.name()))
        }
    }
}

/// A CMS/X.509 Time for `at`: UTCTime through 2049, GeneralizedTime after (RFC 5652 §11.3).
/// Sub-second precision is dropped; both forms carry whole seconds.
pub(crate) fn der_time(at: OffsetDateTime) -> Result<Time, EvidenceError> {
    let out_of_range = || EvidenceError::new("the signing time is out of range (1970 to 9999)");
    let seconds = u64::try_from(at.unix_timestamp()).map_err(|_| out_of_range())?;
    let date_time =
        DateTime::from_unix_duration(Duration::from_secs(seconds)).map_err(|_| out_of_range())?;
    if date_time.year() < 2050 {
        Ok(Time::UtcTime(
            UtcTime::from_date_time(date_time).map_err(|_| out_of_range())?,
        ))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(
            date_time,
        )))
    }
}

/// Converts a duration since the Unix epoch into an `OffsetDateTime` (UTC).
pub(crate) fn offset_date_time(since_epoch: Duration) -> Result<OffsetDateTime, EvidenceError> {
    i64::try_from(since_epoch.as_secs())
        .ok()
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .ok_or_else(|| EvidenceError::new("a time in the structure is out of range"))
}

/// Subject, issuer and other fields of a certificate given as DER, through `custos-keys` so
/// that names read the same everywhere (RFC 4514, OpenSSL's attribute names).
pub(crate) fn describe_certificate(der: &[u8]) -> Result<custos_keys::Certificate, EvidenceError> {
    use base64::Engine as _;
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    custos_keys::parse_certificate(&pem).map_err(|e| EvidenceError::new(e.0))
}
