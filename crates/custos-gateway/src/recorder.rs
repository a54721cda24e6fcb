//! Writes a session's trail on a thread of its own, fed through a bounded queue: a slow disk
//! holds the relay back only through that queue (back-pressure), never by unbounded buffering.
//! A write failure (e.g. disk full) is reported through `failed` so the session fails closed.
//!
//! The same thread applies the audit policy: the trail's data keys are made and wrapped when
//! it is created; every signing interval, and at the end, it seals the chain head (signature,
//! built-in time-stamp). A remote TSA is asked on the runtime instead, and its seal comes back
//! through the queue when it answers, so that a slow TSA never stalls the recording.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use custos_trail::{ChainHead, Record, SealPayload, TrailWriter, WriterOptions};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::evidence::{EvidencePolicy, REMOTE_TSA_TIMEOUT};
use crate::transcript::Transcriber;

/// Records in flight between the relay and the writer thread. This bounds what can have been
/// relayed but not yet written when the disk fails (SSH packets are at most 32 KiB: ~1 MiB).
const QUEUE: usize = 32;

enum Command {
    Record(u64, Record),
    /// A seal whose remote time-stamp arrived (or failed: then without one).
    Seal(SealPayload, Option<String>),
    Finish(u64, oneshot::Sender<Result<(), String>>),
}

#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Command>,
    start: Instant,
    failed: watch::Receiver<Option<String>>,
}

/// The writer thread's state.
struct Writing {
    writer: Option<TrailWriter>,
    failure: Option<String>,
    failed_tx: watch::Sender<Option<String>>,
    evidence: Arc<EvidencePolicy>,
    next_seal: Option<Instant>,
    /// For remote time-stamps: a handle that does not keep the queue open.
    seals_back: mpsc::WeakSender<Command>,
    runtime: tokio::runtime::Handle,
    start: Instant,
    name: String,
    /// The terminal text for the search index, when the session's text is indexed.
    transcript: Option<Transcriber>,
}

impl Writing {
    fn fail(&mut self, error: String) {
        if self.failure.is_none() {
            tracing::error!(trail = %self.name, error = %error, "cannot write the audit trail");
            self.failure = Some(error);
            let _ = self.failed_tx.send(self.failure.clone());
        }
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The next moment the thread has time-based work: flushing, syncing or sealing.
    fn deadline(&self) -> Option<Instant> {
        let writer = self.writer.as_ref().filter(|_| self.failure.is_none())?;
        [
            writer.next_deadline(),
            self.next_seal,
            self.transcript.as_ref().and_then(Transcriber::deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn tick(&mut self) {
        let now = self.micros();
        if let Some(t) = self.transcript.as_mut() {
            t.tick(now);
        }
        if let Some(w) = self.writer.as_mut()
            && let Err(e) = w.tick()
        {
            self.fail(e.to_string());
        }
        if self.next_seal.is_some_and(|at| at <= Instant::now()) {
            self.next_seal = Some(Instant::now() + self.evidence.interval);
            self.seal_head();
        }
    }

    /// Seals the current head: signed and locally stamped now, or remotely stamped later.
    fn seal_head(&mut self) {
        let head = match self.writer.as_mut().map(TrailWriter::head) {
            Some(Ok(head)) => head,
            Some(Err(e)) => return self.fail(e.to_string()),
            None => return,
        };
        let seal = self.evidence.seal_now(head);
        if self.evidence.remote_tsa().is_some() {
            let evidence = self.evidence.clone();
            let back = self.seals_back.clone();
            self.runtime.spawn(async move {
                let (seal, error) = stamped_remotely(&evidence, seal).await;
                if let Some(queue) = back.upgrade() {
                    let _ = queue.send(Command::Seal(seal, error)).await;
                }
            });
        } else {
            self.append_seal(seal, None);
        }
    }

    fn append_seal(&mut self, seal: SealPayload, error: Option<String>) {
        if let Some(error) = error {
            tracing::error!(trail = %self.name, error = %error, "the time-stamping authority failed");
            let at = self.micros();
            let event = Record::Event(json!({"type": "timestamp-failed", "reason": error}));
            if let Some(Err(e)) = self.writer.as_mut().map(|w| w.append(at, &event)) {
                return self.fail(e.to_string());
            }
        }
        if seal.signature.is_empty() && seal.timestamp.is_empty() {
            return;
        }
        if let Some(Err(e)) = self.writer.as_mut().map(|w| w.append_seal(&seal)) {
            self.fail(e.to_string());
        }
    }

    /// Writes the index and trailer, sealing the complete trail first if the policy says so.
    fn finish(&mut self, at: u64) -> Result<(), String> {
        // The index gets the last lines before the session's final record is saved.
        if let Some(mut t) = self.transcript.take() {
            t.finish();
        }
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let evidence = self.evidence.clone();
        let runtime = self.runtime.clone();
        let result = writer
            .finish_sealed(at, |head| {
                let seal = evidence.seal_now(head);
                if evidence.remote_tsa().is_none() {
                    return Some(seal);
                }
                // The final seal waits for the remote TSA (bounded by its timeout): it is what
                // proves the trail complete.
                let (seal, error) = runtime.block_on(stamped_remotely(&evidence, seal));
                if let Some(error) = error {
                    tracing::error!(error = %error, "the final time-stamp failed; the trail ends signed only");
                }
                Some(seal)
            })
            .map(|_| ())
            .map_err(|e| e.to_string());
        self.failure.clone().map_or(result, Err)
    }
}

/// Adds a remote time-stamp to `seal`, or says why there is none.
async fn stamped_remotely(
    evidence: &EvidencePolicy,
    mut seal: SealPayload,
) -> (SealPayload, Option<String>) {
    let head: ChainHead = seal.head;
    match tokio::time::timeout(REMOTE_TSA_TIMEOUT, evidence.stamp_remote(head)).await {
        Ok(Ok(token)) => {
            seal.timestamp = token;
            (seal, None)
        }
        Ok(Err(e)) => (seal, Some(e)),
        Err(_) => (seal, Some("the remote TSA did not answer in time".into())),
    }
}

impl Recorder {
    /// Creates the trail file (encrypted and sealed as `evidence` says) and starts its writer
    /// thread. `failed` carries the first error.
    pub fn start(
        path: &Path,
        header: &serde_json::Value,
        evidence: Arc<EvidencePolicy>,
        transcript: Option<Transcriber>,
    ) -> Result<(Recorder, watch::Receiver<Option<String>>), String> {
        let protection = evidence.protection()?;
        let writer =
            TrailWriter::create_protected(path, header, WriterOptions::default(), protection)
                .map_err(|e| e.to_string())?;
        let (queue, mut commands) = mpsc::channel::<Command>(QUEUE);
        let (failed_tx, failed) = watch::channel(None);
        let start = Instant::now();
        let mut state = Writing {
            writer: Some(writer),
            failure: None,
            failed_tx,
            next_seal: evidence.seals().then(|| start + evidence.interval),
            evidence,
            seals_back: queue.downgrade(),
            runtime: tokio::runtime::Handle::current(),
            start,
            name: path.display().to_string(),
            transcript,
        };
        std::thread::Builder::new()
            .name("trail-writer".into())
            .spawn(move || {
                loop {
                    // After a failure nothing more is written, so there is nothing to flush on
                    // time either (retrying a full disk in a loop would only burn a core).
                    let deadline = state.deadline();
                    let next = state.runtime.block_on(async {
                        match deadline {
                            Some(at) => {
                                let at = tokio::time::Instant::from_std(at);
                                tokio::time::timeout_at(at, commands.recv()).await.ok()
                            }
                            None => Some(commands.recv().await),
                        }
                    });
                    match next {
                        // Timed out: flush, sync or seal what is due.
                        None => state.tick(),
                        Some(Some(Command::Record(at, record))) => {
                            if state.failure.is_none() {
                                match state.writer.as_mut().map(|w| w.append(at, &record)) {
                                    Some(Err(e)) => state.fail(e.to_string()),
                                    // Only what the trail holds is indexed.
                                    Some(Ok(())) => {
                                        if let Some(t) = state.transcript.as_mut() {
                                            t.push(at, &record);
                                        }
                                    }
                                    None => {}
                                }
                            }
                        }
                        Some(Some(Command::Seal(seal, error))) => {
                            if state.failure.is_none() {
                                state.append_seal(seal, error);
                            }
                        }
                        Some(Some(Command::Finish(at, done))) => {
                            let _ = done.send(state.finish(at));
                            return;
                        }
                        // Every sender is gone without finishing: finish what there is.
                        Some(None) => {
                            let at = state.micros();
                            let _ = state.finish(at);
                            return;
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok((
            Recorder {
                queue,
                start,
                failed: failed.clone(),
            },
            failed,
        ))
    }

    /// Whether the trail has failed: from then on nothing may be relayed (fail closed).
    pub fn has_failed(&self) -> bool {
        self.failed.borrow().is_some()
    }

    pub fn micros(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Queues a record, waiting while the queue is full.
    pub async fn record(&self, record: Record) {
        let _ = self
            .queue
            .send(Command::Record(self.micros(), record))
            .await;
    }

    /// Writes the index and trailer and syncs; returns the first error of the whole trail.
    pub async fn finish(&self) -> Result<(), String> {
        let (done, result) = oneshot::channel();
        if self
            .queue
            .send(Command::Finish(self.micros(), done))
            .await
            .is_err()
        {
            return Err("the trail writer is gone".into());
        }
        result
            .await
            .unwrap_or_else(|_| Err("the trail writer stopped".into()))
    }
}
