//! Verification must catch every kind of damage, and reading damaged files must never panic.

mod common;

use common::*;
use custos_trail::{Direction, Record, TrailReader, Verification, export_asciicast};
use serde_json::json;

fn small_session(seed: u8) -> Vec<(u64, Record)> {
    let mut v = vec![
        (
            0,
            Record::ChannelOpen {
                channel: 0,
                kind: "session".into(),
                meta: json!({}),
            },
        ),
        (
            1,
            Record::ChannelRequest {
                channel: 0,
                request: "pty-req".into(),
                details: json!({"term": "xterm", "cols": 80, "rows": 24}),
            },
        ),
    ];
    for i in 0..12u64 {
        let d = if i.is_multiple_of(2) {
            Direction::ServerToClient
        } else {
            Direction::ClientToServer
        };
        let text = format!("{seed}-line {i} ééé\r\n");
        v.push((10 + i * 100, data(0, d, text.as_bytes())));
    }
    v.push((
        2000,
        Record::WindowChange {
            channel: 0,
            cols: 100,
            rows: 30,
            px_width: 0,
            px_height: 0,
        },
    ));
    v.push((
        3000,
        Record::ExitStatus {
            channel: 0,
            code: 0,
        },
    ));
    v.push((3001, Record::ChannelClose { channel: 0 }));
    v
}

fn small_trail(seed: u8) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    write_trail(&path, opts(256), &small_session(seed), 4000);
    std::fs::read(&path).unwrap()
}

/// Opens, verifies, reads, seeks and exports; returns the verification if the file opened.
fn exercise(bytes: Vec<u8>) -> Option<Verification> {
    let mut r = open_bytes(bytes).ok()?;
    let v = r
        .verify()
        .expect("in-memory reads cannot fail with I/O errors");
    let _ = r.records().count();
    let _ = r.seek_to(1500);
    let _ = r.records().count();
    let mut sink = Vec::new();
    let _ = export_asciicast(&mut r, None, true, &mut sink);
    Some(v)
}

fn assert_detected(bytes: Vec<u8>, what: &str) -> Option<Verification> {
    let v = exercise(bytes);
    if let Some(v) = &v {
        assert!(!v.is_ok(), "{what}: reported as complete and fine: {v:?}");
        assert!(
            v.problem.is_some() || v.incomplete.is_some(),
            "{what}: no reason given"
        );
    }
    v
}

#[test]
fn intact_small_trail_is_ok() {
    let file = small_trail(1);
    assert!(segments(&file).len() >= 6, "several segments");
    let v = exercise(file).unwrap();
    assert!(v.is_ok(), "{v:?}");
}

#[test]
fn every_single_bit_flip_is_detected() {
    let file = small_trail(1);
    let mut opened = 0;
    for pos in 0..file.len() {
        for bit in 0..8 {
            let mut damaged = file.clone();
            damaged[pos] ^= 1 << bit;
            if assert_detected(damaged, &format!("bit {bit} of byte {pos}")).is_some() {
                opened += 1;
            }
        }
    }
    println!("{} flips, {opened} of them still opened", file.len() * 8);
    assert!(opened > file.len() * 4, "most flips leave an openable file");
}

#[test]
fn truncation_at_every_length_is_incomplete_not_ok() {
    let file = small_trail(2);
    let header_len = segments(&file)[0].0;
    let boundaries: Vec<usize> = segments(&file).iter().map(|s| s.0).collect();
    for len in 0..file.len() {
        let v = exercise(file[..len].to_vec());
        if len < header_len {
            assert!(v.is_none(), "a cut header must not open (len {len})");
            continue;
        }
        let v = v.unwrap();
        assert!(!v.complete, "cut at {len}: {v:?}");
        assert_eq!(
            v.problem, None,
            "a plain cut is incomplete, not tampering (len {len})"
        );
        assert!(v.incomplete.is_some());
        // Every complete segment is still read, without error.
        let mut r = open_bytes(file[..len].to_vec()).unwrap();
        let got: Vec<_> = r.records().collect();
        assert!(got.iter().all(|x| x.is_ok()), "cut at {len}");
        if boundaries.contains(&len) {
            assert_eq!(v.verified_bytes, len as u64, "cut at a segment boundary");
        }
    }
}

/// Byte ranges of the record segments (not index/end).
fn record_segments(file: &[u8]) -> Vec<(usize, usize)> {
    segments(file)
        .into_iter()
        .filter(|s| s.2 < 2)
        .map(|(o, l, _)| (o, l))
        .collect()
}

fn reading_fails(bytes: &[u8]) -> bool {
    let mut r = open_bytes(bytes.to_vec()).unwrap();
    r.records().any(|x| x.is_err())
}

#[test]
fn swapped_segments_are_detected() {
    let file = small_trail(3);
    let segs = record_segments(&file);
    let (a, b) = (segs[1], segs[2]);
    let mut swapped = file[..a.0].to_vec();
    swapped.extend_from_slice(&file[b.0..b.0 + b.1]);
    swapped.extend_from_slice(&file[a.0..a.0 + a.1]);
    swapped.extend_from_slice(&file[b.0 + b.1..]);
    assert_eq!(swapped.len(), file.len());
    let v = assert_detected(swapped.clone(), "swap").unwrap();
    assert!(v.problem.as_deref().unwrap().contains("sequence"), "{v:?}");
    assert!(reading_fails(&swapped));
}

#[test]
fn duplicated_and_dropped_segments_are_detected() {
    let file = small_trail(4);
    let segs = record_segments(&file);
    let s = segs[2];
    let mut dup = file[..s.0 + s.1].to_vec();
    dup.extend_from_slice(&file[s.0..]);
    let v = assert_detected(dup.clone(), "duplicate").unwrap();
    assert!(v.problem.as_deref().unwrap().contains("sequence"), "{v:?}");
    assert!(reading_fails(&dup));

    let mut dropped = file[..s.0].to_vec();
    dropped.extend_from_slice(&file[s.0 + s.1..]);
    let v = assert_detected(dropped.clone(), "drop").unwrap();
    assert!(v.problem.is_some(), "{v:?}");
    assert!(reading_fails(&dropped));
}

#[test]
fn spliced_segment_from_another_trail_is_detected() {
    let a = small_trail(5);
    let b = small_trail(6);
    let (sa, sb) = (record_segments(&a), record_segments(&b));
    // Same layout, different contents: segment 2 of b has the right seq for position 2 of a.
    assert_eq!(sa, sb, "both trails have the same segment layout");
    let (off, len) = sa[2];
    assert_ne!(a[off..off + len], b[off..off + len]);
    let mut spliced = a.clone();
    spliced[off..off + len].copy_from_slice(&b[off..off + len]);
    let v = assert_detected(spliced.clone(), "splice").unwrap();
    assert!(
        v.problem.as_deref().unwrap().contains("chain mismatch"),
        "{v:?}"
    );
    assert!(reading_fails(&spliced));
    // Grafting b's tail onto a's head is caught too.
    let mut grafted = a[..off].to_vec();
    grafted.extend_from_slice(&b[off..]);
    assert!(assert_detected(grafted, "graft").unwrap().problem.is_some());
}

#[test]
fn appended_garbage_and_trailer_edits_are_detected() {
    let file = small_trail(7);
    let mut longer = file.clone();
    longer.extend_from_slice(b"junk");
    assert!(assert_detected(longer, "junk").unwrap().problem.is_some());
    // A trailer that claims a different record count.
    let mut edited = file.clone();
    let n = edited.len();
    edited[n - 72 + 24] ^= 1;
    assert!(
        assert_detected(edited, "trailer")
            .unwrap()
            .problem
            .is_some()
    );
    // Garbage instead of a trailer at the end.
    let mut bad = file.clone();
    let n = bad.len();
    bad[n - 72..].fill(0xAB);
    assert!(
        assert_detected(bad, "bad trailer")
            .unwrap()
            .problem
            .is_some()
    );
}

#[test]
fn random_garbage_never_panics() {
    let file = small_trail(8);
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let mut damaged = file.clone();
        let n = 1 + rng.next_u64() % 8;
        for _ in 0..n {
            let pos = (rng.next_u64() % damaged.len() as u64) as usize;
            damaged[pos] = rng.next_u64() as u8;
        }
        if rng.next_u64().is_multiple_of(4) {
            let cut = (rng.next_u64() % damaged.len() as u64) as usize;
            damaged.truncate(cut);
        }
        let _ = exercise(damaged);
    }
    // Pure noise behind a valid file header.
    let header_len = segments(&file)[0].0;
    for _ in 0..500 {
        let mut noise = file[..header_len].to_vec();
        let len = (rng.next_u64() % 600) as usize;
        let mut tail = vec![0u8; len];
        rng.fill(&mut tail);
        if len > 4 && rng.next_u64().is_multiple_of(2) {
            tail[..4].copy_from_slice(b"CSEG");
        }
        noise.extend_from_slice(&tail);
        let _ = exercise(noise);
    }
    let _ = TrailReader::from_reader(std::io::Cursor::new(Vec::new()));
}
