//! Write/verify throughput. Not a CI gate: run with
//! `cargo test --release -p custos-trail --test throughput -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::*;
use custos_trail::{Direction, TrailReader, TrailWriter, WriterOptions};

/// (user, system) CPU seconds of this process so far (Linux `/proc/self/stat`, 100 Hz ticks).
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime / 100.0, stime / 100.0))
}

#[test]
#[ignore = "benchmark: run in release mode with --ignored --nocapture"]
fn write_256_mib_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulk.trail");
    let total: usize = 256 << 20;
    let chunk = 32 << 10;
    let mut payload = vec![0u8; chunk];
    Rng(3).fill(&mut payload);

    // TRAIL_SEGMENT_BYTES / TRAIL_SYNC_MS override the defaults, to compare settings.
    let mut options = WriterOptions::default();
    if let Some(n) = std::env::var("TRAIL_SEGMENT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.segment_bytes = n;
    }
    if let Some(ms) = std::env::var("TRAIL_SYNC_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.sync_interval = std::time::Duration::from_millis(ms);
    }
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut w = TrailWriter::create(&path, &header(), options).unwrap();
    for i in 0..total / chunk {
        // Vary the bytes a little so no layer can cheat on identical input.
        payload[0] = i as u8;
        let dir = if i.is_multiple_of(64) {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        w.append_data(i as u64 * 100, 0, dir, false, &payload)
            .unwrap();
    }
    let summary = w.finish((total / chunk) as u64 * 100).unwrap();
    let wall = start.elapsed().as_secs_f64();
    let mib = total as f64 / (1 << 20) as f64;
    let cpu = cpu_seconds().zip(cpu0).map_or("?".into(), |(a, b)| {
        let gib = mib / 1024.0;
        format!(
            "{:.3} user + {:.3} system",
            (a.0 - b.0) / gib,
            (a.1 - b.1) / gib
        )
    });
    println!(
        "write: {mib:.0} MiB in {wall:.3} s = {:.0} MB/s; CPU s/GiB: {cpu}; file/payload {:.5}",
        total as f64 / wall / 1e6,
        summary.bytes as f64 / total as f64
    );

    let start = Instant::now();
    let mut r = TrailReader::open(&path).unwrap();
    let v = r.verify().unwrap();
    let wall = start.elapsed().as_secs_f64();
    assert!(v.is_ok(), "{v:?}");
    println!("verify: {:.0} MB/s", summary.bytes as f64 / wall / 1e6);

    let start = Instant::now();
    let mut n = 0u64;
    for rec in r.records() {
        rec.unwrap();
        n += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(n, summary.records);
    println!(
        "read (merge + chain check): {:.0} MB/s",
        summary.bytes as f64 / wall / 1e6
    );
}
