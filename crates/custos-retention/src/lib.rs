//! Retention: archive/cleanup jobs that move closed audit trails off this node by policy.
//!
//! A job of an archive/cleanup policy takes the closed trails of the connection policies that
//! reference it, once they are older than `retention_days`, and moves them to the policy's
//! target (`smb`, `nfs`) laid out by its `template` — or deletes them (`none`). A trail is
//! deleted here only after the copy has been **read back from the target** and matched in
//! length and BLAKE3 digest, and after its record says where it is; the archive journal in the
//! store makes every step resumable (see `archive.rs`).
//!
//! **Invariants:** jobs of one policy never overlap; a failed or unreachable target fails the
//! job and leaves every trail it did not verify where it was; no HTTP here.

mod archive;
pub mod backup;
mod layout;
mod notify;
pub mod restore;
mod schedule;
pub mod target;

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_config::document::Document;
use custos_config::objects::retention::{
    ARCHIVE_CLEANUP_POLICIES, ArchiveCleanupPolicy, BACKUP_POLICIES, BackupPolicy,
};
use custos_sessions::{SessionRecord, SessionStore, TrailArchive};
use custos_store::{JobRow, Store};

pub use layout::destination;
pub use target::NfsMounts;

/// How the engine runs on this node.
#[derive(Clone, Debug)]
pub struct Options {
    /// The data directory (trails are below it).
    pub data_dir: PathBuf,
    /// This node's id, for `include_node_id_in_path`.
    pub node_id: String,
    pub nfs: NfsMounts,
    /// At most this many trails per batch (one journal write, one target round trip).
    pub batch_files: usize,
    /// At most this many batches of one job are being copied and read back at once. Targets
    /// answer one request at a time per connection, so a few connections keep both the
    /// target and this host busy (a single SMB session on loopback leaves the CPUs mostly
    /// waiting for each other).
    pub parallel_batches: usize,
    /// Test hook: pause this long after the named phase of a batch (`journaled`, `copied`,
    /// `recorded`), so that a test can kill the process there.
    pub fault_pause: Option<(String, Duration)>,
}

impl Options {
    pub fn new(data_dir: PathBuf, node_id: String, nfs: NfsMounts) -> Options {
        Options {
            data_dir,
            node_id,
            nfs,
            batch_files: 256,
            parallel_batches: 4,
            fault_pause: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("{0}")]
    Store(#[from] custos_store::StoreError),
    #[error("{0}")]
    Target(#[from] target::TargetError),
    /// The trail is not in an archive that can be read (deleted by cleanup, or its policy gone).
    #[error("{0}")]
    Unavailable(String),
}

/// What asking for a job gave.
#[derive(Debug)]
pub enum Outcome {
    /// The job ran; its history entry.
    Ran(JobRow),
    /// A job of this policy was already running; nothing was started.
    AlreadyRunning { policy_id: String, policy: String },
}

/// The retention engine of one node.
pub struct Retention {
    store: Arc<Store>,
    /// Saves records (and re-indexes them): archived sessions stay searchable.
    records: Arc<dyn SessionStore>,
    options: Options,
    /// The committed configuration, read at each use, so that a job started right after a
    /// commit sees it (nothing to keep in step).
    config: ConfigSource,
    /// Policies with a job in progress.
    running: Mutex<HashSet<String>>,
}

/// Runs blocking work (files, child processes) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RetentionError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        RetentionError::Target(target::TargetError(format!("a blocking task failed: {e}")))
    })
}

/// Records the end of job `id`, sends its notification if the policy wants one (noting the
/// outcome in the job), and returns the history entry.
pub(crate) async fn finish_job(
    engine: &Retention,
    id: i64,
    state: &str,
    mut detail: serde_json::Value,
    event: &custos_config::objects::retention::NotificationEvent,
) -> Result<JobRow, RetentionError> {
    let finished = now_micros();
    engine
        .store
        .job_update(id, state, Some(finished), &detail)
        .await?;
    let row = engine
        .store
        .job(id)
        .await?
        .ok_or_else(|| RetentionError::Unavailable(format!("job {id} vanished")))?;
    let Some(note) =
        notify::job_finished(&engine.config(), event, &row, &engine.options.node_id).await
    else {
        return Ok(row);
    };
    detail["notification"] = serde_json::json!(note);
    engine
        .store
        .job_update(id, state, Some(finished), &detail)
        .await?;
    Ok(JobRow { detail, ..row })
}

/// Removes a policy from the running set when its job ends, however it ends.
struct Running<'a> {
    set: &'a Mutex<HashSet<String>>,
    policy_id: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.policy_id);
    }
}

pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// Where the engine reads the committed configuration from.
pub type ConfigSource = Box<dyn Fn() -> Document + Send + Sync>;

impl Retention {
    /// Marks jobs a previous process left running as interrupted. Call before anything runs.
    pub async fn open(
        store: Arc<Store>,
        records: Arc<dyn SessionStore>,
        options: Options,
        config: ConfigSource,
    ) -> Result<Arc<Retention>, RetentionError> {
        let interrupted = store.interrupt_running_jobs(now_micros()).await?;
        if interrupted > 0 {
            tracing::warn!(
                jobs = interrupted,
                "retention jobs were interrupted by the end of the previous run; unfinished moves resume"
            );
        }
        Ok(Arc::new(Retention {
            store,
            records,
            options,
            config,
            running: Mutex::new(HashSet::new()),
        }))
    }

    pub(crate) fn config(&self) -> Document {
        (self.config)()
    }

    /// Every object of a policy collection that parses as `T`: `(key, policy)`. Policies that
    /// do not parse are skipped (every committed revision is valid, so that means a newer
    /// schema).
    fn collection<T: serde::de::DeserializeOwned>(&self, node: &str) -> Vec<(String, T)> {
        let config = self.config();
        config
            .collection(node)
            .into_iter()
            .flat_map(|c| c.iter())
            .filter_map(|(key, stored)| {
                serde_json::from_value(stored.body.clone())
                    .ok()
                    .map(|p| (key.to_string(), p))
            })
            .collect()
    }

    /// Every archive/cleanup policy.
    fn policies(&self) -> Vec<(String, ArchiveCleanupPolicy)> {
        self.collection(ARCHIVE_CLEANUP_POLICIES)
    }

    /// Every backup policy.
    fn backup_policies(&self) -> Vec<(String, BackupPolicy)> {
        self.collection(BACKUP_POLICIES)
    }

    /// The connection policies (of any protocol) that reference the archive policy `key`.
    fn connection_policies_of(&self, key: &str) -> Vec<String> {
        self.connection_policies_using(ARCHIVE_CLEANUP_POLICIES, key)
    }

    /// The connection policies (of any protocol) that reference `node/key`.
    pub(crate) fn connection_policies_using(&self, node: &str, key: &str) -> Vec<String> {
        self.config()
            .referrers(node, key)
            .into_iter()
            .filter_map(|(path, _field)| {
                let (node, id) = path.rsplit_once('/')?;
                node.ends_with("/connections").then(|| id.to_string())
            })
            .collect()
    }

    /// Runs every archive/cleanup policy now, one after the other (`POST cleanup_now`).
    pub async fn run_all(self: &Arc<Self>, trigger: &str) -> Vec<Outcome> {
        let mut out = Vec::new();
        for (key, _) in self.policies() {
            if let Some(outcome) = self.run_policy(&key, trigger).await {
                out.push(outcome);
            }
        }
        out
    }

    /// Runs one policy's job now (archive/cleanup or backup, by its key), unless one is
    /// running. `None` if there is no such policy.
    pub async fn run_policy(self: &Arc<Self>, key: &str, trigger: &str) -> Option<Outcome> {
        let archive = self
            .policies()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|p| p.1);
        let backup = match archive {
            Some(_) => None,
            None => Some(
                self.backup_policies()
                    .into_iter()
                    .find(|(k, _)| k == key)?
                    .1,
            ),
        };
        let name = archive
            .as_ref()
            .map(|p| p.name.clone())
            .or_else(|| backup.as_ref().map(|p| p.name.clone()))
            .unwrap_or_default();
        if !self.claim(key, &name, trigger) {
            return Some(Outcome::AlreadyRunning {
                policy_id: key.to_string(),
                policy: name,
            });
        }
        let _guard = Running {
            set: &self.running,
            policy_id: key.to_string(),
        };
        let result = match (&archive, &backup) {
            (Some(policy), _) => archive::run(self, key, policy, trigger).await,
            (None, Some(policy)) => backup::run(self, key, policy, trigger).await,
            (None, None) => return None,
        };
        match result {
            Ok(row) => Some(Outcome::Ran(row)),
            Err(e) => {
                // Only the history itself failed (the database); say so in the log.
                tracing::error!(policy = %name, error = %e, "cannot record a retention job");
                None
            }
        }
    }

    /// Marks the policy as running; `false` if it already is.
    fn claim(&self, key: &str, name: &str, trigger: &str) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let claimed = running.insert(key.to_string());
        if !claimed {
            tracing::info!(policy = %name, %trigger, "a job of this policy is already running; not starting another");
        }
        claimed
    }

    /// Runs every backup policy now, one after the other.
    pub async fn backup_all(self: &Arc<Self>, trigger: &str) -> Vec<Outcome> {
        let mut out = Vec::new();
        for (key, _) in self.backup_policies() {
            if let Some(outcome) = self.run_policy(&key, trigger).await {
                out.push(outcome);
            }
        }
        out
    }

    /// Finishes the moves a previous run left half done (call at startup).
    pub async fn resume(self: &Arc<Self>) -> Result<(), RetentionError> {
        let journal = self.store.journal(None).await?;
        let mut policies: Vec<String> = journal.into_iter().map(|e| e.policy_id).collect();
        policies.sort();
        policies.dedup();
        for key in policies {
            if self.run_policy(&key, "resume").await.is_none() {
                tracing::warn!(policy_id = %key, "unfinished archive moves belong to a policy that no longer exists; their trails stay here");
            }
        }
        Ok(())
    }

    /// Starts the scheduler: each policy runs at its `start_times` (UTC).
    pub fn spawn_scheduler(self: &Arc<Self>) {
        tokio::spawn(schedule::run(Arc::clone(self)));
    }

    /// The job history, newest first, and how many jobs there are.
    pub async fn jobs(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<JobRow>, i64), RetentionError> {
        Ok(self.store.jobs(offset, limit).await?)
    }

    /// Whether a job of the policy is running now.
    pub fn is_running(&self, key: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    /// Opens an archived trail for reading, through its policy's current target (with its
    /// current credentials). Fails if the trail was deleted, its policy is gone or now points
    /// elsewhere, or the target cannot be reached.
    pub async fn open_archived(
        &self,
        record: &SessionRecord,
    ) -> Result<(Box<dyn Read + Send>, TrailArchive), RetentionError> {
        let archive = record
            .archive
            .clone()
            .filter(TrailArchive::is_archived)
            .ok_or_else(|| RetentionError::Unavailable("the trail is not archived".into()))?;
        let policy = self
            .policies()
            .into_iter()
            .find(|(k, _)| *k == archive.policy_id)
            .map(|(_, p)| p)
            .ok_or_else(|| {
                RetentionError::Unavailable(format!(
                    "the archive policy {} no longer exists, so its archive at {} cannot be reached",
                    archive.policy,
                    archive.location().unwrap_or_default()
                ))
            })?;
        let target = target::Target::from_config(
            &policy.target,
            &self.options.nfs,
            &self.scratch(),
        )?
        .ok_or_else(|| {
            RetentionError::Unavailable(format!(
                "the archive policy {} now deletes trails; its archive at {} cannot be reached",
                archive.policy,
                archive.location().unwrap_or_default()
            ))
        })?;
        let (kind, server, share) = target.describe();
        if archive.target != kind
            || archive.server.as_deref() != Some(server.as_str())
            || archive.share.as_deref() != Some(share.as_str())
        {
            return Err(RetentionError::Unavailable(format!(
                "the archive policy {} now points to another target; the trail is at {}",
                archive.policy,
                archive.location().unwrap_or_default()
            )));
        }
        let path = archive.path.clone().unwrap_or_default();
        let reader = tokio::task::spawn_blocking(move || target.open(&path))
            .await
            .map_err(|e| RetentionError::Unavailable(e.to_string()))??;
        Ok((reader, archive))
    }

    /// Where temporary files (SMB credentials) go: inside the private data directory.
    pub(crate) fn scratch(&self) -> PathBuf {
        self.options.data_dir.join("tmp")
    }
}
