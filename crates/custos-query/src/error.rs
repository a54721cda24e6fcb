//! The single error type of the crate.
//!
//! Positions are character indexes rather than byte offsets because they are
//! shown to people (in the web UI and in API error bodies) who count
//! characters, and because a byte offset into multi-byte UTF-8 is useless to
//! a client written in a language with UTF-16 or code-point strings.

/// A query that could not be parsed.
///
/// `position` is the 0-based *character* index into the original input where
/// the problem was detected (for an unclosed construct: where it was opened;
/// for a missing piece at the end: the input's length in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct ParseError {
    /// 0-based character (not byte) index into the input.
    pub position: usize,
    /// Human-readable description, without the position.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}
