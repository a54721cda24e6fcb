//! The index's schema and the catalogue of searchable fields.
//!
//! One index holds two kinds of documents:
//! - a **session** document per recorded session: its metadata, one typed field per catalogue
//!   entry, replaced whenever the record changes;
//! - **text** documents: a few KiB each of a session's terminal text (screen lines or typed
//!   commands), added while the session runs and never changed afterwards.
//!
//! Both carry the session's `sid` (a 64-bit digest of its key), which joins them: a content
//! condition is answered on the text documents and becomes a set of `sid`s for the sessions.
//!
//! Field names in queries are the paths of the session record as `GET /api/audit/sessions/<id>`
//! shows it (`recording.connection_policy`, `client.ip`, …), the `psm.`-prefixed names audit-data
//! rules use (`psm.connection_policy`), and a few flat SIEM names (`server_username`).

use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, NumericOptions,
    STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};

/// Bumped whenever documents change shape: an index of another version is rebuilt.
pub const SCHEMA_VERSION: u32 = 2;

/// Keywords: the whole value, lower-cased (keyword matching is case-insensitive).
pub const KEYWORD_TOKENIZER: &str = "custos_keyword";
/// Terminal text: words of letters and digits, lower-cased; very long "words" (base64 blobs)
/// are dropped rather than bloating the dictionary.
pub const TEXT_TOKENIZER: &str = "custos_text";
const LONGEST_WORD: usize = 64;

/// What a field holds, which decides how its values are parsed and matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// The record key: matched exactly, case and all.
    Identifier,
    /// A word-like value matched whole and case-insensitively (`protocol:ssh`, `user.name:al*`).
    Keyword,
    /// An integer (`client.port:22`, `duration:>60`).
    Number,
    /// An instant (`start_time:[2024-01-01 TO 2024-02-01}`).
    Time,
    /// `true` or `false`.
    Flag,
    /// The session's terminal text.
    Content(Content),
}

/// Which terminal text a content condition looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// What appeared on screen and what was typed.
    Any,
    /// What appeared on screen.
    Screen,
    /// Command lines: typed on a terminal, or run with `ssh host command`.
    Command,
}

/// One searchable field: its public name, other names it answers to, where it lives.
#[derive(Debug)]
pub struct FieldSpec {
    /// The session record path, as `fields=` and `sort=` name it.
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: FieldKind,
    /// The tantivy field (absent for content, which has two).
    pub internal: &'static str,
}

const fn spec(
    name: &'static str,
    aliases: &'static [&'static str],
    kind: FieldKind,
    internal: &'static str,
) -> FieldSpec {
    FieldSpec {
        name,
        aliases,
        kind,
        internal,
    }
}

use FieldKind::{Flag, Keyword, Number, Time};

/// Every field a query may name.
pub static FIELDS: &[FieldSpec] = &[
    spec("key", &["id"], FieldKind::Identifier, "key"),
    spec("protocol", &[], Keyword, "protocol"),
    spec("verdict", &["recording.verdict"], Keyword, "verdict"),
    spec("node_id", &[], Keyword, "node_id"),
    spec(
        "client.ip",
        &["client.name", "client_ip"],
        Keyword,
        "client_ip",
    ),
    spec("client.port", &["client_port"], Number, "client_port"),
    spec(
        "server.ip",
        &[
            "server.name",
            "server.id",
            "server_ip",
            "recording.target.ip",
        ],
        Keyword,
        "server_ip",
    ),
    spec(
        "server.port",
        &["server_port", "recording.target.port"],
        Number,
        "server_port",
    ),
    spec(
        "recording.server_local.ip",
        &["server_local_ip"],
        Keyword,
        "server_local_ip",
    ),
    spec(
        "recording.gateway.ip",
        &["gateway_ip"],
        Keyword,
        "gateway_ip",
    ),
    spec(
        "recording.gateway.port",
        &["gateway_port"],
        Number,
        "gateway_port",
    ),
    spec(
        "user.name",
        &["user", "user.id", "user.server_username", "server_username"],
        Keyword,
        "server_username",
    ),
    spec(
        "user.gateway_username",
        &["gateway_username"],
        Keyword,
        "gateway_username",
    ),
    spec(
        "recording.connection_policy",
        &["connection_policy"],
        Keyword,
        "connection_policy",
    ),
    spec(
        "recording.connection_policy_id",
        &["connection_policy_id"],
        Keyword,
        "connection_policy_id",
    ),
    spec(
        "recording.channel_policy",
        &["channel_policy"],
        Keyword,
        "channel_policy",
    ),
    spec(
        "recording.auth_method",
        &["auth_method"],
        Keyword,
        "auth_method",
    ),
    spec(
        "recording.session_id",
        &["session_id"],
        Keyword,
        "session_id",
    ),
    spec("recording.reason", &["reason"], Keyword, "reason"),
    spec("start_time", &["creation_time"], Time, "start_time"),
    spec("end_time", &[], Time, "end_time"),
    spec("duration", &[], Number, "duration"),
    spec("active", &[], Flag, "active"),
    spec("recording.archived", &["archived"], Flag, "archived"),
    spec(
        "recording.has_accepted_channel",
        &["has_accepted_channel"],
        Flag,
        "has_accepted_channel",
    ),
    spec("content", &[], FieldKind::Content(Content::Any), ""),
    spec(
        "content.screen",
        &["screen"],
        FieldKind::Content(Content::Screen),
        "",
    ),
    spec(
        "content.command",
        &["command", "commands"],
        FieldKind::Content(Content::Command),
        "",
    ),
];

/// The field a query names, by its path, an alias, or either with a `psm.` prefix.
pub fn lookup(name: &str) -> Option<&'static FieldSpec> {
    let bare = match name.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("psm.") => &name[4..],
        _ => name,
    };
    FIELDS.iter().find(|f| {
        f.name.eq_ignore_ascii_case(bare) || f.aliases.iter().any(|a| a.eq_ignore_ascii_case(bare))
    })
}

/// Document kinds, in the `kind` field.
pub const KIND_SESSION: u64 = 0;
pub const KIND_TEXT: u64 = 1;

/// The tantivy fields, resolved once.
#[derive(Clone, Debug)]
pub struct Fields {
    pub schema: Schema,
    pub kind: Field,
    pub sid: Field,
    /// Session documents: the record key, stored (search results are keys).
    pub key: Field,
    /// Text documents: microseconds since the session start of the first line.
    pub at: Field,
    /// Text documents: the lines, stored so content hits can quote them.
    pub screen: Field,
    pub command: Field,
    /// Text documents: per line, its start in `screen`/`command` (bytes) and its time offset
    /// from `at`, as little-endian u32 pairs: a hit is reported at its own line.
    pub lines: Field,
}

impl Fields {
    pub fn build() -> Fields {
        let mut b = Schema::builder();
        let kind = b.add_u64_field("kind", INDEXED | FAST);
        let sid = b.add_u64_field("sid", INDEXED | FAST);
        let keyword = TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(KEYWORD_TOKENIZER)
                    .set_index_option(IndexRecordOption::Basic)
                    .set_fieldnorms(false),
            )
            // Statistics and sorting show values as recorded, not lower-cased.
            .set_fast("raw");
        let number = NumericOptions::default().set_indexed().set_fast();
        let instant = DateOptions::default()
            .set_indexed()
            .set_fast()
            .set_precision(DateTimePrecision::Microseconds);
        let mut key = None;
        for f in FIELDS {
            match f.kind {
                // Keys are case-sensitive (base62), and updates delete by key.
                FieldKind::Identifier => {
                    key = Some(b.add_text_field(f.internal, STRING | STORED | FAST));
                }
                Keyword => {
                    b.add_text_field(f.internal, keyword.clone());
                }
                Number => {
                    b.add_i64_field(f.internal, number.clone());
                }
                Time => {
                    b.add_date_field(f.internal, instant.clone());
                }
                Flag => {
                    b.add_bool_field(f.internal, number.clone());
                }
                FieldKind::Content(_) => {}
            }
        }
        let text = TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(TEXT_TOKENIZER)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                    .set_fieldnorms(false),
            )
            .set_stored();
        let at = b.add_i64_field("at", FAST | STORED);
        let screen = b.add_text_field("screen", text.clone());
        let command = b.add_text_field("command", text);
        let lines = b.add_bytes_field("lines", STORED);
        let key = key.unwrap_or_else(|| b.add_text_field("key", STRING | STORED | FAST));
        Fields {
            schema: b.build(),
            kind,
            sid,
            key,
            at,
            screen,
            command,
            lines,
        }
    }

    /// The tantivy field of a metadata spec.
    pub fn field(&self, spec: &FieldSpec) -> Option<Field> {
        if spec.internal.is_empty() {
            return None;
        }
        self.schema.get_field(spec.internal).ok()
    }

    /// The text fields a content condition searches.
    pub fn content_fields(&self, which: Content) -> Vec<Field> {
        match which {
            Content::Any => vec![self.screen, self.command],
            Content::Screen => vec![self.screen],
            Content::Command => vec![self.command],
        }
    }
}

/// Registers the analysers the schema names on `index`.
pub fn register_tokenizers(index: &tantivy::Index) {
    index.tokenizers().register(
        KEYWORD_TOKENIZER,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
    index.tokenizers().register(TEXT_TOKENIZER, text_analyzer());
}

/// The analyser of terminal text (also used to split query words the same way).
pub fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(LONGEST_WORD))
        .filter(LowerCaser)
        .build()
}

/// The 64-bit join key of a session, from its record key. Keys are 131 random bits, so a
/// collision among a million sessions has odds of about 3·10⁻⁸; a collision could only make one
/// session match another's content condition, never show its text (hits are read per session).
pub fn sid(key: &str) -> u64 {
    let digest = blake3::hash(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_and_alias_resolves_to_one_field() {
        let mut seen = std::collections::HashSet::new();
        for f in FIELDS {
            for name in std::iter::once(&f.name).chain(f.aliases) {
                assert!(
                    seen.insert(name.to_ascii_lowercase()),
                    "{name} is ambiguous"
                );
                assert_eq!(lookup(name).map(|s| s.name), Some(f.name));
                assert_eq!(lookup(&format!("psm.{name}")).map(|s| s.name), Some(f.name));
            }
        }
        assert!(lookup("nonsense").is_none());
        assert_eq!(
            lookup("PSM.Connection_Policy").map(|s| s.name),
            Some("recording.connection_policy")
        );
    }

    #[test]
    fn the_schema_has_every_metadata_field() {
        let fields = Fields::build();
        for f in FIELDS {
            assert_eq!(
                fields.field(f).is_some(),
                !matches!(f.kind, FieldKind::Content(_)),
                "{}",
                f.name
            );
        }
    }
}
