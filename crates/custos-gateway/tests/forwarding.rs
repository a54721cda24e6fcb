//! Public-key logins through the client's forwarded agent, agent relaying, remote forwards and
//! X11 forwarding, between the real OpenSSH client and a real OpenSSH server on loopback.
//!
//! Needs root (to run sshd and to create the test account `custos-e2e`), OpenSSH (`ssh`,
//! `sshd`, `ssh-agent`), `xauth` and `/usr/bin/python3`: `./test.sh` installs them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_config::edit;
use custos_config::objects::ssh::{SSH_CHANNEL_POLICIES, SSH_CONNECTIONS};
use custos_config::tree::tree;
use custos_gateway::Gateway;
use custos_sessions::{BoxFuture, LiveSessions, SessionRecord, SessionStore, Verdict};
use custos_testkit::{
    Agent, Client, PASSWORD, Sshd, SshdOptions, USER, fingerprint, free_port, generate_key,
    readable_dir, run, wait_for_port, write_readable,
};
use custos_trail::Record;
use serde_json::{Value, json};

#[derive(Default)]
struct MemoryStore(Mutex<Vec<SessionRecord>>);

impl SessionStore for MemoryStore {
    fn save(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), String>> {
        let mut records = self.0.lock().unwrap();
        records.retain(|r| r.key != record.key);
        records.push(record);
        Box::pin(async { Ok(()) })
    }
}

/// A gateway in front of a real sshd, with one connection policy whose channel policy has
/// `rules`.
struct Setup {
    dir: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    store: Arc<MemoryStore>,
    client: Client,
    _sshd: Sshd,
    _gateway: Arc<Gateway>,
}

async fn setup(rules: Value, options: SshdOptions) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start_with_options(dir.path(), &options);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut doc = custos_config::bootstrap::initial_document("admin-pw", 1).unwrap();
    let policy = edit::create(
        &mut doc,
        tree().node(SSH_CHANNEL_POLICIES).unwrap(),
        json!({"name": "forwarding", "rules": rules}),
        1,
    )
    .unwrap();
    let port = free_port();
    edit::create(
        &mut doc,
        tree().node(SSH_CONNECTIONS).unwrap(),
        json!({"name": "fwd", "network": {"clients": ["127.0.0.0/8"], "targets": ["127.0.0.1"], "ports": [port]},
               "server_address": {"selection": "fix", "address": "127.0.0.1", "port": sshd.port},
               "policies": {"channel_policy": policy, "audit_policy": "-1"}}),
        1,
    )
    .unwrap();
    let store = Arc::new(MemoryStore::default());
    let gateway = Gateway::new(
        &data,
        "node-1".into(),
        LiveSessions::default(),
        store.clone(),
    )
    .unwrap();
    gateway.apply(&doc).await;
    let client = Client::new(dir.path());
    Setup {
        dir,
        data,
        port,
        store,
        client,
        _sshd: sshd,
        _gateway: gateway,
    }
}

fn rules(channels: &[&str]) -> Value {
    channels.iter().map(|c| json!({"channel": c})).collect()
}

impl Setup {
    /// The stored records once `expected` sessions have ended, oldest first.
    async fn records(&self, expected: usize) -> Vec<SessionRecord> {
        let mut records = Vec::new();
        for _ in 0..200 {
            records = self.store.0.lock().unwrap().clone();
            if records.len() >= expected && records.iter().all(|r| !r.active) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        records.sort_by_key(|r| r.start_time);
        records
    }

    /// Every record of a session's trail (which must verify).
    fn trail(&self, record: &SessionRecord) -> Vec<Record> {
        let path = self.data.join(record.trail.as_ref().expect("a trail"));
        let mut reader = custos_trail::TrailReader::open(&path).unwrap();
        let verification = reader.verify().unwrap();
        assert!(verification.is_ok(), "the trail verifies: {verification:?}");
        reader.records().map(|r| r.unwrap().1).collect()
    }
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// All channel data of a trail, both directions, as text.
fn data_text(trail: &[Record]) -> String {
    let mut out = Vec::new();
    for record in trail {
        if let Record::Data { bytes, .. } = record {
            out.extend_from_slice(bytes);
        }
    }
    text(&out)
}

fn opened_kinds(trail: &[Record]) -> Vec<String> {
    trail
        .iter()
        .filter_map(|r| match r {
            Record::ChannelOpen { kind, .. } => Some(kind.clone()),
            _ => None,
        })
        .collect()
}

fn events(trail: &[Record]) -> Vec<Value> {
    trail
        .iter()
        .filter_map(|r| match r {
            Record::Event(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// A key pair in `dir`, an sshd that accepts it for the test account, and an agent holding it.
struct KeyedSetup {
    s: Setup,
    key: PathBuf,
    agent: Agent,
    /// Short, for the agent's socket.
    _agent_dir: tempfile::TempDir,
}

async fn keyed_setup(channels: &[&str]) -> KeyedSetup {
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(keys.path(), "id_custos");
    let s = setup(
        rules(channels),
        SshdOptions {
            authorized_keys: Some(format!("{public}\n")),
            ..Default::default()
        },
    )
    .await;
    let agent = Agent::start(keys.path());
    agent.add(&key);
    KeyedSetup {
        s,
        key,
        agent,
        _agent_dir: keys,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_key_login_goes_through_the_clients_agent_and_is_recorded_as_publickey() {
    // The policy does not allow agent forwarding: the gateway still uses the agent to log in,
    // but the target never sees it.
    let k = keyed_setup(&["session-exec"]).await;
    let ssh = k.s.client.ssh_with_key(
        k.s.port,
        USER,
        &k.key,
        Some(&k.agent),
        &["-A", "echo pubkey-$((6*7)); ssh-add -l; echo agent-exit=$?"],
    );
    let out = output(ssh).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("pubkey-42"),
        "{stdout} / {}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("agent-exit=2"),
        "the target has no agent: {stdout}"
    );
    assert!(out.status.success());

    let records = k.s.records(1).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.verdict, Verdict::Accept, "{record:?}");
    assert_eq!(record.auth_method.as_deref(), Some("publickey"));
    assert_eq!(record.server_username.as_deref(), Some(USER));
    assert_eq!(record.reason, None);
    let trail = k.s.trail(record);
    assert!(data_text(&trail).contains("pubkey-42"));
    let events = events(&trail);
    let fingerprint = fingerprint(&k.key.with_extension("pub"));
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "public-key-login" && e["fingerprint"] == fingerprint.as_str()),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "channel-denied" && e["channel"] == "agent-forward"),
        "{events:?}"
    );
    assert_eq!(opened_kinds(&trail), ["session"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_agent_forwarding_allowed_the_target_uses_the_clients_agent_through_the_gateway() {
    let k = keyed_setup(&["session-exec", "agent-forward"]).await;
    let ssh = k.s.client.ssh_with_key(
        k.s.port,
        USER,
        &k.key,
        Some(&k.agent),
        &["-A", "ssh-add -l"],
    );
    let out = output(ssh).await;
    let fingerprint = fingerprint(&k.key.with_extension("pub"));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&fingerprint) && stdout.contains("id_custos"),
        "the target lists the client's key: {stdout} / {}",
        text(&out.stderr)
    );

    let records = k.s.records(1).await;
    assert_eq!(records[0].auth_method.as_deref(), Some("publickey"));
    let trail = k.s.trail(&records[0]);
    assert!(
        opened_kinds(&trail).contains(&"auth-agent@openssh.com".to_string()),
        "the agent channel is recorded: {:?}",
        opened_kinds(&trail)
    );
    let requests: Vec<String> = trail
        .iter()
        .filter_map(|r| match r {
            Record::ChannelRequest { request, .. } => Some(request.clone()),
            _ => None,
        })
        .collect();
    assert!(
        requests.contains(&"auth-agent-req@openssh.com".to_string()),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_key_login_without_the_agent_is_refused_and_says_why() {
    let k = keyed_setup(&["session-exec"]).await;
    // No agent forwarding at all: the client signs with the key file itself.
    let ssh =
        k.s.client
            .ssh_with_key(k.s.port, USER, &k.key, None, &["echo must-not-run"]);
    let out = output(ssh).await;
    assert!(!out.status.success());
    assert!(!text(&out.stdout).contains("must-not-run"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ssh -A"),
        "the client is told why: {stderr}"
    );

    // The agent is forwarded but does not hold the key.
    let empty = tempfile::tempdir().unwrap();
    let agent = Agent::start(empty.path());
    let ssh = k.s.client.ssh_with_key(
        k.s.port,
        USER,
        &k.key,
        Some(&agent),
        &["-A", "echo must-not-run"],
    );
    let out = output(ssh).await;
    assert!(!out.status.success());
    assert!(!text(&out.stdout).contains("must-not-run"));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("agent did not sign"), "{stderr}");

    let records = k.s.records(2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert_eq!(record.verdict, Verdict::AuthFail, "{record:?}");
        assert_eq!(record.auth_method.as_deref(), Some("publickey"));
        assert!(record.trail.is_none(), "nothing was relayed: {record:?}");
    }
    let reason = |r: &SessionRecord| r.reason.clone().unwrap_or_default();
    assert!(reason(&records[0]).contains("ssh -A"), "{records:?}");
    assert!(
        reason(&records[1]).contains("agent did not sign"),
        "{records:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_target_does_not_accept_is_refused_and_password_still_works() {
    let k = keyed_setup(&["session-exec"]).await;
    let other_dir = tempfile::tempdir().unwrap();
    let (other, _) = generate_key(other_dir.path(), "id_other");
    k.agent.add(&other);
    let ssh = k.s.client.ssh_with_key(
        k.s.port,
        USER,
        &other,
        Some(&k.agent),
        &["-A", "echo must-not-run"],
    );
    let out = output(ssh).await;
    assert!(!out.status.success());
    assert!(!text(&out.stdout).contains("must-not-run"));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );

    // As when connecting to the target directly, the client goes on to its password.
    let mut ssh = Command::new("ssh");
    ssh.args(["-p", &k.s.port.to_string(), "-i"])
        .arg(&other)
        .args(["-o", "PubkeyAuthentication=yes", "-o", "IdentitiesOnly=yes"]);
    k.s.client
        .options_for(&mut ssh, PASSWORD, "publickey,password");
    ssh.arg(format!("{USER}@127.0.0.1")).arg("echo by-password");
    let out = output(ssh).await;
    assert_eq!(text(&out.stdout), "by-password\n", "{}", text(&out.stderr));

    let records = k.s.records(2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].verdict, Verdict::AuthFail, "{:?}", records[0]);
    assert_eq!(records[0].auth_method.as_deref(), Some("publickey"));
    let reason = records[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("does not accept the public key SHA256:"),
        "{reason}"
    );
    assert_eq!(records[1].verdict, Verdict::Accept, "{:?}", records[1]);
    assert_eq!(records[1].auth_method.as_deref(), Some("password"));
}

/// A TCP service on loopback for forwards: greets, then answers each line with `echo:<line>`.
fn greeting_service() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let _ = writer.write_all(b"custos-rfwd-hello\n");
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if writer
                        .write_all(format!("echo:{line}\n").as_bytes())
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// Connects to a forwarded port: the greeting, then the answer to one line.
fn talk_through(port: u16) -> (String, String) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    (&stream).write_all(b"ping\n").unwrap();
    let mut answer = String::new();
    reader.read_line(&mut answer).unwrap();
    (greeting, answer)
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_forward_is_relayed_recorded_and_cancelled() {
    let s = setup(rules(&["remote-forward"]), SshdOptions::default()).await;
    let service = greeting_service();
    let remote = free_port();
    let spec = format!("127.0.0.1:{remote}:127.0.0.1:{service}");
    let control = s.dir.path().join("ctl");
    let mut master = s.client.ssh(
        s.port,
        USER,
        PASSWORD,
        &["-N", "-M", "-o", "ExitOnForwardFailure=yes", "-R", &spec],
    );
    master.arg("-S").arg(&control);
    let mut master = master.spawn().unwrap();
    tokio::task::spawn_blocking(move || wait_for_port(remote))
        .await
        .unwrap();

    let (greeting, answer) = tokio::task::spawn_blocking(move || talk_through(remote))
        .await
        .unwrap();
    assert_eq!(greeting, "custos-rfwd-hello\n");
    assert_eq!(answer, "echo:ping\n");

    // `ssh -O cancel` sends cancel-tcpip-forward through the master connection.
    let mut cancel = Command::new("ssh");
    cancel
        .arg("-S")
        .arg(&control)
        .args(["-O", "cancel", "-R", &spec, "unused"]);
    let out = output(cancel).await;
    assert!(out.status.success(), "cancel: {}", text(&out.stderr));
    let mut stopped = false;
    for _ in 0..100 {
        if !listening(remote) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stopped, "the target stopped listening on {remote}");
    let _ = master.kill();
    let _ = master.wait();

    let records = s.records(1).await;
    assert_eq!(records[0].verdict, Verdict::Accept, "{:?}", records[0]);
    let trail = s.trail(&records[0]);
    // One channel per connection the target accepted (waiting for the port made one too).
    let kinds = opened_kinds(&trail);
    assert!(
        !kinds.is_empty() && kinds.iter().all(|k| k == "forwarded-tcpip"),
        "{kinds:?}"
    );
    let data = data_text(&trail);
    assert!(
        data.contains("custos-rfwd-hello") && data.contains("ping") && data.contains("echo:ping"),
        "both directions are recorded: {data:?}"
    );
    let events = events(&trail);
    for kind in ["remote-forward", "remote-forward-cancelled"] {
        assert!(
            events
                .iter()
                .any(|e| e["type"] == kind && e["port"] == u64::from(remote)),
            "{kind} in {events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_forward_the_policy_denies_is_refused_and_recorded() {
    let s = setup(rules(&["session-exec"]), SshdOptions::default()).await;
    let service = greeting_service();
    let remote = free_port();
    let spec = format!("127.0.0.1:{remote}:127.0.0.1:{service}");
    let ssh = s.client.ssh(
        s.port,
        USER,
        PASSWORD,
        &["-o", "ExitOnForwardFailure=yes", "-R", &spec, "sleep 5"],
    );
    let out = output(ssh).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("remote port forwarding failed"),
        "{}",
        text(&out.stderr)
    );
    assert!(!listening(remote));
    let records = s.records(1).await;
    let events = events(&s.trail(&records[0]));
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "channel-denied" && e["channel"] == "remote-forward"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_forward_asked_before_a_public_key_login_completes_is_set_up_after_it() {
    // OpenSSH asks for remote forwards right after authentication, before the session channel
    // that carries the agent: the gateway queues the request until the target login is done.
    let k = keyed_setup(&["session-exec", "remote-forward"]).await;
    let service = greeting_service();
    let remote = free_port();
    let spec = format!("127.0.0.1:{remote}:127.0.0.1:{service}");
    let ssh = k.s.client.ssh_with_key(
        k.s.port,
        USER,
        &k.key,
        Some(&k.agent),
        &["-A", "-R", &spec, "sleep 3; echo done"],
    );
    let child = tokio::task::spawn_blocking(move || {
        let mut ssh = ssh;
        ssh.output().unwrap()
    });
    tokio::task::spawn_blocking(move || wait_for_port(remote))
        .await
        .unwrap();
    let (greeting, answer) = tokio::task::spawn_blocking(move || talk_through(remote))
        .await
        .unwrap();
    assert_eq!(
        (greeting.as_str(), answer.as_str()),
        ("custos-rfwd-hello\n", "echo:ping\n")
    );
    let out = child.await.unwrap();
    assert_eq!(text(&out.stdout), "done\n", "{}", text(&out.stderr));
    let records = k.s.records(1).await;
    assert_eq!(records[0].auth_method.as_deref(), Some("publickey"));
    let kinds = opened_kinds(&k.s.trail(&records[0]));
    // The forward is set up first, as OpenSSH asked for it first; then the session channel.
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert_eq!(count("session"), 1, "{kinds:?}");
    assert!(
        count("forwarded-tcpip") >= 1 && count("forwarded-tcpip") + 1 == kinds.len(),
        "{kinds:?}"
    );
}

/// A pretend X server on 127.0.0.1:6000+N: takes one connection, keeps its setup request,
/// answers with a marker.
struct FakeX {
    display: u16,
    setup: std::sync::mpsc::Receiver<Vec<u8>>,
}

fn fake_x_server() -> FakeX {
    let (display, listener) = (50..300)
        .find_map(|n| {
            TcpListener::bind(("127.0.0.1", 6000 + n))
                .ok()
                .map(|l| (n, l))
        })
        .expect("a free X display port");
    let (sent, setup) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        // xConnClientPrefix: byte order, pad, major, minor, name length, data length, pad.
        let mut prefix = [0u8; 12];
        if stream.read_exact(&mut prefix).is_err() {
            return;
        }
        let u16_at = |i: usize| usize::from(u16::from_le_bytes([prefix[i], prefix[i + 1]]));
        let padded = |n: usize| n.div_ceil(4) * 4;
        let mut rest = vec![0u8; padded(u16_at(6)) + padded(u16_at(8))];
        if stream.read_exact(&mut rest).is_err() {
            return;
        }
        let _ = stream.write_all(b"custos-x11-ok");
        let mut setup = prefix.to_vec();
        setup.extend_from_slice(&rest);
        let _ = sent.send(setup);
    });
    FakeX { display, setup }
}

/// An X client for the target: reads the display's cookie with `xauth list $DISPLAY`, sends
/// a connection setup with it, prints what it used and what the server answered.
const X_CLIENT: &str = r#"
import os, socket, struct, subprocess
display = os.environ.get("DISPLAY")
if not display:
    print("no-display")
    raise SystemExit(0)
host, number = display.rsplit(":", 1)
number = int(number.split(".")[0])
entry = subprocess.run(["xauth", "list", display], capture_output=True, text=True).stdout.split()
protocol, cookie = entry[1].encode(), bytes.fromhex(entry[2])
pad = lambda b: b + b"\0" * (-len(b) % 4)
s = socket.create_connection((host or "localhost", 6000 + number))
s.sendall(struct.pack("<BxHHHHxx", ord("l"), 11, 0, len(protocol), len(cookie)) + pad(protocol) + pad(cookie))
print("remote-cookie:" + cookie.hex())
print("x11-reply:" + s.recv(64).decode())
"#;

const CLIENT_COOKIE: &str = "5eed0c0ffee0123456789abcdef01234";

/// Runs the X client on the target through the gateway, with X11 forwarding to `x`.
async fn run_x_client(s: &Setup, x: &FakeX, script: &Path) -> Output {
    let xauthority = s.dir.path().join("client.xauth");
    let display = format!("127.0.0.1:{}", x.display);
    let out = run(Command::new("xauth").arg("-f").arg(&xauthority).args([
        "add",
        &display,
        "MIT-MAGIC-COOKIE-1",
        CLIENT_COOKIE,
    ]));
    assert!(out.status.success(), "xauth: {}", text(&out.stderr));
    // -Y: the client's display is trusted, so OpenSSH reads its cookie with `xauth list`
    // (untrusted forwarding would need a real X server's SECURITY extension).
    let command = format!("/usr/bin/python3 {}", script.display());
    let mut ssh = s.client.ssh(
        s.port,
        USER,
        PASSWORD,
        &["-Y", "-o", "XAuthLocation=/usr/bin/xauth", &command],
    );
    ssh.env("DISPLAY", &display).env("XAUTHORITY", &xauthority);
    output(ssh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x11_is_relayed_with_the_clients_cookie_and_recorded() {
    let s = setup(
        rules(&["session-exec", "x11"]),
        SshdOptions {
            x11: true,
            ..Default::default()
        },
    )
    .await;
    let scripts = readable_dir();
    let script = scripts.path().join("xclient.py");
    write_readable(&script, X_CLIENT);
    let x = fake_x_server();
    let out = run_x_client(&s, &x, &script).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("x11-reply:custos-x11-ok"),
        "the X client got the server's answer: {stdout} / {}",
        text(&out.stderr)
    );
    let setup = x
        .setup
        .recv_timeout(Duration::from_secs(5))
        .expect("the X server got a connection");
    assert_eq!(setup[0], b'l', "byte order");
    assert_eq!(u16::from_le_bytes([setup[2], setup[3]]), 11, "X11");
    assert_eq!(&setup[12..30], b"MIT-MAGIC-COOKIE-1");
    let cookie: String = setup[32..48].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        cookie, CLIENT_COOKIE,
        "the client's OpenSSH put its real cookie in place of the target's"
    );
    assert!(
        !stdout.contains(&format!("remote-cookie:{CLIENT_COOKIE}")),
        "the target only ever saw a stand-in cookie: {stdout}"
    );

    let records = s.records(1).await;
    let trail = s.trail(&records[0]);
    assert_eq!(opened_kinds(&trail), ["session", "x11"]);
    assert!(trail.iter().any(|r| matches!(
        r,
        Record::ChannelRequest { request, details, .. }
            if request == "x11-req" && details["protocol"] == "MIT-MAGIC-COOKIE-1"
    )));
    let data = data_text(&trail);
    assert!(
        data.contains("MIT-MAGIC-COOKIE-1") && data.contains("custos-x11-ok"),
        "the X11 traffic is recorded both ways: {data:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x11_the_policy_denies_is_refused_and_recorded() {
    let s = setup(
        rules(&["session-exec"]),
        SshdOptions {
            x11: true,
            ..Default::default()
        },
    )
    .await;
    let scripts = readable_dir();
    let script = scripts.path().join("xclient.py");
    write_readable(&script, X_CLIENT);
    let x = fake_x_server();
    let out = run_x_client(&s, &x, &script).await;
    assert_eq!(text(&out.stdout), "no-display\n", "{}", text(&out.stderr));
    assert!(x.setup.recv_timeout(Duration::from_millis(200)).is_err());
    let records = s.records(1).await;
    let events = events(&s.trail(&records[0]));
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "channel-denied" && e["channel"] == "x11"),
        "{events:?}"
    );
}
