//! Reading a trail: open, iterate records in time order, seek by time.
//!
//! Memory stays bounded whatever the file: the reader holds at most one segment per stream
//! (each at most 16 MiB, 64 KiB as written by default) and never loads the index (it
//! binary-searches it on disk). Every segment it returns records from has been checked
//! against the chain value stored before it, so a flipped bit is reported, not returned.
//! Nothing in here panics on any input.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use bytes::Bytes;
use serde_json::Value;

use zeroize::Zeroizing;

use crate::crypt::SegmentCipher;
use crate::error::TrailError;
use crate::format::{
    CHAIN_LEN, END_PAYLOAD_LEN, FILE_HEADER_FIXED_LEN, FLAG_ENCRYPTED, FORMAT_VERSION_1,
    FORMAT_VERSION_2, INDEX_ENTRY_LEN, IndexEntry, KeyPayload, MAX_HEADER_JSON, SEGMENT_HEADER_LEN,
    SEGMENT_OVERHEAD, SegmentHeader, SegmentKind, TRAILER_LEN, Trailer, chain_next,
    parse_file_header_fixed, payload_hash,
};
use crate::record::{self, Direction, Record};

/// Anything a trail can be read from.
pub(crate) trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// What is at a file offset where a segment should start.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A segment whose header decoded and that lies wholly inside the file.
    Segment {
        header: SegmentHeader,
        raw: [u8; SEGMENT_HEADER_LEN],
    },
    /// The file ends exactly here.
    Eof,
    /// The file ends inside a segment (or is zero-filled from here, as after a crash).
    Truncated(String),
    /// Not a valid segment header.
    Corrupt(String),
}

/// A record segment's records, decoded one at a time with every per-record check of the spec.
#[derive(Debug)]
pub(crate) struct SegmentRecords {
    payload: Bytes,
    pos: usize,
    header: SegmentHeader,
    seen: u32,
    last_at: u64,
    done: bool,
}

impl SegmentRecords {
    pub(crate) fn new(header: SegmentHeader, payload: Bytes) -> SegmentRecords {
        SegmentRecords {
            payload,
            pos: 0,
            header,
            seen: 0,
            last_at: header.first_micros,
            done: false,
        }
    }

    /// The next record, `None` at the end, or the reason the segment is inconsistent.
    pub(crate) fn next_record(&mut self) -> Option<Result<(u64, Record), String>> {
        if self.done {
            return None;
        }
        let result = self.step();
        if !matches!(result, Some(Ok(_))) {
            self.done = true;
        }
        result
    }

    fn step(&mut self) -> Option<Result<(u64, Record), String>> {
        let h = &self.header;
        if self.pos >= self.payload.len() {
            if self.seen != h.records {
                return Some(Err(format!(
                    "segment holds {} records but its header says {}",
                    self.seen, h.records
                )));
            }
            if self.seen > 0 && self.last_at != h.last_micros {
                return Some(Err(
                    "last record's timestamp differs from the segment's last timestamp".into(),
                ));
            }
            return None;
        }
        let (at, rec) = match record::decode(&self.payload, &mut self.pos, h.first_micros) {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        if self.seen >= h.records {
            return Some(Err("segment holds more records than its header says".into()));
        }
        if self.seen == 0 && at != h.first_micros {
            return Some(Err(
                "first record's timestamp differs from the segment's first timestamp".into(),
            ));
        }
        if at < self.last_at || at > h.last_micros {
            return Some(Err(
                "record timestamp out of order or outside its segment".into()
            ));
        }
        let c2s = matches!(
            rec,
            Record::Data {
                direction: Direction::ClientToServer,
                ..
            }
        );
        if c2s != (h.kind == SegmentKind::Stream1) {
            return Some(Err("record is in the wrong stream's segment".into()));
        }
        self.seen += 1;
        self.last_at = at;
        Some(Ok((at, rec)))
    }
}

/// One stream's current segment while iterating.
#[derive(Debug)]
struct StreamBuf {
    records: SegmentRecords,
    head: Option<(u64, Record)>,
    /// Load order, to break timestamp ties in favour of the earlier segment in the file.
    order: u64,
    offset: u64,
}

/// Iteration state (reset by [`TrailReader::seek_to`]).
#[derive(Debug, Default)]
struct Cursor {
    /// Offset of the next segment to load.
    pos: u64,
    /// Stored chain value of the segment before `pos`, once known.
    prev_chain: Option<[u8; 32]>,
    next_seq: Option<u64>,
    streams: [Option<StreamBuf>; 2],
    /// The slot at `pos`, read ahead to decide whether to merge.
    peeked: Option<Slot>,
    /// No more record segments to load.
    at_end: bool,
    /// An error met while loading, reported once the buffered records are out.
    pending_error: Option<TrailError>,
    failed: bool,
    skip_before: u64,
    loads: u64,
}

/// A key segment found at the start of a version-2 trail: the data key of record stream
/// `stream`, wrapped to certificates (the evidence layer unwraps it with a private key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEnvelope {
    pub stream: u8,
    pub envelope: Vec<u8>,
}

/// Reads a trail file. See [`TrailReader::records`] for the ordering guarantee.
pub struct TrailReader {
    pub(crate) version: u16,
    keys: Vec<KeyEnvelope>,
    /// Step over encrypted segments whose key was not supplied (instead of failing).
    skip_unreadable: bool,
    pub(crate) ciphers: [Option<SegmentCipher>; 2],
    src: BufReader<Box<dyn ReadSeek>>,
    /// Where `src` is positioned (`None` after an error: seek absolutely next time).
    src_pos: Option<u64>,
    pub(crate) file_len: u64,
    header: Value,
    pub(crate) header_len: u64,
    pub(crate) header_chain: [u8; 32],
    pub(crate) trailer: Option<Trailer>,
    cursor: Cursor,
}

impl std::fmt::Debug for TrailReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrailReader")
            .field("file_len", &self.file_len)
            .field("header", &self.header)
            .field("trailer", &self.trailer)
            .finish_non_exhaustive()
    }
}

impl TrailReader {
    /// Opens the trail at `path` and reads its header (and trailer, if there is one).
    pub fn open(path: &Path) -> Result<TrailReader, TrailError> {
        TrailReader::from_reader(File::open(path)?)
    }

    /// Reads a trail from any seekable source (a file, a `Cursor<Vec<u8>>`, ...).
    pub fn from_reader(
        source: impl Read + Seek + Send + 'static,
    ) -> Result<TrailReader, TrailError> {
        let boxed: Box<dyn ReadSeek> = Box::new(source);
        let mut src = BufReader::with_capacity(64 << 10, boxed);
        let file_len = src.seek(SeekFrom::End(0))?;
        src.seek(SeekFrom::Start(0))?;
        let mut fixed = [0u8; FILE_HEADER_FIXED_LEN];
        if file_len < FILE_HEADER_FIXED_LEN as u64 {
            return Err(TrailError::corrupt(0, "file too short for a trail header"));
        }
        src.read_exact(&mut fixed)?;
        let fh = parse_file_header_fixed(&fixed).map_err(|r| TrailError::corrupt(0, r))?;
        if !(FORMAT_VERSION_1..=FORMAT_VERSION_2).contains(&fh.version) {
            return Err(TrailError::UnsupportedVersion(fh.version));
        }
        if fh.flags != 0 {
            return Err(TrailError::corrupt(8, "file header flags are not zero"));
        }
        let json_len = fh.json_len as usize;
        let header_len = FILE_HEADER_FIXED_LEN as u64 + u64::from(fh.json_len);
        if json_len > MAX_HEADER_JSON || header_len > file_len {
            return Err(TrailError::corrupt(12, "header length is impossible"));
        }
        let mut json = vec![0u8; json_len];
        src.read_exact(&mut json)?;
        let header: Value = serde_json::from_slice(&json).map_err(|e| {
            TrailError::corrupt(FILE_HEADER_FIXED_LEN as u64, format!("header JSON: {e}"))
        })?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&fixed);
        hasher.update(&json);
        let chain = *hasher.finalize().as_bytes();
        let mut reader = TrailReader {
            version: fh.version,
            keys: Vec::new(),
            skip_unreadable: false,
            ciphers: [None, None],
            src,
            src_pos: Some(header_len),
            file_len,
            header,
            header_len,
            header_chain: chain,
            trailer: None,
            cursor: Cursor::default(),
        };
        reader.trailer = reader.find_trailer()?;
        reader.keys = reader.read_key_segments()?;
        reader.rewind();
        Ok(reader)
    }

    /// The file's format version (1 or 2).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The key segments at the start of the file (version 2 with encrypted streams). Their
    /// chain values are checked here only locally; [`verify`](Self::verify) checks them fully.
    pub fn key_envelopes(&self) -> &[KeyEnvelope] {
        &self.keys
    }

    /// Whether record stream `stream` is encrypted (has a key segment).
    pub fn is_encrypted(&self, stream: u8) -> bool {
        self.keys.iter().any(|k| k.stream == stream)
    }

    /// Supplies the data key of an encrypted stream (unwrapped from its envelope), so that
    /// [`records`](Self::records) can decrypt it. A wrong key is only noticed when a segment
    /// fails to decrypt.
    pub fn set_stream_key(
        &mut self,
        stream: u8,
        data_key: &Zeroizing<[u8; 32]>,
    ) -> Result<(), TrailError> {
        let cipher = SegmentCipher::new(data_key)
            .ok_or_else(|| TrailError::InvalidOptions("not an AES-256 key".into()))?;
        match self.ciphers.get_mut(usize::from(stream)) {
            Some(slot) => {
                *slot = Some(cipher);
                Ok(())
            }
            None => Err(TrailError::InvalidOptions(format!(
                "no record stream {stream}"
            ))),
        }
    }

    /// From now on, [`records`](Self::records) steps over the segments of encrypted streams
    /// whose key was not supplied, rather than failing: an auditor who may read the output
    /// but not the keystrokes (different certificates for upstream) can still replay it.
    pub fn skip_unreadable_streams(&mut self) {
        self.skip_unreadable = true;
    }

    /// The key segments that directly follow the file header, each checked against its chain.
    fn read_key_segments(&mut self) -> Result<Vec<KeyEnvelope>, TrailError> {
        let mut keys = Vec::new();
        if self.version < FORMAT_VERSION_2 {
            return Ok(keys);
        }
        let mut pos = self.header_len;
        let mut chain = self.header_chain;
        while let Slot::Segment { header, raw } = self.slot_at(pos)? {
            if header.kind != SegmentKind::Key {
                break;
            }
            let payload = self.read_payload(pos, &header)?;
            let stored = self.read_stored_chain(pos, &header)?;
            if chain_next(&chain, &raw, &payload_hash(&payload)) != stored {
                return Err(TrailError::corrupt(pos, "chain mismatch in a key segment"));
            }
            let key = KeyPayload::decode(&payload).map_err(|r| TrailError::corrupt(pos, r))?;
            keys.push(KeyEnvelope {
                stream: key.stream,
                envelope: key.envelope,
            });
            chain = stored;
            pos += header.total_len();
        }
        Ok(keys)
    }

    /// The JSON document the writer was given (session metadata).
    pub fn header(&self) -> &Value {
        &self.header
    }

    /// Whether the file ends with a trailer, i.e. claims to be complete. Only
    /// [`verify`](Self::verify) establishes that the claim is true.
    pub fn has_trailer(&self) -> bool {
        self.trailer.is_some()
    }

    /// The session's end timestamp from the trailer (`None` for an incomplete file).
    pub fn end_micros(&self) -> Option<u64> {
        self.trailer.map(|t| t.end_micros)
    }

    /// Size of the file in bytes, as seen at open.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Records from the current position (the start after [`open`](Self::open), or the target
    /// of [`seek_to`](Self::seek_to)) to the end of the records.
    ///
    /// **Ordering:** records are returned by non-decreasing timestamp; records with equal
    /// timestamps keep file order (stream 0 and stream 1 merged stably, the earlier segment
    /// first). Within one stream this is exactly the order the writer appended them.
    /// Holds for files written by [`TrailWriter`](crate::TrailWriter) (see the "flush group"
    /// invariant in the spec); for other writers the order degrades to a bounded merge.
    ///
    /// The iterator ends without error at the end of the records: the index of a complete
    /// file, or the end of an incomplete one (a crash; see [`verify`](Self::verify) to tell
    /// which). It yields one `Err` and then ends if a segment fails its checks (bad magic,
    /// sequence gap, chain mismatch, undecodable record).
    pub fn records(&mut self) -> impl Iterator<Item = Result<(u64, Record), TrailError>> + '_ {
        RecordIter { reader: self }
    }

    /// Positions the reader so that the next [`records`](Self::records) starts at the first
    /// record at or after `at_micros`. Uses the index of a complete file (a binary search on
    /// disk: O(log n) reads) and otherwise scans segment headers from the start (O(n) reads,
    /// no payloads).
    pub fn seek_to(&mut self, at_micros: u64) -> Result<(), TrailError> {
        let pos = match self.index_lookup(at_micros)? {
            Some(pos) => pos,
            None => self.scan_for(at_micros)?,
        };
        self.cursor = Cursor {
            pos,
            skip_before: at_micros,
            ..Cursor::default()
        };
        Ok(())
    }

    /// Back to the first record.
    pub(crate) fn rewind(&mut self) {
        self.cursor = Cursor {
            pos: self.header_len,
            prev_chain: Some(self.header_chain),
            next_seq: Some(0),
            ..Cursor::default()
        };
    }

    fn find_trailer(&mut self) -> Result<Option<Trailer>, TrailError> {
        let min = self.header_len + (2 * SEGMENT_OVERHEAD + END_PAYLOAD_LEN + TRAILER_LEN) as u64;
        if self.file_len < min {
            return Ok(None);
        }
        let at = self.file_len - TRAILER_LEN as u64;
        let mut raw = [0u8; TRAILER_LEN];
        self.read_at(at, &mut raw)?;
        let Some(t) = Trailer::decode(&raw) else {
            return Ok(None);
        };
        // The layout must add up exactly, so that a crash tail that happens to contain the
        // magic is not taken for a trailer.
        let end_len = (SEGMENT_OVERHEAD + END_PAYLOAD_LEN) as u64;
        let after_end = t.end_offset.checked_add(end_len);
        // Version 2 may put the final seal segment between the end marker and the trailer.
        let ends_right = if self.version >= FORMAT_VERSION_2 {
            after_end.is_some_and(|a| a == at || a.saturating_add(SEGMENT_OVERHEAD as u64) <= at)
        } else {
            after_end == Some(at)
        };
        let plausible = t.index_offset >= self.header_len
            && t.index_offset.checked_add(SEGMENT_OVERHEAD as u64) <= Some(t.end_offset)
            && ends_right;
        Ok(plausible.then_some(t))
    }

    /// Reads exactly `buf.len()` bytes at `offset` (moving within the buffer when possible).
    pub(crate) fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), TrailError> {
        if self.src_pos != Some(offset) {
            let relative = self
                .src_pos
                .and_then(|cur| i64::try_from(i128::from(offset) - i128::from(cur)).ok());
            // Until the move succeeds the position is unknown.
            self.src_pos = None;
            match relative {
                Some(delta) => self.src.seek_relative(delta)?,
                None => {
                    self.src.seek(SeekFrom::Start(offset))?;
                }
            }
        }
        self.src_pos = None;
        self.src.read_exact(buf)?;
        self.src_pos = Some(offset.saturating_add(buf.len() as u64));
        Ok(())
    }

    /// What is at `offset`, where a segment should start.
    pub(crate) fn slot_at(&mut self, offset: u64) -> Result<Slot, TrailError> {
        if offset == self.file_len {
            return Ok(Slot::Eof);
        }
        let remaining = self.file_len.saturating_sub(offset);
        if remaining < SEGMENT_HEADER_LEN as u64 {
            if self.tail_is_zero(offset)? {
                return Ok(Slot::Truncated(format!(
                    "the file ends with {remaining} zero bytes at offset {offset} (typical of a crash)"
                )));
            }
            return Ok(Slot::Truncated(format!(
                "the file ends inside a segment header at offset {offset} ({remaining} bytes)"
            )));
        }
        let mut raw = [0u8; SEGMENT_HEADER_LEN];
        self.read_at(offset, &mut raw)?;
        let header = match SegmentHeader::decode(&raw, self.version) {
            Ok(h) => h,
            Err(reason) => {
                if raw.iter().all(|&b| b == 0) && self.tail_is_zero(offset)? {
                    return Ok(Slot::Truncated(format!(
                        "the file is zero-filled from offset {offset} to its end (typical of a crash)"
                    )));
                }
                return Ok(Slot::Corrupt(reason));
            }
        };
        if header.total_len() > remaining {
            return Ok(Slot::Truncated(format!(
                "the file ends inside segment {} at offset {offset} ({remaining} of {} bytes present)",
                header.seq,
                header.total_len()
            )));
        }
        Ok(Slot::Segment { header, raw })
    }

    fn tail_is_zero(&mut self, offset: u64) -> Result<bool, TrailError> {
        let mut at = offset;
        let mut buf = vec![0u8; 64 << 10];
        while at < self.file_len {
            let n = usize::try_from(self.file_len - at)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let chunk = buf.get_mut(..n).unwrap_or_default();
            self.read_at(at, chunk)?;
            if chunk.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }

    /// Reads a segment's payload (callers checked it lies inside the file and is bounded).
    pub(crate) fn read_payload(
        &mut self,
        offset: u64,
        h: &SegmentHeader,
    ) -> Result<Bytes, TrailError> {
        let mut payload = vec![0u8; h.payload_len as usize];
        self.read_at(offset + SEGMENT_HEADER_LEN as u64, &mut payload)?;
        Ok(Bytes::from(payload))
    }

    /// Reads the chain value stored at the end of the segment at `offset`.
    pub(crate) fn read_stored_chain(
        &mut self,
        offset: u64,
        h: &SegmentHeader,
    ) -> Result<[u8; 32], TrailError> {
        let mut chain = [0u8; CHAIN_LEN];
        let at = offset + h.total_len() - CHAIN_LEN as u64;
        self.read_at(at, &mut chain)?;
        Ok(chain)
    }

    /// The chain value stored just before the segment at `offset` (the header's hash for the
    /// first segment).
    fn chain_before(&mut self, offset: u64) -> Result<[u8; 32], TrailError> {
        if offset <= self.header_len {
            return Ok(self.header_chain);
        }
        let mut chain = [0u8; CHAIN_LEN];
        self.read_at(offset - CHAIN_LEN as u64, &mut chain)?;
        Ok(chain)
    }

    fn problem_at_end(&self, offset: u64, reason: String) -> Option<TrailError> {
        // A file that claims to be complete has no business ending early.
        self.trailer.is_some().then(|| {
            TrailError::corrupt(
                offset,
                format!("{reason}, although the file ends with a trailer"),
            )
        })
    }

    /// Binary search of the index: the offset of the first segment whose last timestamp is at
    /// or after `at` (`None`: no usable index, scan instead).
    fn index_lookup(&mut self, at: u64) -> Result<Option<u64>, TrailError> {
        let Some(trailer) = self.trailer else {
            return Ok(None);
        };
        let Slot::Segment { header, .. } = self.slot_at(trailer.index_offset)? else {
            return Ok(None);
        };
        if header.kind != SegmentKind::Index {
            return Ok(None);
        }
        let entries = u64::from(header.payload_len) / INDEX_ENTRY_LEN as u64;
        let base = trailer.index_offset + SEGMENT_HEADER_LEN as u64;
        let (mut lo, mut hi) = (0u64, entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let mut raw = [0u8; INDEX_ENTRY_LEN];
            self.read_at(base + mid * INDEX_ENTRY_LEN as u64, &mut raw)?;
            let e = IndexEntry::decode(&raw);
            if e.last_micros >= at {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        if lo == entries {
            return Ok(Some(trailer.index_offset));
        }
        let mut raw = [0u8; INDEX_ENTRY_LEN];
        self.read_at(base + lo * INDEX_ENTRY_LEN as u64, &mut raw)?;
        let e = IndexEntry::decode(&raw);
        let sane = e.offset >= self.header_len && e.offset < trailer.index_offset && e.seq == lo;
        Ok(sane.then_some(e.offset))
    }

    /// Linear scan of segment headers for the first record segment ending at or after `at`.
    fn scan_for(&mut self, at: u64) -> Result<u64, TrailError> {
        let mut pos = self.header_len;
        loop {
            match self.slot_at(pos)? {
                Slot::Segment { header, .. } if header.kind.is_records() => {
                    if header.last_micros >= at {
                        return Ok(pos);
                    }
                    pos += header.total_len();
                }
                // Keys and seals hold no records; step over them.
                Slot::Segment { header, .. }
                    if matches!(header.kind, SegmentKind::Key | SegmentKind::Seal) =>
                {
                    pos += header.total_len();
                }
                // Index, end marker, end of file, truncation or corruption: records() will
                // report what is there.
                _ => return Ok(pos),
            }
        }
    }

    /// Reads the slot at the cursor (once) and returns a reference to it.
    fn peek(&mut self) -> Result<&Slot, TrailError> {
        if self.cursor.peeked.is_none() {
            let slot = self.slot_at(self.cursor.pos)?;
            self.cursor.peeked = Some(slot);
        }
        match &self.cursor.peeked {
            Some(slot) => Ok(slot),
            None => Err(TrailError::corrupt(
                self.cursor.pos,
                "internal: nothing peeked",
            )),
        }
    }

    /// The stream of the next record segment, if the next slot is one.
    fn peek_stream(&mut self) -> Result<Option<usize>, TrailError> {
        Ok(match self.peek()? {
            Slot::Segment { header, .. } => header.kind.stream(),
            _ => None,
        })
    }

    /// Loads the next segment into its stream buffer. Sets `at_end` (and maybe a pending
    /// error) when there is no further record segment.
    fn load_next(&mut self) -> Result<(), TrailError> {
        let pos = self.cursor.pos;
        self.peek()?;
        let slot = self.cursor.peeked.take();
        let (header, raw) = match slot {
            Some(Slot::Segment { header, raw }) => (header, raw),
            Some(Slot::Eof) | None => {
                self.cursor.at_end = true;
                self.cursor.pending_error =
                    self.problem_at_end(pos, "the file ends without an index".into());
                return Ok(());
            }
            Some(Slot::Truncated(reason)) => {
                self.cursor.at_end = true;
                self.cursor.pending_error = self.problem_at_end(pos, reason);
                return Ok(());
            }
            Some(Slot::Corrupt(reason)) => {
                self.cursor.at_end = true;
                self.cursor.pending_error = Some(TrailError::corrupt(pos, reason));
                return Ok(());
            }
        };
        let stream = header.kind.stream();
        if stream.is_none() && !matches!(header.kind, SegmentKind::Key | SegmentKind::Seal) {
            // The index (or end marker): the records are over.
            self.cursor.at_end = true;
            return Ok(());
        }
        if let Some(expected) = self.cursor.next_seq
            && header.seq != expected
        {
            self.cursor.at_end = true;
            self.cursor.pending_error = Some(TrailError::corrupt(
                pos,
                format!(
                    "segment sequence number {} where {expected} was expected \
                     (segments missing, duplicated, reordered or spliced)",
                    header.seq
                ),
            ));
            return Ok(());
        }
        let prev = match self.cursor.prev_chain {
            Some(c) => c,
            None => self.chain_before(pos)?,
        };
        let payload = self.read_payload(pos, &header)?;
        let stored = self.read_stored_chain(pos, &header)?;
        if chain_next(&prev, &raw, &payload_hash(&payload)) != stored {
            self.cursor.at_end = true;
            self.cursor.pending_error = Some(TrailError::corrupt(
                pos,
                format!(
                    "chain mismatch in segment {}: its bytes or the chain value before it were altered",
                    header.seq
                ),
            ));
            return Ok(());
        }
        self.cursor.prev_chain = Some(stored);
        self.cursor.next_seq = Some(header.seq.saturating_add(1));
        self.cursor.pos = pos + header.total_len();
        let Some(stream) = stream else {
            // A key or seal segment: chained and checked, nothing to replay.
            return Ok(());
        };
        if self.skip_unreadable
            && header.flags & FLAG_ENCRYPTED != 0
            && self.ciphers.get(stream).is_none_or(Option::is_none)
        {
            return Ok(());
        }
        let payload = match self.decrypt(pos, &header, &raw, payload) {
            Ok(p) => p,
            Err(e) => {
                self.cursor.at_end = true;
                self.cursor.pending_error = Some(e);
                return Ok(());
            }
        };
        self.cursor.loads += 1;
        let buf = StreamBuf {
            records: SegmentRecords::new(header, payload),
            head: None,
            order: self.cursor.loads,
            offset: pos,
        };
        if let Some(slot) = self.cursor.streams.get_mut(stream) {
            *slot = Some(buf);
        }
        Ok(())
    }

    /// The plaintext payload of a record segment: as stored, or decrypted with the stream's key.
    pub(crate) fn decrypt(
        &self,
        pos: u64,
        header: &SegmentHeader,
        raw: &[u8; SEGMENT_HEADER_LEN],
        payload: Bytes,
    ) -> Result<Bytes, TrailError> {
        if header.flags & FLAG_ENCRYPTED == 0 {
            return Ok(payload);
        }
        let stream = header.kind.stream().unwrap_or(0);
        let Some(cipher) = self.ciphers.get(stream).and_then(Option::as_ref) else {
            return Err(TrailError::Encrypted(stream as u8));
        };
        let mut plain = payload.to_vec();
        cipher.open(header.seq, raw, &mut plain).map_err(|reason| {
            TrailError::corrupt(pos, format!("segment {}: {reason}", header.seq))
        })?;
        Ok(Bytes::from(plain))
    }

    /// Makes sure the stream's head record is decoded; drops an exhausted buffer. Returns the
    /// head's timestamp and load order.
    fn head(&mut self, stream: usize) -> Result<Option<(u64, u64)>, TrailError> {
        let Some(slot) = self.cursor.streams.get_mut(stream) else {
            return Ok(None);
        };
        let Some(buf) = slot else {
            return Ok(None);
        };
        if buf.head.is_none() {
            match buf.records.next_record() {
                Some(Ok(r)) => buf.head = Some(r),
                Some(Err(reason)) => {
                    let offset = buf.offset;
                    *slot = None;
                    return Err(TrailError::corrupt(offset, reason));
                }
                None => {
                    *slot = None;
                    return Ok(None);
                }
            }
        }
        Ok(buf.head.as_ref().map(|(at, _)| (*at, buf.order)))
    }

    fn take_head(&mut self, stream: usize) -> Option<(u64, Record)> {
        self.cursor
            .streams
            .get_mut(stream)
            .and_then(|slot| slot.as_mut())
            .and_then(|buf| buf.head.take())
    }

    fn next_record(&mut self) -> Option<Result<(u64, Record), TrailError>> {
        if self.cursor.failed {
            return None;
        }
        match self.next_record_inner() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                self.cursor.failed = true;
                Some(Err(e))
            }
        }
    }

    fn next_record_inner(&mut self) -> Result<Option<(u64, Record)>, TrailError> {
        loop {
            let a = self.head(0)?;
            let b = self.head(1)?;
            let pick = match (a, b) {
                (Some(x), Some(y)) => Some(if y < x { 1 } else { 0 }),
                (Some(_), None) | (None, Some(_)) => {
                    let (have, empty) = if a.is_some() { (0, 1) } else { (1, 0) };
                    if !self.cursor.at_end && self.peek_stream()? == Some(empty) {
                        // The other stream's next segment may hold earlier records: merge.
                        self.load_next()?;
                        continue;
                    }
                    Some(have)
                }
                (None, None) => None,
            };
            match pick {
                Some(stream) => {
                    if let Some((at, rec)) = self.take_head(stream)
                        && at >= self.cursor.skip_before
                    {
                        return Ok(Some((at, rec)));
                    }
                }
                None => {
                    if self.cursor.at_end {
                        return match self.cursor.pending_error.take() {
                            Some(e) => Err(e),
                            None => Ok(None),
                        };
                    }
                    self.load_next()?;
                }
            }
        }
    }
}

/// The iterator returned by [`TrailReader::records`].
struct RecordIter<'a> {
    reader: &'a mut TrailReader,
}

impl Iterator for RecordIter<'_> {
    type Item = Result<(u64, Record), TrailError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next_record()
    }
}

// Keep the constant referenced where the spec says the reader relies on it.
const _: () = assert!(INDEX_ENTRY_LEN == 40 && SEGMENT_OVERHEAD == 72);
