//! One run of an archive/cleanup policy.
//!
//! Per batch of trails, in this order (each step durable before the next):
//! 1. **journal** each trail's destination (the store's `archive_journal`);
//! 2. **copy** the batch to the target;
//! 3. **read back** every copy from the target and compare length and BLAKE3 digest with the
//!    local file;
//! 4. **record** each verified trail's location in its session record (re-indexed, so the
//!    session stays searchable and its download goes to the archive);
//! 5. **delete** the local file, flush the directory, and clear the journal rows.
//!
//! A crash between any two steps leaves a journal row: the next run (at startup) copies that
//! trail again to the *same* destination, overwriting any partial copy, or — if its record
//! already says archived — only finishes the local delete. Nothing is lost (the local file goes
//! only after step 4) and nothing is duplicated (the destination never changes). A `none`
//! policy records the deletion first, then deletes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use custos_config::objects::retention::ArchiveCleanupPolicy;
use custos_sessions::{SessionRecord, TrailArchive};
use custos_store::{JobRow, JournalEntry};
use serde_json::json;

use crate::target::{Digest, Item, Target, digest};
use crate::{Retention, RetentionError, blocking, finish_job, layout, now_micros};

const DAY_MICROS: i64 = 86_400_000_000;
/// File names kept in a job's history (the count is always complete); more when a policy's
/// notifications list more, up to [`MAX_LISTED_FILES`].
const LISTED_FILES: usize = 1000;
const MAX_LISTED_FILES: usize = 100_000;

/// What a job did, kept in its history entry.
#[derive(Default)]
struct Report {
    files: u64,
    bytes: u64,
    failed: u64,
    errors: Vec<String>,
    listed: Vec<String>,
    list_limit: usize,
    target: Option<String>,
}

impl Report {
    fn error(&mut self, message: String) {
        tracing::error!(target: "custos::events", "archive: {message}");
        if self.errors.len() < 100 {
            self.errors.push(message);
        }
    }

    fn done(&mut self, remote: &str, size: u64) {
        self.files += 1;
        self.bytes += size;
        if self.listed.len() < self.list_limit {
            self.listed.push(remote.to_string());
        }
    }

    fn detail(&self) -> serde_json::Value {
        json!({
            "target": self.target,
            "files": self.files,
            "bytes": self.bytes,
            "failed": self.failed,
            "errors": self.errors,
            "file_list": self.listed,
            "file_list_truncated": self.files as usize > self.listed.len(),
        })
    }
}

/// Runs the job and records it in the history; `Err` only if the history cannot be written.
pub(crate) async fn run(
    engine: &Arc<Retention>,
    key: &str,
    policy: &ArchiveCleanupPolicy,
    trigger: &str,
) -> Result<JobRow, RetentionError> {
    let kind = if policy.target.kind == "none" {
        "cleanup"
    } else {
        "archive"
    };
    let started = now_micros();
    let id = engine
        .store
        .job_start(kind, key, &policy.name, trigger, started)
        .await?;
    tracing::info!(job = id, policy = %policy.name, %kind, %trigger, "retention job started");
    let event = &policy.notification_event;
    let mut report = Report {
        list_limit: match event.file_count_limit {
            Some(n) if event.kind == "all" && event.send_filelist => usize::try_from(n)
                .unwrap_or(0)
                .clamp(LISTED_FILES, MAX_LISTED_FILES),
            _ => LISTED_FILES,
        },
        ..Report::default()
    };
    let result = Job {
        engine,
        key,
        policy,
        report: &mut report,
        now: started,
    }
    .run()
    .await;
    if let Err(e) = &result {
        report.error(e.to_string());
    }
    let state = if result.is_ok() && report.failed == 0 {
        "succeeded"
    } else {
        "failed"
    };
    let detail = report.detail();
    if state == "succeeded" {
        tracing::info!(job = id, policy = %policy.name, files = report.files, bytes = report.bytes, "retention job succeeded");
    } else {
        tracing::error!(target: "custos::events", job = id, policy = %policy.name, files = report.files, failed = report.failed, errors = ?report.errors, "retention job failed; trails that were not verified on the target stay here");
    }
    finish_job(engine, id, state, detail, event).await
}

struct Job<'a> {
    engine: &'a Arc<Retention>,
    key: &'a str,
    policy: &'a ArchiveCleanupPolicy,
    report: &'a mut Report,
    now: i64,
}

/// A trail to move and where it goes.
struct Move {
    record: SessionRecord,
    destination: String,
}

/// What became of one trail of a batch on the blocking side.
enum Check {
    /// The record names no usable local path, or the file cannot be read.
    Unreadable(String),
    /// `none`: the local file's digest, before it is deleted.
    ToDelete(Digest),
    /// The copy on the target matches the local file.
    Verified(Digest),
    /// The copy is missing or differs: the trail stays here.
    Mismatch {
        local: Digest,
        found: Option<Digest>,
    },
}

/// A batch after its transfer: each trail with its local path and what the checks found, and
/// what the target refused.
struct Transferred {
    trails: Vec<(Move, Option<PathBuf>, Check)>,
    refused: Vec<String>,
}

type Running = tokio::task::JoinSet<Result<Transferred, RetentionError>>;

/// On a blocking thread: local digests, copy, read back, compare. `Err` when the target
/// failed as a whole (the job stops; the data stays).
fn transfer(
    target: Option<&Target>,
    batch: Vec<(Move, Option<PathBuf>)>,
    pause_after_copy: Option<Duration>,
) -> Result<Transferred, RetentionError> {
    let mut trails = Vec::with_capacity(batch.len());
    let mut items = Vec::new();
    let mut local_digests = Vec::new();
    for (m, local) in batch {
        let check = match &local {
            None => Check::Unreadable(format!(
                "session {} names an unusable trail path",
                m.record.key
            )),
            Some(path) => match std::fs::File::open(path).and_then(digest) {
                Ok(d) => {
                    items.push(Item {
                        local: path.clone(),
                        remote: m.destination.clone(),
                    });
                    local_digests.push((m.destination.clone(), d.size));
                    Check::ToDelete(d)
                }
                Err(e) => Check::Unreadable(format!("cannot read {}: {e}", path.display())),
            },
        };
        trails.push((m, local, check));
    }
    let Some(target) = target else {
        return Ok(Transferred {
            trails,
            refused: Vec::new(),
        });
    };
    let refused = if items.is_empty() {
        Vec::new()
    } else {
        target.put(&items)?
    };
    if let Some(pause) = pause_after_copy {
        tracing::warn!("fault injection: archive job paused after copying");
        std::thread::sleep(pause);
    }
    let copies = if local_digests.is_empty() {
        HashMap::new()
    } else {
        target.read_back(&local_digests)?
    };
    let trails = trails
        .into_iter()
        .map(|(m, local, check)| {
            let check = match check {
                Check::ToDelete(digest) => match copies.get(&m.destination) {
                    Some(copy) if *copy == digest => Check::Verified(digest),
                    found => Check::Mismatch {
                        local: digest,
                        found: found.cloned(),
                    },
                },
                other => other,
            };
            (m, local, check)
        })
        .collect();
    Ok(Transferred { trails, refused })
}

impl Job<'_> {
    async fn run(&mut self) -> Result<(), RetentionError> {
        let options = &self.engine.options;
        let target =
            Target::from_config(&self.policy.target, &options.nfs, &self.engine.scratch())?;
        if let Some(target) = &target {
            let (kind, server, share) = target.describe();
            self.report.target = Some(format!("{kind}://{server}/{share}"));
        }
        let target: Option<Arc<Target>> = target.map(Arc::new);
        if let Some(t) = &target {
            let t = Arc::clone(t);
            blocking(move || t.check()).await??;
        }
        let mut running = Running::new();
        let started = self.start_all(&target, &mut running).await;
        // Batches already under way are settled whatever happened: what they verified is
        // recorded, so that a failed job still moves what it could.
        let mut result = started;
        while let Some(joined) = running.join_next().await {
            let settled = match joined {
                Ok(Ok(batch)) => self.settle(&target, batch).await,
                Ok(Err(e)) => Err(e),
                Err(e) => Err(RetentionError::Target(crate::target::TargetError(format!(
                    "a transfer task failed: {e}"
                )))),
            };
            if let (Ok(()), Err(e)) = (&result, settled) {
                result = Err(e);
            }
        }
        result
    }

    /// Starts every batch (unfinished moves first, then every trail old enough), keeping at
    /// most `parallel_batches` transfers under way and settling them as they finish.
    async fn start_all(
        &mut self,
        target: &Option<Arc<Target>>,
        running: &mut Running,
    ) -> Result<(), RetentionError> {
        let options = &self.engine.options;
        let mut attempted: HashSet<String> = HashSet::new();

        // Unfinished moves first, to the destinations they were given.
        let journal = self.engine.store.journal(Some(self.key)).await?;
        for chunk in journal.chunks(options.batch_files.max(1)) {
            let keys: Vec<String> = chunk.iter().map(|e| e.session_key.clone()).collect();
            let records: HashMap<String, SessionRecord> = self
                .engine
                .store
                .sessions_by_keys(&keys)
                .await?
                .into_iter()
                .map(|r| (r.key.clone(), r))
                .collect();
            let mut moves = Vec::new();
            let mut settled = Vec::new();
            let mut leftovers = Vec::new();
            for entry in chunk {
                attempted.insert(entry.session_key.clone());
                match records.get(&entry.session_key) {
                    Some(record) if record.archive.is_some() => {
                        // Recorded before the crash: only the local delete may be missing.
                        leftovers.extend(self.local(record));
                        settled.push(entry.session_key.clone());
                    }
                    Some(record) => moves.push(Move {
                        record: record.clone(),
                        destination: entry.destination.clone(),
                    }),
                    None => settled.push(entry.session_key.clone()),
                }
            }
            self.remove_locals(leftovers).await;
            self.engine.store.journal_remove(&settled).await?;
            self.start(target, moves, running).await?;
        }

        // Then every trail that is old enough.
        let connections = self.engine.connection_policies_of(self.key);
        let cutoff = self.now - self.policy.retention_days.max(0) * DAY_MICROS;
        let mut after = 0;
        loop {
            let records = self
                .engine
                .store
                .archivable_sessions(
                    &connections,
                    cutoff,
                    after,
                    options.batch_files.max(1) as i64,
                )
                .await?;
            let Some((last, _)) = records.last() else {
                break;
            };
            after = *last;
            let node = self
                .policy
                .include_node_id_in_path
                .then_some(options.node_id.as_str());
            let moves = records
                .into_iter()
                .map(|(_, record)| record)
                .filter(|r| attempted.insert(r.key.clone()))
                .map(|record| Move {
                    destination: layout::destination(
                        self.policy.template.as_deref(),
                        node,
                        &record,
                        self.now,
                    ),
                    record,
                })
                .collect();
            self.start(target, moves, running).await?;
        }
        Ok(())
    }

    /// The fault-injection pause after `phase`, if configured.
    fn pause_for(&self, phase: &str) -> Option<Duration> {
        match &self.engine.options.fault_pause {
            Some((at, pause)) if at == phase => Some(*pause),
            _ => None,
        }
    }

    async fn pause_after(&self, phase: &str) {
        if let Some(pause) = self.pause_for(phase) {
            tracing::warn!(%phase, "fault injection: archive job paused");
            tokio::time::sleep(pause).await;
        }
    }

    fn local(&self, record: &SessionRecord) -> Option<PathBuf> {
        let relative = record.trail.as_deref()?;
        Path::new(relative)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
            .then(|| self.engine.options.data_dir.join(relative))
    }

    /// Journals one batch and starts its transfer; first settles finished transfers while
    /// `parallel_batches` are under way. `Err` when a settled batch failed.
    async fn start(
        &mut self,
        target: &Option<Arc<Target>>,
        moves: Vec<Move>,
        running: &mut Running,
    ) -> Result<(), RetentionError> {
        if moves.is_empty() {
            return Ok(());
        }
        while running.len() >= self.engine.options.parallel_batches.max(1) {
            match running.join_next().await {
                Some(Ok(Ok(batch))) => self.settle(target, batch).await?,
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => {
                    return Err(RetentionError::Target(crate::target::TargetError(format!(
                        "a transfer task failed: {e}"
                    ))));
                }
                None => break,
            }
        }
        let entries: Vec<JournalEntry> = moves
            .iter()
            .map(|m| JournalEntry {
                session_key: m.record.key.clone(),
                policy_id: self.key.to_string(),
                destination: m.destination.clone(),
            })
            .collect();
        self.engine.store.journal_add(&entries, self.now).await?;
        self.pause_after("journaled").await;
        let batch: Vec<(Move, Option<PathBuf>)> = moves
            .into_iter()
            .map(|m| {
                let local = self.local(&m.record);
                (m, local)
            })
            .collect();
        let target = target.clone();
        let pause = self.pause_for("copied");
        running.spawn_blocking(move || transfer(target.as_deref(), batch, pause));
        Ok(())
    }

    /// Records what a transfer verified (or, for `none`, the deletion), then deletes those
    /// local files and clears their journal rows. Trails that failed keep their journal rows
    /// (the next run retries them to the same destination).
    async fn settle(
        &mut self,
        target: &Option<Arc<Target>>,
        batch: Transferred,
    ) -> Result<(), RetentionError> {
        let described = target.as_ref().map(|t| t.describe());
        let mut records = Vec::new();
        let mut done = Vec::new();
        let mut unreadable = Vec::new();
        let mut mismatched = false;
        for (m, local, check) in batch.trails {
            let (copy, archived) = match check {
                Check::Unreadable(why) => {
                    self.report.failed += 1;
                    self.report.error(why);
                    unreadable.push(m.record.key.clone());
                    continue;
                }
                Check::Mismatch { local, found } => {
                    self.report.failed += 1;
                    mismatched = true;
                    let found = found.map_or("nothing".to_string(), |c| {
                        format!("{} bytes with digest {}", c.size, c.blake3)
                    });
                    self.report.error(format!(
                        "verification failed for {}: expected {} bytes with digest {}, read back {found}; the trail stays here",
                        m.destination, local.size, local.blake3
                    ));
                    continue;
                }
                Check::ToDelete(d) => (d, false),
                Check::Verified(d) => (d, true),
            };
            let mut record = m.record;
            record.archived = archived;
            record.archive = Some(match &described {
                Some((kind, server, share)) if archived => TrailArchive {
                    policy: self.policy.name.clone(),
                    policy_id: self.key.to_string(),
                    target: (*kind).to_string(),
                    server: Some(server.clone()),
                    share: Some(share.clone()),
                    path: Some(m.destination.clone()),
                    size: copy.size,
                    blake3: Some(copy.blake3.clone()),
                    time: now_micros(),
                },
                _ => TrailArchive {
                    policy: self.policy.name.clone(),
                    policy_id: self.key.to_string(),
                    target: "none".into(),
                    server: None,
                    share: None,
                    path: None,
                    size: copy.size,
                    blake3: Some(copy.blake3.clone()),
                    time: now_micros(),
                },
            });
            done.push((record.key.clone(), local, m.destination, copy.size));
            records.push(record);
        }
        if mismatched {
            for refusal in batch.refused {
                self.report.error(format!("the target refused: {refusal}"));
            }
        }
        self.engine.store.journal_remove(&unreadable).await?;
        if records.is_empty() {
            return Ok(());
        }
        self.engine.records.save_all(records).await.map_err(|e| {
            RetentionError::Unavailable(format!("cannot save the batch's session records: {e}"))
        })?;
        self.pause_after("recorded").await;
        let mut keys = Vec::with_capacity(done.len());
        let mut locals = Vec::with_capacity(done.len());
        for (key, local, destination, size) in done {
            self.report.done(&destination, size);
            keys.push(key);
            locals.extend(local);
        }
        self.remove_locals(locals).await;
        self.engine.store.journal_remove(&keys).await?;
        Ok(())
    }

    /// Deletes local trail files whose records say they are archived or deleted, then flushes
    /// the trail directory.
    async fn remove_locals(&self, paths: Vec<PathBuf>) {
        if paths.is_empty() {
            return;
        }
        let dir = self.engine.options.data_dir.join("trails");
        let _ = blocking(move || {
            for path in &paths {
                if let Err(e) = std::fs::remove_file(path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::error!(target: "custos::events", file = %path.display(), error = %e, "cannot delete an archived trail's local copy");
                }
            }
            std::fs::File::open(&dir).and_then(|d| d.sync_all())
        })
        .await;
    }
}
