//! X.509 certificates and identity keys, checked against `openssl`.

mod common;

use common::{Dir, openssl_field};
use custos_keys::{
    Certificate, ID_KP_TIME_STAMPING, PublicKeyKind, extended_key_usage, key_matches_certificate,
    parse_certificate, parse_identity_key, unescape_pem,
};

const ENCRYPTED: &str = "encrypted private keys are not supported; remove the passphrase";

/// `openssl req -x509` with the given key options; writes `<name>.crt` and `<name>.key`.
fn self_signed(dir: &Dir, name: &str, subject: &str, newkey: &[&str]) -> (String, String) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let mut args = vec!["req", "-x509"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&[
        "-nodes", "-keyout", &key, "-out", &crt, "-subj", subject, "-days", "30",
    ]);
    dir.openssl(&args);
    (dir.read(&crt), dir.read(&key))
}

fn rsa_self_signed(dir: &Dir, name: &str) -> (String, String) {
    self_signed(
        dir,
        name,
        "/CN=Custos test/O=Example",
        &["-newkey", "rsa:2048"],
    )
}

fn ec_self_signed(dir: &Dir, name: &str) -> (String, String) {
    self_signed(
        dir,
        name,
        "/CN=Custos EC/O=Example",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )
}

/// Compares every descriptive field with what `openssl x509` prints for the same file.
fn assert_agrees_with_openssl(dir: &Dir, crt: &str, cert: &Certificate) {
    let out = dir.openssl(&[
        "x509",
        "-in",
        crt,
        "-noout",
        "-subject",
        "-issuer",
        "-serial",
        "-fingerprint",
        "-sha256",
        "-dates",
        "-dateopt",
        "iso_8601",
        "-nameopt",
        "RFC2253",
    ]);
    assert_eq!(cert.subject, openssl_field(&out, "subject="));
    assert_eq!(cert.issuer, openssl_field(&out, "issuer="));
    assert!(
        cert.serial
            .eq_ignore_ascii_case(&openssl_field(&out, "serial="))
    );
    assert_eq!(cert.serial, cert.serial.to_lowercase());
    assert!(
        cert.fingerprint_sha256
            .eq_ignore_ascii_case(&openssl_field(&out, "sha256 Fingerprint="))
    );
    // OpenSSL's ISO form is "2026-11-22 23:00:00Z"; ours is RFC 3339 with a "T".
    let iso = |v: String| v.replacen(' ', "T", 1);
    assert_eq!(cert.not_before, iso(openssl_field(&out, "notBefore=")));
    assert_eq!(cert.not_after, iso(openssl_field(&out, "notAfter=")));
    assert_eq!(cert.not_before_unix, unix_time(&cert.not_before));
    assert_eq!(cert.not_after_unix, unix_time(&cert.not_after));

    let der_file = format!("{crt}.der");
    dir.openssl(&["x509", "-in", crt, "-outform", "DER", "-out", &der_file]);
    assert_eq!(cert.der, std::fs::read(dir.path(&der_file)).unwrap());
}

/// Unix seconds of an RFC 3339 UTC time according to GNU `date`.
fn unix_time(rfc3339: &str) -> i64 {
    let out = common::run(std::process::Command::new("date").args(["-u", "-d", rfc3339, "+%s"]));
    out.trim().parse().unwrap()
}

#[test]
fn rsa_self_signed_certificate_fields_match_openssl() {
    let dir = Dir::new();
    let (pem, _) = rsa_self_signed(&dir, "rsa");
    let cert = parse_certificate(&pem).unwrap();
    assert_agrees_with_openssl(&dir, "rsa.crt", &cert);
    // RFC 4514 order is the reverse of the encoding order of `-subj /CN=…/O=…`.
    assert_eq!(cert.subject, "O=Example,CN=Custos test");
    assert_eq!(cert.issuer, cert.subject);
    assert_eq!(cert.key, PublicKeyKind::Rsa { bits: 2048 });
    assert!(
        cert.is_ca,
        "openssl req -x509 sets basicConstraints CA:TRUE"
    );
    assert!(cert.chain.is_empty());
    assert_eq!(cert.pem, pem, "openssl already writes canonical PEM");
    assert_eq!(cert.not_after_unix - cert.not_before_unix, 30 * 86400);
}

#[test]
fn ecdsa_p256_certificate_fields_match_openssl() {
    let dir = Dir::new();
    let (pem, _) = ec_self_signed(&dir, "ec");
    let cert = parse_certificate(&pem).unwrap();
    assert_agrees_with_openssl(&dir, "ec.crt", &cert);
    assert_eq!(cert.subject, "O=Example,CN=Custos EC");
    assert_eq!(cert.key, PublicKeyKind::EcP256);
}

#[test]
fn subject_with_special_characters_and_several_attributes_matches_openssl_rfc2253() {
    let dir = Dir::new();
    self_signed(
        &dir,
        "odd",
        r#"/C=DE/ST=Bavaria/L=Munich/O=Example, Inc./OU=a\+b;c="q"/CN=#host <x> /emailAddress=admin@example.com"#,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let cert = parse_certificate(&dir.read("odd.crt")).unwrap();
    assert_agrees_with_openssl(&dir, "odd.crt", &cert);
    assert_eq!(
        cert.subject,
        r#"emailAddress=admin@example.com,CN=\#host \<x\>\ ,OU=a\+b\;c=\"q\",O=Example\, Inc.,L=Munich,ST=Bavaria,C=DE"#
    );
}

#[test]
fn multi_valued_rdn_is_joined_with_plus_like_openssl() {
    let dir = Dir::new();
    let (crt, key) = ("m.crt", "m.key");
    dir.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        crt,
        "-multivalue-rdn",
        "-subj",
        "/CN=a+UID=b/O=X",
        "-days",
        "1",
    ]);
    let cert = parse_certificate(&dir.read(crt)).unwrap();
    assert_agrees_with_openssl(&dir, crt, &cert);
    assert_eq!(cert.subject, "O=X,UID=b+CN=a");
}

#[test]
fn identity_keys_match_their_certificate_and_not_another_one() {
    let dir = Dir::new();
    let (rsa_pem, rsa_key_pem) = rsa_self_signed(&dir, "rsa");
    let (ec_pem, ec_key_pem) = ec_self_signed(&dir, "ec");
    let (other_pem, other_key_pem) = rsa_self_signed(&dir, "other");
    let rsa = parse_certificate(&rsa_pem).unwrap();
    let ec = parse_certificate(&ec_pem).unwrap();
    let other = parse_certificate(&other_pem).unwrap();

    let rsa_key = parse_identity_key(&rsa_key_pem).unwrap();
    let ec_key = parse_identity_key(&ec_key_pem).unwrap();
    let other_key = parse_identity_key(&other_key_pem).unwrap();
    assert_eq!(rsa_key.kind, PublicKeyKind::Rsa { bits: 2048 });
    assert_eq!(ec_key.kind, PublicKeyKind::EcP256);

    assert!(key_matches_certificate(&rsa_key, &rsa));
    assert!(key_matches_certificate(&ec_key, &ec));
    assert!(key_matches_certificate(&other_key, &other));
    assert!(!key_matches_certificate(&rsa_key, &other));
    assert!(!key_matches_certificate(&other_key, &rsa));
    assert!(!key_matches_certificate(&ec_key, &rsa));
    assert!(!key_matches_certificate(&rsa_key, &ec));
}

#[test]
fn identity_key_in_pkcs1_and_sec1_form_gives_the_same_canonical_pkcs8() {
    let dir = Dir::new();
    let (rsa_pem, rsa_key_pem) = rsa_self_signed(&dir, "rsa");
    let (ec_pem, ec_key_pem) = ec_self_signed(&dir, "ec");
    dir.openssl(&["rsa", "-in", "rsa.key", "-traditional", "-out", "rsa.pkcs1"]);
    dir.openssl(&["ec", "-in", "ec.key", "-out", "ec.sec1"]);
    assert!(
        dir.read("rsa.pkcs1")
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    assert!(
        dir.read("ec.sec1")
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );

    for (pkcs8, other_form, cert) in [
        (&rsa_key_pem, dir.read("rsa.pkcs1"), &rsa_pem),
        (&ec_key_pem, dir.read("ec.sec1"), &ec_pem),
    ] {
        let a = parse_identity_key(pkcs8).unwrap();
        let b = parse_identity_key(&other_form).unwrap();
        assert_eq!(a, b);
        assert!(a.pkcs8_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(key_matches_certificate(
            &b,
            &parse_certificate(cert).unwrap()
        ));
    }

    // OpenSSL reads the canonical PKCS#8 and derives the certificate's public key from it.
    let key = parse_identity_key(&rsa_key_pem).unwrap();
    dir.write("canonical.key", &key.pkcs8_pem);
    let from_key = dir.openssl(&["pkey", "-in", "canonical.key", "-pubout"]);
    let from_cert = dir.openssl(&["x509", "-in", "rsa.crt", "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);
}

#[test]
fn identity_key_next_to_its_certificate_in_one_file_is_accepted() {
    let dir = Dir::new();
    let (pem, key_pem) = ec_self_signed(&dir, "ec");
    let combined = format!("{pem}{key_pem}");
    let key = parse_identity_key(&combined).unwrap();
    assert_eq!(key, parse_identity_key(&key_pem).unwrap());
}

#[test]
fn encrypted_and_ed25519_identity_keys_are_rejected() {
    let dir = Dir::new();
    rsa_self_signed(&dir, "rsa");
    dir.openssl(&[
        "pkey",
        "-in",
        "rsa.key",
        "-aes-256-cbc",
        "-passout",
        "pass:pw",
        "-out",
        "enc.key",
    ]);
    let err = parse_identity_key(&dir.read("enc.key")).unwrap_err();
    assert_eq!(err.0, ENCRYPTED);

    dir.openssl(&["genpkey", "-algorithm", "ED25519", "-out", "ed.key"]);
    let err = parse_identity_key(&dir.read("ed.key")).unwrap_err();
    assert!(err.0.contains("Ed25519"), "{err}");

    let err = parse_identity_key(&dir.read("rsa.crt")).unwrap_err();
    assert!(err.0.contains("only a certificate"), "{err}");
}

#[test]
fn pem_with_two_certificates_returns_the_second_as_chain() {
    let dir = Dir::new();
    rsa_self_signed(&dir, "ca");
    dir.openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=leaf.example",
    ]);
    dir.openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "10",
        "-out",
        "leaf.crt",
    ]);
    let bundle = format!("{}{}", dir.read("leaf.crt"), dir.read("ca.crt"));
    let cert = parse_certificate(&bundle).unwrap();
    assert_agrees_with_openssl(&dir, "leaf.crt", &cert);
    assert_eq!(cert.subject, "CN=leaf.example");
    assert_eq!(cert.issuer, "O=Example,CN=Custos test");
    assert!(!cert.is_ca);
    assert_eq!(cert.chain.len(), 1);
    assert_eq!(
        cert.chain[0],
        parse_certificate(&dir.read("ca.crt")).unwrap().der
    );
    assert_eq!(
        cert.pem,
        dir.read("leaf.crt"),
        "pem holds the first certificate only"
    );

    // A broken second certificate spoils the upload.
    let broken = format!(
        "{}-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n",
        dir.read("leaf.crt")
    );
    let err = parse_certificate(&broken).unwrap_err();
    assert!(err.0.contains("certificate 2"), "{err}");
}

#[test]
fn garbage_truncated_and_empty_certificate_pem_is_rejected() {
    let dir = Dir::new();
    let (pem, _) = rsa_self_signed(&dir, "rsa");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let cases = [
        String::new(),
        "\n  \n".to_owned(),
        "garbage".to_owned(),
        pem[..pem.len() / 2].to_owned(),
        shortened_second_line(&pem),
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_owned(),
        "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n".to_owned(),
        body.clone(),
    ];
    for input in &cases {
        let err = parse_certificate(input).unwrap_err();
        assert!(!err.0.is_empty());
        assert!(
            !err.0.contains(&body[..40]),
            "error echoes the input: {err}"
        );
    }
}

#[test]
fn private_key_where_a_certificate_is_expected_is_rejected_clearly() {
    let dir = Dir::new();
    let (pem, key_pem) = rsa_self_signed(&dir, "rsa");
    dir.openssl(&["rsa", "-in", "rsa.key", "-traditional", "-out", "rsa.pkcs1"]);
    for input in [
        key_pem.clone(),
        dir.read("rsa.pkcs1"),
        format!("{pem}{key_pem}"),
    ] {
        let err = parse_certificate(&input).unwrap_err();
        assert!(
            err.0
                .contains("expected a certificate but found a private key"),
            "{err}"
        );
        for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!err.0.contains(line));
        }
    }
}

#[test]
fn sps_one_line_pem_parses_to_the_same_certificate_after_unescape() {
    let dir = Dir::new();
    let (pem, _) = rsa_self_signed(&dir, "rsa");
    let one_line = pem.replace('\n', "\\n");
    assert!(!one_line.contains('\n'));
    let err = parse_certificate(&one_line).unwrap_err();
    assert!(err.0.contains("unescape"), "{err}");
    assert_eq!(unescape_pem(&one_line), pem);
    assert_eq!(
        parse_certificate(&unescape_pem(&one_line)).unwrap(),
        parse_certificate(&pem).unwrap()
    );
    assert_eq!(unescape_pem(&pem), pem, "real PEM is left alone");
}

#[test]
fn extended_key_usage_tells_a_time_stamping_certificate_from_others() {
    let dir = Dir::new();
    let eku = |name: &str, ext: Option<&str>| {
        let mut newkey = vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
        if let Some(ext) = ext {
            newkey.extend_from_slice(&["-addext", ext]);
        }
        let (pem, _) = self_signed(&dir, name, "/CN=TSA", &newkey);
        extended_key_usage(&parse_certificate(&pem).unwrap()).unwrap()
    };

    let tsa = eku("tsa", Some("extendedKeyUsage=critical,timeStamping")).unwrap();
    assert_eq!(tsa.purposes, [ID_KP_TIME_STAMPING]);
    assert!(tsa.critical && tsa.is_time_stamping_only());

    let not_critical = eku("nc", Some("extendedKeyUsage=timeStamping")).unwrap();
    assert!(!not_critical.critical);
    assert!(!not_critical.is_time_stamping_only());

    let two = eku(
        "two",
        Some("extendedKeyUsage=critical,timeStamping,serverAuth"),
    )
    .unwrap();
    assert_eq!(two.purposes, [ID_KP_TIME_STAMPING, "1.3.6.1.5.5.7.3.1"]);
    assert!(!two.is_time_stamping_only());

    let server = eku("srv", Some("extendedKeyUsage=critical,serverAuth")).unwrap();
    assert!(!server.is_time_stamping_only());

    assert_eq!(eku("none", None), None);
}

/// The PEM with its second line cut to 32 characters: still base64, no longer a certificate.
fn shortened_second_line(pem: &str) -> String {
    pem.lines()
        .enumerate()
        .map(|(i, l)| if i == 1 { &l[..32] } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}
