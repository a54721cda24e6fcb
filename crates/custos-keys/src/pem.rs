//! A tolerant PEM reader and a canonical PEM writer.
//!
//! Uploaded key material arrives in every PEM dialect administrators have: OpenSSL's
//! traditional format with `Proc-Type`/`DEK-Info` headers, explanatory text around the blocks
//! (`Bag Attributes`, `subject=`), CRLF line ends, OpenSSH's 70-column lines, several blocks in
//! one file. The strict RFC 7468 decoders in the crypto crates reject much of that, so this
//! module finds the blocks itself and hands plain DER to the parsers. It never echoes input
//! text in its errors, because the input may be a private key.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose::STANDARD};
use zeroize::Zeroizing;

use crate::KeyError;

/// Base64 as found in PEM bodies: standard alphabet, padding optional (some tools drop it).
const BODY: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One `-----BEGIN label----- … -----END label-----` block.
pub(crate) struct PemBlock {
    /// The label, e.g. `CERTIFICATE` or `RSA PRIVATE KEY`.
    pub label: String,
    /// RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`) as (name, value); only traditional
    /// OpenSSL keys carry them.
    pub headers: Vec<(String, String)>,
    /// The decoded body. Zeroized on drop because it is often a private key.
    pub der: Zeroizing<Vec<u8>>,
}

/// Prints the label and headers only: the body may be a private key.
impl std::fmt::Debug for PemBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemBlock")
            .field("label", &self.label)
            .field("headers", &self.headers)
            .field("der_len", &self.der.len())
            .finish_non_exhaustive()
    }
}

impl PemBlock {
    /// True when the RFC 1421 headers say the body is encrypted (OpenSSL's traditional
    /// `Proc-Type: 4,ENCRYPTED` + `DEK-Info` form).
    pub fn has_encryption_headers(&self) -> bool {
        self.headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("DEK-Info")
                || (name.eq_ignore_ascii_case("Proc-Type")
                    && value.to_ascii_uppercase().contains("ENCRYPTED"))
        })
    }
}

/// Finds and decodes every PEM block in `text`.
///
/// Text outside blocks is ignored (RFC 7468 §5.2 allows explanatory text). A block without an
/// END line, an END line that names another label, or a body that is not base64 is an error.
/// Returns an empty list when there is no BEGIN line at all; callers word that error
/// themselves, because they know what was expected.
pub(crate) fn parse_blocks(text: &str) -> Result<Vec<PemBlock>, KeyError> {
    let mut blocks = Vec::new();
    // The block being read (its `der` is filled in at the END line) and its base64 text.
    let mut open: Option<PemBlock> = None;
    let mut body = Zeroizing::new(String::new());

    for raw_line in text.lines() {
        let line = raw_line.trim();
        let Some(block) = open.as_mut() else {
            if let Some(label) = begin_label(line) {
                open = Some(PemBlock {
                    label: label.to_owned(),
                    headers: Vec::new(),
                    der: Zeroizing::new(Vec::new()),
                });
                body.clear();
            }
            continue;
        };
        if let Some(rest) = line.strip_prefix("-----END ") {
            let end_label = rest.strip_suffix("-----").unwrap_or(rest).trim();
            if end_label != block.label {
                return Err(KeyError::new(format!(
                    "PEM block {} is closed by an END line for another label",
                    describe_label(&block.label)
                )));
            }
            let der = BODY.decode(body.as_bytes()).map_err(|_| {
                KeyError::new(format!(
                    "PEM block {} is not valid base64",
                    describe_label(&block.label)
                ))
            })?;
            block.der = Zeroizing::new(der);
            blocks.extend(open.take());
        } else if line.starts_with("-----BEGIN ") {
            return Err(KeyError::new(format!(
                "PEM block {} has no END line before the next BEGIN line",
                describe_label(&block.label)
            )));
        } else if body.is_empty() && line.contains(':') {
            // RFC 1421 header; only valid before the body starts.
            if let Some((name, value)) = line.split_once(':') {
                block
                    .headers
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            }
        } else {
            body.extend(line.chars().filter(|c| !c.is_whitespace()));
        }
    }

    if let Some(block) = open {
        return Err(KeyError::new(format!(
            "PEM block {} has no END line (is the text truncated?)",
            describe_label(&block.label)
        )));
    }
    Ok(blocks)
}

/// The label of a `-----BEGIN label-----` line, if `line` is one.
fn begin_label(line: &str) -> Option<&str> {
    let label = line
        .strip_prefix("-----BEGIN ")?
        .strip_suffix("-----")?
        .trim();
    (!label.is_empty()).then_some(label)
}

/// Encodes `der` as PEM with 64-column lines and LF line ends, the form OpenSSL writes.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// A label as it may appear in an error message: quoted when it looks like a PEM label,
/// otherwise replaced, so that arbitrary uploaded text is never echoed.
pub(crate) fn describe_label(label: &str) -> String {
    let plausible = label.len() <= 40
        && label
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ' || c == '-');
    if plausible {
        format!("'{label}'")
    } else {
        "with an unrecognised label".to_owned()
    }
}

/// Hint appended to "no PEM block" errors when the text still holds literal `\n` sequences.
pub(crate) fn escaped_newline_hint(text: &str) -> &'static str {
    if text.contains("\\n") {
        " (the text contains literal \\n sequences; unescape it first)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_between_explanatory_text_and_crlf() {
        let text = "Bag Attributes\r\n-----BEGIN FOO-----\r\nAAEC\r\nAw==\r\n-----END FOO-----\r\nsubject=x\n-----BEGIN BAR-----\nBA\n-----END BAR-----\n";
        let blocks = parse_blocks(text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "FOO");
        assert_eq!(blocks[0].der.as_slice(), &[0, 1, 2, 3]);
        assert_eq!(blocks[1].label, "BAR");
        assert_eq!(blocks[1].der.as_slice(), &[4]);
    }

    #[test]
    fn reads_rfc1421_encryption_headers() {
        let text = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAEC\n-----END RSA PRIVATE KEY-----";
        let blocks = parse_blocks(text).unwrap();
        assert!(blocks[0].has_encryption_headers());
        assert_eq!(blocks[0].der.as_slice(), &[0, 1, 2]);
    }

    #[test]
    fn rejects_missing_or_mismatched_end_lines_and_bad_base64() {
        assert!(parse_blocks("-----BEGIN FOO-----\nAAEC\n").is_err());
        assert!(parse_blocks("-----BEGIN FOO-----\nAAEC\n-----END BAR-----").is_err());
        assert!(parse_blocks("-----BEGIN FOO-----\nA!!C\n-----END FOO-----").is_err());
        assert!(
            parse_blocks("-----BEGIN FOO-----\n-----BEGIN FOO-----\n-----END FOO-----").is_err()
        );
        assert!(parse_blocks("no pem here").unwrap().is_empty());
    }

    #[test]
    fn encode_wraps_at_64_columns_and_round_trips() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = encode("CERTIFICATE", &der);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(
            parse_blocks(&pem).unwrap()[0].der.as_slice(),
            der.as_slice()
        );
    }

    #[test]
    fn error_messages_do_not_echo_odd_labels() {
        let err = parse_blocks("-----BEGIN secret stuff abc-----\nAA").unwrap_err();
        assert!(!err.0.contains("secret"), "{err}");
        assert!(describe_label("RSA PRIVATE KEY").contains("RSA PRIVATE KEY"));
    }
}
