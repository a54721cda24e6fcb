//! The fixed-layout parts of a trail file: file header, segment header, index entry, end marker,
//! trailer, and the hash chain that ties them together. `docs/trail-format.md` is the normative
//! description; every constant here is named there.
//!
//! Why fixed layouts (little-endian) for these parts and varints only inside payloads: a reader
//! must be able to skip from segment to segment and binary-search the index with plain seeks,
//! without decoding anything it does not need.

/// First 8 bytes of every trail file.
pub const FILE_MAGIC: [u8; 8] = *b"CSTRAIL1";
/// Version 1: chained, unencrypted, unsigned. Written when a trail needs nothing of version 2.
pub const FORMAT_VERSION_1: u16 = 1;
/// Version 2 adds key segments, encrypted record segments and seal segments (signed and
/// time-stamped chain heads). A version-1 file is also a valid version-2 file in every other
/// respect, so one reader reads both.
pub const FORMAT_VERSION_2: u16 = 2;
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

/// Segment flag: the payload is AES-256-GCM ciphertext followed by its tag (version 2, record
/// segments only).
pub const FLAG_ENCRYPTED: u8 = 0x01;
/// Bytes of the AES-256-GCM tag after an encrypted payload.
pub const TAG_LEN: usize = 16;
/// Largest payload of a key or seal segment (bounds reader memory).
pub const MAX_EVIDENCE_PAYLOAD: usize = 1 << 20;
/// Bytes of a seal payload before the signature: covered segment count and chain value.
pub const SEAL_FIXED_LEN: usize = 8 + CHAIN_LEN;
/// First 8 bytes of the statement a seal signs and time-stamps.
pub const STATEMENT_MAGIC: [u8; 8] = *b"CSTRHEAD";
/// Bytes of that statement: magic, covered segment count, chain value.
pub const STATEMENT_LEN: usize = 8 + 8 + CHAIN_LEN;
/// Key segment algorithm byte for AES-256-GCM (the only one defined).
pub const KEY_ALGORITHM_AES256GCM: u8 = 1;

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
    /// A record stream's data key, wrapped to certificates (version 2; before any segment of
    /// its stream).
    Key = 4,
    /// A seal: a signature and/or RFC 3161 time-stamp token over an earlier chain head
    /// (version 2).
    Seal = 5,
}

impl SegmentKind {
    /// Parses the on-disk kind byte.
    pub fn from_byte(byte: u8) -> Option<SegmentKind> {
        match byte {
            0 => Some(SegmentKind::Stream0),
            1 => Some(SegmentKind::Stream1),
            2 => Some(SegmentKind::Index),
            3 => Some(SegmentKind::End),
            4 => Some(SegmentKind::Key),
            5 => Some(SegmentKind::Seal),
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
pub fn encode_file_header(json: &[u8], version: u16) -> Option<Vec<u8>> {
    let len = u32::try_from(json.len()).ok()?;
    if json.len() > MAX_HEADER_JSON {
        return None;
    }
    let mut out = Vec::with_capacity(FILE_HEADER_FIXED_LEN + json.len());
    out.extend_from_slice(&FILE_MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
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

    /// Parses and checks the 40 on-disk bytes of a file of format `version`. The error is a
    /// reason for [`TrailError::Corrupt`].
    ///
    /// [`TrailError::Corrupt`]: crate::TrailError::Corrupt
    pub fn decode(b: &[u8; SEGMENT_HEADER_LEN], version: u16) -> Result<SegmentHeader, String> {
        if b.get(..4) != Some(&SEGMENT_MAGIC[..]) {
            return Err("bad segment magic".into());
        }
        let kind_byte = b.get(4).copied().unwrap_or(0xff);
        let kind = SegmentKind::from_byte(kind_byte)
            .ok_or_else(|| format!("unknown segment kind {kind_byte}"))?;
        if version < FORMAT_VERSION_2 && matches!(kind, SegmentKind::Key | SegmentKind::Seal) {
            return Err(format!(
                "segment kind {kind_byte} does not exist in format version {version}"
            ));
        }
        let flags = b.get(5).copied().unwrap_or(0xff);
        let allowed = if version >= FORMAT_VERSION_2 && kind.is_records() {
            FLAG_ENCRYPTED
        } else {
            0
        };
        if flags & !allowed != 0 {
            return Err(format!(
                "segment flags {flags:#04x} are not allowed on a {kind:?} segment \
                 in format version {version}"
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
            SegmentKind::Key | SegmentKind::Seal => MAX_EVIDENCE_PAYLOAD as u64,
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
            SegmentKind::Index | SegmentKind::End | SegmentKind::Key | SegmentKind::Seal
                if h.records != 0 =>
            {
                return Err(format!("{kind:?} segment claims to hold records"));
            }
            SegmentKind::Stream0 | SegmentKind::Stream1
                if flags & FLAG_ENCRYPTED != 0 && (h.payload_len as usize) < TAG_LEN =>
            {
                return Err("encrypted payload is shorter than its tag".into());
            }
            SegmentKind::Key if h.payload_len < 2 => {
                return Err("key segment payload is too short".into());
            }
            SegmentKind::Seal if (h.payload_len as usize) < SEAL_FIXED_LEN + 8 => {
                return Err("seal segment payload is too short".into());
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

/// A chain head: the first `covered` segments of a trail and the chain value of the last of
/// them (`chain_-1`, the file header's hash, when `covered` is 0). It stands for the whole
/// trail up to there, so signing it signs that prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub covered: u64,
    pub chain: [u8; 32],
}

impl ChainHead {
    /// What a seal signs and time-stamps: `CSTRHEAD ‖ covered (u64) ‖ chain value`. Why a
    /// statement rather than the bare chain value: the magic keeps a signature over a trail head
    /// from being valid as a signature over anything else the same key signs, and the count
    /// tells a verifier which prefix it covers without trusting the seal segment's position.
    pub fn statement(&self) -> [u8; STATEMENT_LEN] {
        let mut b = [0u8; STATEMENT_LEN];
        if let Some(dst) = b.get_mut(..8) {
            dst.copy_from_slice(&STATEMENT_MAGIC);
        }
        if let Some(dst) = b.get_mut(8..16) {
            dst.copy_from_slice(&self.covered.to_le_bytes());
        }
        if let Some(dst) = b.get_mut(16..) {
            dst.copy_from_slice(&self.chain);
        }
        b
    }
}

/// A seal segment's payload: the chain head it covers, a CMS `SignedData` over the head's
/// statement (empty if the audit policy does not sign) and an RFC 3161 `TimeStampToken` over
/// SHA-256 of the statement (empty if it does not time-stamp, or the TSA failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealPayload {
    pub head: ChainHead,
    pub signature: Vec<u8>,
    pub timestamp: Vec<u8>,
}

impl SealPayload {
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(SEAL_FIXED_LEN + 8 + self.signature.len() + self.timestamp.len());
        out.extend_from_slice(&self.head.covered.to_le_bytes());
        out.extend_from_slice(&self.head.chain);
        for part in [&self.signature, &self.timestamp] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// Parses a seal payload; the lengths must add up exactly.
    pub fn decode(b: &[u8]) -> Result<SealPayload, String> {
        let head = ChainHead {
            covered: u64_at(b, 0),
            chain: bytes32_at(b, 8),
        };
        let mut at = SEAL_FIXED_LEN;
        let mut parts = [Vec::new(), Vec::new()];
        for part in &mut parts {
            let len = u32_at(b, at) as usize;
            let start = at + 4;
            let bytes = b
                .get(start..start.saturating_add(len))
                .filter(|_| b.len() >= start)
                .ok_or("seal payload lengths run past its end")?;
            *part = bytes.to_vec();
            at = start + len;
        }
        if at != b.len() {
            return Err("seal payload has bytes after its time-stamp token".into());
        }
        let [signature, timestamp] = parts;
        Ok(SealPayload {
            head,
            signature,
            timestamp,
        })
    }
}

/// A key segment's payload: the record stream it applies to, the cipher, and the data key
/// wrapped to certificates (the envelope; its format is the evidence layer's, see the spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPayload {
    pub stream: u8,
    pub envelope: Vec<u8>,
}

impl KeyPayload {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.envelope.len());
        out.push(self.stream);
        out.push(KEY_ALGORITHM_AES256GCM);
        out.extend_from_slice(&self.envelope);
        out
    }

    pub fn decode(b: &[u8]) -> Result<KeyPayload, String> {
        match b {
            [stream @ (0 | 1), KEY_ALGORITHM_AES256GCM, envelope @ ..] => Ok(KeyPayload {
                stream: *stream,
                envelope: envelope.to_vec(),
            }),
            [0 | 1, algorithm, ..] => Err(format!("unknown key algorithm {algorithm}")),
            _ => Err("key segment names no record stream (0 or 1)".into()),
        }
    }
}

/// The AES-256-GCM nonce of an encrypted segment: its seq, little-endian, then 4 zero bytes.
/// Unique because every trail has fresh data keys and no two segments share a seq.
pub fn segment_nonce(seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    if let Some(dst) = n.get_mut(..8) {
        dst.copy_from_slice(&seq.to_le_bytes());
    }
    n
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
        assert_eq!(SegmentHeader::decode(&b, FORMAT_VERSION_1), Ok(h));
        let mut flagged = b;
        flagged[5] = FLAG_ENCRYPTED;
        assert!(SegmentHeader::decode(&flagged, FORMAT_VERSION_1).is_err());
        let mut encrypted = h;
        encrypted.flags = FLAG_ENCRYPTED;
        assert_eq!(
            SegmentHeader::decode(&encrypted.encode(), FORMAT_VERSION_2),
            Ok(encrypted)
        );
        flagged[5] = 0x02;
        assert!(SegmentHeader::decode(&flagged, FORMAT_VERSION_2).is_err());
        let seal = SegmentHeader {
            kind: SegmentKind::Seal,
            flags: 0,
            seq: 1,
            first_micros: 5,
            last_micros: 5,
            payload_len: 100,
            records: 0,
        };
        assert!(SegmentHeader::decode(&seal.encode(), FORMAT_VERSION_1).is_err());
        assert_eq!(
            SegmentHeader::decode(&seal.encode(), FORMAT_VERSION_2),
            Ok(seal)
        );
        let mut encrypted_seal = seal;
        encrypted_seal.flags = FLAG_ENCRYPTED;
        assert!(SegmentHeader::decode(&encrypted_seal.encode(), FORMAT_VERSION_2).is_err());
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
        let seal = SealPayload {
            head: ChainHead {
                covered: 3,
                chain: [7; 32],
            },
            signature: vec![1, 2, 3],
            timestamp: vec![],
        };
        assert_eq!(SealPayload::decode(&seal.encode()), Ok(seal.clone()));
        let mut long = seal.encode();
        long.push(0);
        assert!(SealPayload::decode(&long).is_err());
        let encoded = seal.encode();
        for cut in 0..encoded.len() {
            assert!(SealPayload::decode(&encoded[..cut]).is_err(), "cut {cut}");
        }
        let key = KeyPayload {
            stream: 1,
            envelope: b"{}".to_vec(),
        };
        assert_eq!(KeyPayload::decode(&key.encode()), Ok(key));
        assert!(KeyPayload::decode(&[2, 1]).is_err());
        assert!(KeyPayload::decode(&[0, 9]).is_err());
    }
}
