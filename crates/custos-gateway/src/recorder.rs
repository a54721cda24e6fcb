//! Writes a session's trail on a thread of its own, fed through a bounded queue: a slow disk
//! holds the relay back only through that queue (back-pressure), never by unbounded buffering.
//! A write failure (e.g. disk full) is reported through `failed` so the session fails closed.

use std::path::Path;
use std::time::Instant;

use custos_trail::{Record, TrailWriter, WriterOptions};
use tokio::sync::{mpsc, oneshot, watch};

/// Records in flight between the relay and the writer thread. This bounds what can have been
/// relayed but not yet written when the disk fails (SSH packets are at most 32 KiB: ~1 MiB).
const QUEUE: usize = 32;

enum Command {
    Record(u64, Record),
    Finish(u64, oneshot::Sender<Result<(), String>>),
}

#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Command>,
    start: Instant,
    failed: watch::Receiver<Option<String>>,
}

impl Recorder {
    /// Creates the trail file and starts its writer thread. `failed` carries the first error.
    pub fn start(
        path: &Path,
        header: &serde_json::Value,
    ) -> Result<(Recorder, watch::Receiver<Option<String>>), String> {
        let writer = TrailWriter::create(path, header, WriterOptions::default())
            .map_err(|e| e.to_string())?;
        let (queue, mut commands) = mpsc::channel::<Command>(QUEUE);
        let (failed_tx, failed) = watch::channel(None);
        let runtime = tokio::runtime::Handle::current();
        let name = path.display().to_string();
        std::thread::Builder::new()
            .name("trail-writer".into())
            .spawn(move || {
                let mut writer = Some(writer);
                let mut failure: Option<String> = None;
                loop {
                    // After a failure nothing more is written, so there is nothing to flush on
                    // time either (retrying a full disk in a loop would only burn a core).
                    let deadline = writer.as_ref().filter(|_| failure.is_none()).and_then(|w| w.next_deadline());
                    let next = runtime.block_on(async {
                        match deadline {
                            Some(at) => {
                                let at = tokio::time::Instant::from_std(at);
                                tokio::time::timeout_at(at, commands.recv()).await.ok()
                            }
                            None => Some(commands.recv().await),
                        }
                    });
                    match next {
                        // Timed out: flush what waited long enough.
                        None => {
                            if let Some(w) = writer.as_mut()
                                && let Err(e) = w.tick()
                            {
                                failure.get_or_insert(e.to_string());
                                let _ = failed_tx.send(failure.clone());
                            }
                        }
                        Some(Some(Command::Record(at, record))) => {
                            if let Some(w) = writer.as_mut()
                                && failure.is_none()
                                && let Err(e) = w.append(at, &record)
                            {
                                tracing::error!(trail = %name, error = %e, "cannot write the audit trail");
                                failure = Some(e.to_string());
                                let _ = failed_tx.send(failure.clone());
                            }
                        }
                        Some(Some(Command::Finish(at, done))) => {
                            let result = match writer.take() {
                                Some(w) => w.finish(at).map(|_| ()).map_err(|e| e.to_string()),
                                None => Ok(()),
                            };
                            let _ = done.send(failure.clone().map_or(result, Err));
                            return;
                        }
                        // Every sender is gone without finishing: finish what there is.
                        Some(None) => {
                            if let Some(w) = writer.take() {
                                let _ = w.finish(0);
                            }
                            return;
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok((
            Recorder {
                queue,
                start: Instant::now(),
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
