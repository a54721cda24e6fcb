//! Format version 2: encrypted streams, key segments and seals (signed chain heads). The
//! signatures here are opaque bytes; the evidence crate and the CLI tests check real ones.

mod common;

use common::*;
use custos_trail::{
    ChainHead, Direction, Protection, Record, SealPayload, StreamKey, TrailError, TrailReader,
    TrailWriter, Verification,
};
use serde_json::json;
use zeroize::Zeroizing;

const KEY0: [u8; 32] = [0x11; 32];
const KEY1: [u8; 32] = [0x22; 32];
const SECRET: &[u8] = b"typed-password-hunter2";

fn protection(encrypt: [bool; 2], seals: bool) -> Protection {
    let key = |on: bool, k: [u8; 32], name: &str| {
        on.then(|| StreamKey {
            data_key: Zeroizing::new(k),
            envelope: json!({"wrapped-for": name}).to_string().into_bytes(),
        })
    };
    Protection {
        stream_keys: [
            key(encrypt[0], KEY0, "output"),
            key(encrypt[1], KEY1, "keystrokes"),
        ],
        seals,
    }
}

fn session() -> Vec<(u64, Record)> {
    let mut v = vec![(
        0,
        Record::ChannelOpen {
            channel: 0,
            kind: "session".into(),
            meta: json!({}),
        },
    )];
    for i in 0..40u64 {
        v.push((
            10 + i * 10,
            data(
                0,
                Direction::ServerToClient,
                format!("output line {i}\r\n").as_bytes(),
            ),
        ));
        v.push((15 + i * 10, data(0, Direction::ClientToServer, SECRET)));
    }
    v.push((1000, Record::ChannelClose { channel: 0 }));
    v
}

/// Writes the session with a seal after every 10 records (over the head at that moment, like
/// a slow TSA, appended 4 records later) and a final seal.
fn write_protected(encrypt: [bool; 2], seals: bool) -> (Vec<u8>, Vec<ChainHead>) {
    write_protected_as("s-42", encrypt, seals)
}

/// As [`write_protected`], for the session `session_id` (same records, same keys).
fn write_protected_as(
    session_id: &str,
    encrypt: [bool; 2],
    seals: bool,
) -> (Vec<u8>, Vec<ChainHead>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.trail");
    let mut meta = header();
    meta["session_id"] = json!(session_id);
    let mut w =
        TrailWriter::create_protected(&path, &meta, opts(512), protection(encrypt, seals)).unwrap();
    let mut heads = Vec::new();
    let mut waiting: Option<(usize, ChainHead)> = None;
    for (i, (at, r)) in session().iter().enumerate() {
        w.append(*at, r).unwrap();
        if seals && i % 10 == 9 {
            waiting = Some((i, w.head().unwrap()));
        }
        if let Some((since, head)) = waiting
            && i == since + 4
        {
            w.append_seal(&SealPayload {
                head,
                signature: b"sig".to_vec(),
                timestamp: b"tst".to_vec(),
            })
            .unwrap();
            heads.push(head);
            waiting = None;
        }
    }
    w.finish_sealed(1000, |head| {
        heads.push(head);
        Some(SealPayload {
            head,
            signature: b"final-sig".to_vec(),
            timestamp: vec![],
        })
    })
    .unwrap();
    (std::fs::read(&path).unwrap(), heads)
}

fn with_keys(bytes: Vec<u8>) -> TrailReader {
    let mut r = open_bytes(bytes).unwrap();
    r.set_stream_key(0, &Zeroizing::new(KEY0)).unwrap();
    r.set_stream_key(1, &Zeroizing::new(KEY1)).unwrap();
    r
}

fn verify(bytes: Vec<u8>) -> Option<Verification> {
    open_bytes(bytes).ok().map(|mut r| r.verify().unwrap())
}

#[test]
fn encrypted_and_sealed_trail_verifies_without_keys_and_reads_with_them() {
    let (bytes, heads) = write_protected([true, true], true);
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 2, "version 2");
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET),
        "keystrokes must not be in the file in clear"
    );
    assert!(!bytes.windows(11).any(|w| w == b"output line"));

    let v = verify(bytes.clone()).unwrap();
    assert!(v.is_ok(), "{v:?}");
    assert_eq!(v.version, 2);
    assert_eq!(v.encrypted_streams, [true, true]);
    assert!(v.unread_segments > 0);
    assert_eq!(v.records, session().len() as u64);
    assert_eq!(v.seals.len(), heads.len());
    assert!(v.seals.len() >= 5);
    for (found, head) in v.seals.iter().zip(&heads) {
        assert_eq!(found.head, *head);
    }
    let last = v.seals.last().unwrap();
    assert!(last.covers_end && last.signature == b"final-sig" && last.timestamp.is_empty());
    assert!(v.seals[..v.seals.len() - 1].iter().all(|s| !s.covers_end));
    assert!(
        v.seals
            .windows(2)
            .all(|w| w[0].covers_micros <= w[1].covers_micros)
    );

    // Without keys, records cannot be read.
    let mut r = open_bytes(bytes.clone()).unwrap();
    assert_eq!(r.key_envelopes().len(), 2);
    assert!(r.is_encrypted(0) && r.is_encrypted(1));
    let err = r.records().find_map(Result::err).unwrap();
    assert!(matches!(err, TrailError::Encrypted(_)), "{err}");

    // With them, everything comes back, in order, and a keyed verify checks every record.
    let mut r = with_keys(bytes.clone());
    assert_eq!(read_all(&mut r), session());
    let v = r.verify().unwrap();
    assert!(v.is_ok() && v.unread_segments == 0, "{v:?}");

    // Seeking works on the encrypted trail (the index covers key and seal segments too).
    let mut r = with_keys(bytes.clone());
    r.seek_to(205).unwrap();
    let first = r.records().next().unwrap().unwrap();
    assert_eq!(first.0, 205);

    // A wrong key is refused, not turned into garbage.
    let mut r = open_bytes(bytes).unwrap();
    r.set_stream_key(0, &Zeroizing::new(KEY1)).unwrap();
    r.set_stream_key(1, &Zeroizing::new(KEY1)).unwrap();
    let err = r.records().find_map(Result::err).unwrap();
    assert!(err.to_string().contains("does not decrypt"), "{err}");
}

#[test]
fn only_keystrokes_encrypted_leaves_output_readable() {
    let (bytes, _) = write_protected([false, true], false);
    assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET));
    assert!(bytes.windows(11).any(|w| w == b"output line"));
    let v = verify(bytes.clone()).unwrap();
    assert!(v.is_ok() && v.seals.is_empty(), "{v:?}");
    assert_eq!(v.encrypted_streams, [false, true]);
    let mut r = open_bytes(bytes).unwrap();
    r.set_stream_key(1, &Zeroizing::new(KEY1)).unwrap();
    assert_eq!(read_all(&mut r), session());
}

#[test]
fn seals_alone_keep_the_trail_readable() {
    let (bytes, heads) = write_protected([false, false], true);
    let v = verify(bytes.clone()).unwrap();
    assert!(v.is_ok() && v.seals.len() == heads.len(), "{v:?}");
    let mut r = open_bytes(bytes).unwrap();
    assert_eq!(read_all(&mut r), session());
}

#[test]
fn every_bit_flip_in_a_protected_trail_is_detected() {
    let (bytes, _) = write_protected([true, true], true);
    let baseline = verify(bytes.clone()).unwrap();
    // Every bit would take long at this size: every bit of every 7th byte, and all bits of
    // the header, the first segments and the trailer.
    for byte in 0..bytes.len() {
        if byte % 7 != 0 && byte > 400 && byte < bytes.len() - 300 {
            continue;
        }
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[byte] ^= 1 << bit;
            match verify(b.clone()) {
                None => {}
                Some(v) => {
                    assert!(
                        !v.is_ok() || v.seals != baseline.seals,
                        "flip at byte {byte} bit {bit} went unnoticed"
                    );
                    // And reading with keys never panics.
                    let mut r = with_keys(b);
                    let _ = r.records().count();
                }
            }
        }
    }
}

#[test]
fn truncation_leaves_earlier_seals_provable() {
    let (bytes, _) = write_protected([true, true], true);
    let full = verify(bytes.clone()).unwrap();
    let segs = segments(&bytes);
    // Cut in the middle of the record segments.
    let cut = segs[segs.len() / 2].0 + 10;
    let v = verify(bytes[..cut].to_vec()).unwrap();
    assert!(
        !v.complete && v.problem.is_none() && v.incomplete.is_some(),
        "{v:?}"
    );
    assert!(!v.seals.is_empty() && v.seals.len() < full.seals.len());
    assert!(v.seals.iter().all(|s| !s.covers_end));
    // Cutting off only the trailer: the final seal is still there, but the file is incomplete.
    let v = verify(bytes[..bytes.len() - 72].to_vec()).unwrap();
    assert!(!v.complete, "{v:?}");
}

#[test]
fn reordered_dropped_and_spliced_segments_are_detected() {
    let (bytes, _) = write_protected([true, true], true);
    let segs = segments(&bytes);
    let record = |i: usize| segs.iter().filter(|s| s.2 <= 1).nth(i).copied().unwrap();
    // Swap two record segments.
    let (a, b) = (record(3), record(4));
    let mut swapped = bytes[..a.0].to_vec();
    swapped.extend_from_slice(&bytes[b.0..b.0 + b.1]);
    swapped.extend_from_slice(&bytes[a.0..a.0 + a.1]);
    swapped.extend_from_slice(&bytes[b.0 + b.1..]);
    assert!(!verify(swapped).unwrap().is_ok());
    // Drop one.
    let mut dropped = bytes[..a.0].to_vec();
    dropped.extend_from_slice(&bytes[a.0 + a.1..]);
    assert!(verify(dropped).is_none_or(|v| !v.is_ok()));
    // Splice in the same-position segment of another session's trail with the same keys and
    // the same records (so the segment is byte-identical but for its chain value).
    let (other, _) = write_protected_as("s-43", [true, true], true);
    let other_segs = segments(&other);
    let o = other_segs
        .iter()
        .filter(|s| s.2 <= 1)
        .nth(3)
        .copied()
        .unwrap();
    let mut spliced = bytes[..a.0].to_vec();
    spliced.extend_from_slice(&other[o.0..o.0 + o.1]);
    spliced.extend_from_slice(&bytes[a.0 + a.1..]);
    assert!(!verify(spliced).unwrap().is_ok());
    // A seal segment moved from another trail does not name this trail's chain.
    let seal = |file: &[u8]| segments(file).into_iter().find(|s| s.2 == 5).unwrap();
    let (mine, theirs) = (seal(&bytes), seal(&other));
    let mut foreign = bytes[..mine.0].to_vec();
    foreign.extend_from_slice(&other[theirs.0..theirs.0 + theirs.1]);
    foreign.extend_from_slice(&bytes[mine.0 + mine.1..]);
    assert!(!verify(foreign).unwrap().is_ok());
}

#[test]
fn version_1_readers_rules_still_hold_for_version_1_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.trail");
    write_trail(&path, opts(512), &session(), 1000);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1);
    // A seal cannot be appended to a trail created without seals.
    let path2 = dir.path().join("v1b.trail");
    let mut w = TrailWriter::create(&path2, &header(), opts(512)).unwrap();
    let head = w.head().unwrap();
    assert!(
        w.append_seal(&SealPayload {
            head,
            signature: vec![],
            timestamp: vec![],
        })
        .is_err()
    );
}
