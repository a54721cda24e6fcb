//! Wiring of the search index: records saved by the gateways are indexed in store-revision
//! order, their terminal text comes from the recorders, and at startup (or on
//! `custos index rebuild`) whatever the index missed is read back from the database and the
//! trail files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use custos_search::SearchIndex;
use custos_sessions::{BoxFuture, SessionRecord, SessionStore};
use custos_store::Store;
use custos_trail::TrailReader;
use custos_trail::text::TextChunk;

/// The index lives here, inside the data directory.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

/// Saves records to the database, then queues them for the index with the revision the
/// database gave them. One at a time, so the index receives records in revision order and its
/// commits never claim a revision whose predecessor is missing.
pub struct IndexedStore {
    pub store: Arc<Store>,
    pub index: Arc<SearchIndex>,
    order: tokio::sync::Mutex<()>,
}

impl IndexedStore {
    pub fn new(store: Arc<Store>, index: Arc<SearchIndex>) -> IndexedStore {
        IndexedStore {
            store,
            index,
            order: tokio::sync::Mutex::new(()),
        }
    }
}

impl SessionStore for IndexedStore {
    fn save(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), String>> {
        self.save_all(vec![record])
    }

    fn save_all(&self, records: Vec<SessionRecord>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let _in_order = self.order.lock().await;
            let revisions = self
                .store
                .save_sessions(&records)
                .await
                .map_err(|e| e.to_string())?;
            // The records are durable; an index failure only delays searchability (the next
            // start re-indexes from the revision the index last committed).
            for (record, revision) in records.iter().zip(revisions) {
                if let Err(e) = self.index.record(record, revision) {
                    tracing::error!(session = %record.key, error = %e, "cannot index a session record");
                }
            }
            Ok(())
        })
    }
}

/// The recorders' terminal text, into the index.
pub struct IndexedText(pub Arc<SearchIndex>);

impl custos_gateway::TextSink for IndexedText {
    fn text(&self, key: &str, chunks: Vec<TextChunk>) {
        if let Err(e) = self.0.text(key, chunks) {
            tracing::error!(session = %key, error = %e, "cannot index terminal text");
        }
    }

    fn done(&self, key: &str) {
        if let Err(e) = self.0.text_done(key) {
            tracing::error!(session = %key, error = %e, "cannot index terminal text");
        }
    }
}

/// Records read from the database per round of catching up.
const BATCH: i64 = 1000;

/// Indexes every record saved after the index's last commit: metadata from the database, and
/// for ended sessions the text read back from their trails (replacing whatever text the index
/// had, which a crash may have left partial). Returns how many records were indexed.
///
/// Text of encrypted trails cannot be read here (the keys are the auditors'): such sessions keep
/// the text the gateway indexed live, if their policy allowed it.
pub async fn catch_up(
    store: &Store,
    index: &Arc<SearchIndex>,
    data_dir: &Path,
) -> anyhow::Result<u64> {
    let mut after = index.committed_revision();
    // Records saved from now on are indexed as they are saved; stop at what exists now.
    let until = store
        .sessions_revision()
        .await
        .context("reading session records")?;
    let mut done = 0u64;
    while after < until {
        let batch = store
            .sessions_changed_since(after, BATCH)
            .await
            .context("reading session records")?;
        let Some((_, last)) = batch.last() else { break };
        after = *last;
        let index = index.clone();
        let data_dir = data_dir.to_path_buf();
        done += tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            for (record, revision) in &batch {
                if record.active {
                    index.record(record, *revision)?;
                } else {
                    let text = trail_text(&data_dir, record);
                    index.replace(record, *revision, text)?;
                }
            }
            Ok(batch.len() as u64)
        })
        .await??;
    }
    index.sync()?;
    Ok(done)
}

/// The text of a session's trail, if it has one that can be read without keys.
fn trail_text(data_dir: &Path, record: &SessionRecord) -> Option<Vec<TextChunk>> {
    let relative = record.trail.as_deref()?;
    let path = data_dir.join(relative);
    let mut reader = match TrailReader::open(&path) {
        Ok(reader) => reader,
        Err(e) => {
            // Archived or removed: keep whatever the index has.
            tracing::debug!(session = %record.key, error = %e, "no trail to index");
            return None;
        }
    };
    if reader.is_encrypted(0) || reader.is_encrypted(1) {
        return None;
    }
    let (text, failure) = custos_search::reindex::trail_text(&mut reader);
    if let Some(e) = failure {
        tracing::warn!(session = %record.key, trail = %path.display(), error = %e, "indexed the text of a damaged trail up to the damage");
    }
    Some(text)
}

/// `custos index rebuild`: builds a new index from the database and the trails beside the old
/// one, then swaps it in, so an interrupted rebuild leaves the old index untouched.
pub async fn rebuild(data_dir: &Path, store: &Store) -> anyhow::Result<u64> {
    let live = index_dir(data_dir);
    // Refuse while a server holds the index (its writer lock).
    if live.exists() {
        drop(SearchIndex::open(&live).context("the search index is in use")?);
    }
    let fresh = data_dir.join("index.rebuild");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).context("removing a previous unfinished rebuild")?;
    }
    let index = Arc::new(SearchIndex::open(&fresh)?);
    let count = catch_up(store, &index, data_dir).await?;
    drop(Arc::try_unwrap(index).map_err(|_| anyhow::anyhow!("the new index is still in use"))?);
    let old = data_dir.join("index.old");
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    if live.exists() {
        std::fs::rename(&live, &old).context("moving the old index aside")?;
    }
    std::fs::rename(&fresh, &live).context("moving the new index in place")?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(count)
}
