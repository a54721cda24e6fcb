//! The index on disk and the one thread that writes it.
//!
//! Everything that changes the index goes through a queue to the indexing thread, in order:
//! record updates (with the store's revision of the record), terminal text as the gateway
//! extracts it, and catch-up replacements. The thread commits at most every
//! [`COMMIT_INTERVAL`] while there are changes, so new text is searchable within about a second;
//! each commit records the highest record revision it includes, so that after a crash the
//! server re-indexes exactly the records changed since (see `SearchIndex::committed_revision`).
//!
//! The index is derived data: a damaged or outdated one is discarded and rebuilt from the
//! database and the trails, never trusted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use custos_sessions::SessionRecord;
use custos_trail::text::TextChunk;
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::documents::{TextPacker, session_document};
use crate::schema::{Fields, SCHEMA_VERSION, register_tokenizers, sid};

/// How long a change may wait before it is committed (and searchable).
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Operations in flight to the indexing thread. Senders wait when it is full: text is never
/// dropped (the recording waits instead, as it does for a slow disk).
const QUEUE: usize = 4096;
/// The writer's memory before it flushes a segment (one indexing thread).
const WRITER_MEMORY: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index: {0}")]
    Io(#[from] std::io::Error),
    #[error("the search index at {0} is in use by another process (stop `custos serve` first)")]
    Busy(PathBuf),
    #[error("the indexing thread has stopped")]
    Stopped,
}

/// What each commit records, so a restart knows what the index already holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Payload {
    schema: u32,
    /// The highest session-record revision whose update is in this commit.
    revision: i64,
}

enum Op {
    /// A record changed (started, ended, …): replace its session document.
    Record(Box<SessionRecord>, i64),
    /// Lines of terminal text of a running session.
    Text(u64, Vec<TextChunk>),
    /// The session's text is complete: write out what is pending.
    TextDone(u64),
    /// Re-index a session from scratch: its record and (if readable) all its text.
    Replace(Box<SessionRecord>, i64, Option<Vec<TextChunk>>),
    /// Commit now and answer once searchers see it.
    Sync(SyncSender<Result<(), String>>),
    /// Commit and end the thread (releasing the writer's lock).
    Stop,
}

pub(crate) struct Shared {
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
}

/// The embedded session index.
pub struct SearchIndex {
    pub(crate) shared: Arc<Shared>,
    ops: SyncSender<Op>,
    thread: Mutex<Option<JoinHandle<()>>>,
    opened_revision: i64,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (or recreating it, if it is unreadable or of another
    /// schema version) as needed, and starts the indexing thread.
    pub fn open(dir: &Path) -> Result<SearchIndex, IndexError> {
        std::fs::create_dir_all(dir)?;
        let fields = Fields::build();
        let (index, revision) = match open_existing(dir, &fields) {
            Ok(Some(opened)) => opened,
            Ok(None) => (create(dir, &fields)?, 0),
            Err(reason) => {
                tracing::warn!(dir = %dir.display(), %reason, "discarding the search index; it is rebuilt from the database and the trails");
                discard(dir)?;
                (create(dir, &fields)?, 0)
            }
        };
        register_tokenizers(&index);
        let writer: IndexWriter<TantivyDocument> =
            match index.writer_with_num_threads(1, WRITER_MEMORY) {
                Ok(w) => w,
                Err(tantivy::TantivyError::LockFailure(..)) => {
                    return Err(IndexError::Busy(dir.to_path_buf()));
                }
                Err(e) => return Err(e.into()),
            };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let shared = Arc::new(Shared {
            index,
            reader,
            fields,
        });
        let (ops, queue) = sync_channel(QUEUE);
        let mut thread_state = Indexer {
            shared: shared.clone(),
            writer,
            packers: HashMap::new(),
            revision,
            dirty_since: None,
        };
        let thread = std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || thread_state.run(queue))?;
        Ok(SearchIndex {
            shared,
            ops,
            thread: Mutex::new(Some(thread)),
            opened_revision: revision,
        })
    }

    /// The highest record revision the index held when it was opened: records saved with a
    /// higher revision must be re-indexed (0 for a new index: everything).
    pub fn committed_revision(&self) -> i64 {
        self.opened_revision
    }

    pub fn fields(&self) -> &Fields {
        &self.shared.fields
    }

    pub fn searcher(&self) -> Searcher {
        self.shared.reader.searcher()
    }

    fn send(&self, op: Op) -> Result<(), IndexError> {
        match self.ops.try_send(op) {
            Ok(()) => Ok(()),
            // Full: wait (back-pressure) rather than lose text.
            Err(TrySendError::Full(op)) => self.ops.send(op).map_err(|_| IndexError::Stopped),
            Err(TrySendError::Disconnected(_)) => Err(IndexError::Stopped),
        }
    }

    /// Indexes a record as saved with store revision `revision`.
    pub fn record(&self, record: &SessionRecord, revision: i64) -> Result<(), IndexError> {
        self.send(Op::Record(Box::new(record.clone()), revision))
    }

    /// Adds lines of the terminal text of the running session `key`.
    pub fn text(&self, key: &str, chunks: Vec<TextChunk>) -> Result<(), IndexError> {
        if chunks.is_empty() {
            return Ok(());
        }
        self.send(Op::Text(sid(key), chunks))
    }

    /// The session's text is complete.
    pub fn text_done(&self, key: &str) -> Result<(), IndexError> {
        self.send(Op::TextDone(sid(key)))
    }

    /// Replaces everything indexed about a session: its record, and its text when `text` is
    /// given (`None` keeps the text already indexed, e.g. of an encrypted trail read live).
    pub fn replace(
        &self,
        record: &SessionRecord,
        revision: i64,
        text: Option<Vec<TextChunk>>,
    ) -> Result<(), IndexError> {
        self.send(Op::Replace(Box::new(record.clone()), revision, text))
    }

    /// Commits everything queued so far and waits until searches see it.
    pub fn sync(&self) -> Result<(), IndexError> {
        let (done, answer) = sync_channel(1);
        self.send(Op::Sync(done))?;
        answer
            .recv()
            .map_err(|_| IndexError::Stopped)?
            .map_err(|e| IndexError::Tantivy(tantivy::TantivyError::InternalError(e)))
    }
}

impl Drop for SearchIndex {
    /// Whatever is queued is committed, and the writer's lock released, before the process
    /// goes on (e.g. exits, or opens the index again).
    fn drop(&mut self) {
        if self.send(Op::Stop).is_ok()
            && let Ok(mut guard) = self.thread.lock()
            && let Some(thread) = guard.take()
        {
            let _ = thread.join();
        }
    }
}

fn create(dir: &Path, fields: &Fields) -> Result<Index, IndexError> {
    Ok(Index::create_in_dir(dir, fields.schema.clone())?)
}

/// `Ok(None)` when there is no index yet; `Err` with a reason when there is one we cannot use.
fn open_existing(dir: &Path, fields: &Fields) -> Result<Option<(Index, i64)>, String> {
    let directory = MmapDirectory::open(dir).map_err(|e| e.to_string())?;
    if !Index::exists(&directory).map_err(|e| e.to_string())? {
        return Ok(None);
    }
    let index = Index::open(directory).map_err(|e| e.to_string())?;
    if index.schema() != fields.schema {
        return Err("its schema is of another version".into());
    }
    let meta = index.load_metas().map_err(|e| e.to_string())?;
    let payload: Payload = match meta.payload.as_deref() {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("commit payload: {e}"))?,
        None => Payload::default(),
    };
    if payload.schema != SCHEMA_VERSION && meta.payload.is_some() {
        return Err(format!(
            "schema version {} (expected {SCHEMA_VERSION})",
            payload.schema
        ));
    }
    Ok(Some((index, payload.revision)))
}

/// Removes the files of an unusable index (only the index's own directory).
fn discard(dir: &Path) -> Result<(), IndexError> {
    std::fs::remove_dir_all(dir)?;
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// The indexing thread's state.
struct Indexer {
    shared: Arc<Shared>,
    writer: IndexWriter<TantivyDocument>,
    /// Text of running sessions not yet made into documents, by sid.
    packers: HashMap<u64, TextPacker>,
    revision: i64,
    dirty_since: Option<Instant>,
}

impl Indexer {
    fn run(&mut self, queue: Receiver<Op>) {
        loop {
            let next = match self.dirty_since {
                Some(since) => {
                    let wait = COMMIT_INTERVAL.saturating_sub(since.elapsed());
                    queue.recv_timeout(wait)
                }
                None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match next {
                Ok(Op::Sync(done)) => {
                    let _ = done.send(self.commit().map_err(|e| e.to_string()));
                }
                Ok(Op::Stop) => {
                    if let Err(e) = self.commit() {
                        tracing::error!(error = %e, "search index commit failed");
                    }
                    return;
                }
                Ok(op) => {
                    if let Err(e) = self.apply(op) {
                        tracing::error!(error = %e, "search index update failed");
                    }
                    self.dirty_since.get_or_insert_with(Instant::now);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.commit() {
                        tracing::error!(error = %e, "search index commit failed");
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if let Err(e) = self.commit() {
                        tracing::error!(error = %e, "search index commit failed");
                    }
                    return;
                }
            }
        }
    }

    fn apply(&mut self, op: Op) -> tantivy::Result<()> {
        let fields = &self.shared.fields;
        match op {
            Op::Record(record, revision) => {
                self.writer
                    .delete_term(Term::from_field_text(fields.key, &record.key));
                self.writer
                    .add_document(session_document(fields, &record))?;
                self.revision = self.revision.max(revision);
            }
            Op::Text(sid, chunks) => {
                let packer = self.packers.entry(sid).or_default();
                for chunk in &chunks {
                    if let Some(doc) = packer.push(fields, sid, chunk) {
                        self.writer.add_document(doc)?;
                    }
                }
            }
            Op::TextDone(sid) => {
                if let Some(mut packer) = self.packers.remove(&sid) {
                    for doc in packer.flush(fields, sid) {
                        self.writer.add_document(doc)?;
                    }
                }
            }
            Op::Replace(record, revision, text) => {
                let sid = sid(&record.key);
                match text {
                    Some(chunks) => {
                        // Everything of the session goes, then comes back whole.
                        self.packers.remove(&sid);
                        self.writer
                            .delete_term(Term::from_field_u64(fields.sid, sid));
                        let mut packer = TextPacker::default();
                        for chunk in &chunks {
                            if let Some(doc) = packer.push(fields, sid, chunk) {
                                self.writer.add_document(doc)?;
                            }
                        }
                        for doc in packer.flush(fields, sid) {
                            self.writer.add_document(doc)?;
                        }
                    }
                    None => {
                        self.writer
                            .delete_term(Term::from_field_text(fields.key, &record.key));
                    }
                }
                self.writer
                    .add_document(session_document(fields, &record))?;
                self.revision = self.revision.max(revision);
            }
            Op::Sync(_) | Op::Stop => {}
        }
        Ok(())
    }

    /// Writes out pending text (so running sessions' latest lines become searchable), commits
    /// with the revision reached, and lets searchers see the result.
    fn commit(&mut self) -> tantivy::Result<()> {
        let fields = &self.shared.fields;
        for (sid, packer) in &mut self.packers {
            for doc in packer.flush(fields, *sid) {
                self.writer.add_document(doc)?;
            }
        }
        let payload = serde_json::to_string(&Payload {
            schema: SCHEMA_VERSION,
            revision: self.revision,
        })
        .unwrap_or_default();
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.dirty_since = None;
        self.shared.reader.reload()
    }
}
