//! The gateway between the real OpenSSH client and a real OpenSSH server on loopback.
//!
//! Needs root (to run sshd and to create the test account `custos-e2e`), `sshd` and `ssh`:
//! `./test.sh` installs them. Password logins go through `SSH_ASKPASS`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_config::document::Document;
use custos_config::edit;
use custos_config::tree::tree;
use custos_gateway::Gateway;
use custos_sessions::{BoxFuture, LiveSessions, SessionRecord, SessionStore, Verdict};
use custos_testkit::{Client, PASSWORD, Sshd, USER, free_port, run, sha256};
use serde_json::json;

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

/// A configuration with one connection policy: listen on `listen`, go to the fixed `target`.
fn configuration(listen: u16, target: u16, channel_policy: &str) -> Document {
    configuration_with(listen, target, channel_policy, json!({}))
}

/// [`configuration`], with `extra` fields merged into the connection policy.
fn configuration_with(
    listen: u16,
    target: u16,
    channel_policy: &str,
    extra: serde_json::Value,
) -> Document {
    let mut doc = custos_config::bootstrap::initial_document("admin-pw", 1).unwrap();
    let node = tree()
        .node(custos_config::objects::ssh::SSH_CONNECTIONS)
        .unwrap();
    edit::create(
        &mut doc,
        node,
        json!({
            "name": "e2e",
            "network": {"clients": ["127.0.0.0/8"], "targets": ["127.0.0.1"], "ports": [listen]},
            "server_address": {"selection": "fix", "address": "127.0.0.1", "port": target},
            "policies": {"channel_policy": channel_policy, "audit_policy": "-1"},
        })
        .as_object()
        .cloned()
        .unwrap()
        .into_iter()
        .chain(extra.as_object().cloned().unwrap_or_default())
        .collect(),
        1,
    )
    .unwrap();
    doc
}

struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    client: Client,
    gateway_port: u16,
    store: Arc<MemoryStore>,
    live: LiveSessions,
    _sshd: Sshd,
    gateway: Arc<Gateway>,
}

async fn setup(channel_policy: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Arc::new(MemoryStore::default());
    let live = LiveSessions::default();
    let gateway = Gateway::new(&data, "node-1".into(), live.clone(), store.clone()).unwrap();
    let gateway_port = free_port();
    gateway
        .apply(&configuration(gateway_port, sshd.port, channel_policy))
        .await;
    assert_eq!(
        gateway.listening(),
        vec![SocketAddr::from(([127, 0, 0, 1], gateway_port))]
    );
    let client = Client::new(dir.path());
    Setup {
        _dir: dir,
        data,
        client,
        gateway_port,
        store,
        live,
        _sshd: sshd,
        gateway,
    }
}

impl Setup {
    fn ssh(&self, password: &str, args: &[&str]) -> Command {
        self.ssh_to(self.gateway_port, password, args)
    }

    fn ssh_to(&self, port: u16, password: &str, args: &[&str]) -> Command {
        self.client.ssh(port, USER, password, args)
    }

    /// The stored records once `expected` sessions have been finalised (just after their
    /// clients exit).
    async fn records(&self, expected: usize) -> Vec<SessionRecord> {
        for _ in 0..100 {
            let records = self.store.0.lock().unwrap().clone();
            if records.len() >= expected && records.iter().all(|r| !r.active) {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.store.0.lock().unwrap().clone()
    }
}

fn trail_text(data: &Path, record: &SessionRecord) -> String {
    let path = data.join(record.trail.as_ref().expect("trail"));
    let mut reader = custos_trail::TrailReader::open(&path).unwrap();
    let verification = reader.verify().unwrap();
    assert!(
        verification.is_ok(),
        "trail does not verify: {verification:?}"
    );
    let mut text = Vec::new();
    for item in reader.records() {
        if let (_, custos_trail::Record::Data { bytes, .. }) = item.unwrap() {
            text.extend_from_slice(&bytes);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_through_the_gateway_returns_output_and_exit_status_and_is_recorded() {
    let s = setup("-2").await;
    let mut ssh = s.ssh(PASSWORD, &["echo custos-$((6*7)); echo oops >&2; exit 3"]);
    let out = tokio::task::spawn_blocking(move || ssh.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "custos-42\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    assert_eq!(out.status.code(), Some(3));

    let records = s.records(1).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.verdict, Verdict::Accept);
    assert_eq!(record.server_username.as_deref(), Some(USER));
    assert!(
        record
            .session_id
            .starts_with(&format!("svc/{}/e2e:", record.key))
    );
    assert!(record.end_time.is_some() && !record.active);
    let text = trail_text(&s.data, record);
    assert!(
        text.contains("custos-42") && text.contains("oops"),
        "{text}"
    );
    assert!(s.live.list().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_and_recorded_as_auth_fail() {
    let s = setup("-2").await;
    let mut ssh = s.ssh("not-the-password", &["true"]);
    let out = tokio::task::spawn_blocking(move || ssh.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let records = s.records(1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].verdict, Verdict::AuthFail, "{:?}", records[0]);
    assert!(records[0].trail.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_type_the_policy_denies_is_refused() {
    // -1 is the built-in shell-only channel policy: exec is denied.
    let s = setup("-1").await;
    let mut ssh = s.ssh(PASSWORD, &["echo should-not-run"]);
    let out = tokio::task::spawn_blocking(move || ssh.output().unwrap())
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("should-not-run"));
    assert_ne!(out.status.code(), Some(0));
    let _ = &s.gateway;
}

async fn output(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_shell_with_a_pty_is_relayed_and_its_output_recorded() {
    let s = setup("-1").await;
    let mut ssh = s.ssh(PASSWORD, &["-tt"]);
    ssh.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = ssh.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo pty-$((40+2)); stty size; exit 0\n")
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pty-42"), "{stdout}");
    let records = s.records(1).await;
    let text = trail_text(&s.data, &records[0]);
    assert!(
        text.contains("pty-42"),
        "the trail holds the screen output: {text}"
    );
    assert!(text.contains("echo pty-"), "and what was typed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_of_100_mib_both_ways_keeps_the_checksum() {
    let s = setup("-2").await;
    let work = s.data.parent().unwrap().join("files");
    std::fs::create_dir_all(&work).unwrap();
    let original = work.join("payload.bin");
    assert!(
        run(Command::new("head")
            .args(["-c", "104857600", "/dev/urandom"])
            .stdout(std::fs::File::create(&original).unwrap()))
        .status
        .success()
    );
    let remote = format!("/tmp/custos-e2e-{}.bin", std::process::id());

    let mut up = Command::new("scp");
    up.args(["-P", &s.gateway_port.to_string()]);
    s.client.options(&mut up, PASSWORD);
    up.arg(&original).arg(format!("{USER}@127.0.0.1:{remote}"));
    let out = output(up).await;
    assert!(
        out.status.success(),
        "scp up: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let back = work.join("back.bin");
    let mut down = Command::new("scp");
    down.args(["-P", &s.gateway_port.to_string()]);
    s.client.options(&mut down, PASSWORD);
    down.arg(format!("{USER}@127.0.0.1:{remote}")).arg(&back);
    let out = output(down).await;
    assert!(
        out.status.success(),
        "scp down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&remote);

    assert_eq!(sha256(&original), sha256(&back));
    let records = s.records(2).await;
    assert_eq!(records.len(), 2);
    for record in &records {
        let size = std::fs::metadata(s.data.join(record.trail.as_ref().unwrap()))
            .unwrap()
            .len();
        assert!(
            size > 100 * 1024 * 1024,
            "the transfer is recorded: {size} bytes"
        );
        assert!(
            size < 105 * 1024 * 1024,
            "with little overhead: {size} bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_works_through_the_gateway() {
    let s = setup("-2").await;
    let work = s.data.parent().unwrap().join("sftp");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("hello.txt"), "sftp through custos\n").unwrap();
    let remote = format!("/tmp/custos-sftp-{}.txt", std::process::id());
    let batch = work.join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {remote}\nget {remote} {}\nrm {remote}\n",
            work.join("hello.txt").display(),
            work.join("back.txt").display()
        ),
    )
    .unwrap();
    // Not `-b`: batch mode forbids password prompts. The commands come on standard input.
    let mut sftp = Command::new("sftp");
    sftp.args(["-P", &s.gateway_port.to_string()]);
    s.client.options(&mut sftp, PASSWORD);
    sftp.arg(format!("{USER}@127.0.0.1"))
        .stdin(std::fs::File::open(&batch).unwrap());
    let out = output(sftp).await;
    assert!(
        out.status.success(),
        "sftp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(work.join("back.txt")).unwrap(),
        "sftp through custos\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_target_host_key_refuses_the_session_and_says_why() {
    let s = setup("-2").await;
    let out = output(s.ssh(PASSWORD, &["true"])).await;
    assert!(
        out.status.success(),
        "first contact: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let learned = std::fs::read_to_string(s.data.join("known_hosts.json")).unwrap();
    assert!(
        learned.contains(&format!("127.0.0.1:{}", s._sshd.port)),
        "{learned}"
    );

    // What a re-installed server looks like: the stored key for this address is another one.
    let other = s.data.parent().unwrap().join("other_key");
    assert!(
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&other))
        .status
        .success()
    );
    let other_blob = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_blob = other_blob.split_whitespace().nth(1).unwrap().to_string();
    let changed: serde_json::Value =
        serde_json::json!({format!("127.0.0.1:{}", s._sshd.port): ["ssh-ed25519", other_blob]});
    std::fs::write(s.data.join("known_hosts.json"), changed.to_string()).unwrap();
    let gateway = Gateway::new(&s.data, "node-1".into(), s.live.clone(), s.store.clone()).unwrap();
    let port = free_port();
    gateway
        .apply(&configuration(port, s._sshd.port, "-2"))
        .await;

    let out = output(s.ssh_to(port, PASSWORD, &["echo must-not-run"])).await;
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("must-not-run"));
    let records = s.records(2).await;
    let refused = records
        .iter()
        .find(|r| r.verdict == Verdict::Fail)
        .unwrap_or_else(|| panic!("a refused session in {records:?}"));
    let reason = refused.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("host key") && reason.contains("changed"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_a_running_session_closes_it_within_a_second() {
    let s = setup("-2").await;
    let mut ssh = s.ssh(PASSWORD, &["sleep 30"]);
    let mut child = ssh.spawn().unwrap();
    let mut id = None;
    for _ in 0..100 {
        if let Some(r) = s.live.list().first() {
            id = Some(r.session_id.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = id.expect("the session is listed as active");
    let started = std::time::Instant::now();
    s.live
        .terminate(&id, Duration::from_secs(1))
        .await
        .expect("terminated in time");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!status.success());
    let records = s.records(1).await;
    assert_eq!(records[0].verdict, Verdict::Terminated, "{:?}", records[0]);
    // The trail was finalised (it verifies complete).
    let _ = trail_text(&s.data, &records[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_does_not_drop_running_sessions() {
    let s = setup("-2").await;
    let mut ssh = s.ssh(PASSWORD, &["sleep 2; echo still-here"]);
    ssh.stdout(Stdio::piped());
    let child = ssh.spawn().unwrap();
    for _ in 0..100 {
        if !s.live.list().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new revision with a second policy on another port.
    let mut doc = configuration(s.gateway_port, s._sshd.port, "-2");
    let extra = free_port();
    edit::create(
        &mut doc,
        tree().node(custos_config::objects::ssh::SSH_CONNECTIONS).unwrap(),
        json!({"name": "second", "network": {"clients": ["0.0.0.0/0"], "targets": ["127.0.0.1"], "ports": [extra]},
               "server_address": {"selection": "fix", "address": "127.0.0.1", "port": s._sshd.port},
               "policies": {"channel_policy": "-2", "audit_policy": "-1"}}),
        2,
    )
    .unwrap();
    s.gateway.apply(&doc).await;
    assert_eq!(s.gateway.listening().len(), 2);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still-here\n");
    assert!(out.status.success());
}

/// Unmounts the small filesystem when the test ends, however it ends.
struct Mounted(PathBuf);

impl Mounted {
    /// Mounts a tmpfs of `size` (e.g. `"2m"`) on `dir` (needs root).
    fn tmpfs(dir: &Path, size: &str) -> Mounted {
        std::fs::create_dir_all(dir).unwrap();
        let mount = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir));
        assert!(
            mount.status.success(),
            "mount tmpfs (needs root): {}",
            String::from_utf8_lossy(&mount.stderr)
        );
        Mounted(dir.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_closes_the_session_instead_of_relaying_unrecorded_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let client = Client::new(dir.path());
    let data = dir.path().join("data");
    let _mounted = Mounted::tmpfs(&data.join("trails"), "2m");

    let store = Arc::new(MemoryStore::default());
    let gateway = Gateway::new(
        &data,
        "node-1".into(),
        LiveSessions::default(),
        store.clone(),
    )
    .unwrap();
    let port = free_port();
    gateway.apply(&configuration(port, sshd.port, "-2")).await;

    let payload = dir.path().join("big.bin");
    assert!(
        run(Command::new("head")
            .args(["-c", "10485760", "/dev/urandom"])
            .stdout(std::fs::File::create(&payload).unwrap()))
        .status
        .success()
    );
    let remote = format!("/tmp/custos-full-{}.bin", std::process::id());
    let mut scp = Command::new("scp");
    scp.args(["-P", &port.to_string()]);
    client.options(&mut scp, PASSWORD);
    scp.arg(&payload).arg(format!("{USER}@127.0.0.1:{remote}"));
    let out = output(scp).await;
    let copied = std::fs::metadata(&remote).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&remote);
    assert!(
        !out.status.success(),
        "the transfer must fail when it cannot be recorded"
    );

    let mut records = Vec::new();
    for _ in 0..100 {
        records = store.0.lock().unwrap().clone();
        if records.len() == 1 && !records[0].active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].verdict, Verdict::Fail, "{:?}", records[0]);
    let reason = records[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("audit trail"), "{reason}");
    // What reached the target is bounded by what the trail holds plus what was in flight
    // (the bounded queue and the SSH windows), far below the 10 MiB offered.
    // Measured: 0.8–1.8 MiB with a 2 MiB trail filesystem. The bound: what the trail held plus
    // at most the recorder queue (~1 MiB) in flight when the failure was seen.
    assert!(
        copied < 3 * 1024 * 1024,
        "{copied} bytes reached the target unrecorded?"
    );
}

/// A `refuse_new` policy refuses new sessions while the trail storage is below its reserve
/// (64 MiB); a `close_session` policy on the same storage still accepts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_new_refuses_sessions_while_the_trail_storage_is_below_its_reserve() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let client = Client::new(dir.path());
    let data = dir.path().join("data");
    let _mounted = Mounted::tmpfs(&data.join("trails"), "16m");

    for (setting, accepted) in [("refuse_new", false), ("close_session", true)] {
        let store = Arc::new(MemoryStore::default());
        let gateway = Gateway::new(
            &data,
            "node-1".into(),
            LiveSessions::default(),
            store.clone(),
        )
        .unwrap();
        let port = free_port();
        let doc = configuration_with(port, sshd.port, "-2", json!({"on_storage_full": setting}));
        gateway.apply(&doc).await;

        let mut ssh = Command::new("ssh");
        ssh.args(["-p", &port.to_string()]);
        client.options(&mut ssh, PASSWORD);
        ssh.arg(format!("{USER}@127.0.0.1"))
            .arg("echo through-the-gateway");
        let out = output(ssh).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.contains("through-the-gateway"),
            accepted,
            "{setting}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The record is stored once the gateway has seen the connection end.
        let mut last = None;
        for _ in 0..100 {
            last = store.0.lock().unwrap().last().cloned();
            if last.as_ref().is_some_and(|r| !r.active) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let last = last.expect("a session record");
        if accepted {
            assert_eq!(last.verdict, Verdict::Accept, "{last:?}");
        } else {
            assert_eq!(last.verdict, Verdict::Fail, "{last:?}");
            let reason = last.reason.clone().unwrap_or_default();
            assert!(reason.contains("nearly full"), "{reason}");
            assert!(
                last.trail.is_none(),
                "no trail for a refused session: {last:?}"
            );
        }
        gateway
            .apply(&custos_config::bootstrap::initial_document("admin-pw", 1).unwrap())
            .await;
    }
}

/// Reads what a local forward delivers: the first bytes from the forwarded port.
fn read_through_forward(port: u16) -> Vec<u8> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buffer = [0u8; 64];
    let n = stream.read(&mut buffer).unwrap_or(0);
    buffer[..n].to_vec()
}

async fn local_forward_delivers(channel_rules: serde_json::Value) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let client = Client::new(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut doc = custos_config::bootstrap::initial_document("admin-pw", 1).unwrap();
    let policy = edit::create(
        &mut doc,
        tree()
            .node(custos_config::objects::ssh::SSH_CHANNEL_POLICIES)
            .unwrap(),
        json!({"name": "forwards", "rules": channel_rules}),
        1,
    )
    .unwrap();
    let port = free_port();
    edit::create(
        &mut doc,
        tree().node(custos_config::objects::ssh::SSH_CONNECTIONS).unwrap(),
        json!({"name": "fwd", "network": {"clients": ["127.0.0.0/8"], "targets": ["127.0.0.1"], "ports": [port]},
               "server_address": {"selection": "fix", "address": "127.0.0.1", "port": sshd.port},
               "policies": {"channel_policy": policy, "audit_policy": "-1"}}),
        1,
    )
    .unwrap();
    let gateway = Gateway::new(
        &data,
        "node-1".into(),
        LiveSessions::default(),
        Arc::new(MemoryStore::default()),
    )
    .unwrap();
    gateway.apply(&doc).await;
    let local = free_port();
    let mut ssh = client.ssh(port, USER, PASSWORD, &[]);
    // -N: no session channel, only the forward.
    ssh.args(["-N", "-L", &format!("{local}:127.0.0.1:{}", sshd.port)]);
    let mut child = ssh.spawn().unwrap();
    custos_testkit::wait_for_port(local);
    let got = tokio::task::spawn_blocking(move || read_through_forward(local))
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_forward_is_relayed_only_when_the_channel_policy_allows_it() {
    let allowed = local_forward_delivers(json!([{"channel": "local-forward"}])).await;
    assert!(
        allowed.starts_with(b"SSH-2.0-"),
        "the forward reaches the service: {allowed:?}"
    );
    let denied = local_forward_delivers(json!([{"channel": "session-shell"}])).await;
    assert!(
        denied.is_empty(),
        "a denied forward carries nothing: {denied:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_interactive_logins_are_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start_keyboard_interactive(dir.path());
    let client = Client::new(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Arc::new(MemoryStore::default());
    let gateway = Gateway::new(
        &data,
        "node-1".into(),
        LiveSessions::default(),
        store.clone(),
    )
    .unwrap();
    let port = free_port();
    gateway.apply(&configuration(port, sshd.port, "-2")).await;

    let ssh_with = |password: &str| {
        let mut cmd = Command::new("ssh");
        cmd.args(["-p", &port.to_string()]);
        client.options_for(&mut cmd, password, "keyboard-interactive");
        cmd.arg(format!("{USER}@127.0.0.1"))
            .arg("echo kbd-$((3*3))");
        cmd
    };
    let out = output(ssh_with(PASSWORD)).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "kbd-9\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output(ssh_with("wrong-answer")).await;
    assert!(!out.status.success());

    let mut records = Vec::new();
    for _ in 0..100 {
        records = store.0.lock().unwrap().clone();
        if records.len() == 2 && records.iter().all(|r| !r.active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    records.sort_by_key(|r| r.start_time);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].verdict, Verdict::Accept);
    assert_eq!(
        records[0].auth_method.as_deref(),
        Some("keyboard-interactive")
    );
    assert_eq!(records[1].verdict, Verdict::AuthFail, "{:?}", records[1]);
}
