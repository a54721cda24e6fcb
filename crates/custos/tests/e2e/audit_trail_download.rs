//! `GET /api/audit/sessions/<key>/audit_trail` against the real binary: a session recorded by
//! the gateway (real `ssh` to a real `sshd`) is downloaded over HTTPS exactly as stored, the copy
//! passes `custos trail verify`, the guards are those of the record, and downloads are logged
//! when the connection policy asks for it (`log_audit_trail_downloads`).

use std::time::Duration;

use custos_testkit::{Client as Ssh, PASSWORD, Sshd, USER, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Client, Options, Server};

const SESSIONS: &str = "/api/audit/sessions";
const CONNECTIONS: &str = "/api/configuration/ssh/connections";
/// The message of the audit log line of a download.
const LOGGED: &str = "audit trail downloaded";

/// A server whose gateway sends sessions on `port` to a real sshd through connection policy
/// `connection`.
struct Recording {
    dir: tempfile::TempDir,
    _sshd: Sshd,
    ssh: Ssh,
    server: Server,
    admin: Client,
    port: u16,
    connection: String,
}

fn connection_body(sshd_port: u16, port: u16, log_downloads: bool) -> Value {
    json!({
        "name": "downloads",
        "network": {"clients": ["127.0.0.0/8"], "targets": ["127.0.0.1"], "ports": [port]},
        "server_address": {"selection": "fix", "address": "127.0.0.1", "port": sshd_port},
        "policies": {"channel_policy": "-2", "audit_policy": "-1"},
        "log_audit_trail_downloads": log_downloads,
    })
}

async fn recording(log_downloads: bool) -> Recording {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let ssh = Ssh::new(dir.path());
    // JSON log lines: the audit line's fields are read exactly, whatever the terminal styling.
    let server = Server::start_with(Options {
        args: vec!["--log-format".into(), "json".into()],
        ..Options::default()
    })
    .await;
    let admin = server.admin().await;
    let port = free_port();
    admin.open_transaction().await;
    let connection = admin
        .create(
            CONNECTIONS,
            &connection_body(sshd.port, port, log_downloads),
        )
        .await;
    admin.commit_ok().await;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Recording {
        dir,
        _sshd: sshd,
        ssh,
        server,
        admin,
        port,
        connection,
    }
}

impl Recording {
    /// Runs `command` through the gateway and returns the key of its record once it has ended.
    async fn session(&self, command: &str) -> String {
        let known: Vec<Value> = self.admin.get(SESSIONS).await.json["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut exec = self.ssh.ssh(self.port, USER, PASSWORD, &[command]);
        let out = tokio::task::spawn_blocking(move || exec.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..200 {
            let items = self.admin.get(SESSIONS).await.json["items"].clone();
            let new = items
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| !known.contains(i))
                .and_then(|i| i["key"].as_str())
                .map(str::to_string);
            if let Some(key) = new {
                let record = self.admin.get(&format!("{SESSIONS}/{key}")).await;
                if record.json["body"]["active"] == false {
                    return key;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no ended record for {command:?}");
    }

    fn trail_on_disk(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.server.data_dir().join(format!("trails/{key}.trail"))).unwrap()
    }

    /// Runs `custos trail verify` on a copy of `bytes`.
    fn verify(&self, bytes: &[u8]) -> std::process::Output {
        let copy = self.dir.path().join("downloaded.trail");
        std::fs::write(&copy, bytes).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["trail", "verify"])
            .arg(&copy)
            .output()
            .unwrap()
    }

    /// The fields of the audit log lines of downloads so far.
    fn logged_downloads(&self) -> Vec<Value> {
        self.server
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["fields"]["message"] == LOGGED)
            .map(|l| {
                assert_eq!(l["target"], "custos::audit", "{l}");
                assert_eq!(l["level"], "INFO", "{l}");
                l["fields"].clone()
            })
            .collect()
    }
}

fn download_path(key: &str) -> String {
    format!("{SESSIONS}/{key}/audit_trail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_trail_downloads_as_stored_verifies_and_is_logged() {
    let r = recording(true).await;
    let key = r.session("echo downloaded-trail").await;
    let record = r.admin.get(&format!("{SESSIONS}/{key}")).await.json;
    assert_eq!(
        record["body"]["recording"]["audit_trail"]["download"]["href"],
        download_path(&key).as_str(),
        "the record links the download"
    );

    let (status, headers, bytes) = r.admin.get_bytes(&download_path(&key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"{key}.trail\"").as_str()
    );
    let stored = r.trail_on_disk(&key);
    assert!(!stored.is_empty());
    assert_eq!(headers["content-length"], stored.len().to_string().as_str());
    assert!(
        bytes == stored,
        "the download differs from the file on disk"
    );
    let verified = r.verify(&bytes);
    assert!(
        verified.status.success(),
        "custos trail verify on the download: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );

    // The audit log names who downloaded which session's trail, and how much.
    let session_id = record["body"]["recording"]["session_id"].as_str().unwrap();
    let lines = r.logged_downloads();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0],
        json!({
            "message": LOGGED,
            "user": "admin",
            "session": session_id,
            "key": key,
            "trail": format!("trails/{key}.trail"),
            "bytes": stored.len(),
            "address": "127.0.0.1",
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_follow_the_record_guards_and_the_policy_log_switch() {
    let r = recording(false).await;
    let key = r.session("echo quiet").await;

    // Not logged while the connection policy says so.
    let (status, _, bytes) = r.admin.get_bytes(&download_path(&key)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes == r.trail_on_disk(&key));
    assert_eq!(r.logged_downloads(), Vec::<Value>::new());

    // Unknown sessions: the record's 404 envelope.
    let unknown = download_path("NoSuchSessionKey0000000");
    let missing = r.admin.get(&unknown).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.json);
    assert_eq!(missing.error_type(), "NotFound");
    assert_eq!(missing.json["error"]["details"]["path"], unknown.as_str());
    assert_eq!(
        missing.json["error"]["message"],
        r.admin
            .get(&format!("{SESSIONS}/NoSuchSessionKey0000000"))
            .await
            .json["error"]["message"]
    );
    // Other methods are refused.
    let post = r.admin.post(&download_path(&key), &json!({})).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED, "{}", post.json);

    // Users answer as the record endpoint answers them: without the search privilege 403,
    // with search but not "search in all connections" 404, with both the file.
    r.admin.open_transaction().await;
    r.admin
        .create_user("viewer", "Viewer-passw0rd", &["basic-view"])
        .await;
    r.admin
        .create_user("searcher", "Searcher-passw0rd", &["search"])
        .await;
    r.admin
        .create_user("auditor", "Auditor-passw0rd", &["search", "search-all"])
        .await;
    r.admin.commit_ok().await;
    for (user, password, status, error) in [
        (
            "viewer",
            "Viewer-passw0rd",
            StatusCode::FORBIDDEN,
            Some("Unauthorized"),
        ),
        (
            "searcher",
            "Searcher-passw0rd",
            StatusCode::NOT_FOUND,
            Some("NotFound"),
        ),
        ("auditor", "Auditor-passw0rd", StatusCode::OK, None),
    ] {
        let client = r.server.login(user, password).await;
        let record = client.get(&format!("{SESSIONS}/{key}")).await;
        assert_eq!(record.status, status, "{user}: record {}", record.json);
        let download = client.get(&download_path(&key)).await;
        assert_eq!(download.status, status, "{user}: {}", download.text);
        if let Some(error) = error {
            assert_eq!(download.error_type(), error, "{user}");
        }
    }
    // Without a login at all: the usual challenge.
    let anonymous = r.server.client().get(&download_path(&key)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.logged_downloads().len(),
        0,
        "the auditor's download follows the same switch"
    );

    // Switched on: the next download is logged, with the auditor's name.
    r.admin.open_transaction().await;
    let path = format!("{CONNECTIONS}/{}", r.connection);
    let mut body = r.admin.get(&path).await.json["body"].clone();
    body["log_audit_trail_downloads"] = json!(true);
    let put = r.admin.put(&path, &body).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json);
    r.admin.commit_ok().await;
    let auditor = r.server.login("auditor", "Auditor-passw0rd").await;
    let (status, _, _) = auditor.get_bytes(&download_path(&key)).await;
    assert_eq!(status, StatusCode::OK);
    let lines = r.logged_downloads();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["user"], "auditor", "{}", lines[0]);
    assert_eq!(lines[0]["key"], key.as_str(), "{}", lines[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_session_downloads_what_is_written_so_far() {
    let r = recording(true).await;
    let mut long = r
        .ssh
        .ssh(r.port, USER, PASSWORD, &["echo started; sleep 30"]);
    long.stdout(std::process::Stdio::null());
    let mut child = long.spawn().unwrap();
    let mut active = Value::Null;
    for _ in 0..200 {
        active = r.admin.get("/api/active-sessions").await.json;
        if active["items"].as_array().is_some_and(|i| i.len() == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = active["items"][0]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no active session: {active}"))
        .to_string();
    let key = id.split('/').nth(1).unwrap().to_string();

    let (status, headers, bytes) = r.admin.get_bytes(&download_path(&key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert!(
        !bytes.is_empty(),
        "the trail's header is written at the start"
    );
    let on_disk = r.trail_on_disk(&key);
    let n = 16.min(bytes.len()).min(on_disk.len());
    assert_eq!(bytes[..n], on_disk[..n], "the same file");

    let ended = r
        .admin
        .delete(&format!("/api/active-sessions?id={id}"))
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.json);
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}
