//! The terminal text of a session, for the search index, extracted on the trail writer thread
//! from the very records it writes (so the index sees exactly what the trail holds).
//!
//! Lines go to the [`TextSink`] in batches; a partial line (a prompt, the last line of a command
//! still running) is handed over once it has waited [`IDLE`], so a running session's screen is
//! searchable within seconds. The sink may block (back-pressure): text is never dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_trail::Record;
use custos_trail::text::{TextChunk, TextExtractor};

/// Where sessions' terminal text goes (the search index; wired by the binary).
pub trait TextSink: Send + Sync {
    /// Lines of the running session `key`, in time order.
    fn text(&self, key: &str, chunks: Vec<TextChunk>);
    /// The session's text is complete.
    fn done(&self, key: &str);
}

/// How long a partial line waits before it is handed over anyway.
const IDLE: Duration = Duration::from_secs(1);
/// Lines collected before a batch is handed over without waiting for a tick.
const BATCH: usize = 256;

pub(crate) struct Transcriber {
    key: String,
    sink: Arc<dyn TextSink>,
    extractor: TextExtractor,
    pending: Vec<TextChunk>,
    /// When the next idle check is due (set while there may be partial lines).
    next_tick: Option<Instant>,
    /// Whether records arrived since the last idle check.
    fed: bool,
}

impl Transcriber {
    pub(crate) fn new(key: String, sink: Arc<dyn TextSink>) -> Transcriber {
        Transcriber {
            key,
            sink,
            extractor: TextExtractor::new(),
            pending: Vec::new(),
            next_tick: None,
            fed: false,
        }
    }

    pub(crate) fn push(&mut self, at: u64, record: &Record) {
        self.extractor.push(at, record, &mut self.pending);
        if matches!(record, Record::Data { .. }) {
            self.fed = true;
            self.next_tick.get_or_insert_with(|| Instant::now() + IDLE);
        }
        if self.pending.len() >= BATCH {
            self.hand_over();
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Hands over what waited long enough. After a quiet interval everything partial goes,
    /// and ticking stops until more data comes.
    pub(crate) fn tick(&mut self, now_micros: u64) {
        if self.next_tick.is_none_or(|at| at > Instant::now()) {
            return;
        }
        let idle = if self.fed { IDLE.as_micros() as u64 } else { 0 };
        self.extractor
            .flush_idle(now_micros, idle, &mut self.pending);
        self.hand_over();
        self.next_tick = self.fed.then(|| Instant::now() + IDLE);
        self.fed = false;
    }

    pub(crate) fn finish(&mut self) {
        self.extractor.finish(&mut self.pending);
        self.hand_over();
        self.sink.done(&self.key);
        self.next_tick = None;
    }

    fn hand_over(&mut self) {
        if !self.pending.is_empty() {
            self.sink.text(&self.key, std::mem::take(&mut self.pending));
        }
    }
}
