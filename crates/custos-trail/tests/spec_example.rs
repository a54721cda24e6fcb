//! The worked example in `docs/trail-format.md` is produced by this crate, and its chain values
//! are recomputed here from the spec's formulas with nothing but BLAKE3, so the document and
//! the code cannot drift apart.

mod common;

use common::*;
use custos_trail::{Direction, Record, TrailReader, TrailWriter};
use serde_json::json;

fn example_file() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.trail");
    let mut w =
        TrailWriter::create(&path, &json!({"session_id": "example"}), opts(64 << 10)).unwrap();
    w.append(
        0,
        &Record::ChannelOpen {
            channel: 0,
            kind: "session".into(),
            meta: json!({}),
        },
    )
    .unwrap();
    w.append(1000, &data(0, Direction::ServerToClient, b"hi\r\n"))
        .unwrap();
    w.append(1500, &data(0, Direction::ClientToServer, b"x"))
        .unwrap();
    w.finish(2000).unwrap();
    std::fs::read(&path).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `xxd`-like dump: offset, 16 bytes in hex, ASCII.
fn dump(b: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in b.chunks(16).enumerate() {
        let hexes: Vec<String> = line.iter().map(|x| format!("{x:02x}")).collect();
        let ascii: String = line
            .iter()
            .map(|&c| {
                if (0x20..0x7f).contains(&c) {
                    c as char
                } else {
                    '.'
                }
            })
            .collect();
        out += &format!("{:08x}  {:<47}  |{ascii}|\n", i * 16, hexes.join(" "));
    }
    out
}

/// The chain values of the example, from the spec's formulas.
fn chain_values(file: &[u8]) -> Vec<(String, String)> {
    let segs = segments_all(file);
    let header_len = segs[0].0;
    let mut values = Vec::new();
    let mut chain = *blake3::hash(&file[..header_len]).as_bytes();
    values.push(("chain_-1".to_string(), hex(&chain)));
    for (n, (off, len)) in segs.iter().enumerate() {
        let header = &file[*off..off + 40];
        let payload = &file[off + 40..off + len - 32];
        let stored = &file[off + len - 32..off + len];
        let digest = blake3::hash(payload);
        let mut h = blake3::Hasher::new();
        h.update(&chain);
        h.update(header);
        h.update(digest.as_bytes());
        chain = *h.finalize().as_bytes();
        assert_eq!(
            &chain[..],
            stored,
            "segment {n}: stored chain value = formula"
        );
        if n == 0 {
            values.push(("BLAKE3(payload_0)".to_string(), hex(digest.as_bytes())));
        }
        values.push((format!("chain_{n}"), hex(&chain)));
    }
    values
}

/// All segments including index and end marker: (offset, length).
fn segments_all(file: &[u8]) -> Vec<(usize, usize)> {
    let json_len = u32::from_le_bytes(file[12..16].try_into().unwrap()) as usize;
    let mut pos = 16 + json_len;
    let mut out = Vec::new();
    while pos + 72 + 72 <= file.len() {
        let len = 72 + u32::from_le_bytes(file[pos + 32..pos + 36].try_into().unwrap()) as usize;
        out.push((pos, len));
        pos += len;
    }
    assert_eq!(pos + 72, file.len(), "segments then a 72-byte trailer");
    out
}

#[test]
fn spec_worked_example_matches_the_document() {
    let file = example_file();
    let mut r = open_bytes(file.clone()).unwrap();
    let v = r.verify().unwrap();
    assert!(v.is_ok(), "{v:?}");
    assert_eq!(file.len(), 540);

    let values = chain_values(&file);
    assert_eq!(
        values.last().unwrap().1,
        hex(&file[file.len() - 32..]),
        "trailer holds the final chain"
    );
    assert_eq!(values.last().unwrap().1, hex(&v.final_chain));

    let mut expected = String::from("<!-- example-dump:begin -->\n```text\n");
    expected += &dump(&file);
    expected += "```\n<!-- example-dump:end -->\n";
    let mut expected_values = String::new();
    for (name, value) in &values {
        expected_values += &format!("- `{name}` = `{value}`\n");
    }

    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/trail-format.md");
    let doc = std::fs::read_to_string(doc_path).unwrap_or_default();
    let ok = doc.contains(&expected) && doc.contains(&expected_values);
    if !ok {
        println!("{expected}\n{expected_values}");
    }
    assert!(
        doc.contains(&expected),
        "the hex dump in docs/trail-format.md is out of date (printed above)"
    );
    assert!(
        doc.contains(&expected_values),
        "the chain values in docs/trail-format.md are out of date (printed above)"
    );
}

#[test]
fn example_reads_back() {
    let mut r = open_bytes(example_file()).unwrap();
    let got: Vec<_> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], (1500, data(0, Direction::ClientToServer, b"x")));
    let _ = TrailReader::open; // the same via a path is covered elsewhere
}
