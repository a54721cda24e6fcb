//! RFC 4514 string form of X.509 distinguished names.
//!
//! `x509-cert`'s own `Display` upper-cases every attribute name ("EMAILADDRESS") and can fail
//! inside `to_string()`, which would panic; this formatter cannot fail and uses the attribute
//! names OpenSSL prints with `-nameopt RFC2253`, so administrators see what their tools show.

use std::fmt::Write as _;

use const_oid::ObjectIdentifier;
use der::{Encode as _, Tag, Tagged as _};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::Name;

/// Attribute type names. The first nine are the ones RFC 4514 §3 defines; the rest are the
/// short names OpenSSL uses for other common attributes.
const NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.4", "SN"),
    ("2.5.4.42", "GN"),
    ("2.5.4.12", "title"),
    ("2.5.4.13", "description"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.41", "name"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.65", "pseudonym"),
    ("2.5.4.97", "organizationIdentifier"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
];

/// Formats `name` per RFC 4514: RDNs in reverse order of the encoding, separated by `,`;
/// the values of a multi-valued RDN joined by `+` (also reversed, as OpenSSL does). Values that are not character strings, and attributes
/// without a known name, use the `OID=#hex` form of RFC 4514 §2.4.
pub(crate) fn rfc4514(name: &Name) -> String {
    let mut out = String::new();
    for (i, rdn) in name.0.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // A multi-valued RDN is a set, so RFC 4514 leaves the order free; reversing it too
        // gives the same string as OpenSSL's RFC 2253 output.
        for (j, atv) in rdn.0.iter().rev().enumerate() {
            if j > 0 {
                out.push('+');
            }
            write_atv(&mut out, atv);
        }
    }
    out
}

fn write_atv(out: &mut String, atv: &AttributeTypeAndValue) {
    let short = attribute_name(&atv.oid);
    match (short, decode_string(atv.value.tag(), atv.value.value())) {
        (Some(short), Some(value)) => {
            out.push_str(short);
            out.push('=');
            escape_into(out, &value);
        }
        _ => {
            let _ = write!(out, "{}=#", atv.oid);
            match atv.value.to_der() {
                Ok(der) => out.push_str(&hex::encode(der)),
                Err(_) => out.push_str(&hex::encode(atv.value.value())),
            }
        }
    }
}

fn attribute_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    let dotted = oid.to_string();
    NAMES
        .iter()
        .find(|(o, _)| *o == dotted)
        .map(|(_, name)| *name)
}

/// The text of a directory string, if the tag is a character string type and the bytes are
/// valid for it.
fn decode_string(tag: Tag, bytes: &[u8]) -> Option<String> {
    match tag {
        Tag::Utf8String => std::str::from_utf8(bytes).ok().map(str::to_owned),
        Tag::PrintableString | Tag::Ia5String | Tag::VisibleString | Tag::NumericString => bytes
            .is_ascii()
            .then(|| bytes.iter().map(|&b| char::from(b)).collect()),
        // T.61 in practice carries Latin-1.
        Tag::TeletexString => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c.first().copied()?, c.get(1).copied()?]).into())
                .collect::<Option<Vec<u16>>>()?;
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        _ => None,
    }
}

/// RFC 4514 §2.4 escaping. Control characters are additionally written as `\XX` so the
/// result is safe to show in a UI or log line.
fn escape_into(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:02X}");
                }
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_rfc4514_specials() {
        let mut out = String::new();
        escape_into(&mut out, " #a,b+c\"d\\e;<>\n ");
        assert_eq!(out, "\\ #a\\,b\\+c\\\"d\\\\e\\;\\<\\>\\0A\\ ");
        let mut out = String::new();
        escape_into(&mut out, "#x");
        assert_eq!(out, "\\#x");
    }

    #[test]
    fn decodes_bmp_and_rejects_bad_ascii() {
        assert_eq!(
            decode_string(Tag::BmpString, &[0, b'h', 0, 0xe9]).as_deref(),
            Some("hé")
        );
        assert_eq!(decode_string(Tag::BmpString, &[0]), None);
        assert_eq!(decode_string(Tag::PrintableString, &[0xff]), None);
    }
}
