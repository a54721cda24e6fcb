//! Archive and cleanup (issue 7) against the real binary: sessions recorded by the gateway (real
//! `ssh` to a real `sshd`) are moved by archive/cleanup policies to a real Samba `smbd` (a share
//! with user authentication and an anonymous one), to an "NFS" export mounted on the host (a
//! tmpfs standing in for the kernel's NFS mount, which this kernel cannot make), or deleted;
//! they stay searchable and download from the archive; unreachable and full targets fail the
//! job and keep the data; a kill -9 at each step of a run loses and duplicates nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use custos_testkit::samba::{SMB_DOMAIN, SMB_PASSWORD, SMB_USER, Smbd, Tmpfs};
use custos_testkit::{Client as Ssh, PASSWORD, Sshd, USER, free_port};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Client, Options, Server, eventually};

const SESSIONS: &str = "/api/audit/sessions";
const CONNECTIONS: &str = "/api/configuration/ssh/connections";
const POLICIES: &str = "/api/configuration/policies/archive_cleanup_policies";
const CLEANUP_NOW: &str = "/api/cleanup/cleanup_now";
const JOBS: &str = "/api/cleanup/jobs";

/// A server and a real sshd to record sessions against.
struct Site {
    dir: tempfile::TempDir,
    _sshd: Sshd,
    ssh: Ssh,
    sshd_port: u16,
    server: Server,
    admin: Client,
}

async fn site_with(options: Options) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let ssh = Ssh::new(dir.path());
    let sshd_port = sshd.port;
    let server = Server::start_with(options).await;
    let admin = server.admin().await;
    Site {
        dir,
        _sshd: sshd,
        ssh,
        sshd_port,
        server,
        admin,
    }
}

async fn site() -> Site {
    site_with(Options::default()).await
}

/// A site whose NFS exports are looked for below a fresh directory (returned with it).
async fn site_with_nfs_mounts() -> (tempfile::TempDir, Site) {
    let mounts = tempfile::tempdir().unwrap();
    let site = site_with(Options {
        args: vec![
            "--nfs-mount-root".into(),
            mounts.path().display().to_string(),
        ],
        ..Options::default()
    })
    .await;
    (mounts, site)
}

fn smb_policy(name: &str, ip: &str, share: &str, auth: Value) -> Value {
    json!({
        "name": name,
        "include_node_id_in_path": false,
        "notification_event": {"type": "none", "send_filelist": false},
        "target": {
            "type": "smb",
            "server": {"selection": "ip", "value": ip},
            "protocol_version": "3.0",
            "share": share,
            "authentication": auth,
        },
        "start_times": [],
        "template": "archive_date",
        "retention_days": 0,
    })
}

fn password_auth() -> Value {
    json!({"selection": "password", "username": SMB_USER, "password": SMB_PASSWORD})
}

fn nfs_policy(name: &str, path: &str) -> Value {
    json!({
        "name": name,
        "notification_event": {"type": "none"},
        "target": {"type": "nfs", "server": {"selection": "ip", "value": "127.0.0.1"}, "path": path},
        "start_times": [],
        "template": "connection_date",
        "retention_days": 0,
    })
}

impl Site {
    /// A real smbd, and a policy (with a connection policy using it) to its `archive` share
    /// with the password login; returns (smbd, policy key, port).
    async fn smb_policy(&self, name: &str) -> (Smbd, String, u16) {
        let smbd = Smbd::start(self.dir.path());
        let (policy, port) = self
            .policy(&smb_policy(
                name,
                &smbd.ip.to_string(),
                "archive",
                password_auth(),
            ))
            .await;
        (smbd, policy, port)
    }

    /// Creates the archive policy and a connection policy using it; returns (policy key, port).
    async fn policy(&self, body: &Value) -> (String, u16) {
        let port = free_port();
        self.admin.open_transaction().await;
        let policy = self.admin.create(POLICIES, body).await;
        self.admin
            .create(
                CONNECTIONS,
                &json!({
                    "name": format!("conn-{port}"),
                    "network": {"clients": ["127.0.0.0/8"], "targets": ["127.0.0.1"], "ports": [port]},
                    "server_address": {"selection": "fix", "address": "127.0.0.1", "port": self.sshd_port},
                    "policies": {"channel_policy": "-2", "audit_policy": "-1", "archive_cleanup_policy": policy},
                }),
            )
            .await;
        self.admin.commit_ok().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the gateway never listened");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        (policy, port)
    }

    /// The keys of the ended sessions recorded through `port`.
    async fn ended(&self, port: u16) -> Vec<String> {
        let q = format!(
            "{SESSIONS}?q=active%3Afalse%20AND%20recording.gateway.port%3A{port}&limit=500"
        );
        let listing = self.admin.get(&q).await.json;
        listing["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["key"].as_str().map(String::from))
            .collect()
    }

    /// One ended session through `port` per command; returns their keys once recorded.
    async fn sessions_running(&self, port: u16, commands: &[&str]) -> Vec<String> {
        let before = self.ended(port).await;
        for command in commands {
            self.run(port, command).await;
        }
        let want = before.len() + commands.len();
        let mut keys = eventually(10, "the ended records", || async {
            let now = self.ended(port).await;
            (now.len() >= want).then_some(now)
        })
        .await;
        keys.retain(|k| !before.contains(k));
        keys.sort();
        keys
    }

    /// `n` ended sessions through `port`; returns their keys.
    async fn sessions(&self, port: u16, n: usize) -> Vec<String> {
        let commands: Vec<String> = (0..n)
            .map(|i| format!("echo archived-marker-{i}"))
            .collect();
        let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
        self.sessions_running(port, &commands).await
    }

    async fn run(&self, port: u16, command: &str) {
        let mut exec = self.ssh.ssh(port, USER, PASSWORD, &[command]);
        let out = tokio::task::spawn_blocking(move || exec.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn data(&self) -> PathBuf {
        self.server.data_dir()
    }

    fn local_trail(&self, key: &str) -> PathBuf {
        self.data().join("trails").join(format!("{key}.trail"))
    }

    async fn record(&self, key: &str) -> Value {
        let r = self.admin.get(&format!("{SESSIONS}/{key}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json["body"].clone()
    }

    async fn cleanup_now(&self) -> Value {
        let r = self
            .admin
            .request(Method::POST, CLEANUP_NOW, None, &[])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json
    }

    /// The one job `cleanup_now` ran for `policy`.
    fn job_of<'a>(response: &'a Value, policy: &str) -> &'a Value {
        response["body"]["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["body"]["policy"]["key"] == policy)
            .unwrap_or_else(|| panic!("no job for {policy} in {response}"))
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trails_move_to_an_smb_share_stay_searchable_and_download_from_it() {
    let s = site().await;
    let smbd = Smbd::start(s.dir.path());
    let mut body = smb_policy(
        "to-smb",
        &smbd.ip.to_string(),
        "archive/custos",
        password_auth(),
    );
    body["include_node_id_in_path"] = json!(true);
    body["template"] = json!("protocol/connection/archive_date");
    body["target"]["path"] = json!("trails");
    body["target"]["domain"] = json!(SMB_DOMAIN);
    let (policy, port) = s.policy(&body).await;
    let keys = s.sessions(port, 2).await;
    let originals: Vec<Vec<u8>> = keys.iter().map(|k| read(&s.local_trail(k))).collect();

    // Methods other than POST are refused with SPS's code.
    for method in [Method::GET, Method::PUT] {
        let r = s
            .admin
            .request(method.clone(), CLEANUP_NOW, Some(b"{}"), &[])
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(r.error_type(), "MethodNotAllowed");
    }

    let response = s.cleanup_now().await;
    // The seed's response shape.
    assert_eq!(response["meta"]["href"], CLEANUP_NOW);
    assert_eq!(response["meta"]["parent"], "/api/cleanup");
    assert!(response["meta"]["remaining_seconds"].as_u64().is_some());
    let job = Site::job_of(&response, &policy);
    assert_eq!(job["body"]["state"], "succeeded", "{job}");
    assert_eq!(job["body"]["kind"], "archive");
    assert_eq!(job["body"]["trigger"], "cleanup_now");
    assert_eq!(job["body"]["result"]["files"], 2);

    let node = std::fs::read_to_string(s.data().join("node-id")).unwrap();
    let today = &time_now_iso()[..10];
    for (key, original) in keys.iter().zip(&originals) {
        assert!(
            !s.local_trail(key).exists(),
            "the local copy of {key} is gone"
        );
        let path = format!(
            "custos/trails/{}/ssh/conn-{port}/{today}/{key}.trail",
            node.trim()
        );
        assert_eq!(&read(&smbd.archive_dir.join(&path)), original, "{path}");
        let record = s.record(key).await;
        assert_eq!(record["recording"]["archived"], true);
        let archive = &record["recording"]["audit_trail"]["archive"];
        assert_eq!(archive["type"], "smb");
        assert_eq!(archive["policy"], "to-smb");
        assert_eq!(
            archive["location"],
            format!(
                "smb://{}/archive/custos/trails/{path_tail}",
                smbd.ip,
                path_tail = &path["custos/trails/".len()..]
            )
        );
        assert_eq!(archive["size"], original.len());
        // Downloads come from the share, byte for byte.
        let (status, _, bytes) = s
            .admin
            .get_bytes(&format!("{SESSIONS}/{key}/audit_trail"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&bytes, original);
    }
    // Still searchable, by the flag and by what was shown (once the index has the change).
    let admin = &s.admin;
    let q = format!("{SESSIONS}?q=recording.archived%3Atrue%20AND%20%22archived%20marker%201%22");
    let found = eventually(10, "the archived session in search", || {
        let q = q.clone();
        async move {
            let items = admin.get(&q).await.json["items"].clone();
            (items.as_array().map(Vec::len) == Some(1)).then_some(items)
        }
    })
    .await;
    assert!(keys.contains(&found[0]["key"].as_str().unwrap().to_string()));

    // The history lists the job, and one job by its key.
    let jobs = s.admin.get(JOBS).await;
    assert_eq!(jobs.status, StatusCode::OK);
    assert_eq!(jobs.json["meta"]["match_count"], 1);
    let id = jobs.json["items"][0]["key"].as_str().unwrap().to_string();
    let one = s.admin.get(&format!("{JOBS}/{id}")).await;
    assert_eq!(one.json["body"]["result"]["files"], 2);
    assert_eq!(
        one.json["body"]["result"]["file_list"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        s.admin.get(&format!("{JOBS}/999999")).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(s.server.log().contains("retention job succeeded"));

    // A second run finds nothing more to do, and copies nothing twice.
    let again = s.cleanup_now().await;
    assert_eq!(Site::job_of(&again, &policy)["body"]["result"]["files"], 0);
    assert_eq!(Smbd::files(&smbd.archive_dir).len(), 2);

    // An archived trail changed on the share is not served as if it were the original.
    let tampered = &keys[0];
    let file = Smbd::files(&smbd.archive_dir)
        .into_iter()
        .find(|f| f.contains(tampered.as_str()))
        .unwrap();
    let mut bytes = read(&smbd.archive_dir.join(&file));
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(smbd.archive_dir.join(&file), bytes).unwrap();
    let download = s
        .admin
        .try_get_bytes(&format!("{SESSIONS}/{tampered}/audit_trail"))
        .await;
    assert!(
        download.is_err(),
        "a tampered archive must not download completely"
    );

    // Without the share, the download says the archive cannot be reached.
    drop(smbd);
    let r = s
        .admin
        .get(&format!("{SESSIONS}/{}/audit_trail", keys[1]))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.json);
    assert_eq!(r.error_type(), "ArchiveUnavailable");
}

fn time_now_iso() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    custos_sessions::iso_time(now.as_micros() as i64).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_shares_work_and_an_unreachable_or_refusing_target_keeps_the_trails() {
    let s = site().await;
    let smbd = Smbd::start(s.dir.path());
    let ip = smbd.ip.to_string();
    let anonymous = json!({"selection": "anonymous"});
    let (anon_policy, anon_port) = s
        .policy(&smb_policy("anon", &ip, "anon", anonymous.clone()))
        .await;
    // Nothing serves SMB on this address.
    let (gone_policy, gone_port) = s
        .policy(&smb_policy(
            "nowhere",
            "127.0.0.1",
            "archive",
            password_auth(),
        ))
        .await;
    let mut wrong = smb_policy("wrong-password", &ip, "archive", password_auth());
    wrong["target"]["authentication"]["password"] = json!("not-the-password");
    let (wrong_policy, wrong_port) = s.policy(&wrong).await;
    // The server refuses SMB 1.
    let mut old = smb_policy("smb1", &ip, "archive", password_auth());
    old["target"]["protocol_version"] = json!("1.0");
    let (old_policy, old_port) = s.policy(&old).await;

    let anon_key = s.sessions(anon_port, 1).await.remove(0);
    let mut kept = Vec::new();
    for port in [gone_port, wrong_port, old_port] {
        kept.push(s.sessions(port, 1).await.remove(0));
    }
    let response = s.cleanup_now().await;
    assert_eq!(
        Site::job_of(&response, &anon_policy)["body"]["state"],
        "succeeded"
    );
    let anon_files = Smbd::files(&smbd.anon_dir);
    assert_eq!(anon_files.len(), 1);
    assert!(anon_files[0].ends_with(&format!("{anon_key}.trail")));
    assert!(!s.local_trail(&anon_key).exists());

    for (policy, key) in [&gone_policy, &wrong_policy, &old_policy]
        .into_iter()
        .zip(&kept)
    {
        let job = Site::job_of(&response, policy);
        assert_eq!(job["body"]["state"], "failed", "{job}");
        let errors = job["body"]["result"]["errors"].to_string();
        assert!(!errors.contains(SMB_PASSWORD) && !errors.contains("not-the-password"));
        assert!(
            s.local_trail(key).exists(),
            "the trail of a failed job stays"
        );
        assert_eq!(s.record(key).await["recording"]["archived"], false);
    }
    let gone = Site::job_of(&response, &gone_policy)["body"]["result"]["errors"].to_string();
    assert!(gone.contains("NT_STATUS_CONNECTION_REFUSED"), "{gone}");
    let wrong = Site::job_of(&response, &wrong_policy)["body"]["result"]["errors"].to_string();
    assert!(wrong.contains("NT_STATUS_LOGON_FAILURE"), "{wrong}");
    assert_eq!(Smbd::files(&smbd.archive_dir), Vec::<String>::new());
    assert!(s.server.log().contains("retention job failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nfs_export_must_be_mounted_and_a_full_one_keeps_the_trails_until_there_is_room() {
    let (mounts, s) = site_with_nfs_mounts().await;
    let (policy, port) = s.policy(&nfs_policy("to-nfs", "/exports/custos")).await;
    // A session with about 400 KB of (incompressible) output.
    let key = s
        .sessions_running(port, &["head -c 300000 /dev/urandom | base64"])
        .await
        .remove(0);
    let original = read(&s.local_trail(&key));
    let export = mounts.path().join("127.0.0.1/exports/custos");

    // The directory exists but nothing is mounted there: the files would land on the local disk.
    std::fs::create_dir_all(&export).unwrap();
    let response = s.cleanup_now().await;
    let job = Site::job_of(&response, &policy);
    assert_eq!(job["body"]["state"], "failed");
    assert!(
        job["body"]["result"]["errors"]
            .to_string()
            .contains("not mounted"),
        "{job}"
    );
    assert!(s.local_trail(&key).exists());

    // Mounted but too small: the copy fails, nothing is deleted, no partial file is left.
    {
        let _small = Tmpfs::mount(&export, "64k");
        let response = s.cleanup_now().await;
        let job = Site::job_of(&response, &policy);
        assert_eq!(job["body"]["state"], "failed", "{job}");
        assert!(
            job["body"]["result"]["errors"]
                .to_string()
                .contains("No space left"),
            "{job}"
        );
        assert_eq!(read(&s.local_trail(&key)), original);
        assert_eq!(s.record(&key).await["recording"]["archived"], false);
        assert!(
            Smbd::files(&export).iter().all(|f| !f.ends_with(".trail")),
            "{:?}",
            Smbd::files(&export)
        );
    }
    // With room, the same run succeeds; the trail is where the template says.
    let _big = Tmpfs::mount(&export, "64m");
    let response = s.cleanup_now().await;
    assert_eq!(
        Site::job_of(&response, &policy)["body"]["state"],
        "succeeded",
        "{response}"
    );
    let files = Smbd::files(&export);
    let start = s.record(&key).await["start_time"].as_str().unwrap()[..10].to_string();
    assert!(files.contains(&format!("{start}/{key}.trail")), "{files:?}");
    assert!(!s.local_trail(&key).exists());
    let (status, _, bytes) = s
        .admin
        .get_bytes(&format!("{SESSIONS}/{key}/audit_trail"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanup_policy_deletes_trails_for_good_and_keeps_the_records() {
    let s = site().await;
    let body = json!({
        "name": "forget",
        "notification_event": {"type": "none"},
        "target": {"type": "none"},
        "start_times": [],
        "retention_days": 0,
    });
    let (policy, port) = s.policy(&body).await;
    let keys = s.sessions(port, 2).await;
    // Sessions younger than the retention time stay.
    let mut young = body.clone();
    young["name"] = json!("keep-a-year");
    young["retention_days"] = json!(365);
    let (young_policy, young_port) = s.policy(&young).await;
    let young_key = s.sessions(young_port, 1).await.remove(0);

    let response = s.cleanup_now().await;
    let job = Site::job_of(&response, &policy);
    assert_eq!(job["body"]["kind"], "cleanup");
    assert_eq!(job["body"]["result"]["files"], 2);
    assert_eq!(
        Site::job_of(&response, &young_policy)["body"]["result"]["files"],
        0
    );
    assert!(s.local_trail(&young_key).exists());
    for key in &keys {
        assert!(!s.local_trail(key).exists());
        let record = s.record(key).await;
        assert_eq!(record["recording"]["archived"], false);
        assert_eq!(
            record["recording"]["audit_trail"]["deleted"]["policy"],
            "forget"
        );
        assert_eq!(record["recording"]["audit_trail"]["download"], Value::Null);
        assert_eq!(record["trail_download_link"], Value::Null);
        let r = s.admin.get(&format!("{SESSIONS}/{key}/audit_trail")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("deleted by its archive/cleanup policy")
        );
    }
    // Still found by search.
    let found = s
        .admin
        .get(&format!(
            "{SESSIONS}/_count?q=recording.gateway.port%3A{port}"
        ))
        .await;
    assert_eq!(found.json["count"], 2, "{}", found.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_now_needs_a_login_and_the_policies_privilege() {
    let s = site().await;
    let anonymous = s.server.client();
    let r = anonymous
        .request(Method::POST, CLEANUP_NOW, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_type(), "Unauthenticated");
    s.admin.open_transaction().await;
    s.admin
        .create_user("auditor", "Aud1tor-password", &["search"])
        .await;
    s.admin.commit_ok().await;
    let auditor = s.server.login("auditor", "Aud1tor-password").await;
    for (method, path) in [(Method::POST, CLEANUP_NOW), (Method::GET, JOBS)] {
        let r = auditor.request(method, path, None, &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(r.error_type(), "Unauthorized");
    }
    let r = s.admin.get(&format!("{JOBS}?limit=abc")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_type(), "SyntacticError");
    // Viewing the policies lets one read the history, not run jobs.
    s.admin.open_transaction().await;
    s.admin
        .create_user("viewer", "V1ewer-password", &["policies-view"])
        .await;
    s.admin.commit_ok().await;
    let viewer = s.server.login("viewer", "V1ewer-password").await;
    assert_eq!(viewer.get(JOBS).await.status, StatusCode::OK);
    let r = viewer.request(Method::POST, CLEANUP_NOW, None, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// Kills the server at each step of an archive run and restarts it: every trail ends up
/// archived exactly once, and none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_at_any_step_of_a_run_loses_and_duplicates_nothing() {
    let mut s = site().await;
    let (smbd, policy, port) = s.smb_policy("crash").await;
    let mut all = Vec::new();
    for phase in ["journaled", "copied", "recorded"] {
        let keys = s.sessions(port, 2).await;
        let originals: Vec<Vec<u8>> = keys.iter().map(|k| read(&s.local_trail(k))).collect();
        let resumed_before = resumed(&s.admin).await;
        s.server
            .restart_with_env(vec![(
                "CUSTOS_FAULT_ARCHIVE_PAUSE".into(),
                format!("{phase}:60000"),
            )])
            .await;
        let admin = s.server.admin().await;
        let run =
            tokio::spawn(async move { admin.request(Method::POST, CLEANUP_NOW, None, &[]).await });
        let server = &s.server;
        let pauses_before = phase_index(phase);
        eventually(30, "the pause", || async move {
            (server
                .log()
                .matches("fault injection: archive job paused")
                .count()
                > pauses_before)
                .then_some(())
        })
        .await;
        s.server.restart_with_env(Vec::new()).await;
        run.abort();
        s.admin = s.server.admin().await;
        // The restart resumes the unfinished move on its own.
        let admin = &s.admin;
        eventually(30, "the resumed job", || async move {
            (resumed(admin).await > resumed_before).then_some(())
        })
        .await;
        for (key, original) in keys.iter().zip(&originals) {
            let record = s.record(key).await;
            assert_eq!(record["recording"]["archived"], true, "{phase}: {record}");
            assert!(!s.local_trail(key).exists(), "{phase}");
            let location = record["recording"]["audit_trail"]["archive"]["location"]
                .as_str()
                .unwrap()
                .to_string();
            let path = location.split_once("/archive/").unwrap().1;
            assert_eq!(&read(&smbd.archive_dir.join(path)), original, "{phase}");
        }
        all.extend(keys);
        let files = Smbd::files(&smbd.archive_dir);
        assert_eq!(
            files.len(),
            all.len(),
            "{phase}: one copy per trail: {files:?}"
        );
        // The history shows the interrupted run.
        let jobs = s.admin.get(JOBS).await.json;
        let interrupted = jobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["body"]["state"] == "interrupted" && j["body"]["policy"]["key"] == policy)
            .count();
        assert_eq!(interrupted, phase_index(phase) + 1, "{phase}: {jobs}");
    }
}

/// Many trails in small batches, several copied at once: killed while three batches wait
/// between copy and read-back, the restarted server's job archives every trail exactly once,
/// each with its own bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_copied_side_by_side_archive_each_trail_once_across_a_kill_9() {
    let mut s = site_with(Options {
        args: [
            "--archive-batch-files",
            "2",
            "--archive-parallel-batches",
            "3",
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    })
    .await;
    let (smbd, policy, port) = s.smb_policy("side-by-side").await;
    let keys = s.sessions(port, 9).await;
    assert_eq!(keys.len(), 9);
    let originals: Vec<Vec<u8>> = keys.iter().map(|k| read(&s.local_trail(k))).collect();
    assert!(originals.windows(2).any(|w| w[0] != w[1]));

    s.server
        .restart_with_env(vec![(
            "CUSTOS_FAULT_ARCHIVE_PAUSE".into(),
            "copied:60000".into(),
        )])
        .await;
    let admin = s.server.admin().await;
    let run =
        tokio::spawn(async move { admin.request(Method::POST, CLEANUP_NOW, None, &[]).await });
    let server = &s.server;
    // Three batches (of two trails) copied, each paused before its read-back.
    eventually(30, "three paused batches", || async move {
        (server.log().matches("paused after copying").count() >= 3).then_some(())
    })
    .await;
    assert_eq!(Smbd::files(&smbd.archive_dir).len(), 6);
    s.server.restart_with_env(Vec::new()).await;
    run.abort();
    s.admin = s.server.admin().await;
    let admin = &s.admin;
    let job = eventually(30, "the resumed job", || async move {
        let jobs = admin.get(&format!("{JOBS}?limit=100")).await.json;
        jobs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["body"]["trigger"] == "resume" && j["body"]["state"] != "running")
            .cloned()
    })
    .await;
    assert_eq!(job["body"]["state"], "succeeded", "{job}");
    assert_eq!(job["body"]["policy"]["key"], policy.as_str(), "{job}");
    assert_eq!(job["body"]["result"]["files"], 9, "{job}");

    let mut locations = Vec::new();
    for (key, original) in keys.iter().zip(&originals) {
        let record = s.record(key).await;
        assert_eq!(record["recording"]["archived"], true, "{record}");
        assert!(!s.local_trail(key).exists());
        let location = record["recording"]["audit_trail"]["archive"]["location"]
            .as_str()
            .unwrap()
            .to_string();
        let path = location.split_once("/archive/").unwrap().1.to_string();
        assert!(path.ends_with(&format!("{key}.trail")), "{path}");
        assert_eq!(&read(&smbd.archive_dir.join(&path)), original, "{key}");
        locations.push(path);
    }
    locations.sort();
    locations.dedup();
    assert_eq!(locations.len(), 9);
    assert_eq!(
        Smbd::files(&smbd.archive_dir).len(),
        9,
        "one copy per trail"
    );
}

/// How many phases ran before `phase` (the server log accumulates across restarts).
fn phase_index(phase: &str) -> usize {
    ["journaled", "copied", "recorded"]
        .iter()
        .position(|p| *p == phase)
        .unwrap_or(0)
}

/// Succeeded jobs started by a restart's resume.
async fn resumed(admin: &Client) -> usize {
    let jobs = admin.get(&format!("{JOBS}?limit=1000")).await.json;
    jobs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["body"]["trigger"] == "resume" && j["body"]["state"] == "succeeded")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_one_policy_never_overlap_and_start_at_their_start_times() {
    let s = site_with(Options {
        env: vec![("CUSTOS_FAULT_ARCHIVE_PAUSE".into(), "copied:3000".into())],
        ..Options::default()
    })
    .await;
    let (smbd, policy, port) = s.smb_policy("busy").await;
    s.sessions(port, 1).await;
    let (a, b) = (s.admin.clone(), s.admin.clone());
    let first = tokio::spawn(async move { a.request(Method::POST, CLEANUP_NOW, None, &[]).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let second = b.request(Method::POST, CLEANUP_NOW, None, &[]).await;
    let first = first.await.unwrap();
    assert_eq!(
        Site::job_of(&first.json, &policy)["body"]["state"],
        "succeeded"
    );
    assert_eq!(
        Site::job_of(&second.json, &policy)["body"]["state"],
        "already_running",
        "{}",
        second.json
    );
    assert_eq!(Smbd::files(&smbd.archive_dir).len(), 1);

    // A start time in the next minute (UTC) runs the policy on its own.
    s.sessions(port, 2).await;
    let now = time_now_iso();
    let (h, m): (u32, u32) = (now[11..13].parse().unwrap(), now[14..16].parse().unwrap());
    let next = (h * 60 + m + 1) % 1440;
    let mut body = s.admin.get(&format!("{POLICIES}/{policy}")).await.json["body"].clone();
    body["start_times"] = json!([format!("{}:{:02}", next / 60, next % 60)]);
    body["target"]["authentication"]["password"] = json!(SMB_PASSWORD);
    s.admin.open_transaction().await;
    let r = s.admin.put(&format!("{POLICIES}/{policy}"), &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    s.admin.commit_ok().await;
    let admin = &s.admin;
    eventually(75, "the scheduled job", || async move {
        let jobs = admin.get(JOBS).await.json;
        jobs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| {
                j["body"]["trigger"] == "schedule"
                    && j["body"]["state"] == "succeeded"
                    && j["body"]["result"]["files"] == 2
            })
            .then_some(())
    })
    .await;
    assert_eq!(Smbd::files(&smbd.archive_dir).len(), 3);
}

/// Python's `smtpd` DebuggingServer on a free loopback port: a real SMTP server that prints
/// every message it accepts.
struct SmtpSink {
    child: std::process::Child,
    port: u16,
    out: PathBuf,
}

impl SmtpSink {
    fn start(dir: &Path) -> SmtpSink {
        let port = free_port();
        let out = dir.join("smtp-sink.out");
        let child = std::process::Command::new("/usr/bin/python3")
            .args([
                "-W",
                "ignore",
                "-u",
                "-m",
                "smtpd",
                "-n",
                "-c",
                "DebuggingServer",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m smtpd");
        custos_testkit::wait_for_port(port);
        SmtpSink { child, port, out }
    }

    /// The messages received so far, each as its printed lines.
    fn messages(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .split("---------- MESSAGE FOLLOWS ----------")
            .skip(1)
            .map(String::from)
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const EMAIL: &str = "/api/configuration/management/email";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_notify_by_e_mail_as_their_policies_ask() {
    let s = site().await;
    let sink = SmtpSink::start(s.dir.path());

    // A fresh installation sends no mail; the settings are checked when written.
    let current = s.admin.get(EMAIL).await;
    assert_eq!(current.status, StatusCode::OK);
    assert_eq!(
        current.json["body"]["smtp_server"],
        json!({"selection": "none"})
    );
    s.admin.open_transaction().await;
    let settings = json!({
        "admin_address": "auditors@example.com",
        "alerting_address": "",
        "sender_address": "custos@example.com",
        "smtp_server": {"selection": "address", "address": "127.0.0.1", "port": sink.port},
        "authentication": {"enabled": false},
        "encryption": {"selection": "none"},
    });
    let mut clear_password = settings.clone();
    clear_password["authentication"] = json!({"enabled": true, "username": "u", "password": "p"});
    let r = s.admin.put(EMAIL, &clear_password).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_type(), "SemanticError");
    let mut injected = settings.clone();
    injected["admin_address"] = json!("a@example.com\r\nRCPT TO:<b@example.com>");
    assert_eq!(
        s.admin.put(EMAIL, &injected).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(s.admin.put(EMAIL, &settings).await.status, StatusCode::OK);
    s.admin.commit_ok().await;

    let cleanup = |name: &str, kind: &str, filelist: bool, limit: i64| {
        json!({
            "name": name,
            "notification_event": {"type": kind, "send_filelist": filelist, "file_count_limit": limit},
            "target": {"type": "none"},
            "start_times": [],
            "retention_days": 0,
        })
    };
    let (all, all_port) = s.policy(&cleanup("notify-all", "all", true, 1)).await;
    let (quiet, quiet_port) = s
        .policy(&cleanup("errors-but-fine", "errors-only", true, 5))
        .await;
    let mut failing = smb_policy(
        "errors-and-failing",
        "127.0.0.1",
        "archive",
        password_auth(),
    );
    failing["notification_event"] =
        json!({"type": "errors-only", "send_filelist": true, "file_count_limit": 5});
    let (failing, failing_port) = s.policy(&failing).await;
    let mut silent = smb_policy("never", "127.0.0.1", "archive", password_auth());
    silent["notification_event"] = json!({"type": "none"});
    let (silent, silent_port) = s.policy(&silent).await;
    s.sessions(all_port, 2).await;
    for port in [quiet_port, failing_port, silent_port] {
        s.sessions(port, 1).await;
    }
    let response = s.cleanup_now().await;
    for (policy, state) in [
        (&all, "succeeded"),
        (&quiet, "succeeded"),
        (&failing, "failed"),
        (&silent, "failed"),
    ] {
        assert_eq!(Site::job_of(&response, policy)["body"]["state"], state);
    }
    assert_eq!(
        Site::job_of(&response, &all)["body"]["result"]["notification"],
        "sent to auditors@example.com"
    );

    let messages = sink.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let to_all = messages
        .iter()
        .find(|m| m.contains("notify-all"))
        .expect("the all policy's mail");
    assert!(
        to_all.contains("b'Subject: Custos: cleanup job of policy notify-all succeeded"),
        "{to_all}"
    );
    assert!(to_all.contains("b'From: custos@example.com'"));
    assert!(to_all.contains("b'To: auditors@example.com'"));
    assert!(
        to_all.contains("and 1 more"),
        "file_count_limit 1 of 2 files: {to_all}"
    );
    assert_eq!(to_all.matches(".trail").count(), 1, "{to_all}");
    let failed = messages
        .iter()
        .find(|m| m.contains("errors-and-failing"))
        .expect("the failing policy's mail");
    assert!(failed.contains("failed"), "{failed}");
    assert!(failed.contains("NT_STATUS_CONNECTION_REFUSED"), "{failed}");
    assert!(!failed.contains(SMB_PASSWORD));

    // An SMTP server that is gone fails the notification, not the job.
    drop(sink);
    let (_, again_port) = s.policy(&cleanup("notify-all-2", "all", false, 1)).await;
    s.sessions(again_port, 1).await;
    let response = s.cleanup_now().await;
    let jobs = response["body"]["jobs"].as_array().unwrap();
    let job = jobs
        .iter()
        .find(|j| j["body"]["policy"]["name"] == "notify-all-2")
        .unwrap();
    assert_eq!(job["body"]["state"], "succeeded");
    assert!(
        job["body"]["result"]["notification"]
            .as_str()
            .unwrap()
            .starts_with("not sent"),
        "{job}"
    );
}

const BACKUPS: &str = "/api/configuration/policies/backup_policies";
const BACKUP_NOW: &str = "/api/backup/backup_now";

/// `custos restore --from <from> --data-dir <to> --secrets-key <key>`; its output.
fn restore(from: &Path, to: &Path, key: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("restore")
        .arg("--from")
        .arg(from)
        .arg("--data-dir")
        .arg(to)
        .arg("--secrets-key")
        .arg(key)
        .output()
        .expect("custos restore")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_over_rsync_and_ssh_restores_into_a_fresh_data_directory() {
    let s = site().await;
    // A second sshd, the backup server: it knows only the backup key.
    let backup_home = tempfile::tempdir().unwrap();
    let (key_file, public) = custos_testkit::generate_key(backup_home.path(), "backup-key");
    let backup_sshd = Sshd::start_with_options(
        backup_home.path(),
        &custos_testkit::SshdOptions {
            authorized_keys: Some(public),
            x11: false,
        },
    );
    let host_key =
        std::fs::read_to_string(backup_home.path().join("ssh_host_ed25519_key.pub")).unwrap();
    let backups = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        backups.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();

    // A policy with a secret (an SMB password), to check that backups keep secrets sealed.
    let sealed_secret = "Sealed-Secret-pw-4711";
    let mut archive = smb_policy("with-secret", "127.0.0.1", "archive", password_auth());
    archive["target"]["authentication"]["password"] = json!(sealed_secret);
    s.admin.open_transaction().await;
    s.admin.create(POLICIES, &archive).await;
    let private_key = std::fs::read_to_string(&key_file).unwrap();
    let auth_key = s
        .admin
        .create(
            "/api/configuration/private_keys",
            &json!({"key": private_key}),
        )
        .await;
    let backup = s
        .admin
        .create(
            BACKUPS,
            &json!({
                "name": "nightly",
                "include_node_id_in_path": true,
                "notification_event": {"type": "none"},
                "target": {
                    "type": "rsync",
                    "server": {"selection": "ip", "value": "127.0.0.1"},
                    "username": USER,
                    "path": backups.path().display().to_string(),
                    "auth_key": auth_key,
                    "host_key": host_key.trim(),
                    "port": backup_sshd.port,
                },
                "start_times": [],
            }),
        )
        .await;
    let port = free_port();
    s.admin
        .create(
            CONNECTIONS,
            &json!({
                "name": "backed-up",
                "network": {"clients": ["127.0.0.0/8"], "targets": ["127.0.0.1"], "ports": [port]},
                "server_address": {"selection": "fix", "address": "127.0.0.1", "port": s.sshd_port},
                "policies": {"channel_policy": "-2", "audit_policy": "-1", "backup_policy": backup},
            }),
        )
        .await;
    s.admin.commit_ok().await;
    custos_testkit::wait_for_port(port);
    let keys = s.sessions(port, 2).await;
    let originals: Vec<Vec<u8>> = keys.iter().map(|k| read(&s.local_trail(k))).collect();

    let r = s.admin.request(Method::POST, BACKUP_NOW, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["meta"]["parent"], "/api/backup");
    let job = Site::job_of(&r.json, &backup);
    assert_eq!(job["body"]["state"], "succeeded", "{job}");
    assert_eq!(job["body"]["kind"], "backup");
    assert_eq!(job["body"]["result"]["files"], 4, "{job}");

    let node = std::fs::read_to_string(s.data().join("node-id")).unwrap();
    let dir = backups.path().join(node.trim());
    for key in &keys {
        assert!(dir.join(format!("trails/{key}.trail")).exists());
        assert!(
            s.local_trail(key).exists(),
            "a backup copies, it does not move"
        );
    }
    let db = read(&dir.join("custos.db"));
    let contains = |needle: &[u8]| db.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(sealed_secret.as_bytes()),
        "secrets stay sealed in a backup"
    );
    let key_line = private_key.lines().nth(1).unwrap();
    assert!(
        !contains(key_line.as_bytes()),
        "private keys stay sealed in a backup"
    );
    assert!(!dir.join("secrets.key").exists());

    // The wrong key opens nothing, and leaves nothing behind.
    let restored = s.dir.path().join("restored");
    let wrong = s.dir.path().join("wrong.key");
    std::fs::write(&wrong, [7u8; 32]).unwrap();
    let out = restore(&dir, &restored, &wrong);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("secrets key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!restored.exists());
    // A damaged backup is refused, naming the file.
    let damaged = s.dir.path().join("damaged");
    std::fs::create_dir_all(damaged.join("trails")).unwrap();
    for entry in ["MANIFEST.json", "custos.db", "node-id"] {
        std::fs::copy(dir.join(entry), damaged.join(entry)).unwrap();
    }
    for key in &keys {
        std::fs::copy(
            dir.join(format!("trails/{key}.trail")),
            damaged.join(format!("trails/{key}.trail")),
        )
        .unwrap();
    }
    let victim = damaged.join(format!("trails/{}.trail", keys[0]));
    let mut bytes = read(&victim);
    bytes[10] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let key_path = s.data().join("secrets.key");
    let out = restore(&damaged, &restored, &key_path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("damaged") && stderr.contains(&keys[0]),
        "{stderr}"
    );

    // The real thing: a new data directory that serves the same configuration and sessions.
    let out = restore(&dir, &restored, &key_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = s.admin.get("/api/changelog").await.json;
    let copy = Server::start_with(Options {
        data_dir: Some(restored.clone()),
        ..Options::default()
    })
    .await;
    let admin = copy.admin().await;
    let after = admin.get("/api/changelog").await.json;
    assert_eq!(
        after["meta"]["match_count"], before["meta"]["match_count"],
        "{after}"
    );
    assert_eq!(
        admin.get(&format!("{BACKUPS}/{backup}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        admin
            .get(&format!("/api/configuration/private_keys/{auth_key}"))
            .await
            .status,
        StatusCode::OK
    );
    for (key, original) in keys.iter().zip(&originals) {
        let (status, _, bytes) = admin
            .get_bytes(&format!("{SESSIONS}/{key}/audit_trail"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&bytes, original);
    }
    let admin = &admin;
    eventually(20, "the restored sessions in search", || async move {
        let r = admin
            .get(&format!(
                "{SESSIONS}/_count?q=recording.gateway.port%3A{port}"
            ))
            .await;
        (r.json["count"] == 2).then_some(())
    })
    .await;

    // A server whose key is not the pinned one gets nothing.
    let (_, other) = custos_testkit::generate_key(backup_home.path(), "not-the-host-key");
    let mut body = s.admin.get(&format!("{BACKUPS}/{backup}")).await.json["body"].clone();
    body["target"]["host_key"] = json!(other);
    s.admin.open_transaction().await;
    assert_eq!(
        s.admin
            .put(&format!("{BACKUPS}/{backup}"), &body)
            .await
            .status,
        StatusCode::OK
    );
    s.admin.commit_ok().await;
    let r = s.admin.request(Method::POST, BACKUP_NOW, None, &[]).await;
    let job = Site::job_of(&r.json, &backup);
    assert_eq!(job["body"]["state"], "failed");
    assert!(
        job["body"]["result"]["errors"]
            .to_string()
            .contains("Host key verification failed"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_to_smb_and_nfs_are_verified_and_restorable() {
    let (mounts, s) = site_with_nfs_mounts().await;
    let smbd = Smbd::start(s.dir.path());
    let export = mounts.path().join("127.0.0.1/backups");
    let _mounted = Tmpfs::mount(&export, "64m");
    s.admin.open_transaction().await;
    let to_smb = s
        .admin
        .create(
            BACKUPS,
            &json!({
                "name": "to-smb",
                "notification_event": {"type": "none"},
                "target": {
                    "type": "smb",
                    "server": {"selection": "ip", "value": smbd.ip.to_string()},
                    "protocol_version": "3.1.1",
                    "share": "archive/backups",
                    "authentication": password_auth(),
                },
                "start_times": [],
            }),
        )
        .await;
    let to_nfs = s
        .admin
        .create(
            BACKUPS,
            &json!({
                "name": "to-nfs",
                "notification_event": {"type": "none"},
                "target": {"type": "nfs", "server": {"selection": "ip", "value": "127.0.0.1"}, "path": "/backups"},
                "start_times": [],
            }),
        )
        .await;
    s.admin.commit_ok().await;
    let r = s.admin.request(Method::POST, BACKUP_NOW, None, &[]).await;
    for policy in [&to_smb, &to_nfs] {
        let job = Site::job_of(&r.json, policy);
        assert_eq!(job["body"]["state"], "succeeded", "{job}");
        // No connection uses them: the configuration only.
        assert_eq!(job["body"]["result"]["files"], 2, "{job}");
    }
    let key = s.data().join("secrets.key");
    for (n, dir) in [smbd.archive_dir.join("backups"), export.clone()]
        .iter()
        .enumerate()
    {
        assert!(dir.join("MANIFEST.json").exists(), "{}", dir.display());
        let restored = s.dir.path().join(format!("restored-{n}"));
        let out = restore(dir, &restored, &key);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("restored 2 files"));
    }
}
