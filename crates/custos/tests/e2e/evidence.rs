//! Tamper-evident, encrypted audit trails (issue 5), end to end: audit policies configured over
//! REST, sessions through the served gateway with the real `ssh` client and `sshd`, and the
//! resulting trails checked by `custos trail …` and by OpenSSL as the independent peer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use custos_testkit::pki::{Identity, LoopbackTsa, issued_by, openssl, self_signed};
use custos_testkit::{Client, PASSWORD, Sshd, USER, free_port};
use custos_trail::TrailReader;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::Server;

/// What the client types in every test session; it must only be in stream 1.
const TYPED: &str = "typed-secret-4711";
/// What the session prints; it is in stream 0.
const PRINTED: &str = "printed-output-0815";

fn custos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    sshd: Sshd,
    ssh: Client,
    server: Server,
    admin: crate::harness::Client,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let ssh = Client::new(dir.path());
    let server = Server::start().await;
    let admin = server.admin().await;
    Setup {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        sshd,
        ssh,
        server,
        admin,
    }
}

impl Setup {
    /// Uploads an X.509 identity (certificate and key) and returns its key.
    async fn upload_identity(&self, id: &Identity) -> String {
        self.admin.open_transaction().await;
        let key = self
            .admin
            .create(
                "/api/configuration/x509",
                &json!({"certificate": id.cert_pem(), "private_key": id.key_pem()}),
            )
            .await;
        self.admin.commit_ok().await;
        key
    }

    /// Creates the audit policy and a connection policy using it; returns the gateway port.
    async fn gateway(&self, name: &str, audit: Value) -> u16 {
        let port = free_port();
        self.admin.open_transaction().await;
        let audit_key = self
            .admin
            .create("/api/configuration/policies/audit_policies", &audit)
            .await;
        self.admin
            .create(
                "/api/configuration/ssh/connections",
                &json!({
                    "name": name,
                    "network": {"clients": ["127.0.0.0/8"], "targets": ["127.0.0.1"], "ports": [port]},
                    "server_address": {"selection": "fix", "address": "127.0.0.1", "port": self.sshd.port},
                    "policies": {"channel_policy": "-2", "audit_policy": audit_key},
                }),
            )
            .await;
        self.admin.commit_ok().await;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return port;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the gateway does not listen on {port}");
    }

    /// Runs a session that reads a typed line, prints a marker, then sleeps `seconds`; returns
    /// the trail's path once the session record is closed.
    async fn session(&self, port: u16, seconds: u32) -> PathBuf {
        let before: Vec<Value> = self.admin.get("/api/audit/sessions").await.json["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let script = format!("read x; echo {PRINTED}-${{#x}}; sleep {seconds}");
        let mut cmd = self.ssh.ssh(port, USER, PASSWORD, &[&script]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(format!("{TYPED}\n").as_bytes()).unwrap();
            drop(stdin);
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{PRINTED}-{}\n", TYPED.len()),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..200 {
            let listing = self.admin.get("/api/audit/sessions").await.json;
            let items = listing["items"].as_array().cloned().unwrap_or_default();
            if let Some(new) = items.iter().find(|i| !before.contains(i)) {
                let key = new["key"].as_str().unwrap();
                let record = self
                    .admin
                    .get(&format!("/api/audit/sessions/{key}"))
                    .await
                    .json;
                if record["body"]["active"] == false {
                    return self.server.data_dir().join(format!("trails/{key}.trail"));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the session record did not close");
    }

    /// The built-in TSA's certificate, as the REST API shows it, saved as PEM.
    async fn builtin_tsa_cert(&self) -> PathBuf {
        let certs = self
            .admin
            .get("/api/configuration/management/certificates")
            .await;
        let key = certs.json["body"]["tsa"]["key"]
            .as_str()
            .unwrap()
            .to_string();
        let x509 = self
            .admin
            .get(&format!("/api/configuration/x509/{key}"))
            .await;
        let pem = x509.json["body"]["certificate"].as_str().unwrap();
        let path = self.dir.join("builtin-tsa.pem");
        std::fs::write(&path, pem).unwrap();
        path
    }
}

fn contains(file: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(file).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn verify(trail: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["trail", "verify", trail.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = custos(&args);
    (out.status.code().unwrap_or(-1), text(&out))
}

/// (offset, length, kind) of every segment of a trail file.
fn segments(file: &[u8]) -> Vec<(usize, usize, u8)> {
    let json_len = u32::from_le_bytes(file[12..16].try_into().unwrap()) as usize;
    let mut pos = 16 + json_len;
    let mut out = Vec::new();
    while pos + 40 <= file.len() && &file[pos..pos + 4] == b"CSEG" {
        let len = u32::from_le_bytes(file[pos + 32..pos + 36].try_into().unwrap()) as usize;
        out.push((pos, 72 + len, file[pos + 4]));
        pos += 72 + len;
    }
    out
}

/// Writes each seal's statement, signature and token next to the trail; returns the triples.
fn export_seals(trail: &Path, dir: &Path) -> Vec<(PathBuf, Option<PathBuf>, Option<PathBuf>)> {
    let mut reader = TrailReader::open(trail).unwrap();
    let v = reader.verify().unwrap();
    v.seals
        .iter()
        .enumerate()
        .map(|(i, seal)| {
            let statement = dir.join(format!("statement-{i}.bin"));
            std::fs::write(&statement, seal.head.statement()).unwrap();
            let save = |name: &str, bytes: &[u8]| {
                (!bytes.is_empty()).then(|| {
                    let p = dir.join(format!("{name}-{i}.der"));
                    std::fs::write(&p, bytes).unwrap();
                    p
                })
            };
            (
                statement,
                save("sig", &seal.signature),
                save("token", &seal.timestamp),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_and_time_stamped_trails_verify_offline_and_with_openssl() {
    let s = setup().await;
    let d = &s.dir;
    let ca = self_signed(
        d,
        "Audit CA",
        "rsa:2048",
        &[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign",
        ],
    );
    let signer = issued_by(d, &ca, "Gateway Signer", "ec");
    let identity = s.upload_identity(&signer).await;
    let port = s
        .gateway(
            "signed",
            json!({
                "name": "signed",
                "encryption": {"enabled": false},
                "signing": {"enabled": true, "x509_identity": identity},
                "timestamping": {"enabled": true, "server": {"selection": "local"}},
                "signing_and_timestamping_interval": 10,
            }),
        )
        .await;
    // Long enough for a seal while the session runs, then the final one.
    let trail = s.session(port, 11).await;
    let tsa = s.builtin_tsa_cert().await;

    let (code, report) = verify(
        &trail,
        &[
            "--ca",
            ca.cert.to_str().unwrap(),
            "--ca",
            tsa.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("integrity:  complete"), "{report}");
    assert!(
        report.contains(
            "the complete trail (its end-of-trail marker included) was signed by CN=Gateway Signer"
        ),
        "{report}"
    );
    assert!(
        report.contains("signer CN=Gateway Signer: trusted (issued by CN=Audit CA)"),
        "{report}"
    );
    assert!(
        report.contains("time-stamping authority CN=Custos built-in TSA: trusted"),
        "{report}"
    );
    let seals = export_seals(&trail, d);
    assert!(
        seals.len() >= 2,
        "a seal while running and a final one: {report}"
    );

    // OpenSSL, knowing nothing of Custos, accepts every signature and every token.
    for (statement, sig, token) in &seals {
        let (statement, sig, token) = (
            statement.to_str().unwrap(),
            sig.as_ref().unwrap(),
            token.as_ref().unwrap(),
        );
        openssl(
            d,
            &[
                "cms",
                "-verify",
                "-inform",
                "DER",
                "-in",
                sig.to_str().unwrap(),
                "-content",
                statement,
                "-binary",
                "-CAfile",
                ca.cert.to_str().unwrap(),
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ],
        );
        let out = openssl(
            d,
            &[
                "ts",
                "-verify",
                "-data",
                statement,
                "-in",
                token.to_str().unwrap(),
                "-token_in",
                "-CAfile",
                tsa.to_str().unwrap(),
            ],
        );
        assert!(String::from_utf8_lossy(&out).contains("Verification: OK"));
        // The token's imprint is SHA-256 of the statement.
        let text = openssl(
            d,
            &[
                "ts",
                "-reply",
                "-in",
                token.to_str().unwrap(),
                "-token_in",
                "-text",
            ],
        );
        let digest = hex::encode(Sha256::digest(std::fs::read(statement).unwrap()));
        let printed = String::from_utf8_lossy(&text)
            .replace([' ', '-', '\n'], "")
            .to_lowercase();
        assert!(
            printed.contains(&digest[..16]),
            "imprint in {}",
            String::from_utf8_lossy(&text)
        );
    }
    // Another content does not verify under OpenSSL either.
    let (statement, sig, _) = &seals[0];
    let mut other = std::fs::read(statement).unwrap();
    other[20] ^= 1;
    std::fs::write(d.join("other.bin"), other).unwrap();
    let out = Command::new("openssl")
        .current_dir(d)
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            sig.as_ref().unwrap().to_str().unwrap(),
            "-content",
            "other.bin",
            "-binary",
            "-CAfile",
            ca.cert.to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // An unrelated CA vouches for nobody.
    let stranger = self_signed(d, "Stranger CA", "rsa:2048", &[]);
    let (code, report) = verify(&trail, &["--ca", stranger.cert.to_str().unwrap()]);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("NOT trusted"), "{report}");

    // Tampering, on copies of the real trail.
    let bytes = std::fs::read(&trail).unwrap();
    let check = |name: &str, data: Vec<u8>| {
        let path = d.join(name);
        std::fs::write(&path, data).unwrap();
        verify(&path, &[])
    };
    for at in [100, bytes.len() / 3, bytes.len() / 2, bytes.len() - 100] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        let (code, report) = check("flipped.trail", flipped);
        assert_ne!(code, 0, "flip at {at}: {report}");
    }
    let segs = segments(&bytes);
    let records: Vec<_> = segs.iter().filter(|s| s.2 <= 1).copied().collect();
    assert!(records.len() >= 2, "{segs:?}");
    let (a, b) = (records[0], records[1]);
    let mut swapped = bytes[..a.0].to_vec();
    swapped.extend_from_slice(&bytes[b.0..b.0 + b.1]);
    swapped.extend_from_slice(&bytes[a.0 + a.1..b.0]);
    swapped.extend_from_slice(&bytes[a.0..a.0 + a.1]);
    swapped.extend_from_slice(&bytes[b.0 + b.1..]);
    let (code, report) = check("swapped.trail", swapped);
    assert_eq!(code, 1, "{report}");
    // Truncated: what the earlier seal covers is still proven; the end is not.
    let last_seal_while_running = segs.iter().find(|s| s.2 == 5).unwrap();
    let cut = last_seal_while_running.0 + last_seal_while_running.1 + 10;
    let (code, report) = check("truncated.trail", bytes[..cut].to_vec());
    assert_eq!(code, 3, "{report}");
    assert!(report.contains("integrity:  incomplete"), "{report}");
    assert!(
        report.contains("proven:     origin: the recording up to"),
        "{report}"
    );
    assert!(report.contains("not proven: completeness"), "{report}");
    // Spliced: a record segment of another session's trail in place of ours.
    let other_trail = s.session(port, 0).await;
    let other = std::fs::read(&other_trail).unwrap();
    let o = segments(&other).into_iter().find(|s| s.2 <= 1).unwrap();
    let mut spliced = bytes[..a.0].to_vec();
    spliced.extend_from_slice(&other[o.0..o.0 + o.1]);
    spliced.extend_from_slice(&bytes[a.0 + a.1..]);
    let (code, report) = check("spliced.trail", spliced);
    assert_eq!(code, 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_trails_open_only_with_their_keys() {
    let s = setup().await;
    let d = &s.dir;
    let alice = self_signed(d, "alice", "rsa:2048", &[]);
    let bob = self_signed(d, "bob", "rsa:2048", &[]);
    let carol = self_signed(d, "carol", "rsa:2048", &[]);
    let dave = self_signed(d, "dave", "rsa:2048", &[]);
    let port = s
        .gateway(
            "sealed-box",
            json!({
                "name": "encrypted",
                "encryption": {
                    "enabled": true,
                    "certificates": [
                        {"certificate": alice.cert_pem()},
                        // The SPS one-line form, as automation sends it.
                        {"certificate": bob.cert_pem().replace('\n', "\\n"), "four_eyes_certificate": carol.cert_pem()}
                    ],
                    "different_certificates_for_upstream": {"enabled": true, "certificates": [{"certificate": dave.cert_pem()}]}
                },
                "signing": {"enabled": false},
                "timestamping": {"enabled": false},
            }),
        )
        .await;
    let trail = s.session(port, 0).await;
    let t = trail.to_str().unwrap();
    assert!(
        !contains(&trail, TYPED),
        "keystrokes are not in the file in clear"
    );
    assert!(
        !contains(&trail, PRINTED),
        "output is not in the file in clear"
    );

    // Anyone can verify it without a key.
    let (code, report) = verify(&trail, &[]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains(
            "stream 0: output and session metadata is encrypted to: CN=alice | CN=bob + CN=carol"
        ),
        "{report}"
    );
    assert!(report.contains("is encrypted to: CN=dave"), "{report}");

    let replay = |keys: &[&Identity]| {
        let mut args = vec!["trail", "replay", "--max", t];
        for k in keys {
            args.extend(["--key", k.key.to_str().unwrap()]);
        }
        custos(&args)
    };
    let none = replay(&[]);
    assert!(!none.status.success());
    assert!(text(&none).contains("encrypted"), "{}", text(&none));
    let with_alice = replay(&[&alice]);
    assert!(with_alice.status.success(), "{}", text(&with_alice));
    assert!(text(&with_alice).contains(PRINTED));
    let bob_alone = replay(&[&bob]);
    assert!(!bob_alone.status.success());
    assert!(
        text(&bob_alone).contains("four-eyes"),
        "{}",
        text(&bob_alone)
    );
    let both = replay(&[&bob, &carol]);
    assert!(
        both.status.success() && text(&both).contains(PRINTED),
        "{}",
        text(&both)
    );
    // Dave reads the keystrokes only, not the output.
    assert!(!replay(&[&dave]).status.success());

    // The keystrokes need dave's key even with the output's.
    let export = |keys: &[&Identity]| {
        let mut args = vec!["trail", "export", "--format", "asciicast", "--input", t];
        for k in keys {
            args.extend(["--key", k.key.to_str().unwrap()]);
        }
        custos(&args)
    };
    let without_dave = export(&[&alice]);
    assert!(!without_dave.status.success(), "{}", text(&without_dave));
    let with_dave = export(&[&alice, &dave]);
    assert!(with_dave.status.success(), "{}", text(&with_dave));
    assert!(text(&with_dave).contains(TYPED));

    // A decrypted copy reads without keys (and says where it came from).
    let copy = d.join("plain.trail");
    let out = custos(&[
        "trail",
        "decrypt",
        t,
        "-o",
        copy.to_str().unwrap(),
        "--key",
        alice.key.to_str().unwrap(),
        "--key",
        dave.key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(contains(&copy, TYPED) && contains(&copy, "decrypted_from"));
    let plain = custos(&["trail", "replay", "--max", copy.to_str().unwrap()]);
    assert!(text(&plain).contains(PRINTED));
    // With keys, verify checks every record too.
    let (code, report) = verify(
        &trail,
        &[
            "--key",
            alice.key.to_str().unwrap(),
            "--key",
            dave.key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{report}");
    assert!(
        !report.contains("checked by their chain values only"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_tsa_on_loopback_time_stamps_trails_and_a_failing_one_leaves_them_signed_only() {
    let s = setup().await;
    let d = &s.dir;
    let tsa = LoopbackTsa::start(d, false);
    let broken = LoopbackTsa::start(d, true);
    let signer = self_signed(d, "Signer", "rsa:2048", &[]);
    let identity = s.upload_identity(&signer).await;
    let policy = |name: &str, url: &str| {
        json!({
            "name": name,
            "encryption": {"enabled": false},
            "signing": {"enabled": true, "x509_identity": identity},
            "timestamping": {"enabled": true, "server": {"selection": "remote", "server_url": url, "oid": {"enabled": true, "policy_oid": "1.2.3.4.5"}}},
            "signing_and_timestamping_interval": 30,
        })
    };
    let port = s.gateway("remote", policy("remote-tsa", &tsa.url)).await;
    let trail = s.session(port, 0).await;
    let (code, report) = verify(
        &trail,
        &[
            "--ca",
            tsa.cert.to_str().unwrap(),
            "--ca",
            signer.cert.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("RFC 3161 token of CN=Loopback TSA, policy 1.2.3.4.5"),
        "{report}"
    );
    for (statement, _, token) in export_seals(&trail, d) {
        let out = openssl(
            d,
            &[
                "ts",
                "-verify",
                "-data",
                statement.to_str().unwrap(),
                "-in",
                token.unwrap().to_str().unwrap(),
                "-token_in",
                "-CAfile",
                tsa.cert.to_str().unwrap(),
            ],
        );
        assert!(String::from_utf8_lossy(&out).contains("Verification: OK"));
    }

    // A failing TSA: the session still runs, the trail is signed, the failure recorded.
    let port = s
        .gateway("remote-broken", policy("broken-tsa", &broken.url))
        .await;
    let trail = s.session(port, 0).await;
    let (code, report) = verify(&trail, &[]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("not proven: time"), "{report}");
    assert!(
        report.contains("1 signatures valid, 0 time-stamps valid"),
        "{report}"
    );
}

/// The search index is not encrypted: the text of sessions under an encrypting audit policy
/// goes there only when the policy says so (`encryption.index_content`); their metadata is
/// searchable either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_sessions_text_is_indexed_only_with_the_policys_consent() {
    let s = setup().await;
    let auditor = self_signed(&s.dir, "auditor", "rsa:2048", &[]);
    let policy = |name: &str, consent: Option<bool>| {
        let mut encryption = json!({
            "enabled": true,
            "certificates": [{"certificate": auditor.cert_pem()}],
            "different_certificates_for_upstream": {"enabled": false},
        });
        if let Some(consent) = consent {
            encryption["index_content"] = json!(consent);
        }
        json!({"name": name, "encryption": encryption, "signing": {"enabled": false}, "timestamping": {"enabled": false}})
    };
    let private = s.gateway("private", policy("no-index", None)).await;
    let indexed = s.gateway("indexed", policy("index-ok", Some(true))).await;
    let private_trail = s.session(private, 0).await;
    let indexed_trail = s.session(indexed, 0).await;
    let key = |trail: &PathBuf| trail.file_stem().unwrap().to_str().unwrap().to_string();
    let search = |q: &str| {
        let q = q.replace(':', "%3A").replace(' ', "%20");
        let admin = &s.admin;
        async move {
            let r = admin.get(&format!("/api/audit/sessions?q={q}")).await;
            assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.json);
            r.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["key"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    // The text goes in within about a second of the session's end.
    let mut found = Vec::new();
    for _ in 0..100 {
        found = search(PRINTED).await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        found,
        [key(&indexed_trail)],
        "only the consenting policy's text"
    );
    let by_policy = search("psm.connection_policy:private").await;
    assert_eq!(
        by_policy,
        [key(&private_trail)],
        "metadata is searchable regardless"
    );
    // The policy shows the extension only where it is set.
    let policies = s
        .admin
        .get("/api/configuration/policies/audit_policies")
        .await;
    let mut consent = Vec::new();
    for item in policies.json["items"].as_array().unwrap() {
        let body = s
            .admin
            .get(item["meta"]["href"].as_str().unwrap())
            .await
            .json["body"]
            .clone();
        consent.push((
            body["name"].clone(),
            body["encryption"]["index_content"].clone(),
        ));
    }
    assert!(
        consent.contains(&(json!("index-ok"), json!(true))),
        "{consent:?}"
    );
    assert!(
        consent.contains(&(json!("no-index"), Value::Null)),
        "{consent:?}"
    );
}
