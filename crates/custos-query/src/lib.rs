//! Parser for the session search query language of One Identity SPS
//! (`GET /api/audit/sessions?q=...`) and of its audit-data access rules
//! (e.g. `psm.connection_policy:my_ssh_connection_policy`).
//!
//! The language is Lucene-like:
//!
//! ```text
//! query      := or_expr EOF
//! or_expr    := and_expr ( OR and_expr )*
//! and_expr   := unary ( [AND] unary )*          juxtaposition is AND
//! unary      := (NOT | '-' | '!' | '+') unary | primary
//! primary    := '(' or_expr ')' | FIELD ':' (value | '(' or_expr ')') | value
//! value      := "phrase" | [a TO b] | {a TO b} | >x | >=x | <x | <=x | word
//! ```
//!
//! Keywords (`AND`, `OR`, `NOT`, `TO`) are case-insensitive; `&&`, `||` and
//! `!` are synonyms. The parser is hand-written so that every error carries
//! an exact character position, the input size and nesting depth are
//! bounded (it is fed directly from HTTP query strings), and it never panics.
//!
//! ```
//! use custos_query::parse;
//!
//! let q = parse("protocol:(ssh OR rdp) AND NOT user:root")?;
//! assert_eq!(q.fields(), ["protocol", "user"]);
//! assert_eq!(q.to_string(), "(protocol:ssh OR protocol:rdp) AND NOT user:root");
//! assert_eq!(parse(&q.to_string()), Ok(q));
//!
//! let err = parse("user:root AND").unwrap_err();
//! assert_eq!(err.position, 10);
//! # Ok::<(), custos_query::ParseError>(())
//! ```

mod ast;
mod display;
mod error;
mod lexer;
mod parser;

pub use ast::{Bound, Query, Value};
pub use error::ParseError;
pub use parser::MAX_DEPTH;

/// Longest accepted input, in characters.
pub const MAX_QUERY_CHARS: usize = 10_000;

/// Parses a query.
///
/// Errors report the 0-based character position of the problem; see
/// [`ParseError`].
pub fn parse(input: &str) -> Result<Query, ParseError> {
    // Checked up front so the lexer never materialises a huge input.
    if input.chars().nth(MAX_QUERY_CHARS).is_some() {
        return Err(ParseError::new(
            MAX_QUERY_CHARS,
            format!("query too long: more than {MAX_QUERY_CHARS} characters"),
        ));
    }
    if input.trim().is_empty() {
        return Err(ParseError::new(0, "empty query"));
    }
    parser::parse_query(input)
}
