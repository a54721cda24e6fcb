//! RFC 3161 time-stamping: requests, the built-in TSA, a client for remote TSAs, and token
//! verification.
//!
//! A token proves that a trail's chain head existed at a time vouched for by a TSA. Tokens of
//! the built-in TSA ([`LocalTsa`]) verify with `openssl ts -verify`, and tokens of any
//! conforming TSA (OpenSSL's, commercial ones) verify with [`verify_token`].
//!
//! The ASN.1 types of RFC 3161 are declared here rather than taken from `x509-tsp`, for two
//! reasons found in practice: `der` 0.7 refuses GeneralizedTime with fractional seconds, which
//! many TSAs send (RFC 3161 §2.4.2 allows them), and `const-oid` 0.9 refuses arcs above 32
//! bits, which UUID-derived policy OIDs (2.25.<128-bit>, such as [`DEFAULT_POLICY_OID`]) have.
//! `x509-tsp` supplies the MessageImprint and Accuracy types, which have neither problem.

use std::time::Duration;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5911::{ID_AA_SIGNING_CERTIFICATE, ID_AA_SIGNING_CERTIFICATE_V_2};
use const_oid::db::rfc5912::ID_SHA_256;
use der::asn1::{BitString, Int, OctetString, SetOfVec, Uint};
use der::{
    Any, Decode, DecodeValue, Encode, EncodeValue, FixedTag, Header, Length, Reader, Sequence, Tag,
    Writer,
};
use rand_core06::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};
use spki::AlgorithmIdentifier;
use time::{Date, Month, OffsetDateTime, UtcOffset};
use x509_cert::attr::Attribute;
use x509_cert::ext::Extensions;
use x509_cert::ext::pkix::name::{GeneralName, GeneralNames};
use x509_cert::serial_number::SerialNumber;
use x509_tsp::{Accuracy, MessageImprint};

use crate::EvidenceError;
use crate::cms_common::{self, Hash, SignRequest};
use crate::signature::SigningIdentity;

/// The built-in TSA's policy when the audit policy sets none.
///
/// RFC 3161 requires every token to name the TSA policy under which it was issued. ITU-T X.667
/// gives every UUID an OID under 2.25 without registration, so the built-in TSA's default
/// policy is the decimal form of one random (version 4) UUID, generated once for Custos and
/// fixed forever here so that every installation's tokens name the same policy:
/// 5c050e62-7e46-4f7d-b678-0effc05ff27e. It must never change, or tokens issued before and
/// after would name different policies for the same practice.
pub const DEFAULT_POLICY_OID: &str = "2.25.122315228853679423397389855677195743870";

/// id-ct-TSTInfo (RFC 3161 §2.4.2); not in `const-oid` 0.9's database.
pub(crate) const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// A TSA nonce or request larger than this is refused: RFC 3161 nonces are 64-bit in practice,
/// and the cap keeps hostile inputs from making us allocate and echo large integers.
const MAX_NONCE_OCTETS: usize = 64;
/// A request to the built-in TSA is a few hundred octets; anything far larger is not one.
const MAX_REQUEST_OCTETS: usize = 64 * 1024;
/// A TSA response holds one token with a few certificates; this bounds what we read.
const MAX_RESPONSE_OCTETS: usize = 1024 * 1024;

// PKIFailureInfo bits (RFC 3161 §2.4.2).
const BAD_ALG: usize = 0;
const BAD_REQUEST: usize = 2;
const BAD_DATA_FORMAT: usize = 5;
const UNACCEPTED_POLICY: usize = 15;
const UNACCEPTED_EXTENSION: usize = 16;
const SYSTEM_FAILURE: usize = 25;

/// The named bits of PKIFailureInfo, for messages about a TSA's refusal.
const FAILURE_NAMES: &[(usize, &str)] = &[
    (BAD_ALG, "badAlg"),
    (BAD_REQUEST, "badRequest"),
    (BAD_DATA_FORMAT, "badDataFormat"),
    (14, "timeNotAvailable"),
    (UNACCEPTED_POLICY, "unacceptedPolicy"),
    (UNACCEPTED_EXTENSION, "unacceptedExtension"),
    (17, "addInfoNotAvailable"),
    (SYSTEM_FAILURE, "systemFailure"),
];

// ---------------------------------------------------------------------------------------------
// ASN.1
// ---------------------------------------------------------------------------------------------

/// An OBJECT IDENTIFIER kept as its content octets, with arcs of up to 128 bits (see the
/// module documentation for why `const-oid` cannot be used for policies).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PolicyOid(Vec<u8>);

impl PolicyOid {
    /// Parses dotted decimal ("1.2.3", "2.25.<uuid>").
    fn parse(dotted: &str) -> Result<PolicyOid, EvidenceError> {
        let malformed = || {
            EvidenceError::new(
                "the time-stamp policy is not an OID in dotted decimal form such as 1.2.3.4",
            )
        };
        let mut arcs = dotted.split('.').map(parse_arc);
        let (Some(Some(first)), Some(Some(second))) = (arcs.next(), arcs.next()) else {
            return Err(malformed());
        };
        // X.690 §8.19.4: the first two arcs share one subidentifier; only arc 2 may have
        // more than 40 children.
        if first > 2 || (first < 2 && second > 39) {
            return Err(malformed());
        }
        let mut bytes = Vec::new();
        let combined = (first * 40).checked_add(second).ok_or_else(malformed)?;
        push_base128(&mut bytes, combined);
        for arc in arcs {
            push_base128(&mut bytes, arc.ok_or_else(malformed)?);
        }
        Ok(PolicyOid(bytes))
    }

    /// Dotted decimal, or `None` when the octets are not a well-formed OID.
    fn dotted(&self) -> Option<String> {
        let mut arcs: Vec<u128> = Vec::new();
        let mut value: u128 = 0;
        let mut at_start = true;
        for &byte in &self.0 {
            // X.690 §8.19.2: subidentifiers are minimal (no leading 0x80 octet).
            if at_start && byte == 0x80 {
                return None;
            }
            value = value.checked_mul(128)? | u128::from(byte & 0x7f);
            if byte & 0x80 == 0 {
                arcs.push(value);
                value = 0;
                at_start = true;
            } else {
                at_start = false;
            }
        }
        if !at_start {
            return None;
        }
        let (first, rest) = arcs.split_first()?;
        let (a, b) = match *first {
            x if x < 40 => (0, x),
            x if x < 80 => (1, x - 40),
            x => (2, x - 80),
        };
        let mut out = format!("{a}.{b}");
        for arc in rest {
            out.push('.');
            out.push_str(&arc.to_string());
        }
        Some(out)
    }
}

fn parse_arc(text: &str) -> Option<u128> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

fn push_base128(out: &mut Vec<u8>, mut value: u128) {
    let mut groups = vec![(value & 0x7f) as u8];
    value >>= 7;
    while value > 0 {
        groups.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.extend(groups.iter().rev());
}

impl FixedTag for PolicyOid {
    const TAG: Tag = Tag::ObjectIdentifier;
}

impl<'a> DecodeValue<'a> for PolicyOid {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let oid = PolicyOid(reader.read_vec(header.length)?);
        match oid.dotted() {
            Some(_) => Ok(oid),
            None => Err(Tag::ObjectIdentifier.value_error()),
        }
    }
}

impl EncodeValue for PolicyOid {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.0.len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.0)
    }
}

/// A GeneralizedTime with optional fractional seconds (RFC 3161 §2.4.2 genTime).
#[derive(Clone, Debug)]
struct GenTime {
    text: Vec<u8>,
    time: OffsetDateTime,
}

impl GenTime {
    /// `at` in UTC with millisecond precision, in DER form (no trailing zeros in the
    /// fraction, no fraction when it is zero).
    fn new(at: OffsetDateTime) -> Result<GenTime, EvidenceError> {
        let at = at.to_offset(UtcOffset::UTC);
        if !(0..=9999).contains(&at.year()) {
            return Err(EvidenceError::new(
                "the time-stamp time is out of range (years 0 to 9999)",
            ));
        }
        let millis = at.millisecond();
        let mut text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
        if millis != 0 {
            text.push('.');
            text.push_str(format!("{millis:03}").trim_end_matches('0'));
        }
        text.push('Z');
        // Keep the time as the text states it, so a token's reported time equals `time`.
        let time = at
            .replace_nanosecond(u32::from(millis) * 1_000_000)
            .map_err(|_| EvidenceError::new("the time-stamp time is out of range"))?;
        Ok(GenTime {
            text: text.into_bytes(),
            time,
        })
    }

    /// Parses "YYYYMMDDHHMMSS[.fraction]Z".
    fn parse(text: &[u8]) -> Option<OffsetDateTime> {
        let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number = |range: std::ops::Range<usize>| whole.get(range)?.parse::<u16>().ok();
        let date = Date::from_calendar_date(
            i32::from(number(0..4)?),
            Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?,
            u8::try_from(number(6..8)?).ok()?,
        )
        .ok()?;
        let nanos = match fraction {
            None => 0,
            Some(digits) => {
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                // Nanoseconds: the first nine digits, padded; finer digits are dropped.
                let mut padded: String = digits.chars().take(9).collect();
                while padded.len() < 9 {
                    padded.push('0');
                }
                padded.parse::<u32>().ok()?
            }
        };
        let time = time::Time::from_hms_nano(
            u8::try_from(number(8..10)?).ok()?,
            u8::try_from(number(10..12)?).ok()?,
            u8::try_from(number(12..14)?).ok()?,
            nanos,
        )
        .ok()?;
        Some(date.with_time(time).assume_utc())
    }
}

impl FixedTag for GenTime {
    const TAG: Tag = Tag::GeneralizedTime;
}

impl<'a> DecodeValue<'a> for GenTime {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let text = reader.read_vec(header.length)?;
        let time = GenTime::parse(&text).ok_or_else(|| Tag::GeneralizedTime.value_error())?;
        Ok(GenTime { text, time })
    }
}

impl EncodeValue for GenTime {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.text.len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.text)
    }
}

/// RFC 3161 §2.4.1 TimeStampReq.
#[derive(Clone, Debug, Sequence)]
struct TimeStampReq {
    version: u8,
    message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    req_policy: Option<PolicyOid>,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(default = "Default::default")]
    cert_req: bool,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<Extensions>,
}

/// RFC 3161 §2.4.2 TSTInfo.
#[derive(Clone, Debug, Sequence)]
struct TstInfo {
    version: u8,
    policy: PolicyOid,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: GenTime,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<Extensions>,
}

/// RFC 3161 §2.4.2 TimeStampResp; the token is kept as `Any` so it is passed on unchanged.
#[derive(Clone, Debug, Sequence)]
struct TimeStampResp {
    status: PkiStatusInfo,
    #[asn1(optional = "true")]
    time_stamp_token: Option<Any>,
}

/// RFC 3161 §2.4.2 / RFC 4210 PKIStatusInfo.
#[derive(Clone, Debug, Sequence)]
struct PkiStatusInfo {
    status: u32,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// RFC 5035 SigningCertificateV2.
#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// RFC 5035 ESSCertIDv2; the hash algorithm defaults to SHA-256.
#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    /// Absent means SHA-256 (the DEFAULT of RFC 5035, which DER omits).
    #[asn1(optional = "true")]
    hash_algorithm: Option<spki::AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

/// RFC 2634 SigningCertificate (its ESSCertID hashes with SHA-1).
#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV1 {
    certs: Vec<EssCertIdV1>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
struct EssCertIdV1 {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct IssuerSerial {
    issuer: GeneralNames,
    serial_number: SerialNumber,
}

/// The SHA-256 imprint of `digest`, with the explicit NULL parameters OpenSSL writes.
fn sha256_imprint(digest: &[u8; 32]) -> Result<MessageImprint, EvidenceError> {
    let encoding = |_| EvidenceError::new("could not encode the message imprint");
    Ok(MessageImprint {
        hash_algorithm: AlgorithmIdentifier {
            oid: ID_SHA_256,
            parameters: Some(Any::from(der::asn1::Null)),
        },
        hashed_message: OctetString::new(digest.to_vec()).map_err(encoding)?,
    })
}

/// Checks that `imprint` is SHA-256 of the data whose digest is `digest`.
fn check_imprint(imprint: &MessageImprint, digest: &[u8; 32]) -> Result<(), EvidenceError> {
    if imprint.hash_algorithm.oid != ID_SHA_256
        || !cms_common::parameters_absent_or_null(&imprint.hash_algorithm)
    {
        return Err(EvidenceError::new(format!(
            "the time-stamp token's message imprint uses hash algorithm {}; only SHA-256 is \
             accepted",
            imprint.hash_algorithm.oid
        )));
    }
    if imprint.hashed_message.as_bytes() != digest.as_slice() {
        return Err(EvidenceError::new(
            "the time-stamp token is for other data (its message imprint differs)",
        ));
    }
    Ok(())
}

/// A random positive INTEGER of `N` octets of entropy.
fn random_integer<const N: usize>() -> Result<Int, EvidenceError> {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| EvidenceError::new("the system random number generator failed"))?;
    unsigned_integer(&bytes)
}

/// An INTEGER from big-endian unsigned octets (leading zero octets ignored).
fn unsigned_integer(bytes: &[u8]) -> Result<Int, EvidenceError> {
    let uint =
        Uint::new(bytes).map_err(|_| EvidenceError::new("the number is not a usable integer"))?;
    Ok(Int::from(uint))
}

/// Hex of a positive INTEGER's magnitude (as `openssl ts -reply -text` prints serials, in
/// lower case); a negative one is shown as its two's-complement octets.
fn integer_hex(value: &Int) -> String {
    let bytes = value.as_bytes();
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    match bytes.get(start..) {
        Some(rest) if !rest.is_empty() => hex::encode(rest),
        _ => "00".to_owned(),
    }
}

/// The TSTInfo inside a TimeStampToken, without checking its signature.
fn tst_info_of_token(token_der: &[u8]) -> Result<TstInfo, EvidenceError> {
    let signed_data = cms_common::decode_signed_data(token_der)?;
    if signed_data.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(EvidenceError::new(format!(
            "the token's content type is {}, not TSTInfo",
            signed_data.encap_content_info.econtent_type
        )));
    }
    let content = cms_common::encapsulated_content(&signed_data)?
        .ok_or_else(|| EvidenceError::new("the time-stamp token carries no TSTInfo"))?;
    decode_tst_info(&content)
}

fn decode_tst_info(content: &[u8]) -> Result<TstInfo, EvidenceError> {
    let info = TstInfo::from_der(content)
        .map_err(|e| EvidenceError::new(format!("the token's TSTInfo is malformed: {e}")))?;
    if info.version != 1 {
        return Err(EvidenceError::new(format!(
            "the token's TSTInfo has version {}; only version 1 exists",
            info.version
        )));
    }
    Ok(info)
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// A DER TimeStampReq and what its answer must repeat.
#[derive(Debug, Clone)]
pub struct TimestampRequest {
    der: Vec<u8>,
    digest: [u8; 32],
    nonce: Int,
    policy: Option<PolicyOid>,
}

impl TimestampRequest {
    /// DER of the TimeStampReq (body of an `application/timestamp-query` POST).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Checks a DER TimeStampResp: status granted or grantedWithMods, token present, TSTInfo
    /// messageImprint == our SHA-256 digest, nonce equal, policy equal when we asked for one.
    /// Returns the TimeStampToken DER (the ContentInfo). Failures name the PKI status and
    /// failInfo. The token's signature is not checked here: see [`verify_token`].
    pub fn token_from_response(&self, response_der: &[u8]) -> Result<Vec<u8>, EvidenceError> {
        let response = TimeStampResp::from_der(response_der).map_err(|_| {
            EvidenceError::new("the TSA's answer is not a DER RFC 3161 TimeStampResp")
        })?;
        if !matches!(response.status.status, 0 | 1) {
            return Err(EvidenceError::new(format!(
                "the TSA refused the request: {}",
                describe_status(&response.status)
            )));
        }
        let token = response.time_stamp_token.ok_or_else(|| {
            EvidenceError::new("the TSA granted the request but sent no time-stamp token")
        })?;
        let token_der = token
            .to_der()
            .map_err(|_| EvidenceError::new("the TSA's time-stamp token is malformed"))?;
        let info = tst_info_of_token(&token_der)?;
        check_imprint(&info.message_imprint, &self.digest)?;
        match &info.nonce {
            Some(nonce) if *nonce == self.nonce => {}
            Some(_) => {
                return Err(EvidenceError::new(
                    "the TSA's token answers another request (its nonce differs)",
                ));
            }
            None => {
                return Err(EvidenceError::new(
                    "the TSA's token lacks the nonce of the request",
                ));
            }
        }
        if let Some(policy) = &self.policy
            && info.policy != *policy
        {
            return Err(EvidenceError::new(format!(
                "the TSA used policy {} instead of the requested {}",
                info.policy.dotted().unwrap_or_default(),
                policy.dotted().unwrap_or_default()
            )));
        }
        Ok(token_der)
    }
}

/// "rejection (badAlg): text" for a PKIStatusInfo.
fn describe_status(status: &PkiStatusInfo) -> String {
    let mut out = match status.status {
        0 => "granted".to_owned(),
        1 => "grantedWithMods".to_owned(),
        2 => "rejection".to_owned(),
        3 => "waiting".to_owned(),
        4 => "revocationWarning".to_owned(),
        5 => "revocationNotification".to_owned(),
        other => format!("status {other}"),
    };
    if let Some(bits) = &status.fail_info {
        let names: Vec<String> = bits
            .bits()
            .enumerate()
            .filter(|(_, set)| *set)
            .map(|(bit, _)| {
                FAILURE_NAMES.iter().find(|(b, _)| *b == bit).map_or_else(
                    || format!("failure bit {bit}"),
                    |(_, name)| (*name).to_owned(),
                )
            })
            .collect();
        if !names.is_empty() {
            out.push_str(&format!(" ({})", names.join(", ")));
        }
    }
    let text: String = status
        .status_string
        .iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if !text.trim().is_empty() {
        out.push_str(": ");
        out.push_str(text.trim());
    }
    out
}

/// TimeStampReq v1, SHA-256 imprint, random 64-bit nonce, certReq = true, reqPolicy when
/// given (dotted OID; an error if malformed).
pub fn request(
    digest_sha256: &[u8; 32],
    policy_oid: Option<&str>,
) -> Result<TimestampRequest, EvidenceError> {
    let policy = policy_oid.map(PolicyOid::parse).transpose()?;
    let nonce = random_integer::<8>()?;
    let request = TimeStampReq {
        version: 1,
        message_imprint: sha256_imprint(digest_sha256)?,
        req_policy: policy.clone(),
        nonce: Some(nonce.clone()),
        cert_req: true,
        extensions: None,
    };
    let der = request
        .to_der()
        .map_err(|_| EvidenceError::new("could not encode the time-stamp request"))?;
    Ok(TimestampRequest {
        der,
        digest: *digest_sha256,
        nonce,
        policy,
    })
}

// ---------------------------------------------------------------------------------------------
// The built-in TSA
// ---------------------------------------------------------------------------------------------

/// The built-in time-stamping authority.
#[derive(Debug, Clone)]
pub struct LocalTsa {
    identity: SigningIdentity,
}

/// Why a request is refused: the PKIFailureInfo bit and a sentence for the statusString.
struct Rejection {
    failure: usize,
    text: String,
}

impl Rejection {
    fn new(failure: usize, text: impl Into<String>) -> Rejection {
        Rejection {
            failure,
            text: text.into(),
        }
    }

    /// DER TimeStampResp with status rejection.
    fn to_der(&self) -> Vec<u8> {
        // SEQUENCE { SEQUENCE { INTEGER 2 } }: what to send if encoding the full answer fails.
        const BARE_REJECTION: [u8; 7] = [0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02];
        // A named bit list in DER: bytes up to the set bit, unused trailing bits counted.
        let mut bytes = vec![0u8; self.failure / 8 + 1];
        if let Some(byte) = bytes.get_mut(self.failure / 8) {
            *byte = 0x80 >> (self.failure % 8);
        }
        let unused = u8::try_from(7 - self.failure % 8).unwrap_or(0);
        let response = TimeStampResp {
            status: PkiStatusInfo {
                status: 2,
                status_string: Some(vec![self.text.clone()]),
                fail_info: BitString::new(unused, bytes).ok(),
            },
            time_stamp_token: None,
        };
        response
            .to_der()
            .unwrap_or_else(|_| BARE_REJECTION.to_vec())
    }
}

impl LocalTsa {
    /// Refuses an identity whose certificate lacks a critical extendedKeyUsage of exactly
    /// id-kp-timeStamping (RFC 3161 §2.3), since verifiers (OpenSSL among them) refuse tokens
    /// of such a certificate.
    pub fn new(identity: SigningIdentity) -> Result<LocalTsa, EvidenceError> {
        check_time_stamping_usage(&cms_common::describe_certificate(
            identity.certificate_der(),
        )?)?;
        Ok(LocalTsa { identity })
    }

    /// DER of the TSA certificate.
    pub fn certificate_der(&self) -> &[u8] {
        self.identity.certificate_der()
    }

    /// A TimeStampToken: DER ContentInfo(SignedData), eContentType id-ct-TSTInfo, eContent a
    /// TSTInfo v1 with `policy_oid` (or [`DEFAULT_POLICY_OID`]), the SHA-256 messageImprint, a
    /// random 128-bit positive serial, genTime `at` in UTC with millisecond precision, no
    /// accuracy, ordering false, `nonce` when given (big-endian unsigned octets) and the TSA
    /// name; signed with the signed attributes content-type, message-digest, signing-time and
    /// ESS signing-certificate-v2 (RFC 5035), the TSA certificate embedded.
    pub fn stamp(
        &self,
        digest_sha256: &[u8; 32],
        policy_oid: Option<&str>,
        nonce: Option<&[u8]>,
        at: OffsetDateTime,
    ) -> Result<Vec<u8>, EvidenceError> {
        let policy = PolicyOid::parse(policy_oid.unwrap_or(DEFAULT_POLICY_OID))?;
        let nonce = match nonce {
            Some(bytes) if bytes.len() > MAX_NONCE_OCTETS => {
                return Err(EvidenceError::new(format!(
                    "the nonce is longer than {MAX_NONCE_OCTETS} octets"
                )));
            }
            Some(bytes) => Some(unsigned_integer(bytes)?),
            None => None,
        };
        self.token(sha256_imprint(digest_sha256)?, policy, nonce, at, true)
    }

    fn token(
        &self,
        message_imprint: MessageImprint,
        policy: PolicyOid,
        nonce: Option<Int>,
        at: OffsetDateTime,
        embed_certificate: bool,
    ) -> Result<Vec<u8>, EvidenceError> {
        let encoding = |_| EvidenceError::new("could not encode the time-stamp token");
        let certificate = self.identity.certificate();
        let info = TstInfo {
            version: 1,
            policy,
            message_imprint,
            // RFC 3161 §2.4.2: unique per token; 128 random bits make collisions negligible
            // without keeping a counter on disk.
            serial_number: random_integer::<16>()?,
            gen_time: GenTime::new(at)?,
            accuracy: None,
            ordering: false,
            nonce,
            tsa: Some(GeneralName::DirectoryName(
                certificate.tbs_certificate.subject.clone(),
            )),
            extensions: None,
        };
        let content = info.to_der().map_err(encoding)?;

        // ESS signing-certificate-v2 binds the token to this certificate, so a token cannot
        // be passed off under another certificate with the same key (RFC 5816 §2.2.1).
        let ess = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: None,
                cert_hash: OctetString::new(
                    Sha256::digest(self.identity.certificate_der()).to_vec(),
                )
                .map_err(encoding)?,
                issuer_serial: Some(IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(
                        certificate.tbs_certificate.issuer.clone(),
                    )],
                    serial_number: certificate.tbs_certificate.serial_number.clone(),
                }),
            }],
            policies: None,
        };
        let ess_attribute = Attribute {
            oid: ID_AA_SIGNING_CERTIFICATE_V_2,
            values: SetOfVec::try_from(vec![Any::encode_from(&ess).map_err(encoding)?])
                .map_err(encoding)?,
        };
        cms_common::sign(
            &self.identity,
            SignRequest {
                content_type: ID_CT_TST_INFO,
                encapsulated: Some(&content),
                content_digest: Sha256::digest(&content).into(),
                extra_attributes: vec![ess_attribute],
                signing_time: at,
                embed_certificate,
            },
        )
    }

    /// Answers a DER TimeStampReq the way an RFC 3161 server does: granted with a token, or a
    /// rejection with badDataFormat (not a v1 request), badAlg (imprint not SHA-256),
    /// unacceptedPolicy (a policy other than [`DEFAULT_POLICY_OID`]), unacceptedExtension
    /// (extensions present), badRequest (oversized nonce) or systemFailure. The certificate
    /// is embedded only when the request sets certReq (RFC 3161 §2.4.1). Never panics.
    pub fn respond(&self, request_der: &[u8], at: OffsetDateTime) -> Vec<u8> {
        match self.grant(request_der, at) {
            Ok(response) => response,
            Err(rejection) => rejection.to_der(),
        }
    }

    fn grant(&self, request_der: &[u8], at: OffsetDateTime) -> Result<Vec<u8>, Rejection> {
        if request_der.len() > MAX_REQUEST_OCTETS {
            return Err(Rejection::new(BAD_DATA_FORMAT, "the request is too large"));
        }
        let request = TimeStampReq::from_der(request_der).map_err(|_| {
            Rejection::new(BAD_DATA_FORMAT, "the request is not a DER TimeStampReq")
        })?;
        if request.version != 1 {
            return Err(Rejection::new(
                BAD_DATA_FORMAT,
                "only version 1 requests are supported",
            ));
        }
        let imprint = &request.message_imprint;
        if imprint.hash_algorithm.oid != ID_SHA_256
            || !cms_common::parameters_absent_or_null(&imprint.hash_algorithm)
        {
            return Err(Rejection::new(
                BAD_ALG,
                "only SHA-256 message imprints are accepted",
            ));
        }
        if imprint.hashed_message.as_bytes().len() != 32 {
            return Err(Rejection::new(
                BAD_DATA_FORMAT,
                "the SHA-256 message imprint is not 32 octets long",
            ));
        }
        let default_policy = PolicyOid::parse(DEFAULT_POLICY_OID)
            .map_err(|_| Rejection::new(SYSTEM_FAILURE, "the TSA policy is misconfigured"))?;
        if request
            .req_policy
            .as_ref()
            .is_some_and(|p| *p != default_policy)
        {
            return Err(Rejection::new(
                UNACCEPTED_POLICY,
                format!("the only policy of this TSA is {DEFAULT_POLICY_OID}"),
            ));
        }
        if request.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err(Rejection::new(
                UNACCEPTED_EXTENSION,
                "request extensions are not supported",
            ));
        }
        if request
            .nonce
            .as_ref()
            .is_some_and(|n| n.as_bytes().len() > MAX_NONCE_OCTETS)
        {
            return Err(Rejection::new(BAD_REQUEST, "the nonce is too long"));
        }
        let token = self
            .token(
                request.message_imprint,
                default_policy,
                request.nonce,
                at,
                request.cert_req,
            )
            .map_err(|e| Rejection::new(SYSTEM_FAILURE, e.0))?;
        let failure = |_| Rejection::new(SYSTEM_FAILURE, "could not encode the response");
        TimeStampResp {
            status: PkiStatusInfo {
                status: 0,
                status_string: None,
                fail_info: None,
            },
            time_stamp_token: Some(Any::from_der(&token).map_err(failure)?),
        }
        .to_der()
        .map_err(failure)
    }
}

// ---------------------------------------------------------------------------------------------
// Remote TSAs
// ---------------------------------------------------------------------------------------------

/// POSTs the request (Content-Type application/timestamp-query) to an http(s) TSA and
/// returns the checked token (see [`TimestampRequest::token_from_response`]). A non-2xx
/// status, a content type other than application/timestamp-reply, a timeout (covering the
/// whole exchange) or an answer over 1 MiB is an error. Errors do not repeat the URL, which may
/// hold credentials.
pub async fn request_remote(
    url: &str,
    request: &TimestampRequest,
    timeout: Duration,
) -> Result<Vec<u8>, EvidenceError> {
    use reqwest::header::{ACCEPT, CONTENT_TYPE};

    let url = reqwest::Url::parse(url)
        .map_err(|_| EvidenceError::new("the TSA URL is not a valid URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EvidenceError::new(
            "the TSA URL must start with http:// or https://",
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| transport_error(e, timeout))?;
    let mut response = client
        .post(url)
        .header(CONTENT_TYPE, "application/timestamp-query")
        .header(ACCEPT, "application/timestamp-reply")
        .body(request.der.clone())
        .send()
        .await
        .map_err(|e| transport_error(e, timeout))?;
    let status = response.status();
    if !status.is_success() {
        return Err(EvidenceError::new(format!(
            "the TSA answered HTTP {status}"
        )));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    // "application/timestamp-response" is what drafts of RFC 3161 named it; some servers
    // still send it.
    match content_type.as_deref() {
        Some("application/timestamp-reply" | "application/timestamp-response") => {}
        other => {
            let shown: String = other
                .unwrap_or("none")
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(80)
                .collect();
            return Err(EvidenceError::new(format!(
                "the TSA answered with content type \"{shown}\" instead of \
                 application/timestamp-reply"
            )));
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, timeout))?
    {
        if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_OCTETS {
            return Err(EvidenceError::new("the TSA's answer is larger than 1 MiB"));
        }
        body.extend_from_slice(&chunk);
    }
    request.token_from_response(&body)
}

/// A sentence for a failed HTTP exchange, with the underlying cause but without the URL.
fn transport_error(error: reqwest::Error, timeout: Duration) -> EvidenceError {
    let error = error.without_url();
    if error.is_timeout() {
        return EvidenceError::new(format!("the TSA did not answer within {timeout:?}"));
    }
    let mut cause = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if error.is_connect() {
        EvidenceError::new(format!("could not connect to the TSA: {cause}"))
    } else {
        EvidenceError::new(format!("the exchange with the TSA failed: {cause}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// What a verified time-stamp token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampInfo {
    /// genTime (UTC), with the fraction of a second the TSA gave, to the nanosecond.
    pub time: OffsetDateTime,
    /// RFC 4514 subject of the TSA certificate.
    pub tsa_subject: String,
    pub tsa_certificate_der: Vec<u8>,
    /// The TSA policy OID, dotted.
    pub policy: String,
    /// The token's serial number, lower-case hex without leading zero octets.
    pub serial_hex: String,
}

/// Verifies a TimeStampToken against the SHA-256 digest of the stamped data: the CMS
/// signature over the signed attributes, message-digest == hash of the TSTInfo, the ESS
/// signing-certificate (v1 with SHA-1, or v2) naming the embedded TSA certificate, that
/// certificate's critical timeStamping-only extendedKeyUsage, and the imprint == SHA-256
/// `digest_sha256`. Trust (which CA issued the TSA certificate) is decided by the caller with
/// [`crate::signature::check_issued_by`].
pub fn verify_token(
    token_der: &[u8],
    digest_sha256: &[u8; 32],
) -> Result<TimestampInfo, EvidenceError> {
    let verified = cms_common::verify(token_der, None)?;
    if verified.content_type != ID_CT_TST_INFO {
        return Err(EvidenceError::new(format!(
            "the token's content type is {}, not TSTInfo",
            verified.content_type
        )));
    }
    check_signing_certificate(&verified)?;
    let described = cms_common::describe_certificate(&verified.certificate_der)?;
    check_time_stamping_usage(&described)?;
    let content = verified
        .encapsulated
        .as_deref()
        .ok_or_else(|| EvidenceError::new("the time-stamp token carries no TSTInfo"))?;
    let info = decode_tst_info(content)?;
    check_imprint(&info.message_imprint, digest_sha256)?;
    Ok(TimestampInfo {
        time: info.gen_time.time,
        tsa_subject: described.subject,
        tsa_certificate_der: verified.certificate_der,
        policy: info
            .policy
            .dotted()
            .ok_or_else(|| EvidenceError::new("the token's policy is malformed"))?,
        serial_hex: integer_hex(&info.serial_number),
    })
}

/// RFC 3161 §2.3: the TSA certificate has one critical extendedKeyUsage extension listing
/// id-kp-timeStamping and nothing else.
fn check_time_stamping_usage(certificate: &custos_keys::Certificate) -> Result<(), EvidenceError> {
    let usage = custos_keys::extended_key_usage(certificate)
        .map_err(|e| EvidenceError::new(format!("the TSA certificate is not usable: {e}")))?;
    match usage {
        Some(usage) if usage.is_time_stamping_only() => Ok(()),
        Some(usage) if !usage.critical => Err(EvidenceError::new(
            "the TSA certificate's extendedKeyUsage extension is not critical (RFC 3161 §2.3)",
        )),
        Some(_) => Err(EvidenceError::new(
            "the TSA certificate's extendedKeyUsage must list timeStamping and nothing else \
             (RFC 3161 §2.3)",
        )),
        None => Err(EvidenceError::new(
            "the TSA certificate has no extendedKeyUsage extension; RFC 3161 §2.3 requires a \
             critical one listing only timeStamping",
        )),
    }
}

/// RFC 5816 / RFC 3161 §2.4.1: the first ESSCertID of the signing-certificate attribute (v2
/// preferred, else v1) must identify the certificate that signed.
fn check_signing_certificate(verified: &cms_common::Verified) -> Result<(), EvidenceError> {
    let malformed =
        |_| EvidenceError::new("the token's ESS signing-certificate attribute is malformed");
    let empty = || EvidenceError::new("the token's ESS signing-certificate attribute is empty");
    let attributes = &verified.signed_attributes;
    let (expected, computed, issuer_serial) = if let Some(any) =
        cms_common::single_attribute(attributes, ID_AA_SIGNING_CERTIFICATE_V_2)?
    {
        let attribute: SigningCertificateV2 = any.decode_as().map_err(malformed)?;
        let first = attribute.certs.into_iter().next().ok_or_else(empty)?;
        let algorithm = first
            .hash_algorithm
            .unwrap_or_else(cms_common::sha256_identifier);
        let hash = Hash::from_identifier(&algorithm).ok_or_else(|| {
            EvidenceError::new(format!(
                "the token's ESS certificate hash algorithm {} is not supported",
                algorithm.oid
            ))
        })?;
        (
            first.cert_hash,
            hash.digest(&verified.certificate_der),
            first.issuer_serial,
        )
    } else if let Some(any) = cms_common::single_attribute(attributes, ID_AA_SIGNING_CERTIFICATE)? {
        let attribute: SigningCertificateV1 = any.decode_as().map_err(malformed)?;
        let first = attribute.certs.into_iter().next().ok_or_else(empty)?;
        // RFC 2634 fixes SHA-1 for v1; it identifies a certificate already verified by its
        // signature, so SHA-1's collision weakness is not what protects here.
        (
            first.cert_hash,
            sha1::Sha1::digest(&verified.certificate_der).to_vec(),
            first.issuer_serial,
        )
    } else {
        return Err(EvidenceError::new(
            "the time-stamp token does not name its signing certificate (no ESS \
             signing-certificate attribute)",
        ));
    };
    if expected.as_bytes() != computed.as_slice() {
        return Err(EvidenceError::new(
            "the token's ESS signing-certificate attribute names another certificate than the \
             one that signed it",
        ));
    }
    if let Some(issuer_serial) = issuer_serial {
        let tbs = &verified.certificate.tbs_certificate;
        let issuer_named = issuer_serial
            .issuer
            .iter()
            .any(|name| matches!(name, GeneralName::DirectoryName(n) if n == &tbs.issuer));
        if !issuer_named || issuer_serial.serial_number != tbs.serial_number {
            return Err(EvidenceError::new(
                "the token's ESS signing-certificate attribute names another issuer or serial \
                 than the signing certificate's",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_a_valid_uuid_oid_and_round_trips() {
        let oid = PolicyOid::parse(DEFAULT_POLICY_OID).unwrap();
        assert_eq!(oid.dotted().as_deref(), Some(DEFAULT_POLICY_OID));
        // 2.25 is one octet (0x69), then the 128-bit arc in base 128.
        assert_eq!(oid.0.first(), Some(&0x69));
        let uuid = u128::from_str_radix("5c050e627e464f7db6780effc05ff27e", 16).unwrap();
        assert_eq!(DEFAULT_POLICY_OID, format!("2.25.{uuid}"));
    }

    #[test]
    fn policy_oids_parse_like_x690() {
        assert_eq!(PolicyOid::parse("1.2.3.4.1").unwrap().0, [0x2a, 3, 4, 1]);
        assert_eq!(PolicyOid::parse("2.999.3").unwrap().0, [0x88, 0x37, 0x03]);
        assert_eq!(
            PolicyOid::parse("2.999.3").unwrap().dotted().unwrap(),
            "2.999.3"
        );
        for bad in [
            "",
            "1",
            "1.",
            ".1.2",
            "1..2",
            "3.1",
            "1.40",
            "1.2.x",
            "1.02",
            "-1.2",
            "1.2.+3",
            "2.25.340282366920938463463374607431768211456",
        ] {
            assert!(PolicyOid::parse(bad).is_err(), "{bad}");
        }
        assert!(PolicyOid(vec![0x2a, 0x80, 0x01]).dotted().is_none());
        assert!(PolicyOid(vec![0x2a, 0x81]).dotted().is_none());
        assert!(PolicyOid(vec![]).dotted().is_none());
        assert!(PolicyOid(vec![0xff; 40]).dotted().is_none());
    }

    #[test]
    fn gen_time_formats_and_parses_fractions() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_120_456_789).unwrap();
        let gen_time = GenTime::new(at).unwrap();
        assert_eq!(gen_time.text, b"20231114221320.12Z");
        assert_eq!(GenTime::parse(&gen_time.text), Some(gen_time.time));
        let whole = GenTime::new(OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap());
        assert_eq!(whole.unwrap().text, b"20231114221320Z");
        assert_eq!(
            GenTime::parse(b"20231114221320.123456789123Z"),
            Some(OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap())
        );
        for bad in [
            &b""[..],
            b"20231114221320",
            b"2023111422132Z",
            b"20231314221320Z",
            b"20231114221320.Z",
            b"20231114221320.1aZ",
            b"2023111422132\xffZ",
            b"20231114246060Z",
        ] {
            assert_eq!(GenTime::parse(bad), None);
        }
    }

    #[test]
    fn rejections_carry_the_failure_bit() {
        for (bit, name) in FAILURE_NAMES {
            let der = Rejection::new(*bit, "why").to_der();
            let response = TimeStampResp::from_der(&der).unwrap();
            assert_eq!(response.status.status, 2);
            let text = describe_status(&response.status);
            assert_eq!(text, format!("rejection ({name}): why"));
        }
    }

    fn garbage() -> Vec<Vec<u8>> {
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x30],
            vec![0x30, 0x80, 0x00, 0x00],
            vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            vec![0xff; 64],
            b"not DER at all".to_vec(),
        ];
        // Every truncation of a real request and of a real rejection.
        let request = request(&[7; 32], Some("1.2.3")).unwrap();
        for len in 0..request.der().len() {
            inputs.push(request.der()[..len].to_vec());
        }
        let rejection = Rejection::new(BAD_ALG, "x").to_der();
        for len in 0..rejection.len() {
            inputs.push(rejection[..len].to_vec());
        }
        inputs
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let request = request(&[7; 32], None).unwrap();
        for input in garbage() {
            assert!(verify_token(&input, &[7; 32]).is_err());
            assert!(request.token_from_response(&input).is_err());
            assert!(tst_info_of_token(&input).is_err());
        }
    }

    fn built_in_tsa() -> LocalTsa {
        let now = OffsetDateTime::now_utc();
        let generated = crate::tsa_identity::generate_tsa_identity("Unit TSA", now).unwrap();
        let identity =
            SigningIdentity::from_pem(&generated.certificate_pem, &generated.private_key_pem)
                .unwrap();
        LocalTsa::new(identity).unwrap()
    }

    #[test]
    fn truncated_or_corrupted_tokens_and_requests_never_panic() {
        let tsa = built_in_tsa();
        let now = OffsetDateTime::now_utc();
        let digest = [3u8; 32];
        let ours = request(&digest, None).unwrap();
        let response = tsa.respond(ours.der(), now);
        let token = ours.token_from_response(&response).unwrap();
        verify_token(&token, &digest).unwrap();

        // Every prefix is refused.
        for len in 0..token.len() {
            assert!(verify_token(&token[..len], &digest).is_err());
        }
        for len in 0..response.len() {
            assert!(ours.token_from_response(&response[..len]).is_err());
        }
        // Flipped bytes (a sample, since each check verifies a signature): an error, or in
        // the few unsigned places (digestAlgorithms) still the same answer; never a panic.
        for i in (0..token.len()).step_by(5) {
            let mut corrupted = token.clone();
            corrupted[i] ^= 0x01;
            let _ = verify_token(&corrupted, &digest);
        }
        for i in (0..response.len()).step_by(5) {
            let mut corrupted = response.clone();
            corrupted[i] ^= 0x80;
            let _ = ours.token_from_response(&corrupted);
        }
        // respond() answers every truncated or corrupted request with a TimeStampResp.
        let request_der = ours.der().to_vec();
        for len in 0..request_der.len() {
            let answer = tsa.respond(&request_der[..len], now);
            let decoded = TimeStampResp::from_der(&answer).unwrap();
            assert_eq!(decoded.status.status, 2);
        }
        for i in 0..request_der.len() {
            for bit in [0x01, 0x80] {
                let mut corrupted = request_der.clone();
                corrupted[i] ^= bit;
                let answer = tsa.respond(&corrupted, now);
                assert!(TimeStampResp::from_der(&answer).is_ok());
            }
        }
        for input in garbage() {
            let answer = tsa.respond(&input, now);
            assert_eq!(TimeStampResp::from_der(&answer).unwrap().status.status, 2);
        }
    }

    #[test]
    fn stamp_checks_its_arguments() {
        let tsa = built_in_tsa();
        let now = OffsetDateTime::now_utc();
        assert!(tsa.stamp(&[0; 32], Some("x"), None, now).is_err());
        assert!(tsa.stamp(&[0; 32], None, Some(&[1; 65]), now).is_err());
        let before_1970 = OffsetDateTime::from_unix_timestamp(-1).unwrap();
        assert!(tsa.stamp(&[0; 32], None, None, before_1970).is_err());
        // A nonce with its top bit set stays positive and is echoed unchanged.
        let token = tsa.stamp(&[0; 32], None, Some(&[0xff, 0x00]), now).unwrap();
        let info = tst_info_of_token(&token).unwrap();
        assert_eq!(info.nonce.unwrap().as_bytes(), [0x00, 0xff, 0x00]);
    }

    #[test]
    fn a_rejection_is_reported_with_its_status() {
        let request = request(&[7; 32], None).unwrap();
        let err = request
            .token_from_response(&Rejection::new(UNACCEPTED_POLICY, "no").to_der())
            .unwrap_err();
        assert_eq!(
            err.0,
            "the TSA refused the request: rejection (unacceptedPolicy): no"
        );
    }

    #[test]
    fn requests_are_v1_sha256_with_nonce_and_cert_req() {
        let digest = [9u8; 32];
        let request = request(&digest, Some(DEFAULT_POLICY_OID)).unwrap();
        let decoded = TimeStampReq::from_der(request.der()).unwrap();
        assert_eq!(decoded.version, 1);
        assert!(decoded.cert_req);
        assert_eq!(decoded.message_imprint.hashed_message.as_bytes(), digest);
        assert_eq!(
            decoded.req_policy.unwrap().dotted().as_deref(),
            Some(DEFAULT_POLICY_OID)
        );
        assert!(decoded.nonce.is_some());
        assert!(super::request(&digest, Some("1.x")).is_err());
    }
}
