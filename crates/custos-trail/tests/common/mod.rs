//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use custos_trail::{Direction, Record, TrailReader, TrailSummary, TrailWriter, WriterOptions};
use serde_json::{Value, json};

/// Options whose segmentation does not depend on how fast the test runs.
pub fn opts(segment_bytes: usize) -> WriterOptions {
    WriterOptions {
        segment_bytes,
        segment_interval: Duration::from_secs(3600),
        sync_interval: Duration::from_secs(3600),
    }
}

pub fn header() -> Value {
    json!({
        "session_id": "s-42",
        "protocol": "ssh",
        "created_at": "2026-05-01T12:00:00Z",
        "node_id": "node-1",
        "connection_policy": "admins",
        "client": {"address": "192.0.2.10", "port": 50022},
        "target": {"address": "198.51.100.7", "port": 22},
        "gateway_username": "alice",
        "target_username": "root",
    })
}

pub fn data(channel: u32, direction: Direction, bytes: &[u8]) -> Record {
    Record::Data {
        channel,
        direction,
        extended: false,
        bytes: Bytes::copy_from_slice(bytes),
    }
}

pub fn write_trail(
    path: &Path,
    options: WriterOptions,
    records: &[(u64, Record)],
    end: u64,
) -> TrailSummary {
    let mut w = TrailWriter::create(path, &header(), options).unwrap();
    for (at, r) in records {
        w.append(*at, r).unwrap();
    }
    w.finish(end).unwrap()
}

pub fn read_all(reader: &mut TrailReader) -> Vec<(u64, Record)> {
    reader.records().map(|r| r.unwrap()).collect()
}

/// A deterministic pseudo-random byte generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// (offset, total length, kind byte) of every segment, by walking the headers.
pub fn segments(file: &[u8]) -> Vec<(usize, usize, u8)> {
    let json_len = u32::from_le_bytes(file[12..16].try_into().unwrap()) as usize;
    let mut pos = 16 + json_len;
    let mut out = Vec::new();
    while pos + 40 <= file.len() && &file[pos..pos + 4] == b"CSEG" {
        let len = u32::from_le_bytes(file[pos + 32..pos + 36].try_into().unwrap()) as usize;
        let total = 72 + len;
        if pos + total > file.len() {
            break;
        }
        out.push((pos, total, file[pos + 4]));
        pos += total;
    }
    out
}

/// Opens an in-memory trail.
pub fn open_bytes(bytes: Vec<u8>) -> Result<TrailReader, custos_trail::TrailError> {
    TrailReader::from_reader(std::io::Cursor::new(bytes))
}
