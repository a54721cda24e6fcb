//! asciicast v2 export, checked line by line and (when installed) with the real asciinema.

mod common;

use std::process::Command;

use bytes::Bytes;
use common::*;
use custos_trail::{Direction, Record, TrailReader, export_asciicast};
use serde_json::{Value, json};

fn session() -> Vec<(u64, Record)> {
    let euro = "€".as_bytes(); // e2 82 ac
    vec![
        (
            1_000,
            Record::ChannelOpen {
                channel: 0,
                kind: "session".into(),
                meta: json!({}),
            },
        ),
        // Another channel whose data must not leak into the export.
        (
            1_500,
            Record::ChannelOpen {
                channel: 5,
                kind: "direct-tcpip".into(),
                meta: json!({}),
            },
        ),
        (
            2_000,
            Record::ChannelRequest {
                channel: 0,
                request: "pty-req".into(),
                details: json!({"term": "xterm-256color", "cols": 80, "rows": 24, "px_width": 0, "px_height": 0}),
            },
        ),
        (
            2_100,
            Record::ChannelRequest {
                channel: 0,
                request: "shell".into(),
                details: json!(null),
            },
        ),
        (
            10_000,
            data(
                0,
                Direction::ServerToClient,
                &[b"price: ".as_slice(), &euro[..2]].concat(),
            ),
        ),
        (10_500, data(5, Direction::ServerToClient, b"SECRET-TUNNEL")),
        (
            20_000,
            data(
                0,
                Direction::ServerToClient,
                &[&euro[2..], b" \xff\xfe ok\r\n$ ".as_slice()].concat(),
            ),
        ),
        (
            1_500_000,
            Record::WindowChange {
                channel: 0,
                cols: 100,
                rows: 30,
                px_width: 0,
                px_height: 0,
            },
        ),
        (2_000_000, data(0, Direction::ClientToServer, b"l")),
        (2_100_000, data(0, Direction::ClientToServer, b"s\r")),
        (
            2_200_000,
            Record::Data {
                channel: 0,
                direction: Direction::ServerToClient,
                extended: true,
                bytes: Bytes::from_static(b"stderr line\r\n"),
            },
        ),
        (
            3_000_000,
            data(0, Direction::ServerToClient, "done ✓\r\n".as_bytes()),
        ),
        (
            3_100_000,
            Record::ExitStatus {
                channel: 0,
                code: 0,
            },
        ),
        (3_200_000, Record::ChannelClose { channel: 0 }),
    ]
}

fn export(path: &std::path::Path, channel: Option<u32>, include_input: bool) -> String {
    let mut r = TrailReader::open(path).unwrap();
    let mut out = Vec::new();
    export_asciicast(&mut r, channel, include_input, &mut out).unwrap();
    String::from_utf8(out).expect("asciicast is UTF-8")
}

/// Parses and checks the structure; returns (header, events).
fn check_cast(cast: &str) -> (Value, Vec<(f64, String, String)>) {
    let mut lines = cast.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let mut events = Vec::new();
    let mut last = 0.0;
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 3, "{line}");
        let t = arr[0].as_f64().unwrap();
        let code = arr[1].as_str().unwrap().to_string();
        let text = arr[2].as_str().unwrap().to_string();
        assert!(["o", "i", "r"].contains(&code.as_str()), "{line}");
        assert!(t >= last, "t must not decrease: {line}");
        last = t;
        events.push((t, code, text));
    }
    (header, events)
}

#[test]
fn asciicast_export_is_valid_v2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.trail");
    write_trail(&path, opts(256), &session(), 4_000_000);

    let cast = export(&path, None, false);
    let (header, events) = check_cast(&cast);
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 80);
    assert_eq!(header["height"], 24);
    assert_eq!(header["env"]["TERM"], "xterm-256color");
    // 2026-05-01T12:00:00Z plus the channel's open time (1 ms).
    assert_eq!(header["timestamp"], 1_777_636_800);
    assert!(
        events.iter().all(|e| e.1 != "i"),
        "no input without include_input"
    );
    let output: String = events
        .iter()
        .filter(|e| e.1 == "o")
        .map(|e| e.2.as_str())
        .collect();
    assert_eq!(
        output,
        "price: € \u{FFFD}\u{FFFD} ok\r\n$ stderr line\r\ndone ✓\r\n"
    );
    // The euro sign split between two records is emitted whole, in one event.
    assert!(events.iter().any(|e| e.2.contains('€')));
    assert!(
        !output.contains("SECRET"),
        "other channels are not exported"
    );
    let resize: Vec<_> = events.iter().filter(|e| e.1 == "r").collect();
    assert_eq!(resize.len(), 1);
    assert_eq!(resize[0].2, "100x30");
    assert!(
        (resize[0].0 - 1.499).abs() < 1e-9,
        "t relative to the channel open: {}",
        resize[0].0
    );

    let with_input = export(&path, Some(0), true);
    let (_, events) = check_cast(&with_input);
    let input: String = events
        .iter()
        .filter(|e| e.1 == "i")
        .map(|e| e.2.as_str())
        .collect();
    assert_eq!(input, "ls\r");
    assert!((events.iter().find(|e| e.1 == "i").unwrap().0 - 1.999).abs() < 1e-9);

    // Unknown channel: an error, not an empty cast.
    let mut r = TrailReader::open(&path).unwrap();
    assert!(export_asciicast(&mut r, Some(77), false, &mut Vec::new()).is_err());

    asciinema_cat(&dir.path().join("s.cast"), &cast);
}

#[test]
fn asciicast_without_pty_uses_first_window_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.trail");
    let records = vec![
        (
            0,
            Record::ChannelOpen {
                channel: 2,
                kind: "session".into(),
                meta: json!({}),
            },
        ),
        (
            5,
            Record::WindowChange {
                channel: 2,
                cols: 132,
                rows: 43,
                px_width: 0,
                px_height: 0,
            },
        ),
        (9, data(2, Direction::ServerToClient, b"hi")),
    ];
    write_trail(&path, opts(1024), &records, 10);
    let (header, events) = check_cast(&export(&path, None, true));
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(132), Some(43))
    );
    assert_eq!(
        events.len(),
        1,
        "the size used for the header is not repeated as a resize"
    );
}

/// Runs the real `asciinema cat` (it wants a tty, hence `script`) when it is installed.
fn asciinema_cat(cast_path: &std::path::Path, cast: &str) {
    let found = Command::new("sh")
        .args(["-c", "command -v asciinema && command -v script"])
        .output();
    if !found.is_ok_and(|o| o.status.success()) {
        println!(
            "note: asciinema (or script) is not installed; skipping the `asciinema cat` check"
        );
        return;
    }
    std::fs::write(cast_path, cast).unwrap();
    let cmd = format!("asciinema cat '{}'", cast_path.display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "asciinema cat failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("price: €"), "{stdout}");
    assert!(stdout.contains("done ✓"), "{stdout}");
}
