//! Parsing and validation of key material that administrators upload to the REST API.
//!
//! - SSH private keys (client identities for rsync/SSH targets), re-encoded in OpenSSH format
//!   for the SSH client, and OpenSSH public keys (pinned host keys).
//! - X.509 certificates (PEM) and the private keys of X.509 identities (CMS signing with RSA or
//!   ECDSA P-256), re-encoded as PKCS#8.
//!
//! Everything here takes untrusted strings from the network: no function panics on any input,
//! and no error message contains key material (errors are fixed sentences plus algorithm
//! names, sizes and PEM labels that look like labels). There is no I/O.
//!
//! Two RustCrypto generations are used on purpose: the SSH side uses `ssh-key` 0.7.0-rc.11,
//! which russh 0.65.1 pins for the gateway, and the X.509 side uses the 0.2 generation
//! (`x509-cert` 0.2, `rsa` 0.9, `p256` 0.13) that `cms` 0.2 and `x509-tsp` 0.1 require. Only
//! bytes and strings cross between them.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

mod name;
mod pem;
mod privkey;
mod ssh;
mod x509;

pub use ssh::{
    SshPrivateKey, SshPublicKey, host_key_algorithm, host_key_selection, parse_ssh_private_key,
    parse_ssh_public_key, ssh_public_key_from_selection,
};
pub use x509::{
    Certificate, ExtendedKeyUsage, ID_KP_TIME_STAMPING, IdentityKey, PublicKeyKind,
    extended_key_usage, key_matches_certificate, parse_certificate, parse_identity_key,
};

/// Why uploaded key material was refused: a human-readable sentence without key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

impl KeyError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Turns the SPS one-line PEM form into real PEM.
///
/// SPS exports PEM inside JSON with the line breaks escaped a second time, so after JSON
/// decoding the string holds the two characters `\` `n` where a newline belongs, e.g.
/// `-----BEGIN CERTIFICATE-----\nMIID…\n-----END CERTIFICATE-----`. This replaces `\r\n`, `\n`
/// and `\r` escape sequences with a newline (and the JSON escape `\/` with `/`). Real PEM never
/// contains a backslash, so it is returned unchanged; it is therefore safe to call on every
/// uploaded PEM before parsing.
pub fn unescape_pem(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    text.replace("\\r\\n", "\n")
        .replace("\\n", "\n")
        .replace("\\r", "\n")
        .replace("\\/", "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_pem_turns_escaped_newlines_into_real_ones() {
        assert_eq!(
            unescape_pem("-----BEGIN X-----\\nAAAA\\r\\nBB\\/B\\n-----END X-----"),
            "-----BEGIN X-----\nAAAA\nBB/B\n-----END X-----"
        );
    }

    #[test]
    fn unescape_pem_leaves_real_pem_unchanged() {
        let pem = "-----BEGIN X-----\nAAAA\n-----END X-----\n";
        assert_eq!(unescape_pem(pem), pem);
    }
}
