//! The SSH gateway inside `custos serve`: configured over REST, used with the real `ssh` client
//! against a real `sshd`, its sessions listed, terminated and recorded through the REST API.

use std::time::{Duration, Instant};

use custos_testkit::{Client, PASSWORD, Sshd, USER, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Server;

async fn wait_until_listening(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the gateway does not listen on {port} after the commit");
}

/// A running `custos serve` whose gateway, configured by one REST commit, listens on `port` and
/// sends sessions to a real sshd.
struct ServedGateway {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    sshd: Sshd,
    ssh: Client,
    server: Server,
    admin: crate::harness::Client,
    port: u16,
}

async fn served_gateway(name: &str, channel_policy: &str) -> ServedGateway {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let ssh = Client::new(dir.path());
    let server = Server::start().await;
    let admin = server.admin().await;
    // A commit configures the running gateway.
    let port = free_port();
    admin.open_transaction().await;
    admin
        .create(
            "/api/configuration/ssh/connections",
            &json!({
                "name": name,
                "network": {"clients": ["127.0.0.0/8"], "targets": ["127.0.0.1"], "ports": [port]},
                "server_address": {"selection": "fix", "address": "127.0.0.1", "port": sshd.port},
                "policies": {"channel_policy": channel_policy, "audit_policy": "-1"},
            }),
        )
        .await;
    admin.commit_ok().await;
    wait_until_listening(port).await;
    ServedGateway {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        sshd,
        ssh,
        server,
        admin,
        port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_through_the_served_gateway_are_listed_terminated_and_recorded() {
    let g = served_gateway("e2e", "-2").await;
    let (sshd, ssh, server, admin, port) = (&g.sshd, &g.ssh, &g.server, &g.admin, g.port);

    // A recorded exec session.
    let mut exec = ssh.ssh(port, USER, PASSWORD, &["echo via-custos-serve"]);
    let out = tokio::task::spawn_blocking(move || exec.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "via-custos-serve\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The record is stored when the session starts (active) and again when it ends: wait for
    // the ended one.
    let mut listing = Value::Null;
    for _ in 0..100 {
        listing = admin.get("/api/audit/sessions").await.json;
        if let Some(key) = listing["items"][0]["key"].as_str()
            && admin.get(&format!("/api/audit/sessions/{key}")).await.json["body"]["active"]
                == false
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listing["meta"]["match_count"], 1, "{listing}");
    let key = listing["items"][0]["key"].as_str().unwrap().to_string();
    let session = admin.get(&format!("/api/audit/sessions/{key}")).await;
    assert_eq!(session.status, StatusCode::OK);
    let body = &session.json["body"];
    assert_eq!(body["protocol"], "SSH");
    assert_eq!(body["verdict"], "ACCEPT");
    assert_eq!(body["active"], false);
    assert_eq!(body["user"]["server_username"], json!([USER]));
    assert_eq!(body["recording"]["connection_policy"], "e2e");
    assert_eq!(body["recording"]["channel_policy"], "all-session");
    assert_eq!(body["server"]["port"], sshd.port);
    assert!(
        body["recording"]["session_id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("svc/{key}/e2e:"))
    );
    let trail = server.data_dir().join(format!("trails/{key}.trail"));
    assert!(
        std::fs::metadata(&trail).unwrap().len() > 0,
        "the trail is in the data directory"
    );

    // A running session is listed and terminated over REST within a second.
    let mut long = ssh.ssh(port, USER, PASSWORD, &["sleep 30"]);
    let mut child = long.spawn().unwrap();
    let mut active = Value::Null;
    for _ in 0..100 {
        active = admin.get("/api/active-sessions").await.json;
        if active["items"].as_array().is_some_and(|i| i.len() == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = active["items"][0]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no active session: {active}"))
        .to_string();
    assert_eq!(active["items"][0]["body"]["active"], true);
    let started = Instant::now();
    let r = admin.delete(&format!("/api/active-sessions?id={id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "terminated in {:?}",
        started.elapsed()
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(!status.success(), "the client's connection was closed");
    let terminated_key = id.split('/').nth(1).unwrap();
    let record = admin
        .get(&format!("/api/audit/sessions/{terminated_key}"))
        .await;
    assert_eq!(
        record.json["body"]["verdict"], "TERMINATED",
        "{}",
        record.json
    );
    assert_eq!(record.json["body"]["active"], false);
    let again = admin.delete(&format!("/api/active-sessions?id={id}")).await;
    assert_eq!(again.error_type(), "SessionCouldNotBeFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_terminal_session_replays_and_exports_to_asciicast_that_asciinema_accepts() {
    let g = served_gateway("tty", "-1").await;
    let (ssh, server, admin, port) = (&g.ssh, &g.server, &g.admin, g.port);
    let dir = &g.dir;

    let mut shell = ssh.ssh(port, USER, PASSWORD, &["-tt"]);
    shell
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = shell.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo cast-$((20+22)); exit\n")
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("cast-42"));

    let mut key = None;
    for _ in 0..100 {
        let listing = admin.get("/api/audit/sessions").await.json;
        if let Some(k) = listing["items"][0]["key"].as_str() {
            key = Some(k.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let trail = server
        .data_dir()
        .join(format!("trails/{}.trail", key.expect("a recorded session")));
    for _ in 0..100 {
        if admin.get("/api/active-sessions").await.json["items"]
            .as_array()
            .is_some_and(|i| i.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["replay", "--max"])
        .arg(&trail)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(String::from_utf8_lossy(&replay.stdout).contains("cast-42"));

    let cast = dir.join("session.cast");
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["export", "--format", "asciicast", "-o"])
        .arg(&cast)
        .arg(&trail)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let text = std::fs::read_to_string(&cast).unwrap();
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert!(text.contains("cast-42"));
    // The real asciinema must accept it (it needs a terminal: run it under script).
    let cat = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("asciinema cat {}", cast.display()),
            "/dev/null",
        ])
        .output()
        .expect("asciinema and script (./test.sh installs them)");
    assert!(
        cat.status.success(),
        "asciinema rejected the file: {}",
        String::from_utf8_lossy(&cat.stdout)
    );
    assert!(String::from_utf8_lossy(&cat.stdout).contains("cast-42"));
}
