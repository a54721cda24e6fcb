//! SSH private and public keys, checked against `ssh-keygen` and `openssl`.

mod common;

use common::{Dir, first_two_fields, ssh_keygen_fingerprint, ssh_keygen_public};
use custos_keys::{
    SshPrivateKey, host_key_algorithm, host_key_selection, parse_ssh_private_key,
    parse_ssh_public_key, ssh_public_key_from_selection,
};

const ENCRYPTED: &str = "encrypted private keys are not supported; remove the passphrase";

/// Checks a parsed key against ssh-keygen's view of the original file, and checks that
/// ssh-keygen reads the re-encoded OpenSSH key back to the same public key.
fn assert_agrees_with_ssh_keygen(dir: &Dir, original: &str, key: &SshPrivateKey) {
    let expected_public = ssh_keygen_public(&dir.path(original));
    assert_eq!(key.public_key, expected_public);
    dir.write("derived.pub", &format!("{expected_public}\n"));
    assert_eq!(
        key.fingerprint,
        ssh_keygen_fingerprint(&dir.path("derived.pub"))
    );
    assert_eq!(
        key.algorithm,
        expected_public.split(' ').next().unwrap(),
        "algorithm is the public key's type"
    );

    assert!(
        key.openssh_pem
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    );
    let reencoded = dir.write("reencoded", &key.openssh_pem);
    assert_eq!(ssh_keygen_public(&reencoded), expected_public);
    assert_eq!(ssh_keygen_fingerprint(&reencoded), key.fingerprint);
    assert_eq!(common::ssh_keygen_bits(&reencoded), key.bits);
}

#[test]
fn ed25519_openssh_key_matches_pub_file_and_ssh_keygen_fingerprint() {
    let dir = Dir::new();
    let text = dir.ssh_keygen("id", "", &["-t", "ed25519"]);
    let key = parse_ssh_private_key(&text).unwrap();
    assert_eq!(key.algorithm, "ssh-ed25519");
    assert_eq!(key.bits, 256);
    assert_eq!(key.public_key, first_two_fields(&dir.read("id.pub")));
    assert_eq!(key.fingerprint, ssh_keygen_fingerprint(&dir.path("id")));
    assert_agrees_with_ssh_keygen(&dir, "id", &key);
}

#[test]
fn rsa_2048_openssh_key_matches_pub_file_and_reports_2048_bits() {
    let dir = Dir::new();
    let text = dir.ssh_keygen("id", "", &["-t", "rsa", "-b", "2048"]);
    let key = parse_ssh_private_key(&text).unwrap();
    assert_eq!(key.algorithm, "ssh-rsa");
    assert_eq!(key.bits, 2048);
    assert_eq!(key.public_key, first_two_fields(&dir.read("id.pub")));
    assert_eq!(key.fingerprint, ssh_keygen_fingerprint(&dir.path("id")));
    assert_agrees_with_ssh_keygen(&dir, "id", &key);
}

#[test]
fn ecdsa_p256_openssh_key_matches_pub_file() {
    let dir = Dir::new();
    let text = dir.ssh_keygen("id", "", &["-t", "ecdsa", "-b", "256"]);
    let key = parse_ssh_private_key(&text).unwrap();
    assert_eq!(key.algorithm, "ecdsa-sha2-nistp256");
    assert_eq!(key.bits, 256);
    assert_eq!(key.public_key, first_two_fields(&dir.read("id.pub")));
    assert_eq!(key.fingerprint, ssh_keygen_fingerprint(&dir.path("id")));
    assert_agrees_with_ssh_keygen(&dir, "id", &key);
}

#[test]
fn openssh_key_keeps_its_comment_and_tolerates_surrounding_whitespace_and_crlf() {
    let dir = Dir::new();
    let text = dir.ssh_keygen("id", "", &["-t", "ed25519"]);
    let plain = parse_ssh_private_key(&text).unwrap();
    let messy = format!("\n\n  {}  \n", text.replace('\n', "\r\n"));
    assert_eq!(parse_ssh_private_key(&messy).unwrap(), plain);
    let reencoded = dir.write("reencoded", &plain.openssh_pem);
    let out = common::run(
        std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&reencoded),
    );
    assert!(out.contains("test@custos"), "{out}");
}

#[test]
fn rsa_pkcs1_pem_key_from_ssh_keygen_is_accepted() {
    let dir = Dir::new();
    let text = dir.ssh_keygen("id", "", &["-t", "rsa", "-b", "2048", "-m", "PEM"]);
    assert!(text.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let key = parse_ssh_private_key(&text).unwrap();
    assert_eq!(key.algorithm, "ssh-rsa");
    assert_eq!(key.bits, 2048);
    assert_eq!(key.public_key, first_two_fields(&dir.read("id.pub")));
    assert_agrees_with_ssh_keygen(&dir, "id", &key);
}

#[test]
fn rsa_pkcs1_pem_key_from_openssl_traditional_is_accepted() {
    let dir = Dir::new();
    dir.openssl(&["genrsa", "-traditional", "-out", "id", "3072"]);
    let text = dir.read("id");
    assert!(text.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let key = parse_ssh_private_key(&text).unwrap();
    assert_eq!(key.bits, 3072);
    assert_agrees_with_ssh_keygen(&dir, "id", &key);
}

#[test]
fn pkcs8_rsa_and_p256_keys_from_openssl_genpkey_are_accepted() {
    let dir = Dir::new();
    dir.openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "rsa",
    ]);
    dir.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "ec",
    ]);
    for (name, algorithm) in [("rsa", "ssh-rsa"), ("ec", "ecdsa-sha2-nistp256")] {
        let text = dir.read(name);
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
        let key = parse_ssh_private_key(&text).unwrap();
        assert_eq!(key.algorithm, algorithm);
        assert_agrees_with_ssh_keygen(&dir, name, &key);
    }
}

#[test]
fn pkcs8_ed25519_key_has_the_public_key_openssl_derives() {
    // ssh-keygen 9.2 cannot read PKCS#8 Ed25519, so the oracle is `openssl pkey -pubout`:
    // the last 32 bytes of the SubjectPublicKeyInfo are the raw public key, which are also
    // the last 32 bytes of the SSH blob.
    let dir = Dir::new();
    dir.openssl(&["genpkey", "-algorithm", "ED25519", "-out", "id"]);
    let key = parse_ssh_private_key(&dir.read("id")).unwrap();
    assert_eq!(key.algorithm, "ssh-ed25519");
    assert_eq!(key.bits, 256);

    dir.openssl(&[
        "pkey", "-in", "id", "-pubout", "-outform", "DER", "-out", "spki.der",
    ]);
    let spki = std::fs::read(dir.path("spki.der")).unwrap();
    let blob = base64_decode(key.public_key.split(' ').nth(1).unwrap());
    assert_eq!(&blob[blob.len() - 32..], &spki[spki.len() - 32..]);

    let reencoded = dir.write("reencoded", &key.openssh_pem);
    assert_eq!(ssh_keygen_public(&reencoded), key.public_key);
    assert_eq!(ssh_keygen_fingerprint(&reencoded), key.fingerprint);
}

#[test]
fn sec1_p256_key_is_accepted_with_or_without_ec_parameters_block() {
    let dir = Dir::new();
    dir.openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        "with-params",
    ]);
    dir.openssl(&["ec", "-in", "with-params", "-out", "plain"]);
    let with_params = dir.read("with-params");
    assert!(with_params.contains("-----BEGIN EC PARAMETERS-----"));
    assert!(
        dir.read("plain")
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    let a = parse_ssh_private_key(&with_params).unwrap();
    let b = parse_ssh_private_key(&dir.read("plain")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.algorithm, "ecdsa-sha2-nistp256");
    assert_agrees_with_ssh_keygen(&dir, "plain", &a);
}

#[test]
fn passphrase_protected_keys_are_rejected_in_every_format() {
    let dir = Dir::new();
    let openssh = dir.ssh_keygen("openssh", "secret pass", &["-t", "ed25519"]);
    let traditional = dir.ssh_keygen(
        "trad",
        "secret pass",
        &["-t", "rsa", "-b", "2048", "-m", "PEM"],
    );
    assert!(traditional.contains("Proc-Type: 4,ENCRYPTED"));
    dir.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-aes-256-cbc",
        "-pass",
        "pass:secret",
        "-out",
        "pkcs8",
    ]);
    let pkcs8 = dir.read("pkcs8");
    assert!(pkcs8.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    dir.openssl(&[
        "ec",
        "-in",
        "pkcs8",
        "-passin",
        "pass:secret",
        "-aes128",
        "-passout",
        "pass:x",
        "-out",
        "sec1",
    ]);
    let sec1 = dir.read("sec1");
    assert!(sec1.contains("Proc-Type: 4,ENCRYPTED"));

    for text in [&openssh, &traditional, &pkcs8, &sec1] {
        let err = parse_ssh_private_key(text).unwrap_err();
        assert_eq!(err.0, ENCRYPTED);
        assert_eq!(err.to_string(), ENCRYPTED);
    }
}

#[test]
fn garbage_truncated_and_wrong_kind_inputs_are_rejected_without_echoing_the_key() {
    let dir = Dir::new();
    let text = dir.ssh_keygen("id", "", &["-t", "rsa", "-b", "2048"]);
    let body_lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let half = &text[..text.len() / 2];
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(3); // a 70-column body line missing: the base64 no longer lines up
    let missing_line = lines.join("\n");
    let der = base64_decode(&body_lines.concat());
    let half_der = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
        base64_encode(&der[..der.len() / 2])
    );

    let cases: Vec<(String, &str)> = vec![
        (String::new(), "no private key"),
        ("   \n ".into(), "no private key"),
        ("hello world".into(), "not a PEM private key"),
        (half.to_owned(), "no END line"),
        (missing_line, "not valid base64"),
        (half_der, "malformed OpenSSH private key"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----".into(),
            "malformed",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----".into(),
            "malformed PKCS#8",
        ),
        (dir.read("id.pub"), "public key"),
        ("PuTTY-User-Key-File-3: ssh-ed25519\n".into(), "PuTTY"),
    ];
    for (input, expected) in &cases {
        let err = parse_ssh_private_key(input).unwrap_err();
        assert!(err.0.contains(expected), "{input:?} -> {err}");
        for line in &body_lines {
            assert!(!err.0.contains(line), "error echoes key material: {err}");
        }
    }
}

#[test]
fn dsa_and_p384_private_keys_are_rejected_as_unsupported() {
    let dir = Dir::new();
    let dsa = dir.ssh_keygen("dsa", "", &["-t", "dsa"]);
    let p384 = dir.ssh_keygen("p384", "", &["-t", "ecdsa", "-b", "384"]);
    let err = parse_ssh_private_key(&dsa).unwrap_err();
    assert!(
        err.0.contains("unsupported SSH private key type 'ssh-dss'"),
        "{err}"
    );
    let err = parse_ssh_private_key(&p384).unwrap_err();
    assert!(err.0.contains("'ecdsa-sha2-nistp384'"), "{err}");
}

#[test]
fn two_private_keys_in_one_upload_are_rejected() {
    let dir = Dir::new();
    let a = dir.ssh_keygen("a", "", &["-t", "ed25519"]);
    let b = dir.ssh_keygen("b", "", &["-t", "ed25519"]);
    let err = parse_ssh_private_key(&format!("{a}{b}")).unwrap_err();
    assert!(err.0.contains("exactly one private key"), "{err}");
}

#[test]
fn public_key_lines_with_and_without_comment_and_bare_blob_parse_alike() {
    let dir = Dir::new();
    for (name, args, algorithm) in [
        ("ed", &["-t", "ed25519"][..], "ssh-ed25519"),
        ("rsa", &["-t", "rsa", "-b", "2048"][..], "ssh-rsa"),
        (
            "p256",
            &["-t", "ecdsa", "-b", "256"][..],
            "ecdsa-sha2-nistp256",
        ),
        (
            "p384",
            &["-t", "ecdsa", "-b", "384"][..],
            "ecdsa-sha2-nistp384",
        ),
        (
            "p521",
            &["-t", "ecdsa", "-b", "521"][..],
            "ecdsa-sha2-nistp521",
        ),
        ("dsa", &["-t", "dsa"][..], "ssh-dss"),
    ] {
        dir.ssh_keygen(name, "", args);
        let line = dir.read(&format!("{name}.pub"));
        let with_comment = parse_ssh_public_key(&line).unwrap();
        let without = parse_ssh_public_key(&first_two_fields(&line)).unwrap();
        let blob = line.split_whitespace().nth(1).unwrap();
        let bare = parse_ssh_public_key(blob).unwrap();
        assert_eq!(with_comment, without);
        assert_eq!(with_comment, bare);
        assert_eq!(with_comment.algorithm, algorithm);
        assert_eq!(with_comment.base64, blob);
        assert_eq!(
            with_comment.fingerprint,
            ssh_keygen_fingerprint(&dir.path(&format!("{name}.pub")))
        );
        // The same key via the SPS selection form.
        let selection = host_key_selection(algorithm).unwrap();
        assert_eq!(
            ssh_public_key_from_selection(selection, blob).unwrap(),
            bare
        );
    }
}

#[test]
fn corrupted_public_key_blobs_are_rejected() {
    let dir = Dir::new();
    dir.ssh_keygen("p256", "", &["-t", "ecdsa", "-b", "256"]);
    let line = dir.read("p256.pub");
    let blob = line.split_whitespace().nth(1).unwrap().to_owned();

    // Truncated: the length-prefixed fields no longer fit.
    let truncated = &blob[..blob.len() - 8];
    assert!(parse_ssh_public_key(truncated).is_err());
    // Not base64 at all.
    assert!(parse_ssh_public_key("ssh-ed25519 AAAA!!!!").is_err());
    // Trailing garbage after the key fields.
    let mut bytes = base64_decode(&blob);
    bytes.extend_from_slice(b"junk");
    assert!(parse_ssh_public_key(&base64_encode(&bytes)).is_err());
    // A point that is not on the curve (last coordinate byte changed).
    let mut bytes = base64_decode(&blob);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let err = parse_ssh_public_key(&base64_encode(&bytes)).unwrap_err();
    assert!(err.0.contains("not a point on the curve"), "{err}");
    // Empty input.
    assert!(parse_ssh_public_key("  ").is_err());
}

#[test]
fn blob_whose_algorithm_disagrees_with_the_prefix_is_rejected() {
    let dir = Dir::new();
    dir.ssh_keygen("ed", "", &["-t", "ed25519"]);
    let blob = dir
        .read("ed.pub")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let err = parse_ssh_public_key(&format!("ssh-rsa {blob} me@host")).unwrap_err();
    assert!(
        err.0.contains("ssh-ed25519") && err.0.contains("ssh-rsa"),
        "{err}"
    );
    let err = parse_ssh_public_key(&format!("ssh-foo {blob}")).unwrap_err();
    assert!(err.0.contains("unsupported"), "{err}");
}

#[test]
fn host_key_selection_maps_algorithms_to_sps_names_and_back() {
    assert_eq!(host_key_selection("ssh-rsa"), Some("rsa"));
    assert_eq!(host_key_selection("ssh-dss"), Some("dss"));
    assert_eq!(host_key_selection("ssh-ed25519"), Some("ed25519"));
    for curve in ["256", "384", "521"] {
        assert_eq!(
            host_key_selection(&format!("ecdsa-sha2-nistp{curve}")),
            Some("ecdsa")
        );
    }
    assert_eq!(host_key_selection("rsa"), Some("ssh-rsa"));
    assert_eq!(host_key_selection("dss"), Some("ssh-dss"));
    assert_eq!(host_key_selection("dsa"), Some("ssh-dss"));
    assert_eq!(host_key_selection("ed25519"), Some("ssh-ed25519"));
    assert_eq!(host_key_algorithm("RSA"), Some("ssh-rsa"));
    // ECDSA needs the blob for its curve.
    assert_eq!(host_key_selection("ecdsa"), None);
    assert_eq!(host_key_algorithm("ecdsa"), None);
    assert_eq!(host_key_selection("x509v3-sign-rsa"), None);
}

#[test]
fn selection_form_uses_the_blob_for_the_ecdsa_curve_and_rejects_disagreement() {
    let dir = Dir::new();
    dir.ssh_keygen("p384", "", &["-t", "ecdsa", "-b", "384"]);
    dir.ssh_keygen("ed", "", &["-t", "ed25519"]);
    dir.ssh_keygen("dsa", "", &["-t", "dsa"]);
    let blob = |name: &str| {
        dir.read(&format!("{name}.pub"))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    let key = ssh_public_key_from_selection("ecdsa", &blob("p384")).unwrap();
    assert_eq!(key.algorithm, "ecdsa-sha2-nistp384");
    assert_eq!(
        ssh_public_key_from_selection("dsa", &blob("dsa"))
            .unwrap()
            .algorithm,
        "ssh-dss"
    );
    let err = ssh_public_key_from_selection("rsa", &blob("ed")).unwrap_err();
    assert!(err.0.contains("does not match"), "{err}");
    assert!(ssh_public_key_from_selection("ecdsa", &blob("ed")).is_err());
    assert!(ssh_public_key_from_selection("x509", &blob("ed")).is_err());
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
