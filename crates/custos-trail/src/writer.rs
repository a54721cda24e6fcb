//! The streaming trail writer.
//!
//! Design constraints (from the gateway): it runs on a blocking thread behind a bounded channel,
//! so it is synchronous; it records while traffic flows, so it must be cheap per byte (one copy
//! into the segment buffer, one BLAKE3 pass, one copy into the file sink, which writes large
//! aligned blocks past the page cache: see `sink.rs`) and bounded in memory
//! (one pending segment per stream, each at most `segment_bytes`); and a crash or a full disk
//! must leave a file whose complete segments are still readable.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use zeroize::Zeroizing;

use crate::crypt::SegmentCipher;
use crate::error::TrailError;
use crate::format::{
    CHAIN_LEN, ChainHead, EndMarker, FLAG_ENCRYPTED, FORMAT_VERSION_1, FORMAT_VERSION_2,
    INDEX_ENTRY_LEN, IndexEntry, KeyPayload, MAX_EVIDENCE_PAYLOAD, MAX_HEADER_JSON,
    SEGMENT_HEADER_LEN, SEGMENT_OVERHEAD, SealPayload, SegmentHeader, SegmentKind, TAG_LEN,
    Trailer, chain_next, encode_file_header, header_chain, payload_hash,
};
use crate::record::{self, Direction, Record};
use crate::sink::AppendFile;
use crate::spool::IndexSpool;
use crate::varint;

/// Smallest accepted `segment_bytes` (tests use tiny segments; production uses the default).
pub const MIN_SEGMENT_BYTES: usize = 256;
/// Largest accepted `segment_bytes`; readers accept record payloads up to 16 MiB.
pub const MAX_SEGMENT_BYTES: usize = 16 << 20;
/// Largest encoded non-Data record (its JSON, mostly). Such a record larger than a segment is
/// written in a segment of its own; Data records are split instead and have no limit.
pub const MAX_METADATA_RECORD: usize = 1 << 20;
/// The scratch buffer for encoding non-Data records is kept between calls up to this size.
const SCRATCH_KEEP: usize = 4 << 10;

/// How the writer cuts and syncs segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Largest size of one segment on disk (header + payload + chain value), default 64 KiB.
    /// Larger segments cost less per byte (72 bytes of overhead each); smaller ones lose less
    /// on a crash and seek more finely.
    pub segment_bytes: usize,
    /// Pending records are written out at least this often (default 1 s), so that a crash
    /// loses at most this much of the session.
    pub segment_interval: Duration,
    /// `fdatasync` at most this often (default 1 s), and always at [`TrailWriter::finish`].
    pub sync_interval: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            segment_bytes: 64 << 10,
            segment_interval: Duration::from_secs(1),
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// A record stream's data key, and the envelope (the key wrapped to certificates) that the
/// key segment announcing it carries.
pub struct StreamKey {
    pub data_key: Zeroizing<[u8; 32]>,
    pub envelope: Vec<u8>,
}

/// What a trail needs of format version 2: encrypted streams and/or seals. The default (none)
/// writes a version-1 file.
#[derive(Default)]
pub struct Protection {
    /// Data keys of streams 0 and 1; a stream with a key has all its segments encrypted.
    pub stream_keys: [Option<StreamKey>; 2],
    /// Whether seal segments will be appended ([`TrailWriter::append_seal`]).
    pub seals: bool,
}

impl Protection {
    fn needs_version_2(&self) -> bool {
        self.seals || self.stream_keys.iter().any(Option::is_some)
    }
}

/// What [`TrailWriter::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailSummary {
    /// All segments of the file, including the index and the end-of-trail marker.
    pub segments: u64,
    /// Records written (a split Data record counts once per piece).
    pub records: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// The chain value of the last segment (the end-of-trail marker), also in the trailer.
    pub final_chain: [u8; 32],
}

/// One stream's segment under construction: the buffer starts with room for the segment
/// header, so that header, payload and chain value go to disk in one `write`.
#[derive(Debug)]
struct Pending {
    buf: Vec<u8>,
    first: u64,
    last: u64,
    records: u32,
}

impl Pending {
    /// Starts small and grows with the records (up to `segment_bytes`, kept from then on), so
    /// that an idle session's trail holds a few hundred bytes, not two whole segments.
    fn new() -> Pending {
        let mut buf = Vec::with_capacity(SEGMENT_HEADER_LEN + 256);
        buf.resize(SEGMENT_HEADER_LEN, 0);
        Pending {
            buf,
            first: 0,
            last: 0,
            records: 0,
        }
    }

    fn payload_len(&self) -> usize {
        self.buf.len().saturating_sub(SEGMENT_HEADER_LEN)
    }

    fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Time delta of a record at `at` relative to this segment (starting it if empty).
    fn dt(&self, at: u64) -> u64 {
        if self.is_empty() {
            0
        } else {
            at.saturating_sub(self.first)
        }
    }

    fn note(&mut self, at: u64) {
        if self.is_empty() {
            self.first = at;
        }
        self.last = at;
        self.records = self.records.saturating_add(1);
    }
}

/// Writes one trail file, append-only. See the crate documentation for the format.
#[derive(Debug)]
pub struct TrailWriter {
    file: AppendFile,
    /// Whether seal segments are allowed (format version 2 with seals).
    seals: bool,
    /// Ciphers of the encrypted streams.
    ciphers: [Option<SegmentCipher>; 2],
    /// Index entries of the segments written so far.
    index: IndexSpool,
    options: WriterOptions,
    /// Chain value of the last segment written (or of the file header).
    chain: [u8; 32],
    /// Sequence number of the next segment.
    seq: u64,
    /// Bytes durably handed to the file so far (= offset of the next segment).
    offset: u64,
    pending: [Pending; 2],
    pending_since: Option<Instant>,
    last_sync: Instant,
    unsynced: bool,
    last_at: u64,
    records: u64,
    scratch: Vec<u8>,
    poisoned: bool,
    finished: bool,
}

impl TrailWriter {
    /// Creates `path` (never overwriting: `create_new`, mode 0600), writes and syncs the file
    /// header with `header` as its JSON document, and syncs the directory so the file survives
    /// a crash.
    pub fn create(
        path: &Path,
        header: &Value,
        options: WriterOptions,
    ) -> Result<TrailWriter, TrailError> {
        TrailWriter::create_protected(path, header, options, Protection::default())
    }

    /// Like [`create`](Self::create), for a trail with encrypted streams and/or seals (format
    /// version 2). The key segments are written and synced with the header, before any record.
    pub fn create_protected(
        path: &Path,
        header: &Value,
        options: WriterOptions,
        protection: Protection,
    ) -> Result<TrailWriter, TrailError> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&options.segment_bytes) {
            return Err(TrailError::InvalidOptions(format!(
                "segment_bytes must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}"
            )));
        }
        let json = serde_json::to_vec(header)?;
        let version = if protection.needs_version_2() {
            FORMAT_VERSION_2
        } else {
            FORMAT_VERSION_1
        };
        let mut ciphers = [None, None];
        for (stream, key) in protection.stream_keys.iter().enumerate() {
            if let Some(key) = key {
                if key.envelope.len() + 2 > MAX_EVIDENCE_PAYLOAD {
                    return Err(TrailError::InvalidOptions(
                        "the key envelope is larger than a key segment may be".into(),
                    ));
                }
                let cipher = SegmentCipher::new(&key.data_key).ok_or_else(|| {
                    TrailError::InvalidOptions("the data key is not an AES-256 key".into())
                })?;
                if let Some(slot) = ciphers.get_mut(stream) {
                    *slot = Some(cipher);
                }
            }
        }
        let header_bytes =
            encode_file_header(&json, version).ok_or(TrailError::HeaderTooLarge {
                len: json.len(),
                max: MAX_HEADER_JSON,
            })?;
        let mut file = AppendFile::create_new(path)?;
        let written = file.append(&header_bytes).and_then(|()| file.sync());
        if let Err(e) = written {
            drop(file);
            // We created it a moment ago; a half-written header is of no use to anyone.
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
        sync_parent_dir(path)?;
        let now = Instant::now();
        let mut writer = TrailWriter {
            file,
            seals: protection.seals,
            ciphers,
            index: IndexSpool::new(parent_dir(path)),
            options,
            chain: header_chain(&header_bytes),
            seq: 0,
            offset: header_bytes.len() as u64,
            pending: [Pending::new(), Pending::new()],
            pending_since: None,
            last_sync: now,
            unsynced: false,
            last_at: 0,
            records: 0,
            scratch: Vec::new(),
            poisoned: false,
            finished: false,
        };
        for (stream, key) in protection.stream_keys.iter().enumerate() {
            if let Some(key) = key {
                let payload = KeyPayload {
                    stream: u8::from(stream == 1),
                    envelope: key.envelope.clone(),
                };
                writer.write_evidence_segment(SegmentKind::Key, &payload.encode(), 0, true)?;
            }
        }
        if writer.seq > 0 {
            writer.sync_now()?;
        }
        Ok(writer)
    }

    /// Appends one record at `at_micros` (microseconds since the session start).
    ///
    /// Timestamps must not go backwards: an earlier one is recorded as the latest timestamp
    /// seen so far (the trail stays ordered; the gateway's clock is monotonic anyway).
    /// The record is buffered; a segment is written when the stream's buffer is full or the
    /// segment interval has passed. On an I/O error (see [`TrailError::is_storage_full`]) the
    /// file is cut back to its last complete segment and the error returned; records accepted
    /// before stay pending and go out with the next successful flush. The failing record
    /// itself may or may not have been accepted (a large Data record: some of its pieces), so
    /// the gateway should treat the error as "the recording is no longer complete".
    pub fn append(&mut self, at_micros: u64, record: &Record) -> Result<(), TrailError> {
        if let Record::Data {
            channel,
            direction,
            extended,
            bytes,
        } = record
        {
            return self.append_data(at_micros, *channel, *direction, *extended, bytes);
        }
        self.check_usable()?;
        let at = self.clamp(at_micros);
        let mut body = std::mem::take(&mut self.scratch);
        let result = self.append_encoded(at, record, &mut body);
        if body.capacity() > SCRATCH_KEEP {
            body = Vec::new();
        }
        self.scratch = body;
        result?;
        self.flush_if_due()
    }

    fn append_encoded(
        &mut self,
        at: u64,
        record: &Record,
        body: &mut Vec<u8>,
    ) -> Result<(), TrailError> {
        let code = record::encode_body(record, body)?;
        let max_len = record::prefix_len(u64::MAX, body.len()) + body.len();
        if max_len > MAX_METADATA_RECORD {
            return Err(TrailError::RecordTooLarge {
                len: max_len,
                max: MAX_METADATA_RECORD,
            });
        }
        let stream = record.stream();
        let cap = self.payload_capacity(stream);
        let fits = |p: &Pending| {
            p.payload_len() + record::prefix_len(p.dt(at), body.len()) + body.len() <= cap
        };
        if !self.pending_ref(stream).is_empty() && !fits(self.pending_ref(stream)) {
            self.flush_all()?;
        }
        self.start_pending();
        let p = self.pending_mut(stream);
        let dt = p.dt(at);
        record::encode_with_body(&mut p.buf, code, dt, body);
        p.note(at);
        self.records += 1;
        if self.pending_ref(stream).payload_len() > cap {
            // An oversized metadata record: it gets a segment of its own, now.
            self.flush_all()?;
        }
        Ok(())
    }

    /// Appends a Data record from a borrowed slice (what [`append`](Self::append) does for
    /// [`Record::Data`], without the caller building a `Bytes`). Data that does not fit in one
    /// segment is split into several Data records, each as large as a segment allows.
    pub fn append_data(
        &mut self,
        at_micros: u64,
        channel: u32,
        direction: Direction,
        extended: bool,
        bytes: &[u8],
    ) -> Result<(), TrailError> {
        self.check_usable()?;
        let at = self.clamp(at_micros);
        let stream = usize::from(direction == Direction::ClientToServer);
        let cap = self.payload_capacity(stream);
        let channel_len = varint::len(u64::from(channel));
        let mut rest = bytes;
        loop {
            let p = self.pending_ref(stream);
            let dt = p.dt(at);
            let whole = record::prefix_len(dt, channel_len + rest.len()) + channel_len + rest.len();
            let avail = cap.saturating_sub(p.payload_len());
            if whole <= avail {
                self.start_pending();
                let p = self.pending_mut(stream);
                record::encode_data(&mut p.buf, dt, channel, direction, extended, rest);
                p.note(at);
                self.records += 1;
                break;
            }
            if !p.is_empty() {
                // Keep record boundaries where possible: start a fresh segment before splitting.
                self.flush_all()?;
                continue;
            }
            // An empty segment cannot hold it: fill this segment with a piece.
            let overhead = record::prefix_len(0, avail) + channel_len;
            let piece = avail.saturating_sub(overhead).min(rest.len()).max(1);
            let (head, tail) = rest.split_at(piece.min(rest.len()));
            self.start_pending();
            let p = self.pending_mut(stream);
            record::encode_data(&mut p.buf, 0, channel, direction, extended, head);
            p.note(at);
            self.records += 1;
            rest = tail;
        }
        self.flush_if_due()
    }

    /// Writes the pending segment(s) now (without syncing).
    pub fn flush(&mut self) -> Result<(), TrailError> {
        self.check_usable()?;
        self.flush_all()?;
        Ok(self.file.flush()?)
    }

    /// Does the time-based work: writes pending records once `segment_interval` has passed
    /// since the oldest of them, and syncs once `sync_interval` has passed since the last sync.
    /// The gateway calls this when its channel has been idle until [`next_deadline`].
    ///
    /// [`next_deadline`]: Self::next_deadline
    pub fn tick(&mut self) -> Result<(), TrailError> {
        self.check_usable()?;
        self.flush_if_due()?;
        self.sync_if_due()
    }

    /// When [`tick`](Self::tick) next has work to do (`None`: nothing pending or unsynced).
    pub fn next_deadline(&self) -> Option<Instant> {
        let flush = self
            .pending_since
            .map(|t| t + self.options.segment_interval);
        let sync = self
            .unsynced
            .then(|| self.last_sync + self.options.sync_interval);
        match (flush, sync) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Writes all pending segments and `fdatasync`s the file now.
    pub fn sync(&mut self) -> Result<(), TrailError> {
        self.check_usable()?;
        self.flush_all()?;
        self.sync_now()
    }

    /// Ends the trail: writes pending records, the index, the end-of-trail marker and the
    /// trailer, and syncs. `end_micros` is the session's end (at least the last record's time).
    pub fn finish(self, end_micros: u64) -> Result<TrailSummary, TrailError> {
        self.finish_sealed(end_micros, |_| None)
    }

    /// Like [`finish`](Self::finish), and for a trail with seals, asks `seal` for the final
    /// seal over the head that includes the end-of-trail marker, written before the trailer:
    /// it attests that the trail is complete.
    pub fn finish_sealed(
        mut self,
        end_micros: u64,
        seal: impl FnOnce(ChainHead) -> Option<SealPayload>,
    ) -> Result<TrailSummary, TrailError> {
        self.check_usable()?;
        self.flush_all()?;
        let end = self.clamp(end_micros);
        let index_offset = self.offset;
        let result = self.write_index_and_end(end).and_then(|trailer| {
            let head = ChainHead {
                covered: self.seq,
                chain: self.chain,
            };
            if self.seals
                && let Some(payload) = seal(head)
            {
                self.write_evidence_segment(SegmentKind::Seal, &payload.encode(), end, false)?;
            }
            self.file.append(&trailer.encode())?;
            self.offset += crate::format::TRAILER_LEN as u64;
            Ok(TrailSummary {
                segments: self.seq,
                records: self.records,
                bytes: self.offset,
                final_chain: trailer.final_chain,
            })
        });
        // Whatever happened, Drop must not try to add anything after this point.
        self.finished = true;
        if result.is_err() {
            self.poisoned = true;
            // Cut off a partial index so the file ends on a segment boundary ("incomplete").
            let _ = self.file.truncate(index_offset);
            let _ = self.file.sync();
        }
        let summary = result?;
        self.sync_now()?;
        Ok(summary)
    }

    /// Writes the pending records and returns the chain head covering everything appended so
    /// far, for a seal to sign ([`append_seal`](Self::append_seal) later).
    pub fn head(&mut self) -> Result<ChainHead, TrailError> {
        self.check_usable()?;
        self.flush_all()?;
        Ok(ChainHead {
            covered: self.seq,
            chain: self.chain,
        })
    }

    /// Appends a seal segment (signature and/or time-stamp over an earlier head). The pending
    /// records are written first, so that a seal is a barrier in time: every record before it
    /// in the file is no later than every record after it.
    pub fn append_seal(&mut self, seal: &SealPayload) -> Result<(), TrailError> {
        self.check_usable()?;
        if !self.seals {
            return Err(TrailError::InvalidOptions(
                "this trail was created without seals".into(),
            ));
        }
        if seal.head.covered > self.seq {
            return Err(TrailError::InvalidOptions(
                "the seal covers segments that were not written".into(),
            ));
        }
        self.flush_all()?;
        let at = self.last_at;
        self.write_evidence_segment(SegmentKind::Seal, &seal.encode(), at, true)?;
        self.sync_if_due()
    }

    /// Bytes written to the file so far (header and complete segments; pending records not
    /// included).
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Records appended so far (a split Data record counts once per piece).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Memory reserved for pending records (both streams, plus the scratch buffer for
    /// non-Data records): at most `2 × segment_bytes + 4 KiB` between calls, and exactly
    /// `2 × segment_bytes` while only Data is appended. Exposed for the gateway's memory
    /// accounting and for tests.
    pub fn buffer_capacity(&self) -> usize {
        self.pending.iter().map(|p| p.buf.capacity()).sum::<usize>() + self.scratch.capacity()
    }

    fn check_usable(&self) -> Result<(), TrailError> {
        if self.poisoned || self.finished {
            Err(TrailError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn clamp(&mut self, at: u64) -> u64 {
        self.last_at = self.last_at.max(at);
        self.last_at
    }

    /// Plaintext bytes a segment of `stream` may hold (an encrypted one loses its tag's room).
    fn payload_capacity(&self, stream: usize) -> usize {
        let tag = if self.ciphers.get(stream).is_some_and(Option::is_some) {
            TAG_LEN
        } else {
            0
        };
        self.options.segment_bytes - SEGMENT_OVERHEAD - tag
    }

    fn pending_ref(&self, stream: usize) -> &Pending {
        if stream == 0 {
            &self.pending[0]
        } else {
            &self.pending[1]
        }
    }

    fn pending_mut(&mut self, stream: usize) -> &mut Pending {
        if stream == 0 {
            &mut self.pending[0]
        } else {
            &mut self.pending[1]
        }
    }

    fn start_pending(&mut self) {
        if self.pending_since.is_none() {
            self.pending_since = Some(Instant::now());
        }
    }

    fn flush_if_due(&mut self) -> Result<(), TrailError> {
        if self
            .pending_since
            .is_some_and(|t| t.elapsed() >= self.options.segment_interval)
        {
            self.flush_all()?;
        }
        Ok(())
    }

    /// Writes every non-empty stream's segment, in order of last timestamp (stream 0 first on
    /// a tie). Why all streams at once: it is the writer invariant (a "flush group") that lets
    /// a reader merge the two streams by time while holding only one segment per stream, and
    /// that makes `last_micros` non-decreasing in file order, so the index can be
    /// binary-searched.
    fn flush_all(&mut self) -> Result<(), TrailError> {
        let [a, b] = &self.pending;
        let order: [usize; 2] = if !b.is_empty() && (a.is_empty() || b.last < a.last) {
            [1, 0]
        } else {
            [0, 1]
        };
        for stream in order {
            if !self.pending_ref(stream).is_empty() {
                self.write_segment(stream)?;
            }
        }
        self.pending_since = None;
        self.sync_if_due()
    }

    fn write_segment(&mut self, stream: usize) -> Result<(), TrailError> {
        let seq = self.seq;
        let chain = self.chain;
        let segment_bytes = self.options.segment_bytes;
        let cipher = self.ciphers.get(stream).and_then(Option::as_ref);
        let Some(p) = self.pending.get_mut(stream) else {
            return Ok(());
        };
        let tag_len = if cipher.is_some() { TAG_LEN } else { 0 };
        let header = SegmentHeader {
            kind: if stream == 0 {
                SegmentKind::Stream0
            } else {
                SegmentKind::Stream1
            },
            flags: if cipher.is_some() { FLAG_ENCRYPTED } else { 0 },
            seq,
            first_micros: p.first,
            last_micros: p.last,
            payload_len: u32::try_from(p.payload_len() + tag_len).unwrap_or(u32::MAX),
            records: p.records,
        };
        let raw = header.encode();
        if let Some(dst) = p.buf.get_mut(..SEGMENT_HEADER_LEN) {
            dst.copy_from_slice(&raw);
        }
        if let Some(cipher) = cipher {
            let payload = p.buf.get_mut(SEGMENT_HEADER_LEN..).unwrap_or_default();
            let tag = cipher
                .seal(seq, &raw, payload)
                .map_err(|reason| TrailError::InvalidOptions(format!("segment {seq}: {reason}")))?;
            p.buf.extend_from_slice(&tag);
        }
        let payload = p.buf.get(SEGMENT_HEADER_LEN..).unwrap_or_default();
        let next = chain_next(&chain, &raw, &payload_hash(payload));
        p.buf.extend_from_slice(&next);
        let [first, second] = &self.pending;
        let written = self
            .file
            .append(if stream == 0 { &first.buf } else { &second.buf });
        let Some(p) = self.pending.get_mut(stream) else {
            return Ok(());
        };
        if let Err(e) = written {
            // Keep the records pending (a later flush may succeed once space is freed) and
            // cut the partial segment off, so the file still ends on a segment boundary.
            p.buf.truncate(p.buf.len().saturating_sub(CHAIN_LEN));
            if let Some(cipher) = self.ciphers.get(stream).and_then(Option::as_ref) {
                // The retry encrypts again (same seq, same header: the same ciphertext), so
                // the pending buffer must hold the records in clear again.
                let mut sealed = p.buf.split_off(SEGMENT_HEADER_LEN.min(p.buf.len()));
                if cipher.open(seq, &raw, &mut sealed).is_err() {
                    self.poisoned = true;
                }
                p.buf.extend_from_slice(&sealed);
            }
            if self.file.truncate(self.offset).is_err() {
                self.poisoned = true;
            }
            return Err(e.into());
        }
        let len = p.buf.len() as u64;
        p.buf.truncate(SEGMENT_HEADER_LEN);
        let entry = IndexEntry::for_segment(self.offset, &header).encode();
        let p = self.pending_mut(stream);
        if p.buf.capacity() > segment_bytes {
            p.buf.shrink_to(segment_bytes);
        }
        p.records = 0;
        self.offset += len;
        self.seq += 1;
        self.chain = next;
        self.unsynced = true;
        if let Err(e) = self.index.push(&entry) {
            // The segment is written but its index entry is lost: the index would be wrong.
            self.poisoned = true;
            return Err(e.into());
        }
        Ok(())
    }

    fn sync_if_due(&mut self) -> Result<(), TrailError> {
        if self.unsynced && self.last_sync.elapsed() >= self.options.sync_interval {
            self.sync_now()?;
        }
        Ok(())
    }

    fn sync_now(&mut self) -> Result<(), TrailError> {
        if let Err(e) = self.file.sync() {
            // After a failed fsync the kernel may have dropped the dirty pages: nothing
            // written since the last good sync can be trusted to be on disk.
            self.poisoned = true;
            return Err(e.into());
        }
        self.last_sync = Instant::now();
        self.unsynced = false;
        Ok(())
    }

    /// Writes the index (from the spool of entries, so that the writer's memory does not grow
    /// with the session's length) and the end-of-trail marker, and returns the trailer to
    /// write after them (after the final seal, if there is one).
    fn write_index_and_end(&mut self, end: u64) -> Result<Trailer, TrailError> {
        let index_offset = self.offset;
        let entries = self.seq;
        let payload_len = entries
            .checked_mul(INDEX_ENTRY_LEN as u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| TrailError::corrupt(index_offset, "too many segments for one index"))?;
        let header = SegmentHeader {
            kind: SegmentKind::Index,
            flags: 0,
            seq: self.seq,
            first_micros: end,
            last_micros: end,
            payload_len,
            records: 0,
        };
        // The index payload is hashed as it is produced: it is never held in memory whole.
        let mut hasher = blake3::Hasher::new();
        let header_bytes = header.encode();
        self.file.append(&header_bytes)?;
        // The spool holds exactly one entry per segment written, in order: check it anyway,
        // since a wrong index would make a correct trail fail verification.
        let mut next_seq = 0u64;
        self.index.for_each(|raw| {
            let entry = <&[u8; INDEX_ENTRY_LEN]>::try_from(raw)
                .map(IndexEntry::decode)
                .ok()
                .filter(|e| e.seq == next_seq)
                .ok_or_else(|| std::io::Error::other("the index spool is out of order"))?;
            next_seq = entry.seq + 1;
            hasher.update(raw);
            self.file.append(raw)
        })?;
        if next_seq != entries {
            return Err(TrailError::corrupt(
                index_offset,
                "the index spool does not match the segments written",
            ));
        }
        let index_chain = chain_next(&self.chain, &header_bytes, hasher.finalize().as_bytes());
        self.file.append(&index_chain)?;
        let end_offset = index_offset + header.total_len();

        let marker = EndMarker {
            end_micros: end,
            records: self.records,
            index_offset,
            index_entries: entries,
        };
        let end_header = SegmentHeader {
            kind: SegmentKind::End,
            flags: 0,
            seq: self.seq + 1,
            first_micros: end,
            last_micros: end,
            payload_len: crate::format::END_PAYLOAD_LEN as u32,
            records: 0,
        };
        let final_chain = chain_next(
            &index_chain,
            &end_header.encode(),
            &payload_hash(&marker.encode()),
        );
        self.file.append(&end_header.encode())?;
        self.file.append(&marker.encode())?;
        self.file.append(&final_chain)?;
        self.offset = end_offset + end_header.total_len();
        self.seq += 2;
        self.chain = final_chain;
        self.unsynced = true;
        Ok(Trailer {
            index_offset,
            end_offset,
            records: self.records,
            end_micros: end,
            final_chain,
        })
    }

    /// Writes a key or seal segment (no records) at `at`, chained like any other; `indexed`:
    /// whether it gets an index entry (not the final seal, which follows the index).
    fn write_evidence_segment(
        &mut self,
        kind: SegmentKind,
        payload: &[u8],
        at: u64,
        indexed: bool,
    ) -> Result<(), TrailError> {
        let header = SegmentHeader {
            kind,
            flags: 0,
            seq: self.seq,
            first_micros: at,
            last_micros: at,
            payload_len: u32::try_from(payload.len())
                .ok()
                .filter(|&n| n as usize <= MAX_EVIDENCE_PAYLOAD)
                .ok_or(TrailError::RecordTooLarge {
                    len: payload.len(),
                    max: MAX_EVIDENCE_PAYLOAD,
                })?,
            records: 0,
        };
        let raw = header.encode();
        let next = chain_next(&self.chain, &raw, &payload_hash(payload));
        let written = self
            .file
            .append(&raw)
            .and_then(|()| self.file.append(payload))
            .and_then(|()| self.file.append(&next));
        if let Err(e) = written {
            if self.file.truncate(self.offset).is_err() {
                self.poisoned = true;
            }
            return Err(e.into());
        }
        if indexed
            && let Err(e) = self
                .index
                .push(&IndexEntry::for_segment(self.offset, &header).encode())
        {
            self.poisoned = true;
            return Err(e.into());
        }
        self.offset += header.total_len();
        self.seq += 1;
        self.chain = next;
        self.unsynced = true;
        Ok(())
    }
}

impl Drop for TrailWriter {
    /// A writer dropped without [`finish`](TrailWriter::finish) (the session task panicked or
    /// was cancelled) still writes what it holds: the trail then reads as "incomplete" but
    /// loses nothing that was appended.
    fn drop(&mut self) {
        if !self.finished && !self.poisoned {
            let _ = self.flush_all();
            let _ = self.file.sync();
        }
    }
}

fn sync_parent_dir(path: &Path) -> Result<(), TrailError> {
    File::open(parent_dir(path))?.sync_all()?;
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
