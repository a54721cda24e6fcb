//! Writer/reader/verifier behaviour on real files.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use custos_trail::{
    Direction, MAX_METADATA_RECORD, Record, TrailError, TrailReader, TrailWriter, WriterOptions,
};
use serde_json::json;

fn every_record_type() -> Vec<(u64, Record)> {
    vec![
        (
            0,
            Record::ChannelOpen {
                channel: 0,
                kind: "session".into(),
                meta: json!({"initial_window": 2097152, "max_packet": 32768}),
            },
        ),
        (
            10,
            Record::ChannelRequest {
                channel: 0,
                request: "pty-req".into(),
                details: json!({"term": "xterm-256color", "cols": 80, "rows": 24}),
            },
        ),
        (
            11,
            Record::ChannelRequest {
                channel: 0,
                request: "env".into(),
                details: json!({"name": "LANG", "value": "C.UTF-8"}),
            },
        ),
        (
            12,
            Record::ChannelRequest {
                channel: 0,
                request: "shell".into(),
                details: json!(null),
            },
        ),
        (100, data(0, Direction::ServerToClient, b"$ ")),
        (200, data(0, Direction::ClientToServer, b"l")),
        (300, data(0, Direction::ClientToServer, b"s\r")),
        (
            310,
            Record::Data {
                channel: 0,
                direction: Direction::ServerToClient,
                extended: true,
                bytes: Bytes::from_static(b"ls: warning\n"),
            },
        ),
        (
            400,
            Record::WindowChange {
                channel: 0,
                cols: 100,
                rows: 30,
                px_width: 1000,
                px_height: 600,
            },
        ),
        (
            500,
            Record::Event(json!({"event": "policy denied x11", "channel": 0})),
        ),
        (
            600,
            Record::ChannelOpen {
                channel: 1,
                kind: "direct-tcpip".into(),
                meta: json!({"host": "db", "port": 5432}),
            },
        ),
        (
            610,
            Record::Data {
                channel: 1,
                direction: Direction::ClientToServer,
                extended: true,
                bytes: Bytes::from_static(&[0, 1, 2, 255]),
            },
        ),
        (620, Record::ChannelEof { channel: 1 }),
        (630, Record::ChannelClose { channel: 1 }),
        (
            700,
            Record::ExitStatus {
                channel: 0,
                code: 3,
            },
        ),
        (
            701,
            Record::ExitSignal {
                channel: 0,
                signal: "TERM".into(),
                core_dumped: false,
                message: "terminated".into(),
            },
        ),
        (800, Record::ChannelEof { channel: 0 }),
        (900, Record::ChannelClose { channel: 0 }),
        (
            1_000_000,
            Record::Event(json!({"event": "terminated by admin", "by": "bob"})),
        ),
    ]
}

#[test]
fn every_record_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for segment_bytes in [256, 64 << 10] {
        let path = dir.path().join(format!("t{segment_bytes}.trail"));
        let records = every_record_type();
        let summary = write_trail(&path, opts(segment_bytes), &records, 2_000_000);
        let mut r = TrailReader::open(&path).unwrap();
        assert_eq!(r.header(), &header());
        assert!(r.has_trailer());
        assert_eq!(r.end_micros(), Some(2_000_000));
        assert_eq!(read_all(&mut r), records, "segment_bytes {segment_bytes}");
        assert_eq!(summary.records, records.len() as u64);
        assert_eq!(summary.bytes, std::fs::metadata(&path).unwrap().len());
        // A second records() call continues at the end: nothing more.
        assert_eq!(r.records().count(), 0);
        r.seek_to(0).unwrap();
        assert_eq!(r.records().count(), records.len());
    }
}

#[test]
fn verify_intact_trail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let records = every_record_type();
    let summary = write_trail(&path, opts(256), &records, 2_000_000);
    let mut r = TrailReader::open(&path).unwrap();
    let v = r.verify().unwrap();
    assert!(v.is_ok(), "{v:?}");
    assert!(v.complete);
    assert_eq!(v.problem, None);
    assert_eq!(v.incomplete, None);
    assert_eq!(v.segments, summary.segments);
    assert!(v.segments > 4, "small segments: several record segments");
    assert_eq!(v.records, records.len() as u64);
    assert_eq!(v.first_micros, Some(0));
    assert_eq!(v.last_micros, Some(1_000_000));
    assert_eq!(v.end_micros, Some(2_000_000));
    assert_eq!(v.final_chain, summary.final_chain);
    assert_eq!(v.verified_bytes, summary.bytes);
    // verify() leaves the reader at the start.
    assert_eq!(read_all(&mut r), records);
}

#[test]
fn empty_trail_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let summary = write_trail(&path, opts(1024), &[], 5);
    assert_eq!(summary.segments, 2, "index and end marker only");
    let mut r = TrailReader::open(&path).unwrap();
    let v = r.verify().unwrap();
    assert!(v.is_ok(), "{v:?}");
    assert_eq!(
        (v.records, v.first_micros, v.end_micros),
        (0, None, Some(5))
    );
    assert_eq!(r.records().count(), 0);
    r.seek_to(3).unwrap();
    assert_eq!(r.records().count(), 0);
}

#[test]
fn large_data_record_is_split() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let mut big = vec![0u8; 200_000];
    Rng(7).fill(&mut big);
    let segment_bytes = 64 << 10;
    let records = vec![
        (5, data(3, Direction::ServerToClient, b"before")),
        (10, data(3, Direction::ServerToClient, &big)),
        (20, data(3, Direction::ServerToClient, b"after")),
    ];
    let summary = write_trail(&path, opts(segment_bytes), &records, 30);
    let mut r = TrailReader::open(&path).unwrap();
    let got = read_all(&mut r);
    assert_eq!(got.first(), Some(&records[0]));
    assert_eq!(got.last(), Some(&records[2]));
    let pieces = &got[1..got.len() - 1];
    assert!(
        pieces.len() >= 4,
        "200 000 bytes in 64 KiB segments: {} pieces",
        pieces.len()
    );
    let mut joined = Vec::new();
    for (at, rec) in pieces {
        assert_eq!(*at, 10);
        let Record::Data {
            channel: 3,
            direction: Direction::ServerToClient,
            extended: false,
            bytes,
        } = rec
        else {
            panic!("not a data piece: {rec:?}");
        };
        assert!(bytes.len() < segment_bytes);
        joined.extend_from_slice(bytes);
    }
    assert_eq!(joined, big);
    assert_eq!(summary.records, got.len() as u64);
    let file = std::fs::read(&path).unwrap();
    for (_, len, _) in segments(&file) {
        assert!(len <= segment_bytes, "segment of {len} bytes");
    }
    assert!(r.verify().unwrap().is_ok());
}

/// Records alternating between the streams, strictly increasing in time, in small segments.
fn many_records(n: u64) -> Vec<(u64, Record)> {
    (0..n)
        .map(|i| {
            let dir = if i % 3 == 1 {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            };
            (
                i * 1000 + 7,
                data(
                    0,
                    dir,
                    format!("record {i} {}", "x".repeat((i % 50) as usize)).as_bytes(),
                ),
            )
        })
        .collect()
}

fn check_seeks(r: &mut TrailReader, records: &[(u64, Record)]) {
    let last = records.last().unwrap().0;
    let mut targets: Vec<u64> = vec![
        0,
        1,
        7,
        8,
        999,
        1007,
        1008,
        last - 1,
        last,
        last + 1,
        u64::MAX,
    ];
    targets.extend((0..200).map(|i| i * 9_973 % (last + 2000)));
    for t in targets {
        r.seek_to(t).unwrap();
        let got: Vec<_> = r.records().take(3).map(|x| x.unwrap()).collect();
        let want: Vec<_> = records
            .iter()
            .filter(|(at, _)| *at >= t)
            .take(3)
            .cloned()
            .collect();
        assert_eq!(got, want, "seek_to({t})");
    }
    // And reading to the end from a seek gives every later record.
    r.seek_to(last / 2).unwrap();
    let rest: Vec<_> = r.records().map(|x| x.unwrap()).collect();
    let want: Vec<_> = records
        .iter()
        .filter(|(at, _)| *at >= last / 2)
        .cloned()
        .collect();
    assert_eq!(rest, want);
}

#[test]
fn many_segments_merge_and_seek_with_and_without_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let records = many_records(2000);
    let summary = write_trail(&path, opts(256), &records, 3_000_000);
    assert!(summary.segments > 300, "{} segments", summary.segments);
    let mut r = TrailReader::open(&path).unwrap();
    // Distinct timestamps: the merge of the two streams reproduces the append order exactly.
    assert_eq!(read_all(&mut r), records);
    check_seeks(&mut r, &records);

    // Drop the index, end marker and trailer (as if the writer had crashed before finishing).
    let file = std::fs::read(&path).unwrap();
    let index = segments(&file).into_iter().find(|s| s.2 == 2).unwrap();
    let cut = dir.path().join("cut.trail");
    std::fs::write(&cut, &file[..index.0]).unwrap();
    let mut r = TrailReader::open(&cut).unwrap();
    assert!(!r.has_trailer());
    assert_eq!(read_all(&mut r), records);
    check_seeks(&mut r, &records);
    let v = r.verify().unwrap();
    assert!(
        !v.complete && v.problem.is_none() && v.incomplete.is_some(),
        "{v:?}"
    );
    assert_eq!(v.records, records.len() as u64);
}

#[test]
fn equal_timestamps_across_streams_stay_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let mut records = Vec::new();
    for i in 0..500u64 {
        let t = i / 7 * 100;
        let d = if i.is_multiple_of(2) {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        records.push((t, data(1, d, &i.to_le_bytes())));
    }
    write_trail(&path, opts(300), &records, 0);
    let mut r = TrailReader::open(&path).unwrap();
    let got = read_all(&mut r);
    assert_eq!(got.len(), records.len());
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "non-decreasing");
    // Within each stream the append order is kept.
    for d in [Direction::ClientToServer, Direction::ServerToClient] {
        let pick = |v: &[(u64, Record)]| -> Vec<(u64, Record)> {
            v.iter()
                .filter(|(_, r)| matches!(r, Record::Data { direction, .. } if *direction == d))
                .cloned()
                .collect()
        };
        assert_eq!(pick(&got), pick(&records));
    }
}

#[test]
fn timestamps_never_go_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let records = vec![
        (100, data(0, Direction::ServerToClient, b"a")),
        (50, data(0, Direction::ClientToServer, b"b")),
        (70, data(0, Direction::ServerToClient, b"c")),
    ];
    write_trail(&path, opts(1024), &records, 10);
    let mut r = TrailReader::open(&path).unwrap();
    let times: Vec<u64> = read_all(&mut r).iter().map(|x| x.0).collect();
    assert_eq!(times, [100, 100, 100]);
    assert_eq!(r.end_micros(), Some(100), "end clamped to the last record");
}

#[test]
fn create_refuses_to_overwrite_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let summary = write_trail(&path, opts(1024), &every_record_type(), 1);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read(&path).unwrap();
    let err = TrailWriter::create(&path, &header(), opts(1024)).unwrap_err();
    match err {
        TrailError::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(before.len() as u64, summary.bytes);
}

#[test]
fn invalid_options_and_oversized_records_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bad = TrailWriter::create(&dir.path().join("a"), &header(), opts(100));
    assert!(matches!(bad, Err(TrailError::InvalidOptions(_))));
    assert!(!dir.path().join("a").exists());

    let path = dir.path().join("b");
    let mut w = TrailWriter::create(&path, &header(), opts(1024)).unwrap();
    // A metadata record larger than a segment gets a segment of its own...
    let big = Record::Event(json!({"note": "y".repeat(10_000)}));
    w.append(1, &data(0, Direction::ServerToClient, b"x"))
        .unwrap();
    w.append(2, &big).unwrap();
    assert!(
        w.buffer_capacity() <= 2 * 1024 + 4096,
        "{}",
        w.buffer_capacity()
    );
    // ...but one beyond the hard limit is refused, and nothing is recorded.
    let huge = Record::Event(json!({"note": "z".repeat(MAX_METADATA_RECORD)}));
    assert!(matches!(
        w.append(3, &huge),
        Err(TrailError::RecordTooLarge { .. })
    ));
    w.append(4, &data(0, Direction::ServerToClient, b"y"))
        .unwrap();
    w.finish(5).unwrap();
    let mut r = TrailReader::open(&path).unwrap();
    let got = read_all(&mut r);
    assert_eq!(got.len(), 3);
    assert_eq!(got[1], (2, big));
    assert!(r.verify().unwrap().is_ok());
}

#[test]
fn writer_buffer_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let segment_bytes = 4096;
    let mut w = TrailWriter::create(&path, &header(), opts(segment_bytes)).unwrap();
    let mut rng = Rng(1);
    let mut buf = vec![0u8; 20_000];
    for i in 0..3000u64 {
        let len = (rng.next_u64() % 20_000) as usize;
        rng.fill(&mut buf[..len]);
        let d = if rng.next_u64().is_multiple_of(3) {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        w.append_data(i, (i % 4) as u32, d, i.is_multiple_of(5), &buf[..len])
            .unwrap();
        assert!(
            w.buffer_capacity() <= 2 * segment_bytes,
            "buffer {} after record {i}",
            w.buffer_capacity()
        );
    }
    let summary = w.finish(3000).unwrap();
    let mut r = TrailReader::open(&path).unwrap();
    let v = r.verify().unwrap();
    assert!(v.is_ok(), "{v:?}");
    assert_eq!(v.records, summary.records);
}

#[test]
fn size_overhead_of_bulk_transfer_is_below_two_percent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulk.trail");
    let total: usize = 64 << 20;
    let chunk = 32 << 10;
    let mut w = TrailWriter::create(&path, &header(), WriterOptions::default()).unwrap();
    let mut rng = Rng(99);
    let mut buf = vec![0u8; chunk];
    for i in 0..total / chunk {
        rng.fill(&mut buf);
        w.append_data(i as u64 * 250, 0, Direction::ServerToClient, false, &buf)
            .unwrap();
    }
    let summary = w.finish((total / chunk) as u64 * 250).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(size, summary.bytes);
    let ratio = size as f64 / total as f64;
    println!(
        "64 MiB in 32 KiB records: file {size} bytes, ratio {ratio:.5}, {} segments",
        summary.segments
    );
    assert!(ratio <= 1.02, "ratio {ratio}");
    let mut r = TrailReader::open(&path).unwrap();
    assert!(r.verify().unwrap().is_ok());
}

#[test]
fn interval_flush_tick_and_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let options = WriterOptions {
        segment_bytes: 64 << 10,
        segment_interval: Duration::from_millis(20),
        sync_interval: Duration::from_millis(20),
    };
    let mut w = TrailWriter::create(&path, &header(), options).unwrap();
    let start = w.bytes_written();
    assert_eq!(w.next_deadline(), None);
    w.append(1, &data(0, Direction::ServerToClient, b"a"))
        .unwrap();
    assert_eq!(w.bytes_written(), start, "buffered");
    assert!(w.next_deadline().is_some());
    std::thread::sleep(Duration::from_millis(30));
    w.tick().unwrap();
    assert!(w.bytes_written() > start, "written after the interval");
    // A crash now (no finish) leaves a readable, incomplete trail.
    let on_disk = std::fs::read(&path).unwrap();
    let mut r = open_bytes(on_disk).unwrap();
    assert_eq!(read_all(&mut r).len(), 1);
    let v = r.verify().unwrap();
    assert!(!v.complete && v.problem.is_none(), "{v:?}");
    // Appending after an interval writes on the append itself.
    w.append(2, &data(0, Direction::ClientToServer, b"b"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let before = w.bytes_written();
    w.append(3, &data(0, Direction::ClientToServer, b"c"))
        .unwrap();
    assert!(w.bytes_written() > before);
    w.finish(4).unwrap();
}

#[test]
fn dropped_writer_keeps_what_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let records = every_record_type();
    {
        let mut w = TrailWriter::create(&path, &header(), opts(512)).unwrap();
        for (at, r) in &records {
            w.append(*at, r).unwrap();
        }
        // Dropped without finish (a panicking session task).
    }
    let mut r = TrailReader::open(&path).unwrap();
    assert_eq!(read_all(&mut r), records);
    let v = r.verify().unwrap();
    assert!(!v.complete);
    assert_eq!(v.problem, None);
    assert_eq!(v.records, records.len() as u64);
}

#[test]
fn zero_filled_tail_reads_as_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    write_trail(&path, opts(256), &many_records(50), 0);
    let file = std::fs::read(&path).unwrap();
    let index = segments(&file).into_iter().find(|s| s.2 == 2).unwrap();
    let mut crashed = file[..index.0].to_vec();
    crashed.extend(std::iter::repeat_n(0u8, 5000));
    let mut r = open_bytes(crashed.clone()).unwrap();
    let v = r.verify().unwrap();
    assert!(!v.complete && v.problem.is_none(), "{v:?}");
    assert!(v.incomplete.unwrap().contains("zero-filled"));
    assert_eq!(r.records().filter(|x| x.is_err()).count(), 0);
    // But a zeroed segment followed by more data is a problem.
    let segs = segments(&crashed);
    let mut holed = crashed.clone();
    holed.truncate(index.0);
    let (off, len, _) = segs[3];
    holed[off..off + len].fill(0);
    let v = open_bytes(holed).unwrap().verify().unwrap();
    assert!(v.problem.is_some(), "{v:?}");
}

#[test]
fn storage_full_is_recognisable() {
    let e = TrailError::Io(std::io::Error::from(std::io::ErrorKind::StorageFull));
    assert!(e.is_storage_full());
    assert!(!TrailError::Poisoned.is_storage_full());
}

#[test]
fn seek_uses_the_index_of_a_complete_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trail");
    let records = many_records(300);
    write_trail(&path, opts(256), &records, 400_000);
    let mut file = std::fs::read(&path).unwrap();
    // Zero every index entry's last_micros (the chain is not consulted by seek): a binary
    // search over this index finds no segment ending at or after t > 0, a scan would.
    let (index, len, _) = segments(&file).into_iter().find(|s| s.2 == 2).unwrap();
    let mut e = index + 40;
    while e < index + len - 32 {
        file[e + 24..e + 32].fill(0);
        e += 40;
    }
    let mut r = open_bytes(file.clone()).unwrap();
    r.seek_to(150_000).unwrap();
    assert_eq!(r.records().count(), 0, "the (doctored) index decided");
    // Without the trailer the same file is scanned and the seek lands right.
    let mut r = open_bytes(file[..index].to_vec()).unwrap();
    r.seek_to(150_000).unwrap();
    let first = r.records().next().unwrap().unwrap();
    assert_eq!(first.0, 150_007);
    // And verification notices the doctored index.
    let v = open_bytes(file).unwrap().verify().unwrap();
    assert!(v.problem.is_some(), "{v:?}");
}

#[test]
fn writer_and_reader_can_move_to_other_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<TrailWriter>();
    assert_send::<TrailReader>();
}
