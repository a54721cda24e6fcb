//! Turning a session record and its terminal text into index documents.

use custos_sessions::SessionRecord;
use custos_trail::text::{TextChunk, TextKind};
use tantivy::schema::Field;
use tantivy::{DateTime, TantivyDocument};

use crate::schema::{Fields, KIND_SESSION, KIND_TEXT, sid};

/// Text documents hold about this much text: big enough that 10 GB of terminal output is a few
/// million documents, small enough that a hit points near its line.
pub const TEXT_DOCUMENT_BYTES: usize = 4096;

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
    text: String,
    /// (byte offset in `text`, microseconds after `at`) per line.
    lines: Vec<u8>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn push(&mut self, chunk: &TextChunk) {
        if self.is_empty() {
            self.at = chunk.at;
        } else {
            self.text.push('\n');
        }
        let offset = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        let delta = u32::try_from(chunk.at.saturating_sub(self.at)).unwrap_or(u32::MAX);
        self.lines.extend_from_slice(&offset.to_le_bytes());
        self.lines.extend_from_slice(&delta.to_le_bytes());
        self.text.push_str(&chunk.text);
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
        // A line far later than the document's first would blur its time; start a new one.
        let stale =
            !pending.is_empty() && chunk.at.saturating_sub(pending.at) > u64::from(u32::MAX);
        let full = pending.text.len() + chunk.text.len() > TEXT_DOCUMENT_BYTES;
        let done = if stale || full {
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
    let mut starts: Vec<(usize, i64)> = packed
        .chunks_exact(8)
        .map(|pair| {
            let offset = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]);
            let delta = u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]);
            (offset as usize, at.saturating_add(i64::from(delta)))
        })
        .collect();
    if starts.is_empty() {
        starts.push((0, at));
    }
    let mut out = Vec::with_capacity(starts.len());
    for (i, &(start, time)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |&(next, _)| next);
        if let Some(line) = text.get(start..end) {
            out.push((line.trim_end_matches('\n').to_string(), time));
        }
    }
    out
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
    }

    #[test]
    fn a_full_document_is_handed_out_and_the_line_starts_the_next() {
        let fields = Fields::build();
        let mut packer = TextPacker::default();
        let line = "x".repeat(1000);
        let mut done = Vec::new();
        for i in 0..10 {
            done.extend(packer.push(&fields, 1, &chunk(i, TextKind::Screen, &line)));
        }
        done.extend(packer.flush(&fields, 1));
        assert_eq!(done.len(), 3, "4 + 4 + 2 lines of 1000 bytes");
    }
}
