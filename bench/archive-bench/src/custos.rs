//! The Custos side: a data directory whose store holds one closed session per source file (its
//! trail a hard link to that file), an archive/cleanup policy to the target with a connection
//! policy that uses it, and one job of that policy (`Retention::run_policy`), timed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use custos_config::document::{Document, Stored};
use custos_config::objects::retention::ARCHIVE_CLEANUP_POLICIES;
use custos_config::objects::ssh::SSH_CONNECTIONS;
use custos_config::reference::href;
use custos_retention::{NfsMounts, Outcome, Retention};
use custos_sessions::{BoxFuture, Endpoint, SessionRecord, SessionStore, Verdict};
use custos_store::{KEY_LEN, Sealer, Store};
use custos_testkit::samba::{SMB_PASSWORD, SMB_USER};
use serde_json::{Value, json};

use crate::files::Source;

const POLICY_KEY: &str = "bench-archive";
const CONNECTION_KEY: &str = "bench-connection";
const DAY_MICROS: i64 = 86_400_000_000;

/// Where the job copies to.
pub enum Target<'a> {
    /// The smbd's `archive` share, below directory `dest`; `share_dir` is the share's local
    /// directory (to check and clean up the copies).
    Smb {
        ip: &'a str,
        share_dir: &'a Path,
        dest: &'a str,
    },
    /// An "NFS export" `127.0.0.1:/<dest>`, i.e. the directory `<root>/127.0.0.1/<dest>`.
    Nfs { root: &'a Path, dest: &'a str },
}

impl Target<'_> {
    /// The policy's `target` element.
    fn config(&self) -> Value {
        match self {
            Target::Smb { ip, dest, .. } => json!({
                "type": "smb",
                "server": {"selection": "ip", "value": ip},
                "protocol_version": "3.0",
                "share": "archive",
                "path": dest,
                "authentication": {"selection": "password", "username": SMB_USER, "password": SMB_PASSWORD},
            }),
            Target::Nfs { dest, .. } => json!({
                "type": "nfs",
                "server": {"selection": "ip", "value": "127.0.0.1"},
                "path": format!("/{dest}"),
            }),
        }
    }

    /// The directory on this host where the copies land.
    pub fn local_dir(&self) -> PathBuf {
        match self {
            Target::Smb {
                share_dir, dest, ..
            } => share_dir.join(dest),
            Target::Nfs { root, dest } => root.join("127.0.0.1").join(dest),
        }
    }

    fn nfs_root(&self, work: &Path) -> PathBuf {
        match self {
            Target::Smb { .. } => work.join("no-nfs"),
            Target::Nfs { root, .. } => root.to_path_buf(),
        }
    }
}

/// Saves records straight into the store (the server also indexes them for search; that is
/// not measured here) and counts the time spent saving.
struct Records {
    store: Arc<Store>,
    nanos: AtomicU64,
    count: AtomicU64,
}

impl SessionStore for Records {
    fn save(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let start = Instant::now();
            let saved = self.store.save_session(&record).await;
            self.nanos
                .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.count.fetch_add(1, Ordering::Relaxed);
            saved.map(|_| ()).map_err(|e| e.to_string())
        })
    }

    fn save_all(&self, records: Vec<SessionRecord>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let start = Instant::now();
            let saved = self.store.save_sessions(&records).await;
            self.nanos
                .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.count
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            saved.map(|_| ()).map_err(|e| e.to_string())
        })
    }
}

/// What one job took.
pub struct Measured {
    pub elapsed: Duration,
    /// Saving the archived records (inside `elapsed`): one SQLite transaction per batch.
    pub saves: Duration,
    pub save_count: u64,
    /// Setting up the store before the job (not timed in `elapsed`).
    pub setup: Duration,
}

fn record(key: &str, now: i64) -> SessionRecord {
    let local = Endpoint {
        ip: "127.0.0.1".parse().expect("an address"),
        port: 22,
    };
    SessionRecord {
        key: key.to_string(),
        session_id: format!("svc/{key}/bench:1"),
        protocol: "SSH".into(),
        node_id: "bench-node".into(),
        client: local,
        gateway: local,
        server: Some(local),
        server_local: Some(local),
        gateway_username: Some("bench".into()),
        server_username: Some("bench".into()),
        connection_policy: "bench".into(),
        connection_policy_id: CONNECTION_KEY.into(),
        channel_policy: Some("-2".into()),
        auth_method: Some("password".into()),
        start_time: now - 2 * DAY_MICROS,
        end_time: Some(now - DAY_MICROS),
        active: false,
        verdict: Verdict::Accept,
        reason: None,
        has_accepted_channel: true,
        trail: Some(format!("trails/{key}.trail")),
        archived: false,
        archive: None,
    }
}

/// The configuration the engine reads: the archive policy and a connection policy that
/// refers to it (the engine only follows the reference; the rest of a connection policy does
/// not matter to it).
fn document(target: &Target) -> Document {
    let mut doc = Document::default();
    doc.put(
        ARCHIVE_CLEANUP_POLICIES,
        POLICY_KEY,
        Stored::new(json!({
            "name": "bench archive",
            "include_node_id_in_path": false,
            "notification_event": {"type": "none", "send_filelist": false},
            "target": target.config(),
            "start_times": [],
            "template": "archive_date",
            "retention_days": 0,
        })),
    );
    doc.put(
        SSH_CONNECTIONS,
        CONNECTION_KEY,
        Stored::new(json!({
            "name": "bench",
            "policies": {"archive_cleanup_policy": {
                "key": POLICY_KEY,
                "meta": {"href": href(ARCHIVE_CLEANUP_POLICIES, POLICY_KEY)},
            }},
        })),
    );
    doc
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Prepares a data directory in `work` (removed at the end), runs one job and checks that it
/// moved every file.
pub async fn run(
    work: &Path,
    source: &Source,
    target: &Target<'_>,
    batch_files: usize,
    parallel_batches: usize,
) -> anyhow::Result<Measured> {
    let data = work.join("data");
    let trails = data.join("trails");
    std::fs::create_dir_all(&trails)?;
    let setup_start = Instant::now();
    for trail in &source.trails {
        let to = trails.join(format!("{}.trail", trail.key));
        std::fs::hard_link(source.path(trail), &to)
            .with_context(|| format!("linking {}", to.display()))?;
    }
    let store = Arc::new(
        Store::open(&data.join("custos.db"), Sealer::new(&[7; KEY_LEN]))
            .await
            .context("opening the store")?,
    );
    let now = now_micros();
    for trail in &source.trails {
        store.save_session(&record(&trail.key, now)).await?;
    }
    let setup = setup_start.elapsed();
    let records = Arc::new(Records {
        store: Arc::clone(&store),
        nanos: AtomicU64::new(0),
        count: AtomicU64::new(0),
    });
    let dest = target.local_dir();
    std::fs::create_dir_all(&dest)?;
    let mut options = custos_retention::Options::new(
        data.clone(),
        "bench-node".into(),
        NfsMounts {
            root: target.nfs_root(work),
            require_mount: false,
        },
    );
    options.batch_files = batch_files;
    options.parallel_batches = parallel_batches;
    let retention = Retention::open(
        Arc::clone(&store),
        Arc::clone(&records) as Arc<dyn SessionStore>,
        options,
        {
            let config = document(target);
            Box::new(move || config.clone())
        },
    )
    .await
    .context("opening the retention engine")?;

    crate::files::sync()?;
    let start = Instant::now();
    let outcome = retention.run_policy(POLICY_KEY, "bench").await;
    let elapsed = start.elapsed();

    let row = match outcome {
        Some(Outcome::Ran(row)) => row,
        Some(Outcome::AlreadyRunning { .. }) => bail!("a job was already running"),
        None => bail!("the job could not be recorded (see the log)"),
    };
    let files = row.detail["files"].as_u64().unwrap_or(0);
    let bytes = row.detail["bytes"].as_u64().unwrap_or(0);
    let failed = row.detail["failed"].as_u64().unwrap_or(u64::MAX);
    if row.state != "succeeded"
        || files != source.trails.len() as u64
        || bytes != source.bytes
        || failed != 0
    {
        bail!(
            "the job did not archive everything: state {}, files {files}, bytes {bytes}, failed {failed}, errors {}",
            row.state,
            row.detail["errors"]
        );
    }
    let (left, _) = crate::files::tree(&trails)?;
    if left != 0 {
        bail!("{left} trails are still in {}", trails.display());
    }
    crate::files::expect_copy(&dest, source, "Custos")?;
    let saves = Duration::from_nanos(records.nanos.load(Ordering::Relaxed));
    let save_count = records.count.load(Ordering::Relaxed);
    drop(retention);
    drop(records);
    drop(store);
    crate::files::remove(&data)?;
    crate::files::remove(&dest)?;
    Ok(Measured {
        elapsed,
        saves,
        save_count,
        setup,
    })
}
