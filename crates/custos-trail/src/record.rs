//! Records: what happened on the session, in the compact binary layout used inside segment
//! payloads.
//!
//! Wire form of one record (see `docs/trail-format.md`, "Records"):
//! `type: u8`, `dt: varint` (microseconds after the segment's first timestamp),
//! `len: varint` (body length), `body[len]`.
//! Why a length on every record: a reader can step over a record without understanding its
//! body, and a body can never run into the next record. Why the Data body is just the channel
//! and the raw bytes: bulk transfers must cost at most ~2 % extra, so no encoding of the bytes.

use bytes::Bytes;
use serde_json::Value;

use crate::varint;

/// Which way data flowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the SSH client (the user) to the target server: keystrokes, uploads, typed
    /// passwords. Stored in stream 1.
    ClientToServer,
    /// From the target server to the client: terminal output, downloads. Stored in stream 0.
    ServerToClient,
}

/// One event of a recorded session.
///
/// JSON fields are opaque to this crate: the gateway decides what goes in them (see the
/// conventions in `docs/trail-format.md` for `pty-req`, which the asciicast export reads).
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A channel was opened (`kind`: "session", "direct-tcpip", ...).
    ChannelOpen {
        channel: u32,
        kind: String,
        meta: Value,
    },
    /// A channel request ("pty-req", "shell", "exec", "subsystem", "env", ...).
    ChannelRequest {
        channel: u32,
        request: String,
        details: Value,
    },
    /// Channel data. `extended` marks SSH extended data (stderr).
    Data {
        channel: u32,
        direction: Direction,
        extended: bool,
        bytes: Bytes,
    },
    /// The client's terminal changed size.
    WindowChange {
        channel: u32,
        cols: u32,
        rows: u32,
        px_width: u32,
        px_height: u32,
    },
    /// The remote command exited with `code`.
    ExitStatus { channel: u32, code: u32 },
    /// The remote command was killed by `signal` (SSH name without "SIG", e.g. "TERM").
    ExitSignal {
        channel: u32,
        signal: String,
        core_dumped: bool,
        message: String,
    },
    /// One side sent EOF on the channel.
    ChannelEof { channel: u32 },
    /// The channel was closed.
    ChannelClose { channel: u32 },
    /// A gateway event ("policy denied x11", "storage full", "terminated by admin", ...).
    Event(Value),
}

/// On-disk record type codes.
pub mod code {
    pub const CHANNEL_OPEN: u8 = 0x01;
    pub const CHANNEL_REQUEST: u8 = 0x02;
    pub const WINDOW_CHANGE: u8 = 0x03;
    pub const EXIT_STATUS: u8 = 0x04;
    pub const EXIT_SIGNAL: u8 = 0x05;
    pub const CHANNEL_EOF: u8 = 0x06;
    pub const CHANNEL_CLOSE: u8 = 0x07;
    pub const EVENT: u8 = 0x08;
    /// Data: `0x10 | 0x02 if client-to-server | 0x01 if extended`.
    pub const DATA: u8 = 0x10;
    pub const DATA_CLIENT_TO_SERVER: u8 = 0x02;
    pub const DATA_EXTENDED: u8 = 0x01;
}

impl Record {
    /// The stream the record belongs to: 1 for client-to-server data, 0 for everything else.
    pub fn stream(&self) -> usize {
        match self {
            Record::Data {
                direction: Direction::ClientToServer,
                ..
            } => 1,
            _ => 0,
        }
    }

    /// The channel the record is about (`None` for [`Record::Event`]).
    pub fn channel(&self) -> Option<u32> {
        match self {
            Record::ChannelOpen { channel, .. }
            | Record::ChannelRequest { channel, .. }
            | Record::Data { channel, .. }
            | Record::WindowChange { channel, .. }
            | Record::ExitStatus { channel, .. }
            | Record::ExitSignal { channel, .. }
            | Record::ChannelEof { channel }
            | Record::ChannelClose { channel } => Some(*channel),
            Record::Event(_) => None,
        }
    }
}

/// The type code of a Data record.
pub fn data_code(direction: Direction, extended: bool) -> u8 {
    let mut c = code::DATA;
    if direction == Direction::ClientToServer {
        c |= code::DATA_CLIENT_TO_SERVER;
    }
    if extended {
        c |= code::DATA_EXTENDED;
    }
    c
}

/// Bytes of a record's type, time delta and body length fields.
pub fn prefix_len(dt: u64, body_len: usize) -> usize {
    1 + varint::len(dt) + varint::len(body_len as u64)
}

/// Appends a Data record without building a [`Record`] (the writer's hot path).
pub fn encode_data(
    out: &mut Vec<u8>,
    dt: u64,
    channel: u32,
    direction: Direction,
    extended: bool,
    bytes: &[u8],
) {
    let body_len = varint::len(u64::from(channel)) + bytes.len();
    out.push(data_code(direction, extended));
    varint::put(out, dt);
    varint::put(out, body_len as u64);
    varint::put(out, u64::from(channel));
    out.extend_from_slice(bytes);
}

/// Encodes the body of a non-Data record into `body` (cleared first) and returns its type code.
pub fn encode_body(record: &Record, body: &mut Vec<u8>) -> Result<u8, serde_json::Error> {
    body.clear();
    let put_str = |body: &mut Vec<u8>, s: &str| {
        varint::put(body, s.len() as u64);
        body.extend_from_slice(s.as_bytes());
    };
    let code = match record {
        Record::ChannelOpen {
            channel,
            kind,
            meta,
        } => {
            varint::put(body, u64::from(*channel));
            put_str(body, kind);
            serde_json::to_writer(&mut *body, meta)?;
            code::CHANNEL_OPEN
        }
        Record::ChannelRequest {
            channel,
            request,
            details,
        } => {
            varint::put(body, u64::from(*channel));
            put_str(body, request);
            serde_json::to_writer(&mut *body, details)?;
            code::CHANNEL_REQUEST
        }
        Record::Data {
            channel,
            direction,
            extended,
            bytes,
        } => {
            varint::put(body, u64::from(*channel));
            body.extend_from_slice(bytes);
            data_code(*direction, *extended)
        }
        Record::WindowChange {
            channel,
            cols,
            rows,
            px_width,
            px_height,
        } => {
            for v in [*channel, *cols, *rows, *px_width, *px_height] {
                varint::put(body, u64::from(v));
            }
            code::WINDOW_CHANGE
        }
        Record::ExitStatus { channel, code } => {
            varint::put(body, u64::from(*channel));
            varint::put(body, u64::from(*code));
            code::EXIT_STATUS
        }
        Record::ExitSignal {
            channel,
            signal,
            core_dumped,
            message,
        } => {
            varint::put(body, u64::from(*channel));
            put_str(body, signal);
            body.push(u8::from(*core_dumped));
            body.extend_from_slice(message.as_bytes());
            code::EXIT_SIGNAL
        }
        Record::ChannelEof { channel } => {
            varint::put(body, u64::from(*channel));
            code::CHANNEL_EOF
        }
        Record::ChannelClose { channel } => {
            varint::put(body, u64::from(*channel));
            code::CHANNEL_CLOSE
        }
        Record::Event(value) => {
            serde_json::to_writer(&mut *body, value)?;
            code::EVENT
        }
    };
    Ok(code)
}

/// Appends a record whose body was produced by [`encode_body`].
pub fn encode_with_body(out: &mut Vec<u8>, code: u8, dt: u64, body: &[u8]) {
    out.push(code);
    varint::put(out, dt);
    varint::put(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// A cursor over a body, with errors as plain reasons.
struct Body<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Body<'a> {
    fn varint(&mut self, what: &str) -> Result<u64, String> {
        varint::get(self.bytes, &mut self.pos).map_err(|e| format!("{what}: bad varint ({e:?})"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let v = self.varint(what)?;
        u32::try_from(v).map_err(|_| format!("{what}: {v} does not fit in 32 bits"))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| format!("{what}: length overflow"))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| format!("{what}: runs past the end of the record"))?;
        self.pos = end;
        Ok(s)
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.varint(what)?;
        let n = usize::try_from(n).map_err(|_| format!("{what}: length too large"))?;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| format!("{what}: not UTF-8"))
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = self.bytes.get(self.pos..).unwrap_or_default();
        self.pos = self.bytes.len();
        s
    }

    fn json(&mut self, what: &str) -> Result<Value, String> {
        serde_json::from_slice(self.rest()).map_err(|e| format!("{what}: bad JSON ({e})"))
    }

    fn end(&self, what: &str) -> Result<(), String> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(format!("{what}: trailing bytes in record body"))
        }
    }
}

/// Decodes the record at `*pos` of a segment payload whose first timestamp is `base`.
/// Returns the record's absolute timestamp and the record, and advances `*pos`.
/// Data bytes are zero-copy slices of `payload`.
pub fn decode(payload: &Bytes, pos: &mut usize, base: u64) -> Result<(u64, Record), String> {
    let mut p = *pos;
    let code = *payload
        .get(p)
        .ok_or_else(|| "record runs past the end of the segment".to_string())?;
    p += 1;
    let dt = varint::get(payload, &mut p).map_err(|e| format!("record time delta: {e:?}"))?;
    let len = varint::get(payload, &mut p).map_err(|e| format!("record length: {e:?}"))?;
    let len = usize::try_from(len).map_err(|_| "record length too large".to_string())?;
    let start = p;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= payload.len())
        .ok_or_else(|| "record runs past the end of the segment".to_string())?;
    let at = base
        .checked_add(dt)
        .ok_or_else(|| "record timestamp overflows".to_string())?;
    let bytes = payload.get(start..end).unwrap_or_default();
    let mut body = Body { bytes, pos: 0 };
    let record = match code {
        code::CHANNEL_OPEN => {
            let channel = body.u32("channel open: channel")?;
            let kind = body.string("channel open: kind")?;
            let meta = body.json("channel open: metadata")?;
            Record::ChannelOpen {
                channel,
                kind,
                meta,
            }
        }
        code::CHANNEL_REQUEST => {
            let channel = body.u32("channel request: channel")?;
            let request = body.string("channel request: request")?;
            let details = body.json("channel request: details")?;
            Record::ChannelRequest {
                channel,
                request,
                details,
            }
        }
        code::WINDOW_CHANGE => {
            let channel = body.u32("window change: channel")?;
            let cols = body.u32("window change: cols")?;
            let rows = body.u32("window change: rows")?;
            let px_width = body.u32("window change: pixel width")?;
            let px_height = body.u32("window change: pixel height")?;
            body.end("window change")?;
            Record::WindowChange {
                channel,
                cols,
                rows,
                px_width,
                px_height,
            }
        }
        code::EXIT_STATUS => {
            let channel = body.u32("exit status: channel")?;
            let code = body.u32("exit status: code")?;
            body.end("exit status")?;
            Record::ExitStatus { channel, code }
        }
        code::EXIT_SIGNAL => {
            let channel = body.u32("exit signal: channel")?;
            let signal = body.string("exit signal: signal")?;
            let core = body.take(1, "exit signal: core dumped")?;
            let core_dumped = match core {
                [0] => false,
                [1] => true,
                _ => return Err("exit signal: core dumped flag is not 0 or 1".into()),
            };
            let message = String::from_utf8(body.rest().to_vec())
                .map_err(|_| "exit signal: message is not UTF-8".to_string())?;
            Record::ExitSignal {
                channel,
                signal,
                core_dumped,
                message,
            }
        }
        code::CHANNEL_EOF => {
            let channel = body.u32("channel eof: channel")?;
            body.end("channel eof")?;
            Record::ChannelEof { channel }
        }
        code::CHANNEL_CLOSE => {
            let channel = body.u32("channel close: channel")?;
            body.end("channel close")?;
            Record::ChannelClose { channel }
        }
        code::EVENT => Record::Event(body.json("event")?),
        c if c & !0x03 == code::DATA => {
            let channel = body.u32("data: channel")?;
            let data_start = start + body.pos;
            let direction = if c & code::DATA_CLIENT_TO_SERVER != 0 {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            };
            Record::Data {
                channel,
                direction,
                extended: c & code::DATA_EXTENDED != 0,
                bytes: payload.slice(data_start..end),
            }
        }
        other => return Err(format!("unknown record type {other:#04x}")),
    };
    *pos = end;
    Ok((at, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all_records() -> Vec<Record> {
        vec![
            Record::ChannelOpen {
                channel: 0,
                kind: "session".into(),
                meta: json!({"window": 2097152}),
            },
            Record::ChannelRequest {
                channel: 0,
                request: "pty-req".into(),
                details: json!({"term": "xterm", "cols": 80, "rows": 24}),
            },
            Record::Data {
                channel: 0,
                direction: Direction::ServerToClient,
                extended: false,
                bytes: Bytes::from_static(b"hello"),
            },
            Record::Data {
                channel: 1,
                direction: Direction::ServerToClient,
                extended: true,
                bytes: Bytes::from_static(b"err"),
            },
            Record::Data {
                channel: 2,
                direction: Direction::ClientToServer,
                extended: false,
                bytes: Bytes::new(),
            },
            Record::Data {
                channel: u32::MAX,
                direction: Direction::ClientToServer,
                extended: true,
                bytes: Bytes::from_static(&[0, 255, 128]),
            },
            Record::WindowChange {
                channel: 0,
                cols: 100,
                rows: 30,
                px_width: 800,
                px_height: 600,
            },
            Record::ExitStatus {
                channel: 0,
                code: 255,
            },
            Record::ExitSignal {
                channel: 0,
                signal: "KILL".into(),
                core_dumped: true,
                message: "killed ✓".into(),
            },
            Record::ChannelEof { channel: 3 },
            Record::ChannelClose { channel: 3 },
            Record::Event(json!({"event": "terminated by admin"})),
            Record::Event(serde_json::Value::Null),
        ]
    }

    #[test]
    fn every_record_round_trips() {
        let mut payload = Vec::new();
        let mut body = Vec::new();
        let records = all_records();
        for (i, r) in records.iter().enumerate() {
            let code = encode_body(r, &mut body).unwrap();
            encode_with_body(&mut payload, code, i as u64 * 1000, &body);
        }
        let payload = Bytes::from(payload);
        let mut pos = 0;
        for (i, r) in records.iter().enumerate() {
            let (at, got) = decode(&payload, &mut pos, 5).unwrap();
            assert_eq!(at, 5 + i as u64 * 1000);
            assert_eq!(&got, r);
        }
        assert_eq!(pos, payload.len());
    }

    #[test]
    fn encode_data_matches_generic_encoding() {
        let r = Record::Data {
            channel: 300,
            direction: Direction::ClientToServer,
            extended: false,
            bytes: Bytes::from_static(b"ls\r"),
        };
        let mut body = Vec::new();
        let code = encode_body(&r, &mut body).unwrap();
        let mut a = Vec::new();
        encode_with_body(&mut a, code, 77, &body);
        let mut b = Vec::new();
        encode_data(&mut b, 77, 300, Direction::ClientToServer, false, b"ls\r");
        assert_eq!(a, b);
        assert_eq!(a, [0x12, 77, 5, 0xac, 0x02, b'l', b's', b'\r']);
        assert_eq!(prefix_len(77, 5), 3);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (seed >> ((i % 8) * 8)) as u8 ^ i as u8)
                .collect();
            let payload = Bytes::from(bytes);
            let mut pos = 0;
            while pos < payload.len() {
                if decode(&payload, &mut pos, u64::MAX - 3).is_err() {
                    break;
                }
            }
        }
    }
}
