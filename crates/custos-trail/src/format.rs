//! The fixed-layout parts of a trail file: file header, segment header, index entry, end marker,
//! trailer, and the hash chain that ties them together. `docs/trail-format.md` is the normative
//! description; every constant here is named there.
//!
//! Why fixed layouts (little-endian) for these parts and varints only inside payloads: a reader
//! must be able to skip from segment to segment and binary-search the index with plain seeks,
//! without decoding anything it does not need.

/// First 8 bytes of every trail file.
pub const FILE_MAGIC: [u8; 8] = *b"CSTRAIL1";
/// The format version this crate writes and the only one it reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the file header before the JSON document.
pub const FILE_HEADER_FIXED_LEN: usize = 16;
/// Largest JSON header a reader accepts (bounds memory on hostile input).
pub const MAX_HEADER_JSON: usize = 1 << 20;

/// First 4 bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 4] = *b"CSEG";
/// Bytes of a segment header.
pub const SEGMENT_HEADER_LEN: usize = 40;
/// Bytes of a chain value (BLAKE3 output).
pub const CHAIN_LEN: usize = 32;
/// Bytes a segment adds on top of its payload.
pub const SEGMENT_OVERHEAD: usize = SEGMENT_HEADER_LEN + CHAIN_LEN;
/// Largest payload of a record segment a reader accepts (bounds reader memory).
pub const MAX_RECORD_PAYLOAD: usize = 16 << 20;

/// Bytes of one index entry.
pub const INDEX_ENTRY_LEN: usize = 40;
/// Bytes of the end-of-trail marker's payload.
pub const END_PAYLOAD_LEN: usize = 32;

/// First 8 bytes of the trailer.
pub const TRAILER_MAGIC: [u8; 8] = *b"CSTREND1";
/// Bytes of the trailer, always the last bytes of a complete file.
pub const TRAILER_LEN: usize = 72;

/// Segment flag reserved for per-segment encryption (format version 2; must be 0 in version 1).
pub const FLAG_ENCRYPTED: u8 = 0x01;

/// What a segment carries. The numeric values are the on-disk `kind` byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Records of stream 0: everything except client-to-server data.
    Stream0 = 0,
    /// Records of stream 1: client-to-server data only (keystrokes, typed passwords), kept apart
    /// so that a later format version can encrypt it to different certificates.
    Stream1 = 1,
    /// The index of all earlier segments (written once, on a clean finish).
    Index = 2,
    /// The end-of-trail marker (written once, right after the index).
    End = 3,
}

impl SegmentKind {
    /// Parses the on-disk kind byte.
    pub fn from_byte(byte: u8) -> Option<SegmentKind> {
        match byte {
            0 => Some(SegmentKind::Stream0),
            1 => Some(SegmentKind::Stream1),
            2 => Some(SegmentKind::Index),
            3 => Some(SegmentKind::End),
            _ => None,
        }
    }

    /// Whether segments of this kind carry records.
    pub fn is_records(self) -> bool {
        matches!(self, SegmentKind::Stream0 | SegmentKind::Stream1)
    }

    /// The record stream (0 or 1) of a record segment.
    pub fn stream(self) -> Option<usize> {
        match self {
            SegmentKind::Stream0 => Some(0),
            SegmentKind::Stream1 => Some(1),
            _ => None,
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

fn bytes32_at(b: &[u8], at: usize) -> [u8; 32] {
    let mut a = [0u8; 32];
    if let Some(s) = b.get(at..at + 32) {
        a.copy_from_slice(s);
    }
    a
}

/// Encodes the file header: magic, version, flags (0), JSON length, JSON.
pub fn encode_file_header(json: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(json.len()).ok()?;
    if json.len() > MAX_HEADER_JSON {
        return None;
    }
    let mut out = Vec::with_capacity(FILE_HEADER_FIXED_LEN + json.len());
    out.extend_from_slice(&FILE_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(json);
    Some(out)
}

/// The fixed part of the file header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeaderFixed {
    pub version: u16,
    pub flags: u16,
    pub json_len: u32,
}

/// Parses the 16 fixed bytes of the file header (magic already included in `b`).
pub fn parse_file_header_fixed(b: &[u8; FILE_HEADER_FIXED_LEN]) -> Result<FileHeaderFixed, String> {
    if b.get(..8) != Some(&FILE_MAGIC[..]) {
        return Err("bad file magic: not a Custos trail".into());
    }
    Ok(FileHeaderFixed {
        version: u16_at(b, 8),
        flags: u16_at(b, 10),
        json_len: u32_at(b, 12),
    })
}

/// A segment header (the 40 bytes before the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub kind: SegmentKind,
    pub flags: u8,
    pub seq: u64,
    pub first_micros: u64,
    pub last_micros: u64,
    pub payload_len: u32,
    pub records: u32,
}

impl SegmentHeader {
    /// The 40 on-disk bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        let fields: [(usize, &[u8]); 8] = [
            (0, &SEGMENT_MAGIC),
            (4, &[self.kind as u8]),
            (5, &[self.flags]),
            (6, &0u16.to_le_bytes()),
            (8, &self.seq.to_le_bytes()),
            (16, &self.first_micros.to_le_bytes()),
            (24, &self.last_micros.to_le_bytes()),
            (32, &self.payload_len.to_le_bytes()),
        ];
        for (at, bytes) in fields {
            if let Some(dst) = b.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
        if let Some(dst) = b.get_mut(36..40) {
            dst.copy_from_slice(&self.records.to_le_bytes());
        }
        b
    }

    /// Parses and checks the 40 on-disk bytes. The error is a reason for [`TrailError::Corrupt`].
    ///
    /// [`TrailError::Corrupt`]: crate::TrailError::Corrupt
    pub fn decode(b: &[u8; SEGMENT_HEADER_LEN]) -> Result<SegmentHeader, String> {
        if b.get(..4) != Some(&SEGMENT_MAGIC[..]) {
            return Err("bad segment magic".into());
        }
        let kind_byte = b.get(4).copied().unwrap_or(0xff);
        let kind = SegmentKind::from_byte(kind_byte)
            .ok_or_else(|| format!("unknown segment kind {kind_byte}"))?;
        let flags = b.get(5).copied().unwrap_or(0xff);
        if flags != 0 {
            return Err(format!(
                "segment flags {flags:#04x} are not supported by format version 1 \
                 (encryption and other flags are future work)"
            ));
        }
        if u16_at(b, 6) != 0 {
            return Err("reserved segment header bytes are not zero".into());
        }
        let h = SegmentHeader {
            kind,
            flags,
            seq: u64_at(b, 8),
            first_micros: u64_at(b, 16),
            last_micros: u64_at(b, 24),
            payload_len: u32_at(b, 32),
            records: u32_at(b, 36),
        };
        if h.first_micros > h.last_micros {
            return Err("segment first timestamp is after its last timestamp".into());
        }
        let max = match kind {
            SegmentKind::Stream0 | SegmentKind::Stream1 => MAX_RECORD_PAYLOAD as u64,
            SegmentKind::Index => u64::from(u32::MAX),
            SegmentKind::End => END_PAYLOAD_LEN as u64,
        };
        if u64::from(h.payload_len) > max {
            return Err(format!(
                "segment payload length {} exceeds the limit {max} for its kind",
                h.payload_len
            ));
        }
        match kind {
            SegmentKind::Index if !(h.payload_len as usize).is_multiple_of(INDEX_ENTRY_LEN) => {
                return Err("index payload is not a whole number of entries".into());
            }
            SegmentKind::End if h.payload_len as usize != END_PAYLOAD_LEN => {
                return Err("end-of-trail payload has the wrong length".into());
            }
            SegmentKind::Index | SegmentKind::End if h.records != 0 => {
                return Err("index or end segment claims to hold records".into());
            }
            _ => {}
        }
        Ok(h)
    }

    /// Total bytes of this segment on disk: header, payload, chain value.
    pub fn total_len(&self) -> u64 {
        SEGMENT_OVERHEAD as u64 + u64::from(self.payload_len)
    }
}

/// `chain_{-1}`: BLAKE3 of the complete file header bytes.
pub fn header_chain(file_header: &[u8]) -> [u8; 32] {
    *blake3::hash(file_header).as_bytes()
}

/// `chain_n = BLAKE3(chain_{n-1} ‖ segment header (40 bytes) ‖ BLAKE3(payload))`.
///
/// Why the payload is hashed on its own rather than appended to the chain input: BLAKE3 hashes
/// 1 KiB chunks in parallel (SIMD) only when a large input starts on a chunk boundary; behind
/// a 72-byte prefix the same payload costs 0.43 instead of 0.18 CPU-s/GiB on the gateway's
/// machine. The construction is still a hash of every byte of the segment and of the chain
/// before it.
pub fn chain_next(
    prev: &[u8; 32],
    header: &[u8; SEGMENT_HEADER_LEN],
    payload_hash: &[u8; 32],
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev);
    hasher.update(header);
    hasher.update(payload_hash);
    *hasher.finalize().as_bytes()
}

/// `BLAKE3(payload)`, the payload's part in [`chain_next`].
pub fn payload_hash(payload: &[u8]) -> [u8; 32] {
    *blake3::hash(payload).as_bytes()
}

/// One entry of the index segment: where a segment is and what time it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: u64,
    pub seq: u64,
    pub first_micros: u64,
    pub last_micros: u64,
    pub kind: u8,
    pub flags: u8,
    pub records: u32,
}

impl IndexEntry {
    /// The entry describing the segment `h` found at `offset`.
    pub fn for_segment(offset: u64, h: &SegmentHeader) -> IndexEntry {
        IndexEntry {
            offset,
            seq: h.seq,
            first_micros: h.first_micros,
            last_micros: h.last_micros,
            kind: h.kind as u8,
            flags: h.flags,
            records: h.records,
        }
    }

    /// The 40 on-disk bytes.
    pub fn encode(&self) -> [u8; INDEX_ENTRY_LEN] {
        let mut b = [0u8; INDEX_ENTRY_LEN];
        let fields: [(usize, &[u8]); 7] = [
            (0, &self.offset.to_le_bytes()),
            (8, &self.seq.to_le_bytes()),
            (16, &self.first_micros.to_le_bytes()),
            (24, &self.last_micros.to_le_bytes()),
            (32, &[self.kind]),
            (33, &[self.flags]),
            (36, &self.records.to_le_bytes()),
        ];
        for (at, bytes) in fields {
            if let Some(dst) = b.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
        b
    }

    /// Parses the 40 on-disk bytes (no consistency checks: see the reader and verifier).
    pub fn decode(b: &[u8; INDEX_ENTRY_LEN]) -> IndexEntry {
        IndexEntry {
            offset: u64_at(b, 0),
            seq: u64_at(b, 8),
            first_micros: u64_at(b, 16),
            last_micros: u64_at(b, 24),
            kind: b.get(32).copied().unwrap_or(0xff),
            flags: b.get(33).copied().unwrap_or(0xff),
            records: u32_at(b, 36),
        }
    }
}

/// The payload of the end-of-trail marker segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndMarker {
    pub end_micros: u64,
    pub records: u64,
    pub index_offset: u64,
    pub index_entries: u64,
}

impl EndMarker {
    /// The 32 on-disk bytes.
    pub fn encode(&self) -> [u8; END_PAYLOAD_LEN] {
        let mut b = [0u8; END_PAYLOAD_LEN];
        for (i, v) in [
            self.end_micros,
            self.records,
            self.index_offset,
            self.index_entries,
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(dst) = b.get_mut(i * 8..i * 8 + 8) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
        b
    }

    /// Parses the 32 on-disk bytes.
    pub fn decode(b: &[u8; END_PAYLOAD_LEN]) -> EndMarker {
        EndMarker {
            end_micros: u64_at(b, 0),
            records: u64_at(b, 8),
            index_offset: u64_at(b, 16),
            index_entries: u64_at(b, 24),
        }
    }
}

/// The trailer: the last 72 bytes of a complete file, found by seeking to `len - 72`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub index_offset: u64,
    pub end_offset: u64,
    pub records: u64,
    pub end_micros: u64,
    pub final_chain: [u8; 32],
}

impl Trailer {
    /// The 72 on-disk bytes.
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut b = [0u8; TRAILER_LEN];
        let fields: [(usize, &[u8]); 6] = [
            (0, &TRAILER_MAGIC),
            (8, &self.index_offset.to_le_bytes()),
            (16, &self.end_offset.to_le_bytes()),
            (24, &self.records.to_le_bytes()),
            (32, &self.end_micros.to_le_bytes()),
            (40, &self.final_chain),
        ];
        for (at, bytes) in fields {
            if let Some(dst) = b.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
        b
    }

    /// Parses the 72 on-disk bytes; `None` if the magic is wrong.
    pub fn decode(b: &[u8; TRAILER_LEN]) -> Option<Trailer> {
        if b.get(..8) != Some(&TRAILER_MAGIC[..]) {
            return None;
        }
        Some(Trailer {
            index_offset: u64_at(b, 8),
            end_offset: u64_at(b, 16),
            records: u64_at(b, 24),
            end_micros: u64_at(b, 32),
            final_chain: bytes32_at(b, 40),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trip() {
        let h = SegmentHeader {
            kind: SegmentKind::Stream1,
            flags: 0,
            seq: 7,
            first_micros: 10,
            last_micros: 20,
            payload_len: 300,
            records: 4,
        };
        let b = h.encode();
        assert_eq!(&b[..4], b"CSEG");
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        let mut flagged = b;
        flagged[5] = FLAG_ENCRYPTED;
        assert!(SegmentHeader::decode(&flagged).is_err());
    }

    #[test]
    fn fixed_parts_round_trip() {
        let e = IndexEntry {
            offset: 1,
            seq: 2,
            first_micros: 3,
            last_micros: 4,
            kind: 1,
            flags: 0,
            records: 5,
        };
        assert_eq!(IndexEntry::decode(&e.encode()), e);
        let m = EndMarker {
            end_micros: 9,
            records: 8,
            index_offset: 7,
            index_entries: 6,
        };
        assert_eq!(EndMarker::decode(&m.encode()), m);
        let t = Trailer {
            index_offset: 1,
            end_offset: 2,
            records: 3,
            end_micros: 4,
            final_chain: [5; 32],
        };
        assert_eq!(Trailer::decode(&t.encode()), Some(t));
    }
}
