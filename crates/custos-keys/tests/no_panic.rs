//! Every parser on every truncation (and single-byte corruption) of every fixture: the
//! parsers take network input and must return errors, never panic.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::Dir;
use custos_keys::{
    Certificate, IdentityKey, PublicKeyKind, key_matches_certificate, parse_certificate,
    parse_identity_key, parse_ssh_private_key, parse_ssh_public_key, ssh_public_key_from_selection,
    unescape_pem,
};

/// Runs every parser on `input`; only a panic (which fails the test) matters here.
fn run_all_parsers(input: &str) {
    let _ = parse_ssh_private_key(input);
    let _ = parse_ssh_public_key(input);
    let _ = ssh_public_key_from_selection("ecdsa", input);
    let _ = parse_certificate(input);
    let _ = parse_certificate(&unescape_pem(input));
    if let Ok(key) = parse_identity_key(input) {
        let _ = key.pkcs8_pem.len();
    }
}

/// All fixtures as text: private keys in every format, public key lines, certificates.
fn fixtures(dir: &Dir) -> Vec<String> {
    let mut texts = vec![
        dir.ssh_keygen("ed", "", &["-t", "ed25519"]),
        dir.ssh_keygen("rsa", "", &["-t", "rsa", "-b", "2048"]),
        dir.ssh_keygen("p256", "", &["-t", "ecdsa", "-b", "256"]),
        dir.ssh_keygen("pkcs1", "", &["-t", "rsa", "-b", "2048", "-m", "PEM"]),
        dir.ssh_keygen("enc", "pw", &["-t", "ed25519"]),
    ];
    for name in ["ed", "rsa", "p256"] {
        texts.push(dir.read(&format!("{name}.pub")));
    }
    dir.openssl(&["genpkey", "-algorithm", "ED25519", "-out", "p8ed"]);
    dir.openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-out", "sec1"]);
    dir.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "rsa.key",
        "-out",
        "rsa.crt",
        "-subj",
        "/CN=Custos test/O=Example",
        "-days",
        "30",
    ]);
    dir.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ec.key",
        "-out",
        "ec.crt",
        "-subj",
        "/CN=Custos EC",
        "-days",
        "30",
    ]);
    for name in ["p8ed", "sec1", "rsa.key", "rsa.crt", "ec.key", "ec.crt"] {
        texts.push(dir.read(name));
    }
    texts.push(format!("{}{}", dir.read("ec.crt"), dir.read("rsa.crt")));
    texts
}

#[test]
fn every_parser_survives_every_prefix_of_every_fixture() {
    let dir = Dir::new();
    let texts = fixtures(&dir);
    for text in &texts {
        for len in 0..=text.len() {
            run_all_parsers(&text[..len]);
        }
    }
    // The loop proves little unless the whole fixtures are accepted.
    let parses = |t: &str| {
        parse_ssh_private_key(t).is_ok()
            || parse_ssh_public_key(t).is_ok()
            || parse_certificate(t).is_ok()
    };
    let accepted = texts.iter().filter(|t| parses(t)).count();
    assert_eq!(accepted, texts.len() - 1, "all but the encrypted key parse");
}

/// Each PEM block re-armored around every truncation and every single-byte corruption of
/// its DER, so the ASN.1 and OpenSSH decoders (not just the PEM reader) see broken input.
#[test]
fn every_parser_survives_truncated_and_corrupted_der_inside_valid_armor() {
    let dir = Dir::new();
    for text in fixtures(&dir) {
        let Some((label, der)) = single_block(&text) else {
            continue;
        };
        let armor = |bytes: &[u8]| {
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                STANDARD.encode(bytes)
            )
        };
        for len in 0..der.len() {
            run_all_parsers(&armor(&der[..len]));
        }
        // RSA validation is slow in debug builds, so big keys get every 7th byte.
        let step = if der.len() > 1000 { 7 } else { 1 };
        for i in (0..der.len()).step_by(step) {
            let mut bytes = der.clone();
            bytes[i] ^= 0x5a;
            run_all_parsers(&armor(&bytes));
        }
    }
}

#[test]
fn public_key_parser_survives_truncated_and_corrupted_blobs() {
    let dir = Dir::new();
    let _ = fixtures(&dir);
    for name in ["ed", "rsa", "p256"] {
        let line = dir.read(&format!("{name}.pub"));
        let mut fields = line.split_whitespace();
        let algorithm = fields.next().unwrap();
        let blob = STANDARD.decode(fields.next().unwrap()).unwrap();
        for len in 0..blob.len() {
            let b64 = STANDARD.encode(&blob[..len]);
            let _ = parse_ssh_public_key(&b64);
            let _ = parse_ssh_public_key(&format!("{algorithm} {b64}"));
        }
        for i in 0..blob.len() {
            let mut bytes = blob.clone();
            bytes[i] ^= 0xa5;
            let _ = parse_ssh_public_key(&STANDARD.encode(&bytes));
        }
    }
}

#[test]
fn key_matching_survives_broken_keys_and_certificates() {
    let dir = Dir::new();
    let _ = fixtures(&dir);
    let cert = parse_certificate(&dir.read("rsa.crt")).unwrap();
    let key = parse_identity_key(&dir.read("rsa.key")).unwrap();
    assert!(key_matches_certificate(&key, &cert));
    for len in 0..cert.der.len() {
        let broken = Certificate {
            der: cert.der[..len].to_vec(),
            ..cert.clone()
        };
        assert!(!key_matches_certificate(&key, &broken));
    }
    for len in 0..key.pkcs8_pem.len() {
        let broken = IdentityKey {
            kind: PublicKeyKind::Rsa { bits: 2048 },
            pkcs8_pem: key.pkcs8_pem[..len].to_owned(),
        };
        let _ = key_matches_certificate(&broken, &cert);
    }
}

/// The label and DER of a text holding exactly one PEM block.
fn single_block(text: &str) -> Option<(String, Vec<u8>)> {
    let begin = text.find("-----BEGIN ")?;
    if text[begin + 1..].contains("-----BEGIN ") {
        return None;
    }
    let label_end = text[begin + 11..].find("-----")? + begin + 11;
    let label = text[begin + 11..label_end].to_owned();
    let end = text.find("-----END ")?;
    let body: String = text[label_end + 5..end]
        .lines()
        .filter(|l| !l.contains(':'))
        .collect();
    Some((label, STANDARD.decode(body.trim()).ok()?))
}
