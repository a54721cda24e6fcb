//! The Custos audit trail: one append-only, hash-chained, seekable file per recorded session.
//!
//! The SSH gateway writes every allowed channel's traffic (both directions, with timestamps and
//! terminal size changes) into a trail *while it flows*; auditors replay, search, export and
//! verify it later, possibly with third-party tools. The format is therefore open and fully
//! specified in `docs/trail-format.md`; this crate is its reference implementation.
//!
//! Layout: a file header (magic, version, session metadata as JSON), then segments (each
//! self-delimiting: header, payload of compact binary records, BLAKE3 chain value over the
//! previous chain value, its header and payload), then on a clean finish an index segment, an
//! end-of-trail marker segment and a fixed-size trailer. Client-to-server data (keystrokes,
//! typed passwords) lives in segments of its own ("stream 1") so that a later format version
//! can encrypt it to different certificates without touching the record layer.
//!
//! - [`TrailWriter`]: synchronous, bounded memory (one pending segment per stream), one `write`
//!   and one BLAKE3 pass per segment, `fdatasync` on a timer, never overwrites.
//! - [`TrailReader`]: streams segment by segment, merges the two streams by time, seeks by time
//!   through the index (or by scanning an incomplete file), and [`TrailReader::verify`]s.
//! - [`export_asciicast`]: asciicast v2 of one terminal channel for standard players.
//!
//! Nothing here panics on any input file.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

mod asciicast;
mod crypt;
mod error;
pub mod format;
mod reader;
mod record;
mod sink;
mod spool;
pub mod text;
mod varint;
mod verify;
mod writer;

pub use asciicast::export_asciicast;
pub use error::TrailError;
pub use format::{ChainHead, SealPayload};
pub use reader::{KeyEnvelope, TrailReader};
pub use record::{Direction, Record};
pub use verify::Verification;
pub use writer::{
    MAX_METADATA_RECORD, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES, Protection, StreamKey, TrailSummary,
    TrailWriter, WriterOptions,
};
