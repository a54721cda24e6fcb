//! Offline verification: recompute the hash chain from the file header to the trailer and
//! check every structural rule of the spec, reporting the first inconsistency.
//!
//! What this proves and what it does not: it detects accidental corruption and any edit,
//! truncation, reordering, duplication or splicing of segments by someone who does not
//! recompute the chain. A forger who rewrites the chain from the edited point on is only
//! caught by the signed chain heads of a later format version (see the spec, "Future work").

use bytes::Bytes;

use crate::error::TrailError;
use crate::format::{
    ChainHead, END_PAYLOAD_LEN, EndMarker, FLAG_ENCRYPTED, FORMAT_VERSION_2, INDEX_ENTRY_LEN,
    IndexEntry, KeyPayload, SEGMENT_HEADER_LEN, SealPayload, SegmentHeader, SegmentKind,
    TRAILER_LEN, Trailer, chain_next, payload_hash,
};
use crate::reader::{SegmentRecords, Slot, TrailReader};

/// The result of [`TrailReader::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The trail is whole and intact: every segment, the index, the end-of-trail marker and
    /// the trailer are present and consistent, and `problem` is `None`.
    pub complete: bool,
    /// Segments verified (all kinds, including the index and the end-of-trail marker).
    pub segments: u64,
    /// Records in the verified segments.
    pub records: u64,
    /// Timestamp of the first record, if any.
    pub first_micros: Option<u64>,
    /// Timestamp of the last record, if any.
    pub last_micros: Option<u64>,
    /// The session's end timestamp from the end-of-trail marker (complete trails only).
    pub end_micros: Option<u64>,
    /// Chain value of the last verified segment (`BLAKE3(file header)` if there is none).
    /// For a complete trail this is the value a signature would cover.
    pub final_chain: [u8; 32],
    /// Length of the verified prefix of the file.
    pub verified_bytes: u64,
    /// The first inconsistency: tampering or corruption (bad magic, sequence gap, chain
    /// mismatch, index or trailer mismatch, ...). `None` if there is none.
    pub problem: Option<String>,
    /// Why the trail is not complete when that is not a `problem`: it simply ends early (the
    /// writer crashed or the disk filled). `None` for a complete trail.
    pub incomplete: Option<String>,
    /// The file's format version.
    pub version: u16,
    /// Which record streams are encrypted (have a key segment).
    pub encrypted_streams: [bool; 2],
    /// Encrypted segments whose records could not be checked (no data key was supplied):
    /// their records are counted from their headers, and only their chain values are checked.
    pub unread_segments: u64,
    /// The seals found, in file order, each already checked against the chain: its head is
    /// this trail's. Their signatures and time-stamps are for the evidence layer to check.
    pub seals: Vec<SealFound>,
}

/// A seal segment of a verified trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealFound {
    /// The seal segment's own seq.
    pub seq: u64,
    /// The head it covers (its chain value equals the stored one of segment `covered − 1`).
    pub head: ChainHead,
    /// The last timestamp of the covered segments: everything recorded up to here is covered.
    pub covers_micros: u64,
    /// Whether the head includes the end-of-trail marker: the seal attests a complete trail.
    pub covers_end: bool,
    /// CMS `SignedData` over [`ChainHead::statement`] (empty if the trail is not signed).
    pub signature: Vec<u8>,
    /// RFC 3161 `TimeStampToken` over SHA-256 of the statement (empty if not time-stamped).
    pub timestamp: Vec<u8>,
}

impl Verification {
    /// Complete and intact.
    pub fn is_ok(&self) -> bool {
        self.complete && self.problem.is_none()
    }
}

enum Phase {
    Records,
    AfterIndex { index_offset: u64 },
    AfterEnd { end_offset: u64, index_offset: u64 },
}

/// What the walk remembers per segment so that a seal can be checked against the head it
/// names, which may lie some segments back (a remote TSA answers late): 40 bytes a segment,
/// about 0.06 % of a trail written in 64 KiB segments.
#[derive(Default)]
struct Heads {
    chains: Vec<[u8; 32]>,
    micros: Vec<u64>,
}

impl TrailReader {
    /// Recomputes the chain over the whole file and checks every rule of the spec. Reads the
    /// file once, holding at most one record segment (and 64 KiB of the index) in memory.
    /// Afterwards the reader is positioned at the first record. `Err` only for I/O errors:
    /// anything wrong with the contents is reported in the [`Verification`].
    pub fn verify(&mut self) -> Result<Verification, TrailError> {
        let result = self.verify_inner();
        self.rewind();
        result
    }

    fn verify_inner(&mut self) -> Result<Verification, TrailError> {
        let mut v = Verification {
            complete: false,
            segments: 0,
            records: 0,
            first_micros: None,
            last_micros: None,
            end_micros: None,
            final_chain: self.header_chain,
            verified_bytes: self.header_len,
            problem: None,
            incomplete: None,
            version: self.version,
            encrypted_streams: [false; 2],
            unread_segments: 0,
            seals: Vec::new(),
        };
        let mut heads = Heads::default();
        let mut record_segments_seen = [false; 2];
        let mut end_seq: Option<u64> = None;
        let mut final_seal_done = false;
        // The end marker's chain value, which the trailer repeats (a final seal follows it).
        let mut end_chain = [0u8; 32];
        let mut chain = self.header_chain;
        let mut pos = self.header_len;
        let mut phase = Phase::Records;
        // BLAKE3 of the index entries the segments call for, compared with the stored index.
        let mut expected_index = blake3::Hasher::new();
        let mut entries: u64 = 0;
        let mut prev_last: u64 = 0;
        loop {
            if let Phase::AfterEnd {
                end_offset,
                index_offset,
            } = phase
            {
                // Version 2 may have the final seal here, between end marker and trailer.
                let room_for_seal = self.file_len.saturating_sub(pos) > TRAILER_LEN as u64;
                if self.version < FORMAT_VERSION_2 || final_seal_done || !room_for_seal {
                    self.check_trailer(&mut v, pos, end_offset, index_offset, end_chain)?;
                    return Ok(v);
                }
            }
            let (h, raw) = match self.slot_at(pos)? {
                Slot::Segment { header, raw } => (header, raw),
                Slot::Eof => {
                    let reason = match phase {
                        Phase::Records => {
                            "the trail ends without an index and end-of-trail marker \
                             (the writer did not finish: crash or full disk)"
                        }
                        _ => "the trail ends without its end-of-trail marker",
                    };
                    self.set_truncated(&mut v, pos, reason.to_string());
                    return Ok(v);
                }
                Slot::Truncated(reason) => {
                    self.set_truncated(&mut v, pos, reason);
                    return Ok(v);
                }
                Slot::Corrupt(reason) => {
                    v.problem = Some(format!("offset {pos}: {reason}"));
                    return Ok(v);
                }
            };
            let fail = |v: &mut Verification, what: String| {
                v.problem = Some(format!("segment {} at offset {pos}: {what}", h.seq));
            };
            if h.seq != v.segments {
                let expected = v.segments;
                fail(
                    &mut v,
                    format!(
                        "sequence number {} where {} was expected \
                         (segments missing, duplicated, reordered or spliced)",
                        h.seq, expected
                    ),
                );
                return Ok(v);
            }
            // BLAKE3 of the payload, computed per kind below.
            let digest: [u8; 32];
            let mut check_after_chain: Option<String> = None;
            match (&phase, h.kind) {
                (Phase::Records, SegmentKind::Stream0 | SegmentKind::Stream1) => {
                    let stream = h.kind.stream().unwrap_or(0);
                    let payload = self.read_payload(pos, &h)?;
                    digest = payload_hash(&payload);
                    let encrypted = h.flags & FLAG_ENCRYPTED != 0;
                    if let Some(seen) = record_segments_seen.get_mut(stream) {
                        *seen = true;
                    }
                    if h.last_micros < prev_last {
                        check_after_chain = Some(
                            "its last timestamp is earlier than the previous segment's".into(),
                        );
                    } else if encrypted != v.encrypted_streams.get(stream).copied().unwrap_or(false)
                    {
                        check_after_chain = Some(if encrypted {
                            "encrypted, but its stream has no key segment".into()
                        } else {
                            "in clear, but its stream is encrypted".into()
                        });
                    } else if encrypted && self.ciphers.get(stream).is_none_or(Option::is_none) {
                        count_unread(&mut v, h);
                    } else {
                        match self.decrypt(pos, &h, &raw, payload) {
                            Ok(plain) => {
                                if let Err(reason) = count_records(&mut v, h, plain) {
                                    check_after_chain = Some(reason);
                                }
                            }
                            Err(e) => check_after_chain = Some(e.to_string()),
                        }
                    }
                    prev_last = h.last_micros;
                    expected_index.update(&IndexEntry::for_segment(pos, &h).encode());
                    entries += 1;
                }
                (Phase::Records, SegmentKind::Key) => {
                    let payload = self.read_payload(pos, &h)?;
                    digest = payload_hash(&payload);
                    match KeyPayload::decode(&payload) {
                        Ok(key) => {
                            let stream = usize::from(key.stream);
                            if record_segments_seen.get(stream).copied().unwrap_or(true)
                                || v.encrypted_streams.get(stream).copied().unwrap_or(true)
                            {
                                check_after_chain = Some(format!(
                                    "a key segment for stream {stream} after its records \
                                     or after another key segment"
                                ));
                            } else if let Some(e) = v.encrypted_streams.get_mut(stream) {
                                *e = true;
                            }
                        }
                        Err(reason) => check_after_chain = Some(reason),
                    }
                    if h.last_micros < prev_last {
                        check_after_chain = Some("a key segment out of time order".into());
                    }
                    prev_last = h.last_micros;
                    expected_index.update(&IndexEntry::for_segment(pos, &h).encode());
                    entries += 1;
                }
                (Phase::Records | Phase::AfterEnd { .. }, SegmentKind::Seal) => {
                    let payload = self.read_payload(pos, &h)?;
                    digest = payload_hash(&payload);
                    let is_final = matches!(phase, Phase::AfterEnd { .. });
                    match SealPayload::decode(&payload) {
                        Ok(seal) => match check_seal(&heads, &self.header_chain, &seal, end_seq) {
                            Ok(found) => v.seals.push(SealFound {
                                seq: h.seq,
                                ..found
                            }),
                            Err(reason) => check_after_chain = Some(reason),
                        },
                        Err(reason) => check_after_chain = Some(reason),
                    }
                    if is_final {
                        final_seal_done = true;
                    } else {
                        if h.last_micros < prev_last {
                            check_after_chain = Some("a seal segment out of time order".into());
                        }
                        prev_last = h.last_micros;
                        expected_index.update(&IndexEntry::for_segment(pos, &h).encode());
                        entries += 1;
                    }
                }
                (Phase::Records, SegmentKind::Index) => {
                    digest = self.hash_index_payload(pos, &h)?;
                    let stored_entries = u64::from(h.payload_len) / INDEX_ENTRY_LEN as u64;
                    if stored_entries != entries {
                        check_after_chain = Some(format!(
                            "the index has {stored_entries} entries for {entries} segments"
                        ));
                    } else if digest != *expected_index.finalize().as_bytes() {
                        check_after_chain =
                            Some("the index does not match the segments before it".into());
                    }
                    phase = Phase::AfterIndex { index_offset: pos };
                }
                (Phase::AfterIndex { index_offset }, SegmentKind::End) => {
                    let index_offset = *index_offset;
                    let payload = self.read_payload(pos, &h)?;
                    digest = payload_hash(&payload);
                    let mut b = [0u8; END_PAYLOAD_LEN];
                    if let Some(src) = payload.get(..END_PAYLOAD_LEN) {
                        b.copy_from_slice(src);
                    }
                    let m = EndMarker::decode(&b);
                    let last = v.last_micros.unwrap_or(0);
                    if m.records != v.records
                        || m.index_offset != index_offset
                        || m.index_entries != entries
                        || m.end_micros < last
                        || h.first_micros != m.end_micros
                        || h.last_micros != m.end_micros
                    {
                        check_after_chain = Some(
                            "the end-of-trail marker does not match the trail \
                             (record count, index position or end time)"
                                .into(),
                        );
                    }
                    v.end_micros = Some(m.end_micros);
                    end_seq = Some(h.seq);
                    phase = Phase::AfterEnd {
                        end_offset: pos,
                        index_offset,
                    };
                }
                (Phase::Records, SegmentKind::End) => {
                    fail(
                        &mut v,
                        "end-of-trail marker without an index before it".into(),
                    );
                    return Ok(v);
                }
                _ => {
                    fail(&mut v, format!("unexpected {:?} segment here", h.kind));
                    return Ok(v);
                }
            }
            let stored = self.read_stored_chain(pos, &h)?;
            if chain_next(&chain, &raw, &digest) != stored {
                fail(
                    &mut v,
                    "chain mismatch: the segment or the trail before it was altered, \
                     or the segment comes from another trail"
                        .into(),
                );
                return Ok(v);
            }
            if let Some(reason) = check_after_chain {
                fail(&mut v, reason);
                return Ok(v);
            }
            chain = stored;
            if h.kind == SegmentKind::End {
                end_chain = stored;
            }
            heads.chains.push(stored);
            heads.micros.push(h.last_micros);
            pos += h.total_len();
            v.segments += 1;
            v.final_chain = chain;
            v.verified_bytes = pos;
        }
    }

    fn set_truncated(&self, v: &mut Verification, pos: u64, reason: String) {
        if self.trailer.is_some() {
            v.problem = Some(format!(
                "offset {pos}: {reason}, although the file ends with a trailer"
            ));
        } else {
            v.incomplete = Some(reason);
        }
    }

    /// BLAKE3 of the index payload, read in 64 KiB pieces (the index is never held whole).
    fn hash_index_payload(&mut self, pos: u64, h: &SegmentHeader) -> Result<[u8; 32], TrailError> {
        let mut own = blake3::Hasher::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut at = pos + SEGMENT_HEADER_LEN as u64;
        let mut left = u64::from(h.payload_len);
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let chunk = buf.get_mut(..n).unwrap_or_default();
            self.read_at(at, chunk)?;
            own.update(chunk);
            at += n as u64;
            left -= n as u64;
        }
        Ok(*own.finalize().as_bytes())
    }

    fn check_trailer(
        &mut self,
        v: &mut Verification,
        pos: u64,
        end_offset: u64,
        index_offset: u64,
        end_chain: [u8; 32],
    ) -> Result<(), TrailError> {
        let remaining = self.file_len.saturating_sub(pos);
        if remaining == 0 {
            v.incomplete = Some("the trailer is missing after the end-of-trail marker".into());
            return Ok(());
        }
        if remaining < TRAILER_LEN as u64 {
            v.incomplete = Some(format!(
                "the file ends inside the trailer ({remaining} of {TRAILER_LEN} bytes)"
            ));
            return Ok(());
        }
        if remaining > TRAILER_LEN as u64 {
            v.problem = Some(format!(
                "offset {pos}: {} unexpected bytes after the end-of-trail marker",
                remaining - TRAILER_LEN as u64
            ));
            return Ok(());
        }
        let mut raw = [0u8; TRAILER_LEN];
        self.read_at(pos, &mut raw)?;
        let Some(t) = Trailer::decode(&raw) else {
            v.problem = Some(format!("offset {pos}: bad trailer magic"));
            return Ok(());
        };
        let expected = Trailer {
            index_offset,
            end_offset,
            records: v.records,
            end_micros: v.end_micros.unwrap_or(0),
            final_chain: end_chain,
        };
        if t != expected {
            v.problem = Some(format!(
                "offset {pos}: trailer mismatch (it disagrees with the end-of-trail marker \
                 or the final chain value)"
            ));
            return Ok(());
        }
        v.verified_bytes = self.file_len;
        v.complete = true;
        Ok(())
    }
}

/// Checks that a seal names a head of this trail: a segment count not beyond the seal itself,
/// and the chain value stored at that point.
fn check_seal(
    heads: &Heads,
    header_chain: &[u8; 32],
    seal: &SealPayload,
    end_seq: Option<u64>,
) -> Result<SealFound, String> {
    let covered = seal.head.covered;
    let expected = match covered.checked_sub(1) {
        None => Some((*header_chain, 0)),
        Some(last) => usize::try_from(last)
            .ok()
            .and_then(|i| Some((*heads.chains.get(i)?, *heads.micros.get(i)?))),
    };
    let Some((chain, covers_micros)) = expected else {
        return Err(format!(
            "the seal covers {covered} segments, more than precede it"
        ));
    };
    if chain != seal.head.chain {
        return Err(
            "the seal's chain value is not this trail's at the point it names \
             (a seal from another trail, or the trail was rewritten)"
                .into(),
        );
    }
    Ok(SealFound {
        seq: 0,
        head: seal.head,
        covers_micros,
        covers_end: end_seq.is_some_and(|e| covered > e),
        signature: seal.signature.clone(),
        timestamp: seal.timestamp.clone(),
    })
}

/// An encrypted segment read without its key: counts its records from the header.
fn count_unread(v: &mut Verification, h: SegmentHeader) {
    v.unread_segments += 1;
    v.records += u64::from(h.records);
    if h.records > 0 {
        v.first_micros = Some(
            v.first_micros
                .map_or(h.first_micros, |f| f.min(h.first_micros)),
        );
        v.last_micros = Some(
            v.last_micros
                .map_or(h.last_micros, |l| l.max(h.last_micros)),
        );
    }
}

/// Decodes every record of a segment (all checks of [`SegmentRecords`]) and counts them.
fn count_records(v: &mut Verification, h: SegmentHeader, payload: Bytes) -> Result<(), String> {
    let mut records = SegmentRecords::new(h, payload);
    while let Some(r) = records.next_record() {
        let (at, _) = r?;
        // Streams interleave, so file order is not time order across segments: min and max.
        v.first_micros = Some(v.first_micros.map_or(at, |f| f.min(at)));
        v.last_micros = Some(v.last_micros.map_or(at, |l| l.max(at)));
        v.records += 1;
    }
    Ok(())
}
