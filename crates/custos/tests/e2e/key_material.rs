//! Private keys (`/api/configuration/private_keys`), X.509 objects (`/api/configuration/x509`) and
//! secrets at rest (issue 3, seed 003). Key material is generated at test time with the real
//! `ssh-keygen` and `openssl` tools; the expected public keys and fingerprints are what those
//! tools print.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Client, Response, Server};

pub(crate) const PRIVATE_KEYS: &str = "/api/configuration/private_keys";
pub(crate) const X509: &str = "/api/configuration/x509";
pub(crate) const BACKUP: &str = "/api/configuration/policies/backup_policies";
pub(crate) const ARCHIVE: &str = "/api/configuration/policies/archive_cleanup_policies";
pub(crate) const AUDIT: &str = "/api/configuration/policies/audit_policies";

// ---------------------------------------------------------------------------------------------
// Fixtures: key material made by the real tools in a temporary directory.
// ---------------------------------------------------------------------------------------------

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tool output is UTF-8")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The kinds of SSH private keys the tests generate.
#[derive(Clone, Copy, Debug)]
pub(crate) enum KeyKind {
    /// `ssh-keygen -t ed25519` (OpenSSH format).
    Ed25519,
    /// `ssh-keygen -t rsa` (OpenSSH format).
    Rsa,
    /// `ssh-keygen -t rsa -m PEM` (PKCS#1, `BEGIN RSA PRIVATE KEY`).
    RsaPkcs1,
    /// `ssh-keygen -t rsa -m PKCS8` (`BEGIN PRIVATE KEY`).
    RsaPkcs8,
    /// `ssh-keygen -t ecdsa -b 256` (OpenSSH format).
    Ecdsa,
    /// `openssl ecparam -name prime256v1 -genkey -noout` (SEC1, `BEGIN EC PRIVATE KEY`).
    EcdsaSec1,
    /// `openssl genpkey -algorithm ed25519` (PKCS#8, `BEGIN PRIVATE KEY`).
    Ed25519Pkcs8,
}

/// An SSH key pair and what `ssh-keygen` says about it.
#[derive(Clone, Debug)]
pub(crate) struct SshKey {
    /// The private key file, as written by the tool.
    pub private: String,
    /// `"<algorithm> <base64 blob>"` (no comment).
    pub public: String,
    /// The public key line with a comment, as in an `authorized_keys` file.
    pub public_with_comment: String,
    /// First field of the public key, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The base64 public key blob.
    pub blob: String,
    pub bits: u64,
    /// `SHA256:…` as printed by `ssh-keygen -lf`.
    pub fingerprint: String,
}

/// Generates an SSH key pair of the given kind.
pub(crate) fn ssh_key(kind: KeyKind) -> SshKey {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("k");
    match kind {
        KeyKind::EcdsaSec1 => {
            run(Command::new("openssl")
                .args([
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                ])
                .arg(&file));
        }
        KeyKind::Ed25519Pkcs8 => {
            run(Command::new("openssl")
                .args(["genpkey", "-algorithm", "ed25519", "-out"])
                .arg(&file));
        }
        _ => {
            let args: &[&str] = match kind {
                KeyKind::Ed25519 => &["-t", "ed25519"],
                KeyKind::Rsa => &["-t", "rsa", "-b", "2048"],
                KeyKind::RsaPkcs1 => &["-t", "rsa", "-b", "2048", "-m", "PEM"],
                KeyKind::RsaPkcs8 => &["-t", "rsa", "-b", "2048", "-m", "PKCS8"],
                KeyKind::Ecdsa => &["-t", "ecdsa", "-b", "256"],
                KeyKind::EcdsaSec1 | KeyKind::Ed25519Pkcs8 => unreachable!(),
            };
            run(Command::new("ssh-keygen")
                .args(["-q", "-N", "", "-C", "custos-e2e"])
                .args(args)
                .arg("-f")
                .arg(&file));
        }
    }
    // ssh-keygen refuses to read private keys other users may read.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let public_line = match kind {
        // ssh-keygen cannot read PKCS#8 ed25519 keys: build the OpenSSH public key from the raw
        // 32-byte public key openssl prints (the last 32 bytes of the SubjectPublicKeyInfo DER).
        KeyKind::Ed25519Pkcs8 => {
            let der = Command::new("openssl")
                .args(["pkey", "-pubout", "-outform", "DER", "-in"])
                .arg(&file)
                .output()
                .expect("openssl pkey");
            assert!(der.status.success() && der.stdout.len() == 44, "{der:?}");
            let mut blob = Vec::new();
            for part in [&b"ssh-ed25519"[..], &der.stdout[12..]] {
                blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
                blob.extend_from_slice(part);
            }
            format!("ssh-ed25519 {}", BASE64.encode(blob))
        }
        _ => run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&file)),
    };
    let mut fields = public_line.split_whitespace();
    let algorithm = fields.next().expect("algorithm").to_string();
    let blob = fields.next().expect("blob").to_string();
    let public = format!("{algorithm} {blob}");
    let pub_file = dir.path().join("k.pub");
    std::fs::write(&pub_file, format!("{public} custos-e2e\n")).expect("write .pub");
    let listing = run(Command::new("ssh-keygen").arg("-lf").arg(&pub_file));
    let mut fields = listing.split_whitespace();
    let bits = fields.next().expect("bits").parse().expect("bits number");
    let fingerprint = fields.next().expect("fingerprint").to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{listing}");
    SshKey {
        private: read(&file),
        public_with_comment: format!("{public} custos-e2e"),
        public,
        algorithm,
        blob,
        bits,
        fingerprint,
    }
}

/// Private keys protected by the passphrase `secret`: an OpenSSH ed25519 key, a PKCS#1 PEM RSA key
/// and an encrypted PKCS#8 RSA key.
pub(crate) fn passphrase_protected_keys() -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut keys = Vec::new();
    for (name, args) in [
        ("ed", &["-t", "ed25519"][..]),
        ("rsa", &["-t", "rsa", "-b", "2048", "-m", "PEM"][..]),
    ] {
        let file = dir.path().join(name);
        run(Command::new("ssh-keygen")
            .args(["-q", "-N", "secret"])
            .args(args)
            .arg("-f")
            .arg(&file));
        keys.push(read(&file));
    }
    let file = dir.path().join("pkcs8");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .args(["-aes256", "-pass", "pass:secret", "-out"])
        .arg(&file));
    keys.push(read(&file));
    keys
}

/// A self-signed certificate with its private key, and what `openssl` says about it.
#[derive(Clone, Debug)]
pub(crate) struct Cert {
    pub certificate: String,
    pub private_key: String,
    /// SHA-256 fingerprint, lowercase hex with ':' (openssl's output without its prefix).
    pub fingerprint: String,
    /// Serial number, lowercase hex without leading zeros.
    pub serial: String,
    /// RFC 3339 (UTC) validity bounds.
    pub not_before: String,
    pub not_after: String,
    pub is_ca: bool,
}

fn openssl_cert(subject: &str, newkey: &[&str]) -> Cert {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("key.pem");
    let crt = dir.path().join("cert.pem");
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(newkey)
        .args(["-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-subj", subject, "-days", "30"]));
    let certificate = read(&crt);
    let info = run(Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-startdate", "-enddate", "-in"])
        .arg(&crt));
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} missing in {info}"))
            .trim()
            .to_string()
    };
    let text = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&crt));
    Cert {
        fingerprint: openssl_fingerprint(&certificate),
        serial: normalize_serial(&field("serial=")),
        not_before: openssl_date_to_rfc3339(&field("notBefore=")),
        not_after: openssl_date_to_rfc3339(&field("notAfter=")),
        is_ca: text.contains("CA:TRUE"),
        certificate,
        private_key: read(&key),
    }
}

/// `openssl req -x509 -newkey rsa:2048` with `-subj "/CN=<cn>/O=<o>"`.
pub(crate) fn rsa_cert(cn: &str, o: &str) -> Cert {
    openssl_cert(&format!("/CN={cn}/O={o}"), &["-newkey", "rsa:2048"])
}

/// An ECDSA P-256 self-signed certificate.
pub(crate) fn ec_cert(cn: &str) -> Cert {
    openssl_cert(
        &format!("/CN={cn}/O=Ec"),
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )
}

/// A leaf certificate (subject `/CN=Doe\, John/O=Ex`, with an RFC 4514 special character) signed
/// by a self-signed CA (`/CN=Test CA/O=Ex`); returns the leaf and the CA certificate PEM.
pub(crate) fn ca_signed_cert() -> (Cert, String) {
    let ca = rsa_cert("Test CA", "Ex");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_crt = dir.path().join("ca.pem");
    let ca_key = dir.path().join("ca.key");
    std::fs::write(&ca_crt, &ca.certificate).expect("write");
    std::fs::write(&ca_key, &ca.private_key).expect("write");
    let key = dir.path().join("leaf.key");
    let csr = dir.path().join("leaf.csr");
    let crt = dir.path().join("leaf.pem");
    run(Command::new("openssl")
        .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", "/CN=Doe\\, John/O=Ex"]));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "30", "-set_serial", "4660", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca_crt)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-out")
        .arg(&crt));
    let certificate = read(&crt);
    let text = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&crt));
    let dates = run(Command::new("openssl")
        .args(["x509", "-noout", "-startdate", "-enddate", "-in"])
        .arg(&crt));
    let date = |name: &str| {
        openssl_date_to_rfc3339(
            dates
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .expect("date"),
        )
    };
    let leaf = Cert {
        fingerprint: openssl_fingerprint(&certificate),
        serial: "1234".into(),
        not_before: date("notBefore="),
        not_after: date("notAfter="),
        is_ca: text.contains("CA:TRUE"),
        certificate,
        private_key: read(&key),
    };
    (leaf, ca.certificate)
}

/// The SHA-256 fingerprint of a PEM certificate as openssl prints it, without its
/// `sha256 Fingerprint=` prefix, lowercase.
pub(crate) fn openssl_fingerprint(pem: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("c.pem");
    std::fs::write(&file, pem).expect("write cert");
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&file));
    out.trim()
        .split_once('=')
        .expect("Fingerprint=")
        .1
        .to_lowercase()
}

fn normalize_serial(s: &str) -> String {
    let hex = s.replace(':', "").to_lowercase();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

/// `Nov 23 00:05:46 2026 GMT` → `2026-11-23T00:05:46Z`.
fn openssl_date_to_rfc3339(s: &str) -> String {
    let parts: Vec<&str> = s.split_whitespace().collect();
    assert_eq!(parts.len(), 5, "unexpected openssl date {s:?}");
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[0])
    .expect("month")
        + 1;
    let day: u32 = parts[1].parse().expect("day");
    format!("{}-{month:02}-{day:02}T{}Z", parts[3], parts[2])
}

/// The one-line form of a PEM text: every line break replaced by a literal backslash-n (the JSON
/// text then contains `\\n`).
pub(crate) fn one_line(pem: &str) -> String {
    pem.replace('\n', "\\n")
}

/// The base64 body lines of a PEM/OpenSSH private key that carry private material: long enough
/// not to match by chance, and not part of the given public texts (a private key file also holds
/// the public key, which the server may show; a line of it can coincide with a window of the
/// public key's base64 or of the certificate's).
pub(crate) fn secret_lines(pem: &str, public: &[&str]) -> Vec<String> {
    let public: Vec<String> = public
        .iter()
        .flat_map(|p| [p.to_string(), p.split_whitespace().collect::<String>()])
        .collect();
    pem.lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':') && l.len() >= 16)
        .filter(|l| !public.iter().any(|p| p.contains(l)))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Server helpers shared with policies.rs.
// ---------------------------------------------------------------------------------------------

/// `{"key", "meta": {"href"}}`, the rendered form of a reference.
pub(crate) fn reference(collection: &str, key: &str) -> Value {
    json!({"key": key, "meta": {"href": format!("{collection}/{key}")}})
}

/// Asserts a 400 SemanticError and returns its `details.errors`.
pub(crate) fn semantic_errors(r: &Response) -> Vec<Value> {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.error_type(), "SemanticError", "{}", r.json);
    r.json["error"]["details"]["errors"]
        .as_array()
        .expect("details.errors")
        .clone()
}

/// Asserts a 400 SemanticError with an entry whose `field` is exactly `field`.
pub(crate) fn assert_semantic_error_on(r: &Response, field: &str) {
    let errors = semantic_errors(r);
    assert!(
        errors.iter().any(|e| e["field"] == field),
        "expected a SemanticError on field {field:?}, got {}",
        r.json
    );
}

/// Whether the response is a 400 SemanticError with an error on exactly `field`.
pub(crate) fn is_semantic_error_on(r: &Response, field: &str) -> bool {
    r.status == StatusCode::BAD_REQUEST
        && r.error_type() == "SemanticError"
        && r.json["error"]["details"]["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().any(|e| e["field"] == field))
}

pub(crate) async fn create_private_key(client: &Client, key: &SshKey) -> String {
    client
        .create(PRIVATE_KEYS, &json!({"key": key.private}))
        .await
}

pub(crate) async fn create_x509(client: &Client, cert: &Cert, with_private_key: bool) -> String {
    let body = if with_private_key {
        json!({"certificate": cert.certificate, "private_key": cert.private_key})
    } else {
        json!({"certificate": cert.certificate})
    };
    client.create(X509, &body).await
}

/// A valid rsync backup policy body.
pub(crate) fn rsync_backup(name: &str, auth_key: Value, host_key: Value) -> Value {
    json!({
        "name": name,
        "include_node_id_in_path": false,
        "notification_event": {"type": "errors-only", "send_filelist": false},
        "target": {
            "type": "rsync",
            "server": {"selection": "fqdn", "value": "backup.example.com"},
            "username": "custos-backup",
            "path": "/srv/backup",
            "auth_key": auth_key,
            "host_key": host_key,
            "port": 22
        },
        "start_times": ["2:15"]
    })
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn assert_no_secret(text: &str, secrets: &[String], context: &str) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{context} contains the secret {secret:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Private keys
// ---------------------------------------------------------------------------------------------

/// POSTs the key, checks the create envelope and that GET shows exactly what ssh-keygen says.
async fn check_private_key(kind: KeyKind) {
    let key = ssh_key(kind);
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let before = now();
    let r = admin.post(PRIVATE_KEYS, &json!({"key": key.private})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{kind:?}: {}", r.json);
    let id = r.json["key"].as_str().expect("key").to_string();
    assert!(is_uuid(&id), "private key ids are UUIDs: {id}");
    assert_eq!(
        r.json,
        json!({"key": id, "meta": {"href": format!("{PRIVATE_KEYS}/{id}"), "parent": PRIVATE_KEYS, "transaction": "/api/transaction"}})
    );
    let path = format!("{PRIVATE_KEYS}/{id}");
    let got = admin.get(&path).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.json);
    let created = got.json["body"]["created"].as_u64().expect("created");
    assert!(
        created >= before && created <= now(),
        "created {created} not in [{before}, now]"
    );
    let expected = json!({
        "algorithm": key.algorithm,
        "bits": key.bits,
        "created": created,
        "fingerprint": key.fingerprint,
        "public_key": key.public,
    });
    assert_eq!(got.json["body"], expected, "{kind:?}");
    let secrets = secret_lines(&key.private, &[&key.public]);
    assert!(
        !secrets.is_empty(),
        "{kind:?}: no private lines to look for"
    );
    assert_no_secret(&got.text, &secrets, "GET private key");
    admin.commit_ok().await;

    // Committed: another login sees the same public fields.
    let other = server.admin().await;
    assert_eq!(other.get(&path).await.json["body"], expected, "{kind:?}");
}

#[tokio::test]
async fn private_key_ed25519_shows_ssh_keygen_public_key_and_fingerprint() {
    check_private_key(KeyKind::Ed25519).await;
}

#[tokio::test]
async fn private_key_rsa_openssh_shows_ssh_keygen_public_key_and_fingerprint() {
    check_private_key(KeyKind::Rsa).await;
}

#[tokio::test]
async fn private_key_rsa_pkcs1_pem_shows_ssh_keygen_public_key_and_fingerprint() {
    check_private_key(KeyKind::RsaPkcs1).await;
}

#[tokio::test]
async fn private_key_ecdsa_p256_shows_ssh_keygen_public_key_and_fingerprint() {
    check_private_key(KeyKind::Ecdsa).await;
}

#[tokio::test]
async fn private_key_pkcs8_rsa_pem_is_accepted() {
    check_private_key(KeyKind::RsaPkcs8).await;
}

#[tokio::test]
async fn private_key_sec1_ec_pem_is_accepted() {
    check_private_key(KeyKind::EcdsaSec1).await;
}

#[tokio::test]
async fn private_key_pkcs8_ed25519_pem_is_accepted() {
    check_private_key(KeyKind::Ed25519Pkcs8).await;
}

#[tokio::test]
async fn private_key_field_alias_private_key_is_accepted() {
    let key = ssh_key(KeyKind::Ed25519);
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let id = admin
        .create(PRIVATE_KEYS, &json!({"private_key": key.private}))
        .await;
    let body = admin.get(&format!("{PRIVATE_KEYS}/{id}")).await.json["body"].clone();
    assert_eq!(body["fingerprint"], key.fingerprint.as_str(), "{body}");
    assert_eq!(body["public_key"], key.public.as_str(), "{body}");
}

#[tokio::test]
async fn private_keys_listing_put_and_delete_are_405() {
    let key = ssh_key(KeyKind::Ed25519);
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let id = create_private_key(&admin, &key).await;
    admin.commit_ok().await;
    admin.open_transaction().await;
    let path = format!("{PRIVATE_KEYS}/{id}");
    let r = admin.get(PRIVATE_KEYS).await;
    assert_eq!(
        r.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "GET list: {}",
        r.json
    );
    assert_eq!(r.error_type(), "MethodNotAllowed");
    let r = admin.put(&path, &json!({"key": key.private})).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "PUT: {}", r.json);
    assert_eq!(r.error_type(), "MethodNotAllowed");
    let r = admin.delete(&path).await;
    assert_eq!(
        r.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "DELETE: {}",
        r.json
    );
    assert_eq!(r.error_type(), "MethodNotAllowed");
    admin.commit_ok().await;
    // Still there, unchanged.
    let r = admin.get(&path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["body"]["fingerprint"], key.fingerprint.as_str());
}

#[tokio::test]
async fn passphrase_protected_and_garbage_private_keys_are_rejected_on_field_key() {
    let good = ssh_key(KeyKind::Ed25519);
    let mut truncated = good.private.lines().take(3).collect::<Vec<_>>().join("\n");
    truncated.push('\n');
    let mut bad: Vec<(String, String)> = passphrase_protected_keys()
        .into_iter()
        .map(|k| ("passphrase-protected".to_string(), k))
        .collect();
    bad.extend([
        ("garbage".to_string(), "this is not a key".to_string()),
        ("empty".to_string(), String::new()),
        ("a public key".to_string(), good.public_with_comment.clone()),
        ("truncated".to_string(), truncated),
        (
            "a certificate".to_string(),
            rsa_cert("Cert", "Ex").certificate,
        ),
    ]);
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    for (what, text) in &bad {
        let r = admin.post(PRIVATE_KEYS, &json!({"key": text})).await;
        assert!(is_semantic_error_on(&r, "key"), "{what}: {}", r.json);
    }
    // Nothing of it ends up in the transaction.
    let changes = admin.get("/api/transaction/changes").await;
    assert!(
        changes.json["changes"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "{}",
        changes.json
    );
}

#[tokio::test]
async fn private_key_is_single_use() {
    let key = ssh_key(KeyKind::Ed25519);
    let host = ssh_key(KeyKind::Ed25519);
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let id = create_private_key(&admin, &key).await;
    admin
        .create(
            BACKUP,
            &rsync_backup("first-user", json!(id), json!(host.public)),
        )
        .await;
    // A second policy with the same key, bare and rendered: rejected at the write.
    for auth_key in [json!(id), reference(PRIVATE_KEYS, &id)] {
        let r = admin
            .post(
                BACKUP,
                &rsync_backup("second-user", auth_key.clone(), json!(host.public)),
            )
            .await;
        assert_semantic_error_on(&r, "target.auth_key");
    }
    admin.commit_ok().await;
    // Also against the committed configuration.
    admin.open_transaction().await;
    let r = admin
        .post(
            BACKUP,
            &rsync_backup("third-user", json!(id), json!(host.public)),
        )
        .await;
    assert_semantic_error_on(&r, "target.auth_key");
    assert_eq!(
        admin.get(BACKUP).await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn replaced_auth_key_is_garbage_collected_at_commit() {
    let first = ssh_key(KeyKind::Ed25519);
    let second = ssh_key(KeyKind::Ecdsa);
    let host = ssh_key(KeyKind::Rsa);
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let old = create_private_key(&admin, &first).await;
    let policy = admin
        .create(
            BACKUP,
            &rsync_backup("rotating", json!(old), json!(host.public)),
        )
        .await;
    admin.commit_ok().await;

    admin.open_transaction().await;
    let new = create_private_key(&admin, &second).await;
    let path = format!("{BACKUP}/{policy}");
    let mut body = admin.get(&path).await.json["body"].clone();
    body["target"]["auth_key"] = json!(new);
    let r = admin.put(&path, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    admin.commit_ok().await;

    let r = admin.get(&format!("{PRIVATE_KEYS}/{old}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "old key: {}", r.json);
    assert_eq!(r.error_type(), "NotFound");
    let r = admin.get(&format!("{PRIVATE_KEYS}/{new}")).await;
    assert_eq!(r.status, StatusCode::OK, "new key: {}", r.json);
    assert_eq!(r.json["body"]["fingerprint"], second.fingerprint.as_str());
    assert_eq!(
        admin.get(&path).await.json["body"]["target"]["auth_key"],
        reference(PRIVATE_KEYS, &new)
    );

    // Keys cannot be deleted directly (405), so deleting the policy is what frees its key.
    admin.open_transaction().await;
    let r = admin.delete(&path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    admin.commit_ok().await;
    let r = admin.get(&format!("{PRIVATE_KEYS}/{new}")).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "key of the deleted policy: {}",
        r.json
    );
}

// ---------------------------------------------------------------------------------------------
// X.509
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn x509_identity_shows_subject_issuer_fingerprint_and_validity() {
    let cert = rsa_cert("Sign", "Ex");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let r = admin
        .post(
            X509,
            &json!({"certificate": cert.certificate, "private_key": cert.private_key}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let id = r.json["key"].as_str().expect("key").to_string();
    assert!(is_uuid(&id), "x509 ids are UUIDs: {id}");
    assert_eq!(
        r.json,
        json!({"key": id, "meta": {"href": format!("{X509}/{id}"), "parent": X509, "transaction": "/api/transaction"}})
    );
    admin.commit_ok().await;

    let got = admin.get(&format!("{X509}/{id}")).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.json);
    let body = &got.json["body"];
    assert_eq!(body["subject"], "O=Ex,CN=Sign", "{body}");
    assert_eq!(body["issuer"], "O=Ex,CN=Sign", "{body}");
    assert_eq!(
        body["fingerprint"]
            .as_str()
            .expect("fingerprint")
            .to_lowercase(),
        cert.fingerprint,
        "{body}"
    );
    assert_eq!(
        normalize_serial(body["serial"].as_str().expect("serial")),
        cert.serial
    );
    assert_eq!(body["not_before"], cert.not_before.as_str(), "{body}");
    assert_eq!(body["not_after"], cert.not_after.as_str(), "{body}");
    assert_eq!(body["key_type"], "rsa", "{body}");
    assert_eq!(body["key_bits"], 2048, "{body}");
    assert_eq!(body["is_ca"], cert.is_ca, "{body}");
    assert!(body["chain_length"].is_u64(), "{body}");
    assert_eq!(body["has_private_key"], true, "{body}");
    // The certificate comes back as PEM of the same certificate; the private key never does.
    assert_eq!(
        openssl_fingerprint(body["certificate"].as_str().expect("certificate")),
        cert.fingerprint
    );
    assert!(body.get("private_key").is_none(), "{body}");
    assert_no_secret(
        &got.text,
        &secret_lines(&cert.private_key, &[&cert.certificate]),
        "GET x509",
    );
    let mut fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "certificate",
            "chain_length",
            "fingerprint",
            "has_private_key",
            "is_ca",
            "issuer",
            "key_bits",
            "key_type",
            "not_after",
            "not_before",
            "serial",
            "subject"
        ]
    );
}

#[tokio::test]
async fn x509_ca_signed_leaf_shows_its_issuer_and_counts_the_chain() {
    let (leaf, ca) = ca_signed_cert();
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let alone = create_x509(&admin, &leaf, true).await;
    let with_chain = admin
        .create(
            X509,
            &json!({"certificate": format!("{}{ca}", leaf.certificate), "private_key": leaf.private_key}),
        )
        .await;
    let alone = admin.get(&format!("{X509}/{alone}")).await.json["body"].clone();
    let chained = admin.get(&format!("{X509}/{with_chain}")).await.json["body"].clone();
    for body in [&alone, &chained] {
        // RFC 4514: reversed RDN order, the comma in the CN escaped.
        assert_eq!(body["subject"], "O=Ex,CN=Doe\\, John", "{body}");
        assert_eq!(body["issuer"], "O=Ex,CN=Test CA", "{body}");
        assert_eq!(body["serial"], leaf.serial.as_str(), "{body}");
        assert_eq!(body["is_ca"], leaf.is_ca, "{body}");
        assert_eq!(body["not_after"], leaf.not_after.as_str(), "{body}");
        // The identity is the leaf, whatever follows it.
        assert_eq!(
            body["fingerprint"].as_str().unwrap().to_lowercase(),
            leaf.fingerprint,
            "{body}"
        );
        assert_eq!(body["has_private_key"], true, "{body}");
    }
    assert_eq!(
        chained["chain_length"].as_u64().expect("chain_length"),
        alone["chain_length"].as_u64().expect("chain_length") + 1,
        "appending the CA certificate must lengthen the chain: {alone} / {chained}"
    );
}

#[tokio::test]
async fn x509_certificate_only_has_no_private_key() {
    let cert = rsa_cert("Only", "Ex");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let id = create_x509(&admin, &cert, false).await;
    let body = admin.get(&format!("{X509}/{id}")).await.json["body"].clone();
    assert_eq!(body["has_private_key"], false, "{body}");
    assert_eq!(body["subject"], "O=Ex,CN=Only", "{body}");
}

#[tokio::test]
async fn x509_ec_certificate_reports_its_key_type() {
    let cert = ec_cert("Curve");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let id = create_x509(&admin, &cert, true).await;
    let body = admin.get(&format!("{X509}/{id}")).await.json["body"].clone();
    assert_eq!(body["key_type"], "ecdsa-p256", "{body}");
    assert_eq!(body["key_bits"], 256, "{body}");
    assert_eq!(body["has_private_key"], true, "{body}");
    assert_eq!(
        body["fingerprint"].as_str().unwrap().to_lowercase(),
        cert.fingerprint
    );
}

#[tokio::test]
async fn x509_private_key_not_matching_the_certificate_is_rejected_on_private_key() {
    let cert = rsa_cert("One", "Ex");
    let other = rsa_cert("Two", "Ex");
    let ssh = ssh_key(KeyKind::RsaPkcs1);
    // The certificate's own key, encrypted with a passphrase.
    let encrypted = {
        let dir = tempfile::tempdir().expect("temp dir");
        let plain = dir.path().join("plain.pem");
        let out = dir.path().join("enc.pem");
        std::fs::write(&plain, &cert.private_key).expect("write");
        run(Command::new("openssl")
            .args(["pkcs8", "-topk8", "-passout", "pass:secret", "-in"])
            .arg(&plain)
            .arg("-out")
            .arg(&out));
        read(&out)
    };
    assert!(encrypted.contains("ENCRYPTED"), "{encrypted}");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    for (what, key) in [
        ("another certificate's key", other.private_key.as_str()),
        ("an unrelated RSA key", ssh.private.as_str()),
        ("garbage", "not a key"),
        ("passphrase-protected", encrypted.as_str()),
    ] {
        let r = admin
            .post(
                X509,
                &json!({"certificate": cert.certificate, "private_key": key}),
            )
            .await;
        assert!(
            is_semantic_error_on(&r, "private_key"),
            "{what}: {}",
            r.json
        );
    }
}

#[tokio::test]
async fn x509_garbage_certificate_is_rejected_on_certificate() {
    let cert = rsa_cert("Real", "Ex");
    let truncated: String = cert
        .certificate
        .lines()
        .take(4)
        .collect::<Vec<_>>()
        .join("\n");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    for (what, text) in [
        ("garbage", "not a certificate"),
        ("empty", ""),
        ("a private key", cert.private_key.as_str()),
        ("truncated", truncated.as_str()),
    ] {
        let r = admin.post(X509, &json!({"certificate": text})).await;
        assert!(
            is_semantic_error_on(&r, "certificate"),
            "{what}: {}",
            r.json
        );
    }
}

#[tokio::test]
async fn x509_put_is_405_listing_works_and_unreferenced_delete_succeeds() {
    let cert = rsa_cert("Listed", "Ex");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let id = create_x509(&admin, &cert, true).await;
    admin.commit_ok().await;
    let list = admin.get(X509).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    // After the built-in time-stamping authority's identity, made at setup.
    let tsa = admin
        .get("/api/configuration/management/certificates")
        .await
        .json["body"]["tsa"]["key"]
        .clone();
    assert_eq!(
        list.json["items"],
        json!([
            {"key": tsa, "meta": {"href": format!("{X509}/{}", tsa.as_str().unwrap_or(""))}},
            {"key": id, "meta": {"href": format!("{X509}/{id}")}},
        ])
    );

    admin.open_transaction().await;
    let path = format!("{X509}/{id}");
    let r = admin
        .put(&path, &json!({"certificate": cert.certificate}))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.json);
    assert_eq!(r.error_type(), "MethodNotAllowed");
    let r = admin.delete(&path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json, json!({"meta": {"href": path, "parent": X509}}));
    admin.commit_ok().await;
    let r = admin.get(&path).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json);
}

#[tokio::test]
async fn x509_one_line_backslash_n_form_is_accepted() {
    let cert = rsa_cert("OneLine", "Ex");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let body = json!({
        "certificate": one_line(&cert.certificate),
        "private_key": one_line(&cert.private_key),
    });
    // The JSON text really carries backslash-n pairs, not line breaks.
    assert!(body.to_string().contains("-----\\\\n"), "{body}");
    let id = admin.create(X509, &body).await;
    let got = admin.get(&format!("{X509}/{id}")).await.json["body"].clone();
    assert_eq!(got["has_private_key"], true, "{got}");
    assert_eq!(got["subject"], "O=Ex,CN=OneLine", "{got}");
    assert_eq!(
        got["fingerprint"].as_str().unwrap().to_lowercase(),
        cert.fingerprint
    );
    admin.commit_ok().await;
}

// ---------------------------------------------------------------------------------------------
// Secrets at rest and in every output
// ---------------------------------------------------------------------------------------------

const SMB_PASSWORD: &str = "Smb-Pa55word-never-shown";
const SMB_BACKUP_PASSWORD: &str = "Backup-Smb-Pa55-hidden";
const ROTATED_PASSWORD: &str = "Rotated-Smb-Pa55-hidden";

fn smb_archive(username: &str, password: Option<&str>) -> Value {
    let mut auth = json!({"selection": "password", "username": username});
    if let Some(pw) = password {
        auth["password"] = json!(pw);
    }
    json!({
        "name": "smb-archive-with-secret",
        "include_node_id_in_path": false,
        "notification_event": {"type": "all", "send_filelist": false},
        "target": {
            "type": "smb",
            "server": {"selection": "fqdn", "value": "files.example.com"},
            "protocol_version": "3.1.1",
            "share": "audit",
            "domain": "EXAMPLE",
            "authentication": auth
        },
        "start_times": ["3:00"],
        "template": "archive_date",
        "retention_days": 14
    })
}

fn db_bytes(server: &Server) -> Vec<(String, Vec<u8>)> {
    let dir = server.data_dir();
    assert!(
        dir.join("custos.db").exists(),
        "no custos.db in {}",
        dir.display()
    );
    ["custos.db", "custos.db-wal", "custos.db-shm"]
        .iter()
        .filter_map(|name| {
            std::fs::read(dir.join(name))
                .ok()
                .map(|b| (name.to_string(), b))
        })
        .collect()
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The database files hold none of the secrets, but do hold `marker` (proving that the search
/// looks at plain configuration data at all).
fn assert_db_free_of(server: &Server, secrets: &[String], marker: &str) {
    let files = db_bytes(server);
    for (name, bytes) in &files {
        for secret in secrets {
            assert!(
                !contains_bytes(bytes, secret.as_bytes()),
                "{name} contains the plain secret {secret:?}"
            );
        }
    }
    assert!(
        files
            .iter()
            .any(|(_, b)| contains_bytes(b, marker.as_bytes())),
        "{marker:?} is nowhere in the database files; the secret search proves nothing"
    );
}

async fn latest_changelog(client: &Client) -> Response {
    let list = client.get("/api/changelog").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    let href = list.json["items"][0]["meta"]["href"]
        .as_str()
        .expect("changelog href")
        .to_string();
    let entry = client.get(&href).await;
    assert_eq!(entry.status, StatusCode::OK, "{}", entry.json);
    entry
}

#[tokio::test]
async fn secrets_never_leave_the_server_and_survive_a_restart() {
    let ssh = ssh_key(KeyKind::RsaPkcs1);
    let host = ssh_key(KeyKind::Ed25519);
    let cert = rsa_cert("Signer", "Ex");
    let mut secrets = vec![
        SMB_PASSWORD.to_string(),
        SMB_BACKUP_PASSWORD.to_string(),
        ROTATED_PASSWORD.to_string(),
    ];
    secrets.extend(secret_lines(&ssh.private, &[&ssh.public]));
    secrets.extend(secret_lines(&cert.private_key, &[&cert.certificate]));
    assert!(secrets.len() > 10, "{secrets:?}");

    let mut server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let smb = admin
        .create(ARCHIVE, &smb_archive("archiver", Some(SMB_PASSWORD)))
        .await;
    let mut smb_backup_body = smb_archive("backupper", Some(SMB_BACKUP_PASSWORD));
    smb_backup_body["name"] = json!("smb-backup-with-secret");
    let object = smb_backup_body.as_object_mut().unwrap();
    object.remove("template");
    object.remove("retention_days");
    let smb_backup = admin.create(BACKUP, &smb_backup_body).await;
    let key = create_private_key(&admin, &ssh).await;
    let backup = admin
        .create(
            BACKUP,
            &rsync_backup("rsync-with-key", json!(key), json!(host.public)),
        )
        .await;
    let x509 = create_x509(&admin, &cert, true).await;
    let audit = admin
        .create(
            AUDIT,
            &json!({
                "name": "signed",
                "encryption": {"enabled": false},
                "signing": {"enabled": true, "x509_identity": x509},
                "timestamping": {"enabled": false},
                "signing_and_timestamping_interval": 30
            }),
        )
        .await;
    let paths = [
        format!("{ARCHIVE}/{smb}"),
        format!("{PRIVATE_KEYS}/{key}"),
        format!("{BACKUP}/{backup}"),
        format!("{X509}/{x509}"),
        format!("{AUDIT}/{audit}"),
        ARCHIVE.to_string(),
        BACKUP.to_string(),
        AUDIT.to_string(),
        X509.to_string(),
        format!("{BACKUP}/{smb_backup}"),
    ];
    let smb_body = admin.get(&paths[0]).await.json["body"].clone();
    assert_eq!(
        smb_body["target"]["authentication"],
        json!({"selection": "password", "username": "archiver"}),
        "the SMB password must be absent from GET"
    );
    assert_eq!(
        admin.get(&paths[9]).await.json["body"]["target"]["authentication"],
        json!({"selection": "password", "username": "backupper"}),
        "the SMB password must be absent from GET"
    );
    // Uncommitted: the owner's GETs and the change list.
    for path in &paths {
        let r = admin.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.json);
        assert_no_secret(&r.text, &secrets, &format!("GET {path} (uncommitted)"));
    }
    let changes = admin.get("/api/transaction/changes").await;
    assert_eq!(changes.status, StatusCode::OK, "{}", changes.json);
    assert!(
        changes.text.contains("smb-archive-with-secret"),
        "{}",
        changes.text
    );
    assert_no_secret(&changes.text, &secrets, "/api/transaction/changes");
    admin.commit_ok().await;

    // Committed: GETs, changelog, log, database files.
    let mut before_restart = Vec::new();
    for path in &paths {
        let r = admin.get(path).await;
        assert_no_secret(&r.text, &secrets, &format!("GET {path}"));
        before_restart.push(r.json["body"].clone());
        if let Some(items) = r.json["items"].as_array() {
            before_restart.push(json!(items));
        }
    }
    let entry = latest_changelog(&admin).await;
    assert!(
        entry.text.contains("smb-archive-with-secret"),
        "the changelog entry of the commit should show the policy: {}",
        entry.text
    );
    assert_no_secret(&entry.text, &secrets, "/api/changelog/<n>");
    assert_no_secret(&server.log(), &secrets, "server log");
    assert_db_free_of(&server, &secrets, "smb-archive-with-secret");
    let key_file = server.data_dir().join("secrets.key");
    let meta = std::fs::metadata(&key_file).expect("secrets.key");
    assert_eq!(meta.len(), 32, "secrets.key is 32 bytes");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "secrets.key mode");

    // Restart: everything is still there, the backup policy still references its key.
    server.restart().await;
    let admin = server.admin().await;
    let mut after_restart = Vec::new();
    for path in &paths {
        let r = admin.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path} after restart: {}", r.json);
        after_restart.push(r.json["body"].clone());
        if let Some(items) = r.json["items"].as_array() {
            after_restart.push(json!(items));
        }
    }
    assert_eq!(after_restart, before_restart);
    assert_eq!(
        admin.get(&paths[2]).await.json["body"]["target"]["auth_key"],
        reference(PRIVATE_KEYS, &key)
    );
    assert_eq!(
        admin.get(&paths[1]).await.json["body"]["fingerprint"],
        ssh.fingerprint.as_str()
    );

    // PUT back of the GET body (no password, same user): accepted, the password is kept, so the
    // whole-document validation at commit still passes.
    admin.open_transaction().await;
    let smb_body = admin.get(&paths[0]).await.json["body"].clone();
    assert!(
        smb_body["target"]["authentication"]
            .get("password")
            .is_none()
    );
    let r = admin.put(&paths[0], &smb_body).await;
    assert_eq!(r.status, StatusCode::OK, "PUT back: {}", r.json);
    let r = admin.commit().await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "commit after PUT back: {}",
        r.json
    );
    assert_eq!(admin.get(&paths[0]).await.json["body"], smb_body);
    let entry = latest_changelog(&admin).await;
    assert_no_secret(&entry.text, &secrets, "changelog of the PUT back");
    // Another user name without a password: the old password does not carry over.
    admin.open_transaction().await;
    let mut renamed = smb_body.clone();
    renamed["target"]["authentication"]["username"] = json!("someone-else");
    let r = admin.put(&paths[0], &renamed).await;
    assert_semantic_error_on(&r, "target.authentication.password");
    admin.delete("/api/transaction").await;

    // A new password: accepted and as invisible as the first.
    admin.open_transaction().await;
    let r = admin
        .put(&paths[0], &smb_archive("archiver", Some(ROTATED_PASSWORD)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let changes = admin.get("/api/transaction/changes").await;
    assert_eq!(changes.status, StatusCode::OK, "{}", changes.json);
    assert_no_secret(&changes.text, &secrets, "changes of a password rotation");
    admin.commit_ok().await;
    assert_eq!(admin.get(&paths[0]).await.json["body"], smb_body);
    let entry = latest_changelog(&admin).await;
    assert_no_secret(&entry.text, &secrets, "changelog of a password rotation");
    assert_db_free_of(&server, &secrets, "smb-backup-with-secret");
    assert_no_secret(&server.log(), &secrets, "server log after restart");
}
