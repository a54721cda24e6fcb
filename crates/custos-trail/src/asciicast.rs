//! Export of one terminal channel as asciicast v2
//! (<https://docs.asciinema.org/manual/asciicast/v2/>), so that standard players (asciinema,
//! asciinema-player) can replay a recorded session.
//!
//! Why two passes: the asciicast header (terminal size) comes first in the file but the
//! information (the channel's `pty-req` or first window change) may come anywhere; the first
//! pass reads only until it is found, the second streams the events. Memory stays bounded: the
//! only per-session state is a map of channel open times.

use std::collections::HashMap;
use std::io::{BufWriter, Write};

use serde_json::{Map, Value, json};

use crate::error::TrailError;
use crate::reader::TrailReader;
use crate::record::{Direction, Record};

/// Writes an asciicast v2 file of one session channel's terminal.
///
/// - `channel`: the channel to export; `None` picks the first channel with a `pty-req`
///   (else the first with a window change, else the first "session" channel).
/// - Header: `{"version": 2, "width", "height", "timestamp"?, "env"?: {"TERM"}}`, the size and
///   `TERM` from the channel's `pty-req` details (`cols`, `rows`, `term`; see the spec's
///   conventions) or its first window change (default 80×24); `timestamp` from the trail
///   header's `created_at` (RFC 3339 string or Unix seconds) plus the channel's open time.
/// - Events `[t, "o", text]` for server-to-client data (stdout and stderr), `[t, "i", text]`
///   for client-to-server data only if `include_input` (it may contain typed passwords), and
///   `[t, "r", "COLSxROWS"]` for window changes; `t` in seconds since the channel opened.
/// - Bytes are decoded as UTF-8 incrementally per direction: a character split across
///   records is emitted whole, and invalid sequences become U+FFFD, so every line is JSON.
///
/// The reader is left positioned at the first record afterwards.
pub fn export_asciicast(
    reader: &mut TrailReader,
    channel: Option<u32>,
    include_input: bool,
    out: &mut dyn Write,
) -> Result<(), TrailError> {
    let plan = plan(reader, channel)?;
    let result = write_cast(reader, &plan, include_input, out);
    reader.seek_to(0)?;
    result
}

/// What the first pass found.
struct Plan {
    channel: u32,
    start: u64,
    cols: u32,
    rows: u32,
    term: Option<String>,
}

fn plan(reader: &mut TrailReader, wanted: Option<u32>) -> Result<Plan, TrailError> {
    reader.seek_to(0)?;
    let matches = |c: u32| wanted.is_none_or(|w| w == c);
    let mut first_seen: HashMap<u32, u64> = HashMap::new();
    let mut pty: Option<(u32, Value)> = None;
    let mut window: Option<(u32, u32, u32)> = None;
    let mut session: Option<u32> = None;
    for item in reader.records() {
        let (at, record) = item?;
        let Some(c) = record.channel() else { continue };
        if !matches(c) {
            continue;
        }
        first_seen.entry(c).or_insert(at);
        match record {
            Record::ChannelRequest {
                request, details, ..
            } if request == "pty-req" => {
                pty = Some((c, details));
                break;
            }
            Record::WindowChange { cols, rows, .. } if window.is_none() => {
                window = Some((c, cols, rows));
            }
            Record::ChannelOpen { kind, .. } if kind == "session" && session.is_none() => {
                session = Some(c);
            }
            _ => {}
        }
    }
    let channel = match (wanted, &pty, window, session) {
        (Some(w), ..) => w,
        (None, Some((c, _)), _, _) => *c,
        (None, None, Some((c, _, _)), _) => c,
        (None, None, None, Some(c)) => c,
        (None, None, None, None) => {
            return Err(TrailError::Export(
                "the trail has no terminal channel (no pty-req, window change or session)".into(),
            ));
        }
    };
    let Some(&start) = first_seen.get(&channel) else {
        return Err(TrailError::Export(format!(
            "channel {channel} does not occur in the trail"
        )));
    };
    let (mut cols, mut rows, mut term) = (80, 24, None);
    if let Some((c, details)) = &pty
        && *c == channel
    {
        let num = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| details.get(*k).and_then(Value::as_u64))
                .and_then(|v| u32::try_from(v).ok())
                .filter(|&v| v > 0)
        };
        cols = num(&["cols", "width"]).unwrap_or(cols);
        rows = num(&["rows", "height"]).unwrap_or(rows);
        term = details
            .get("term")
            .and_then(Value::as_str)
            .map(str::to_string);
    } else if let Some((c, w, h)) = window
        && c == channel
        && w > 0
        && h > 0
    {
        (cols, rows) = (w, h);
    }
    Ok(Plan {
        channel,
        start,
        cols,
        rows,
        term,
    })
}

/// Unix seconds of the trail header's `created_at`, if present and parseable.
fn created_at(header: &Value) -> Option<f64> {
    match header.get("created_at")? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()?;
            Some(t.unix_timestamp_nanos() as f64 / 1e9)
        }
        _ => None,
    }
}

fn write_cast(
    reader: &mut TrailReader,
    plan: &Plan,
    include_input: bool,
    out: &mut dyn Write,
) -> Result<(), TrailError> {
    let mut out = BufWriter::with_capacity(64 << 10, out);
    let mut header = Map::new();
    header.insert("version".into(), json!(2));
    header.insert("width".into(), json!(plan.cols));
    header.insert("height".into(), json!(plan.rows));
    if let Some(created) = created_at(reader.header()) {
        let ts = created + plan.start as f64 / 1e6;
        header.insert("timestamp".into(), json!(ts.floor() as i64));
    }
    if let Some(term) = &plan.term {
        header.insert("env".into(), json!({ "TERM": term }));
    }
    serde_json::to_writer(&mut out, &Value::Object(header))?;
    out.write_all(b"\n")?;

    let mut output = Utf8Stream::default();
    let mut input = Utf8Stream::default();
    let (mut cols, mut rows) = (plan.cols, plan.rows);
    let mut last_t = 0u64;
    reader.seek_to(plan.start)?;
    for item in reader.records() {
        let (at, record) = item?;
        if record.channel() != Some(plan.channel) {
            continue;
        }
        let t = at.saturating_sub(plan.start).max(last_t);
        last_t = t;
        match record {
            Record::Data {
                direction: Direction::ServerToClient,
                bytes,
                ..
            } => event(&mut out, t, "o", &output.feed(&bytes))?,
            Record::Data {
                direction: Direction::ClientToServer,
                bytes,
                ..
            } if include_input => event(&mut out, t, "i", &input.feed(&bytes))?,
            Record::WindowChange {
                cols: c, rows: r, ..
            } if (c, r) != (cols, rows) && c > 0 && r > 0 => {
                (cols, rows) = (c, r);
                event(&mut out, t, "r", &format!("{c}x{r}"))?;
            }
            Record::ChannelClose { .. } => break,
            _ => {}
        }
    }
    event(&mut out, last_t, "o", &output.finish())?;
    if include_input {
        event(&mut out, last_t, "i", &input.finish())?;
    }
    out.flush()?;
    Ok(())
}

/// Writes one event line; nothing for empty text.
fn event(out: &mut impl Write, micros: u64, code: &str, text: &str) -> Result<(), TrailError> {
    if text.is_empty() {
        return Ok(());
    }
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    write!(out, "[{secs}.{frac:06}, \"{code}\", ")?;
    serde_json::to_writer(&mut *out, text)?;
    out.write_all(b"]\n")?;
    Ok(())
}

/// Incremental UTF-8 decoding: holds back an incomplete trailing sequence (at most 3 bytes)
/// until the next chunk, replaces invalid sequences with U+FFFD (as `from_utf8_lossy` does).
#[derive(Debug, Default)]
pub(crate) struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> String {
        let joined;
        let input: &[u8] = if self.pending.is_empty() {
            bytes
        } else {
            let mut j = std::mem::take(&mut self.pending);
            j.extend_from_slice(bytes);
            joined = j;
            &joined
        };
        let mut out = String::with_capacity(input.len());
        let mut rest = input;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = after.get(n..).unwrap_or_default();
                        }
                        None => {
                            // An incomplete sequence at the end: wait for the rest.
                            self.pending = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// Flushes an incomplete sequence left at the end of the stream as U+FFFD.
    pub(crate) fn finish(&mut self) -> String {
        if std::mem::take(&mut self.pending).is_empty() {
            String::new()
        } else {
            "\u{FFFD}".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Stream;

    #[test]
    fn utf8_across_chunks_and_invalid_bytes() {
        let text = "a€b😀c".as_bytes();
        // Every split point of every character yields the same text.
        for cut in 0..=text.len() {
            let mut d = Utf8Stream::default();
            let mut s = d.feed(&text[..cut]);
            s += &d.feed(&text[cut..]);
            s += &d.finish();
            assert_eq!(s, "a€b😀c", "cut at {cut}");
        }
        let mut d = Utf8Stream::default();
        let s = d.feed(b"x\xffy\xe2\x82") + &d.feed(b"") + &d.finish();
        assert_eq!(s, "x\u{FFFD}y\u{FFFD}");
        let mut d = Utf8Stream::default();
        assert_eq!(d.feed(b"\xe2\x82z"), "\u{FFFD}z");
        assert_eq!(String::from_utf8_lossy(b"\xe2\x82z"), "\u{FFFD}z");
    }
}
