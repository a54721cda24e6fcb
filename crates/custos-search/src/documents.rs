//! Turning a session record and its terminal text into index documents.

use custos_sessions::SessionRecord;
use custos_trail::text::{TextChunk, TextKind};
use tantivy::schema::Field;
use tantivy::{DateTime, TantivyDocument};

use crate::schema::{Fields, KIND_SESSION, KIND_TEXT, sid};

/// Text documents hold up to this much text. A content condition visits every document holding
/// a word, so fewer, larger documents keep common words cheap (10 GB of text is about 330,000
/// documents); hits still point at their own line (see `lines`).
pub const TEXT_DOCUMENT_BYTES: usize = 32 * 1024;

/// The session document of `record`. `now_micros` stands in for the end of an active session
/// when computing its duration.
pub fn session_document(fields: &Fields, record: &SessionRecord) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    let mut keyword = |name: &str, value: Option<&str>| {
        if let (Ok(field), Some(value)) = (fields.schema.get_field(name), value) {
            doc.add_text(field, value);
        }
    };
    let ip = |e: &custos_sessions::Endpoint| e.ip.to_string();
    keyword("protocol", Some(&record.protocol));
    keyword("verdict", Some(record.verdict.as_str()));
    keyword("node_id", Some(&record.node_id));
    keyword("client_ip", Some(&ip(&record.client)));
    keyword("server_ip", record.server.as_ref().map(ip).as_deref());
    keyword(
        "server_local_ip",
        record.server_local.as_ref().map(ip).as_deref(),
    );
    keyword("gateway_ip", Some(&ip(&record.gateway)));
    keyword("server_username", record.server_username.as_deref());
    keyword("gateway_username", record.gateway_username.as_deref());
    keyword("connection_policy", Some(&record.connection_policy));
    keyword("connection_policy_id", Some(&record.connection_policy_id));
    keyword("channel_policy", record.channel_policy.as_deref());
    keyword("auth_method", record.auth_method.as_deref());
    keyword("session_id", Some(&record.session_id));
    keyword("reason", record.reason.as_deref());

    let mut number = |name: &str, value: Option<i64>| {
        if let (Ok(field), Some(value)) = (fields.schema.get_field(name), value) {
            doc.add_i64(field, value);
        }
    };
    number("client_port", Some(i64::from(record.client.port)));
    number("server_port", record.server.map(|s| i64::from(s.port)));
    number("gateway_port", Some(i64::from(record.gateway.port)));
    // An active session's duration is unknown until it ends; it is indexed then.
    number("duration", record.end_time.map(|end| record.duration(end)));

    let mut instant = |name: &str, micros: Option<i64>| {
        if let (Ok(field), Some(micros)) = (fields.schema.get_field(name), micros) {
            doc.add_date(field, DateTime::from_timestamp_micros(micros));
        }
    };
    instant("start_time", Some(record.start_time));
    instant("end_time", record.end_time);

    let mut flag = |name: &str, value: bool| {
        if let Ok(field) = fields.schema.get_field(name) {
            doc.add_bool(field, value);
        }
    };
    flag("active", record.active);
    flag("archived", record.archived);
    flag("has_accepted_channel", record.has_accepted_channel);

    doc.add_u64(fields.kind, KIND_SESSION);
    doc.add_u64(fields.sid, sid(&record.key));
    doc.add_text(fields.key, &record.key);
    doc
}

/// Packs a session's text lines into documents of about [`TEXT_DOCUMENT_BYTES`], one kind of
/// text per document. Lines arrive in time order; a document never mixes screen and commands.
#[derive(Default)]
pub struct TextPacker {
    screen: Pending,
    command: Pending,
}

#[derive(Default)]
struct Pending {
    at: u64,
    /// The time of the last line added.
    last: u64,
    /// Lines joined by `\n` (lines never contain one).
    text: String,
    /// Per line, its time after the previous line's (the first: after `at`), in microseconds,
    /// as LEB128 varints: one or two bytes for most lines.
    lines: Vec<u8>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn push(&mut self, chunk: &TextChunk) {
        if self.is_empty() {
            self.at = chunk.at;
            self.last = chunk.at;
        } else {
            self.text.push('\n');
        }
        let mut delta = chunk.at.saturating_sub(self.last);
        self.last = self.last.max(chunk.at);
        loop {
            let byte = (delta & 0x7f) as u8;
            delta >>= 7;
            if delta == 0 {
                self.lines.push(byte);
                break;
            }
            self.lines.push(byte | 0x80);
        }
        if chunk.text.contains('\n') {
            self.text.push_str(&chunk.text.replace('\n', " "));
        } else {
            self.text.push_str(&chunk.text);
        }
    }

    fn take(&mut self, fields: &Fields, field: Field, sid: u64) -> Option<TantivyDocument> {
        if self.is_empty() {
            return None;
        }
        let mut doc = TantivyDocument::new();
        doc.add_u64(fields.kind, KIND_TEXT);
        doc.add_u64(fields.sid, sid);
        doc.add_i64(fields.at, i64::try_from(self.at).unwrap_or(i64::MAX));
        doc.add_text(field, std::mem::take(&mut self.text));
        doc.add_bytes(fields.lines, std::mem::take(&mut self.lines).as_slice());
        Some(doc)
    }
}

impl TextPacker {
    /// Adds a line; returns a document when one is full.
    pub fn push(
        &mut self,
        fields: &Fields,
        sid: u64,
        chunk: &TextChunk,
    ) -> Option<TantivyDocument> {
        let (pending, field) = match chunk.kind {
            TextKind::Screen => (&mut self.screen, fields.screen),
            TextKind::Command => (&mut self.command, fields.command),
        };
        let full = pending.text.len() + chunk.text.len() > TEXT_DOCUMENT_BYTES;
        let done = if full {
            pending.take(fields, field, sid)
        } else {
            None
        };
        pending.push(chunk);
        done
    }

    /// The partly filled documents (the session ended, or its text must become searchable now).
    pub fn flush(&mut self, fields: &Fields, sid: u64) -> Vec<TantivyDocument> {
        let screen = self.screen.take(fields, fields.screen, sid);
        let command = self.command.take(fields, fields.command, sid);
        screen.into_iter().chain(command).collect()
    }
}

/// The lines of a stored text document: (text, microseconds since the session start).
pub fn lines_of(text: &str, at: i64, packed: &[u8]) -> Vec<(String, i64)> {
    let mut deltas = packed.iter();
    let mut time = at;
    text.split('\n')
        .map(|line| {
            let mut delta: u64 = 0;
            let mut shift = 0;
            for &byte in deltas.by_ref() {
                if shift < 64 {
                    delta |= u64::from(byte & 0x7f) << shift;
                }
                shift += 7;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            time = time.saturating_add(i64::try_from(delta).unwrap_or(i64::MAX));
            (line.to_string(), time)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(at: u64, kind: TextKind, text: &str) -> TextChunk {
        TextChunk {
            at,
            kind,
            text: text.into(),
        }
    }

    #[test]
    fn packs_lines_by_kind_and_keeps_each_lines_time() {
        let fields = Fields::build();
        let mut packer = TextPacker::default();
        assert!(
            packer
                .push(&fields, 7, &chunk(10, TextKind::Screen, "$ ls"))
                .is_none()
        );
        assert!(
            packer
                .push(&fields, 7, &chunk(20, TextKind::Command, "ls"))
                .is_none()
        );
        assert!(
            packer
                .push(&fields, 7, &chunk(35, TextKind::Screen, "a b"))
                .is_none()
        );
        let docs = packer.flush(&fields, 7);
        assert_eq!(docs.len(), 2);
        use tantivy::schema::Value;
        let screen = &docs[0];
        let text = screen
            .get_first(fields.screen)
            .and_then(|v| v.as_str())
            .unwrap();
        let packed = screen
            .get_first(fields.lines)
            .and_then(|v| v.as_bytes())
            .unwrap();
        assert_eq!(
            lines_of(text, 10, packed),
            [("$ ls".to_string(), 10), ("a b".to_string(), 35)]
        );
        assert!(packer.flush(&fields, 7).is_empty(), "flushed once");
        // Long gaps and many lines keep their times exactly.
        let times = [5u64, 5, 6, 200, 1 << 40, (1 << 40) + 3];
        for &t in &times {
            packer.push(&fields, 7, &chunk(t, TextKind::Command, "c"));
        }
        let doc = &packer.flush(&fields, 7)[0];
        let text = doc
            .get_first(fields.command)
            .and_then(|v| v.as_str())
            .unwrap();
        let packed = doc
            .get_first(fields.lines)
            .and_then(|v| v.as_bytes())
            .unwrap();
        let got: Vec<i64> = lines_of(text, 5, packed)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(got, times.map(|t| t as i64));
    }

    #[test]
    fn a_full_document_is_handed_out_and_the_line_starts_the_next() {
        let fields = Fields::build();
        let mut packer = TextPacker::default();
        let line = "x".repeat(8000);
        let mut done = Vec::new();
        for i in 0..10 {
            done.extend(packer.push(&fields, 1, &chunk(i, TextKind::Screen, &line)));
        }
        done.extend(packer.flush(&fields, 1));
        assert_eq!(done.len(), 3, "4 + 4 + 2 lines of 8000 bytes");
    }
}
