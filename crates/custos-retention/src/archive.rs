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
            for entry in chunk {
                attempted.insert(entry.session_key.clone());
                match records.get(&entry.session_key) {
                    Some(record) if record.archive.is_some() => {
                        // Recorded before the crash: only the local delete may be missing.
                        self.delete_local(record).await;
                        settled.push(entry.session_key.clone());
                    }
                    Some(record) => moves.push(Move {
                        record: record.clone(),
                        destination: entry.destination.clone(),
                    }),
                    None => settled.push(entry.session_key.clone()),
                }
            }
            self.engine.store.journal_remove(&settled).await?;
            self.batch(target.clone(), moves).await?;
        }

        // Then every trail that is old enough.
        let connections = self.engine.connection_policies_of(self.key);
        let cutoff = self.now - self.policy.retention_days.max(0) * DAY_MICROS;
        let mut after = String::new();
        loop {
            let records = self
                .engine
                .store
                .archivable_sessions(
                    &connections,
                    cutoff,
                    &after,
                    options.batch_files.max(1) as i64,
                )
                .await?;
            let Some(last) = records.last() else { break };
            after = last.key.clone();
            let node = self
                .policy
                .include_node_id_in_path
                .then_some(options.node_id.as_str());
            let moves = records
                .into_iter()
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
            self.batch(target.clone(), moves).await?;
        }
        Ok(())
    }

    async fn pause_after(&self, phase: &str) {
        if let Some((at, pause)) = &self.engine.options.fault_pause
            && at == phase
        {
            tracing::warn!(%phase, "fault injection: archive job paused");
            tokio::time::sleep(*pause).await;
        }
    }

    fn local(&self, record: &SessionRecord) -> Option<PathBuf> {
        let relative = record.trail.as_deref()?;
        Path::new(relative)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
            .then(|| self.engine.options.data_dir.join(relative))
    }

    /// Moves one batch. `Err` when the target failed (the job stops; the data stays).
    async fn batch(
        &mut self,
        target: Option<Arc<Target>>,
        moves: Vec<Move>,
    ) -> Result<(), RetentionError> {
        if moves.is_empty() {
            return Ok(());
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

        // Local digests (a trail whose file is gone cannot be moved: reported, left alone).
        let mut ready: Vec<(Move, PathBuf, Digest)> = Vec::new();
        let mut gone = Vec::new();
        for m in moves {
            let Some(local) = self.local(&m.record) else {
                self.report.failed += 1;
                self.report.error(format!(
                    "session {} names an unusable trail path",
                    m.record.key
                ));
                gone.push(m.record.key.clone());
                continue;
            };
            let path = local.clone();
            match blocking(move || std::fs::File::open(&path).and_then(digest)).await? {
                Ok(d) => ready.push((m, local, d)),
                Err(e) => {
                    self.report.failed += 1;
                    self.report
                        .error(format!("cannot read {}: {e}", local.display()));
                    gone.push(m.record.key.clone());
                }
            }
        }
        self.engine.store.journal_remove(&gone).await?;

        let Some(target) = target else {
            return self.delete_batch(ready).await;
        };
        let items: Vec<Item> = ready
            .iter()
            .map(|(m, local, _)| Item {
                local: local.clone(),
                remote: m.destination.clone(),
            })
            .collect();
        let remotes: Vec<String> = items.iter().map(|i| i.remote.clone()).collect();
        let t = Arc::clone(&target);
        blocking(move || t.put(&items)).await??;
        self.pause_after("copied").await;
        let t = Arc::clone(&target);
        let copies = blocking(move || t.read_back(&remotes)).await??;

        let (kind, server, share) = target.describe();
        let mut verified = Vec::new();
        for (m, local, local_digest) in ready {
            match copies.get(&m.destination) {
                Some(copy) if *copy == local_digest => {
                    let mut record = m.record;
                    record.archived = true;
                    record.archive = Some(TrailArchive {
                        policy: self.policy.name.clone(),
                        policy_id: self.key.to_string(),
                        target: kind.to_string(),
                        server: Some(server.clone()),
                        share: Some(share.clone()),
                        path: Some(m.destination.clone()),
                        size: copy.size,
                        blake3: Some(copy.blake3.clone()),
                        time: now_micros(),
                    });
                    self.save(&record).await?;
                    verified.push((record, local, m.destination));
                }
                other => {
                    self.report.failed += 1;
                    let found = other.map_or("nothing".to_string(), |c| {
                        format!("{} bytes with digest {}", c.size, c.blake3)
                    });
                    self.report.error(format!(
                        "verification failed for {}: expected {} bytes with digest {}, read back {found}; the trail stays here",
                        m.destination, local_digest.size, local_digest.blake3
                    ));
                }
            }
        }
        self.pause_after("recorded").await;
        let mut keys = Vec::new();
        for (record, local, destination) in &verified {
            remove(local).await;
            self.report
                .done(destination, record.archive.as_ref().map_or(0, |a| a.size));
            keys.push(record.key.clone());
        }
        self.flush_trail_dir().await;
        self.engine.store.journal_remove(&keys).await?;
        Ok(())
    }

    /// `none`: record the deletion, then delete.
    async fn delete_batch(
        &mut self,
        ready: Vec<(Move, PathBuf, Digest)>,
    ) -> Result<(), RetentionError> {
        let mut keys = Vec::new();
        for (m, local, d) in ready {
            let mut record = m.record;
            record.archived = false;
            record.archive = Some(TrailArchive {
                policy: self.policy.name.clone(),
                policy_id: self.key.to_string(),
                target: "none".into(),
                server: None,
                share: None,
                path: None,
                size: d.size,
                blake3: Some(d.blake3),
                time: now_micros(),
            });
            self.save(&record).await?;
            remove(&local).await;
            self.report.done(&m.destination, d.size);
            keys.push(record.key);
        }
        self.pause_after("recorded").await;
        self.flush_trail_dir().await;
        self.engine.store.journal_remove(&keys).await?;
        Ok(())
    }

    async fn save(&self, record: &SessionRecord) -> Result<(), RetentionError> {
        self.engine.records.save(record.clone()).await.map_err(|e| {
            RetentionError::Unavailable(format!("cannot save session {}: {e}", record.key))
        })
    }

    async fn delete_local(&self, record: &SessionRecord) {
        if let Some(local) = self.local(record) {
            remove(&local).await;
            self.flush_trail_dir().await;
        }
    }

    async fn flush_trail_dir(&self) {
        let dir = self.engine.options.data_dir.join("trails");
        let _ = blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all())).await;
    }
}

async fn remove(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::error!(target: "custos::events", file = %path.display(), error = %e, "cannot delete an archived trail's local copy");
    }
}
