//! Interoperability with the `openssl` command line as the independent peer: our signatures
//! and tokens verify with `openssl cms -verify` / `openssl ts -verify`, and what OpenSSL signs
//! or stamps verifies with ours. Keys and certificates are made by OpenSSL in a temporary
//! directory with a configuration file of our own, so the host's openssl.cnf does not matter.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use custos_evidence::signature::{
    SigningIdentity, certificates_from_pem, check_issued_by, sign_detached, verify_detached,
};
use custos_evidence::timestamp::{
    DEFAULT_POLICY_OID, LocalTsa, TimestampRequest, request, request_remote, verify_token,
};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const OPENSSL_CNF: &str = r#"
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[leaf_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[tsa_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash

[tsa_noncritical_ext]
basicConstraints = critical,CA:FALSE
extendedKeyUsage = timeStamping

[tsa_self_ext]
subjectKeyIdentifier = hash
extendedKeyUsage = critical,timeStamping
"#;

/// A temporary directory with our openssl.cnf, and helpers to run openssl in it.
struct Lab {
    dir: tempfile::TempDir,
}

#[derive(Clone, Copy)]
enum Key {
    Rsa,
    Ec,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("openssl.cnf"), OPENSSL_CNF).unwrap();
        Lab { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path(name), bytes).unwrap();
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    fn text(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// Runs `openssl` with the whitespace-separated words of `line`, then `extra` (for
    /// arguments with spaces, such as subjects).
    fn run(&self, line: &str, extra: &[&str]) -> Output {
        let mut args: Vec<&str> = line.split_whitespace().collect();
        args.extend(extra);
        openssl_in(self.dir.path(), &args)
    }

    /// Like `run`, and fails the test with openssl's output when openssl fails.
    fn ok(&self, line: &str, extra: &[&str]) -> Output {
        let output = self.run(line, extra);
        assert!(
            output.status.success(),
            "openssl {line} {extra:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// A self-signed CA: `<name>.pem`, `<name>.key`.
    fn ca(&self, name: &str, subject: &str) {
        self.ok(
            &format!(
                "req -x509 -config openssl.cnf -newkey rsa:2048 -nodes -keyout {name}.key \
                 -out {name}.pem -days 30 -extensions ca_ext"
            ),
            &["-subj", subject],
        );
    }

    /// A certificate issued by the CA `ca` (or self-signed when `ca` is None), with the
    /// extension section `extensions`: `<name>.pem`, `<name>.key` (PKCS#8).
    fn cert(&self, name: &str, subject: &str, key: Key, ca: Option<&str>, extensions: &str) {
        let newkey = match key {
            Key::Rsa => "-newkey rsa:2048",
            Key::Ec => "-newkey ec -pkeyopt ec_paramgen_curve:P-256",
        };
        let issuer = ca.map_or_else(String::new, |ca| format!("-CA {ca}.pem -CAkey {ca}.key"));
        self.ok(
            &format!(
                "req -x509 -config openssl.cnf -nodes {newkey} -keyout {name}.key \
                 -out {name}.pem -days 30 -extensions {extensions} {issuer}"
            ),
            &["-subj", subject],
        );
    }

    fn identity(&self, name: &str) -> SigningIdentity {
        SigningIdentity::from_pem(
            &self.text(&format!("{name}.pem")),
            &self.text(&format!("{name}.key")),
        )
        .unwrap()
    }

    fn der(&self, name: &str) -> Vec<u8> {
        certificates_from_pem(&self.text(&format!("{name}.pem")))
            .unwrap()
            .remove(0)
    }

    /// An openssl `ts -reply` configuration in `<name>.cnf` (TSA `tsa.pem`/`tsa.key`).
    fn tsa_config(&self, name: &str, ess_cert_id_alg: &str) {
        let dir = self.dir.path().display();
        self.write("tsaserial", b"01\n");
        let cnf = format!(
            "[tsa]\n\
             default_tsa = tsa1\n\
             [tsa1]\n\
             serial = {dir}/tsaserial\n\
             crypto_device = builtin\n\
             signer_digest = sha256\n\
             default_policy = 1.2.3.4.1\n\
             other_policies = 1.2.3.4.5, {DEFAULT_POLICY_OID}\n\
             digests = sha256, sha384, sha512\n\
             accuracy = secs:1\n\
             clock_precision_digits = 3\n\
             ordering = no\n\
             tsa_name = yes\n\
             ess_cert_id_chain = no\n\
             ess_cert_id_alg = {ess_cert_id_alg}\n"
        );
        self.write(&format!("{name}.cnf"), cnf.as_bytes());
    }
}

fn openssl_in(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .env("OPENSSL_CONF", dir.join("openssl.cnf"))
        .output()
        .expect("the openssl command line is installed")
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn digest_of(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

// ---------------------------------------------------------------------------------------------
// 1, 2: CMS signatures
// ---------------------------------------------------------------------------------------------

#[test]
fn our_detached_signatures_verify_with_openssl_cms() {
    let lab = Lab::new();
    lab.ca("ca", "/CN=Test CA");
    lab.cert(
        "rsa",
        "/O=Custos/CN=Signer RSA",
        Key::Rsa,
        Some("ca"),
        "leaf_ext",
    );
    lab.cert("ec", "/CN=Signer EC", Key::Ec, Some("ca"), "leaf_ext");
    let content = b"chain head \x00\x01\x02 of a trail\n".to_vec();
    lab.write("content.bin", &content);
    let mut flipped = content.clone();
    flipped[3] ^= 0x01;
    lab.write("flipped.bin", &flipped);

    for (name, algorithm) in [("rsa", "rsa-sha256"), ("ec", "ecdsa-p256-sha256")] {
        let identity = lab.identity(name);
        let at = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap(); // 2026-01-01
        let signature = sign_detached(&identity, &content, at).unwrap();
        lab.write("sig.der", &signature);
        let verify = |content_file: &str| {
            lab.run(
                &format!(
                    "cms -verify -inform DER -in sig.der -content {content_file} -binary \
                     -CAfile ca.pem -purpose any -out /dev/null"
                ),
                &[],
            )
        };
        let good = verify("content.bin");
        assert!(
            good.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&good.stderr)
        );
        assert!(!verify("flipped.bin").status.success(), "{name}");

        // Our own verifier agrees, and reports what we signed.
        let info = verify_detached(&signature, &content).unwrap();
        assert_eq!(info.algorithm, algorithm);
        assert_eq!(info.signing_time, Some(at));
        assert_eq!(info.signer_subject, identity.subject());
        assert_eq!(info.signer_issuer, "CN=Test CA");
        assert_eq!(info.signer_certificate_der, identity.certificate_der());
        assert!(verify_detached(&signature, &flipped).is_err());
        assert_eq!(
            check_issued_by(&info.signer_certificate_der, &[lab.der("ca")]).unwrap(),
            "CN=Test CA"
        );
    }
    assert_eq!(lab.identity("rsa").subject(), "CN=Signer RSA,O=Custos");
}

#[test]
fn openssl_detached_signatures_verify_with_ours_and_trust_is_checked() {
    let lab = Lab::new();
    lab.ca("ca", "/CN=Test CA");
    lab.ca("other", "/CN=Unrelated CA");
    // Same subject as the real CA, other key: the name alone must not be enough.
    lab.ca("impostor", "/CN=Test CA");
    lab.cert("rsa", "/CN=OpenSSL RSA", Key::Rsa, Some("ca"), "leaf_ext");
    lab.cert("ec", "/CN=OpenSSL EC", Key::Ec, Some("ca"), "leaf_ext");
    let content = b"the head of another trail".to_vec();
    lab.write("content.bin", &content);

    for (name, extra, algorithm) in [
        ("rsa", None, "rsa-sha256"),
        ("ec", None, "ecdsa-p256-sha256"),
        // -keyid names the signer by subjectKeyIdentifier instead of issuer and serial.
        ("rsa", Some("-keyid"), "rsa-sha256"),
        ("ec", Some("-keyid"), "ecdsa-p256-sha256"),
    ] {
        lab.ok(
            &format!(
                "cms -sign -binary -outform DER -in content.bin -signer {name}.pem \
                 -inkey {name}.key -md sha256 -out sig.der"
            ),
            extra.as_slice(),
        );
        let signature = lab.read("sig.der");
        let info = verify_detached(&signature, &content)
            .unwrap_or_else(|e| panic!("{name} {extra:?}: {e}"));
        assert_eq!(info.algorithm, algorithm);
        assert_eq!(info.signer_issuer, "CN=Test CA");
        assert!(info.signing_time.is_some());
        assert!(verify_detached(&signature, b"the head of another trail!").is_err());
        assert!(verify_detached(&signature, b"").is_err());

        let certificate = info.signer_certificate_der;
        assert_eq!(
            check_issued_by(&certificate, &[lab.der("other"), lab.der("ca")]).unwrap(),
            "CN=Test CA"
        );
        let refused = check_issued_by(&certificate, &[lab.der("other")]).unwrap_err();
        assert!(refused.0.contains("not issued by"), "{refused}");
        assert!(check_issued_by(&certificate, &[lab.der("impostor")]).is_err());
        assert!(check_issued_by(&certificate, &[]).is_err());
        // A certificate in the trusted set is trusted as itself.
        assert_eq!(
            check_issued_by(&certificate, std::slice::from_ref(&certificate)).unwrap(),
            info.signer_subject
        );
    }

    // An encapsulating (-nodetach) signature is not a detached one.
    lab.ok(
        "cms -sign -binary -nodetach -outform DER -in content.bin -signer rsa.pem \
         -inkey rsa.key -md sha256 -out attached.der",
        &[],
    );
    assert!(verify_detached(&lab.read("attached.der"), &content).is_err());
}

#[test]
fn certificate_bundles_and_key_formats() {
    let lab = Lab::new();
    lab.ca("ca", "/CN=Test CA");
    lab.cert("rsa", "/CN=Signer RSA", Key::Rsa, Some("ca"), "leaf_ext");
    lab.cert("ec", "/CN=Signer EC", Key::Ec, Some("ca"), "leaf_ext");
    let bundle = format!("{}{}", lab.text("ca.pem"), lab.text("rsa.pem"));
    let ders = certificates_from_pem(&bundle).unwrap();
    assert_eq!(ders, vec![lab.der("ca"), lab.der("rsa")]);
    assert!(certificates_from_pem("no PEM here").is_err());
    assert!(certificates_from_pem(&lab.text("rsa.key")).is_err());

    // PKCS#1 "RSA PRIVATE KEY" and SEC1 "EC PRIVATE KEY" load as well as PKCS#8.
    for name in ["rsa", "ec"] {
        let traditional = lab.ok(&format!("pkey -in {name}.key -traditional"), &[]);
        let pem = String::from_utf8(traditional.stdout).unwrap();
        assert!(!pem.contains("BEGIN PRIVATE KEY"), "{pem}");
        let identity = SigningIdentity::from_pem(&lab.text(&format!("{name}.pem")), &pem).unwrap();
        let signature = sign_detached(&identity, b"x", now()).unwrap();
        verify_detached(&signature, b"x").unwrap();
        // The Debug form names the subject, never the key.
        let debug = format!("{identity:?}");
        assert!(debug.contains("Signer"), "{debug}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
    }

    // A bundle where one certificate is expected is refused.
    assert!(SigningIdentity::from_pem(&bundle, &lab.text("rsa.key")).is_err());
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let lab = Lab::new();
    lab.cert("a", "/CN=A", Key::Rsa, None, "leaf_ext");
    lab.cert("b", "/CN=B", Key::Rsa, None, "leaf_ext");
    lab.cert("c", "/CN=C", Key::Ec, None, "leaf_ext");
    for key in ["b.key", "c.key"] {
        let err = SigningIdentity::from_pem(&lab.text("a.pem"), &lab.text(key)).unwrap_err();
        assert!(err.0.contains("does not belong"), "{err}");
        assert!(!err.0.contains("PRIVATE"), "{err}");
    }
    assert!(SigningIdentity::from_pem(&lab.text("a.pem"), "not a key").is_err());
    assert!(SigningIdentity::from_pem("not a certificate", &lab.text("a.key")).is_err());
}

// ---------------------------------------------------------------------------------------------
// 3, 4, 7: the built-in TSA
// ---------------------------------------------------------------------------------------------

#[test]
fn local_tsa_tokens_verify_with_openssl_ts_and_with_ours() {
    let lab = Lab::new();
    lab.ca("ca", "/CN=Test CA");
    lab.cert(
        "tsa-rsa",
        "/CN=Custos TSA RSA",
        Key::Rsa,
        Some("ca"),
        "tsa_ext",
    );
    lab.cert(
        "tsa-ec",
        "/CN=Custos TSA EC",
        Key::Ec,
        Some("ca"),
        "tsa_ext",
    );
    let data = b"a chain head to stamp".to_vec();
    lab.write("data.bin", &data);
    let digest = digest_of(&data);
    let other = digest_of(b"other data");

    for (name, subject) in [
        ("tsa-rsa", "CN=Custos TSA RSA"),
        ("tsa-ec", "CN=Custos TSA EC"),
    ] {
        let tsa = LocalTsa::new(lab.identity(name)).unwrap();
        assert_eq!(tsa.certificate_der(), lab.der(name).as_slice());
        // Fractional seconds in genTime, and none.
        for at in [
            OffsetDateTime::from_unix_timestamp_nanos(1_767_225_600_250_000_000).unwrap(),
            OffsetDateTime::from_unix_timestamp(1_767_225_601).unwrap(),
        ] {
            let token = tsa.stamp(&digest, None, Some(&[0x01, 0x02]), at).unwrap();
            lab.write("token.der", &token);
            let verify = |hex_digest: &str| {
                lab.run(
                    &format!(
                        "ts -verify -digest {hex_digest} -in token.der -token_in -CAfile ca.pem"
                    ),
                    &[],
                )
            };
            let good = verify(&hex::encode(digest));
            assert!(
                good.status.success(),
                "{name}: {}{}",
                String::from_utf8_lossy(&good.stdout),
                String::from_utf8_lossy(&good.stderr)
            );
            assert!(!verify(&hex::encode(other)).status.success(), "{name}");
            let by_data = lab.run(
                "ts -verify -data data.bin -in token.der -token_in -CAfile ca.pem",
                &[],
            );
            assert!(by_data.status.success(), "{name}");

            let info = verify_token(&token, &digest).unwrap();
            assert_eq!(info.time, at);
            assert_eq!(info.tsa_subject, subject);
            assert_eq!(info.tsa_certificate_der, lab.der(name));
            assert_eq!(info.policy, DEFAULT_POLICY_OID);
            assert!(!info.serial_hex.is_empty() && info.serial_hex.len() <= 32);
            let err = verify_token(&token, &other).unwrap_err();
            assert!(err.0.contains("other data"), "{err}");
            assert_eq!(
                check_issued_by(&info.tsa_certificate_der, &[lab.der("ca")]).unwrap(),
                "CN=Test CA"
            );
        }

        // An explicit policy is carried into the token; two tokens get different serials.
        let a = tsa.stamp(&digest, Some("1.2.3.4.5"), None, now()).unwrap();
        let b = tsa.stamp(&digest, Some("1.2.3.4.5"), None, now()).unwrap();
        let (a, b) = (
            verify_token(&a, &digest).unwrap(),
            verify_token(&b, &digest).unwrap(),
        );
        assert_eq!(a.policy, "1.2.3.4.5");
        assert_ne!(a.serial_hex, b.serial_hex);
        assert!(tsa.stamp(&digest, Some("1.2.x"), None, now()).is_err());

        // A chain-head signature is not a token, nor a token a signature.
        let signature = sign_detached(&lab.identity(name), &data, now()).unwrap();
        assert!(verify_token(&signature, &digest).is_err());
        let token = tsa.stamp(&digest, None, None, now()).unwrap();
        assert!(verify_detached(&token, &data).is_err());
    }
}

#[test]
fn local_tsa_answers_openssl_queries() {
    let lab = Lab::new();
    lab.ca("ca", "/CN=Test CA");
    lab.cert("tsa", "/CN=Custos TSA", Key::Ec, Some("ca"), "tsa_ext");
    let tsa = LocalTsa::new(lab.identity("tsa")).unwrap();
    lab.write("data.bin", b"data for openssl's query");

    // With and without a nonce, with and without -cert.
    for extra in [vec!["-cert"], vec!["-cert", "-no_nonce"], vec![]] {
        lab.ok("ts -query -data data.bin -sha256 -out req.tsq", &extra);
        let response = tsa.respond(&lab.read("req.tsq"), now());
        lab.write("resp.tsr", &response);
        let mut untrusted: &[&str] = &[];
        if !extra.contains(&"-cert") {
            // RFC 3161 §2.4.1: without certReq the certificate is left out of the token.
            untrusted = &["-untrusted", "tsa.pem"];
        }
        let output = lab.run(
            "ts -verify -in resp.tsr -queryfile req.tsq -CAfile ca.pem",
            untrusted,
        );
        assert!(
            output.status.success(),
            "{extra:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // Requests the TSA must refuse, with the failure openssl prints.
    for (args, failure) in [
        (
            vec!["-sha1"],
            "unrecognized or unsupported algorithm identifier",
        ),
        (
            vec!["-sha256", "-tspolicy", "1.2.3.9"],
            "policy is not supported",
        ),
    ] {
        lab.ok("ts -query -data data.bin -out bad.tsq", &args);
        lab.write("bad.tsr", &tsa.respond(&lab.read("bad.tsq"), now()));
        let text = lab.ok("ts -reply -in bad.tsr -text", &[]);
        let text = String::from_utf8_lossy(&text.stdout).to_string();
        assert!(text.contains("Status: Rejected"), "{text}");
        assert!(text.contains(failure), "{args:?}: {text}");
    }

    // Garbage gets a DER rejection openssl can read.
    for garbage in [&b""[..], b"\x30\x03\x02\x01", b"not a request"] {
        lab.write("garbage.tsr", &tsa.respond(garbage, now()));
        let text = lab.ok("ts -reply -in garbage.tsr -text", &[]);
        let text = String::from_utf8_lossy(&text.stdout).to_string();
        assert!(
            text.contains("the data submitted has the wrong format"),
            "{text}"
        );
    }

    // Our own request, answered by the built-in TSA, round-trips.
    let digest = digest_of(b"ours");
    let ours = request(&digest, Some(DEFAULT_POLICY_OID)).unwrap();
    let token = ours
        .token_from_response(&tsa.respond(ours.der(), now()))
        .unwrap();
    assert_eq!(
        verify_token(&token, &digest).unwrap().policy,
        DEFAULT_POLICY_OID
    );
    let other_policy = request(&digest, Some("1.2.3")).unwrap();
    let err = other_policy
        .token_from_response(&tsa.respond(other_policy.der(), now()))
        .unwrap_err();
    assert!(err.0.contains("unacceptedPolicy"), "{err}");
}

#[test]
fn the_tsa_certificate_needs_a_critical_time_stamping_usage() {
    let lab = Lab::new();
    lab.cert("plain", "/CN=No EKU", Key::Ec, None, "leaf_ext");
    lab.cert(
        "noncritical",
        "/CN=Non-critical",
        Key::Ec,
        None,
        "tsa_noncritical_ext",
    );
    lab.cert("good", "/CN=Good", Key::Rsa, None, "tsa_ext");
    let err = LocalTsa::new(lab.identity("plain")).unwrap_err();
    assert!(err.0.contains("extendedKeyUsage"), "{err}");
    let err = LocalTsa::new(lab.identity("noncritical")).unwrap_err();
    assert!(err.0.contains("not critical"), "{err}");
    LocalTsa::new(lab.identity("good")).unwrap();
}

#[test]
fn the_generated_built_in_tsa_identity_makes_tokens_openssl_accepts() {
    let lab = Lab::new();
    let generated =
        custos_evidence::tsa_identity::generate_tsa_identity("Custos TSA", now()).unwrap();
    lab.write("tsa.pem", generated.certificate_pem.as_bytes());
    let identity =
        SigningIdentity::from_pem(&generated.certificate_pem, &generated.private_key_pem).unwrap();
    let tsa = LocalTsa::new(identity).unwrap();
    let digest = digest_of(b"built-in");
    lab.write("token.der", &tsa.stamp(&digest, None, None, now()).unwrap());
    lab.ok(
        &format!(
            "ts -verify -digest {} -in token.der -token_in -CAfile tsa.pem",
            hex::encode(digest)
        ),
        &[],
    );
}

// ---------------------------------------------------------------------------------------------
// 5: OpenSSL as the TSA
// ---------------------------------------------------------------------------------------------

/// A self-signed OpenSSL TSA (`tsa.pem`, `tsa.key`) and its `ts -reply` configurations.
fn openssl_tsa(lab: &Lab) {
    lab.cert("tsa", "/CN=TestTSA", Key::Rsa, None, "tsa_self_ext");
    lab.tsa_config("tsa-v2", "sha256");
    lab.tsa_config("tsa-v1", "sha1");
}

/// `openssl ts -reply` to the DER request `request`.
fn openssl_reply(lab: &Lab, config: &str, request: &[u8]) -> Vec<u8> {
    lab.write("query.tsq", request);
    lab.ok(
        &format!(
            "ts -reply -config {config} -queryfile query.tsq -inkey tsa.key -signer tsa.pem \
             -out reply.tsr"
        ),
        &[],
    );
    lab.read("reply.tsr")
}

#[test]
fn openssl_tsa_replies_to_our_requests_are_accepted() {
    let lab = Lab::new();
    openssl_tsa(&lab);
    let digest = digest_of(b"stamped by openssl");

    for config in ["tsa-v2.cnf", "tsa-v1.cnf"] {
        for (policy, expected) in [
            (None, "1.2.3.4.1"),
            (Some("1.2.3.4.5"), "1.2.3.4.5"),
            (Some(DEFAULT_POLICY_OID), DEFAULT_POLICY_OID),
        ] {
            let ours = request(&digest, policy).unwrap();
            let response = openssl_reply(&lab, config, ours.der());
            let token = ours
                .token_from_response(&response)
                .unwrap_or_else(|e| panic!("{config} {policy:?}: {e}"));
            let info = verify_token(&token, &digest)
                .unwrap_or_else(|e| panic!("{config} {policy:?}: {e}"));
            assert_eq!(info.policy, expected);
            assert_eq!(info.tsa_subject, "CN=TestTSA");
            assert_eq!(
                check_issued_by(&info.tsa_certificate_der, &[lab.der("tsa")]).unwrap(),
                "CN=TestTSA"
            );
            // clock_precision_digits = 3: genTime within a few seconds of now.
            assert!((now() - info.time).abs() < time::Duration::minutes(5));
            assert!(verify_token(&token, &digest_of(b"something else")).is_err());
        }
    }

    // A response to another request (other nonce, or other imprint) is refused.
    let ours = request(&digest, None).unwrap();
    let same_digest = request(&digest, None).unwrap();
    let err = ours
        .token_from_response(&openssl_reply(&lab, "tsa-v2.cnf", same_digest.der()))
        .unwrap_err();
    assert!(err.0.contains("nonce"), "{err}");
    let other_digest = request(&digest_of(b"other"), None).unwrap();
    let err = ours
        .token_from_response(&openssl_reply(&lab, "tsa-v2.cnf", other_digest.der()))
        .unwrap_err();
    assert!(err.0.contains("imprint"), "{err}");
    // A policy the TSA does not offer is refused by openssl, and the refusal is reported.
    let unknown = request(&digest, Some("1.2.3.4.99")).unwrap();
    let err = unknown
        .token_from_response(&openssl_reply(&lab, "tsa-v2.cnf", unknown.der()))
        .unwrap_err();
    assert!(err.0.contains("rejection (unacceptedPolicy)"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 6: a remote TSA over HTTP
// ---------------------------------------------------------------------------------------------

/// Serves one HTTP request on `listener`: reads the POST body and answers with `answer(body)`
/// = (status line, content type, body). Returns the request head it received.
async fn serve_once(
    listener: TcpListener,
    answer: impl FnOnce(Vec<u8>) -> (&'static str, &'static str, Vec<u8>),
) -> String {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the client closed the connection early");
        received.extend_from_slice(&buffer[..n]);
        if let Some(pos) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("the request has a Content-Length");
    while received.len() < head_end + length {
        let n = socket.read(&mut buffer).await.unwrap();
        assert!(n > 0);
        received.extend_from_slice(&buffer[..n]);
    }
    let body = received[head_end..head_end + length].to_vec();
    let (status, content_type, reply) = answer(body);
    let response_head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        reply.len()
    );
    socket.write_all(response_head.as_bytes()).await.unwrap();
    socket.write_all(&reply).await.unwrap();
    socket.shutdown().await.unwrap();
    head
}

async fn local_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/tsa", listener.local_addr().unwrap());
    (listener, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_remote_gets_a_token_from_an_http_tsa() {
    let lab = Lab::new();
    openssl_tsa(&lab);
    let dir = lab.dir.path().to_owned();
    let digest = digest_of(b"remote");
    let ours: TimestampRequest = request(&digest, None).unwrap();

    let (listener, url) = local_listener().await;
    let server = tokio::spawn(async move {
        serve_once(listener, move |body| {
            std::fs::write(dir.join("http.tsq"), &body).unwrap();
            let args = "ts -reply -config tsa-v2.cnf -queryfile http.tsq -inkey tsa.key \
                        -signer tsa.pem -out http.tsr";
            let args: Vec<&str> = args.split_whitespace().collect();
            let output = openssl_in(&dir, &args);
            assert!(output.status.success());
            (
                "200 OK",
                "application/timestamp-reply",
                std::fs::read(dir.join("http.tsr")).unwrap(),
            )
        })
        .await
    });
    let token = request_remote(&url, &ours, Duration::from_secs(20))
        .await
        .unwrap();
    let head = server.await.unwrap();
    assert!(head.starts_with("POST /tsa HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/timestamp-query"),
        "{head}"
    );
    let info = verify_token(&token, &digest).unwrap();
    assert_eq!(info.tsa_subject, "CN=TestTSA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_remote_reports_http_failures() {
    let ours = request(&digest_of(b"remote"), None).unwrap();

    // HTTP 500.
    let (listener, url) = local_listener().await;
    let server = tokio::spawn(serve_once(listener, |_| {
        ("500 Internal Server Error", "text/plain", b"down".to_vec())
    }));
    let err = request_remote(&url, &ours, Duration::from_secs(20))
        .await
        .unwrap_err();
    server.await.unwrap();
    assert!(err.0.contains("HTTP 500"), "{err}");

    // Wrong content type (a TimeStampResp body would not matter).
    let (listener, url) = local_listener().await;
    let server = tokio::spawn(serve_once(listener, |_| {
        (
            "200 OK",
            "text/html; charset=utf-8",
            b"<html></html>".to_vec(),
        )
    }));
    let err = request_remote(&url, &ours, Duration::from_secs(20))
        .await
        .unwrap_err();
    server.await.unwrap();
    assert!(err.0.contains("content type \"text/html\""), "{err}");

    // The right content type with a body that is not a TimeStampResp.
    let (listener, url) = local_listener().await;
    let server = tokio::spawn(serve_once(listener, |_| {
        ("200 OK", "application/timestamp-reply", b"garbage".to_vec())
    }));
    let err = request_remote(&url, &ours, Duration::from_secs(20))
        .await
        .unwrap_err();
    server.await.unwrap();
    assert!(err.0.contains("TimeStampResp"), "{err}");

    // A closed port fails fast, well before the timeout.
    let (listener, url) = local_listener().await;
    drop(listener);
    let started = Instant::now();
    let err = request_remote(&url, &ours, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.0.contains("could not connect"), "{err}");
    assert!(!err.0.contains("127.0.0.1"), "the URL is not echoed: {err}");

    // A server that accepts and never answers runs into the timeout.
    let (listener, url) = local_listener().await;
    let silent = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(socket);
    });
    let started = Instant::now();
    let err = request_remote(&url, &ours, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.0.contains("did not answer"), "{err}");
    silent.abort();

    // Not an http(s) URL.
    assert!(
        request_remote("ftp://example.invalid/", &ours, Duration::from_secs(1))
            .await
            .is_err()
    );
    assert!(
        request_remote("not a url", &ours, Duration::from_secs(1))
            .await
            .is_err()
    );
}
