//! Context-sensitive tokenizer.
//!
//! Lucene-style syntax cannot be tokenized without knowing where we are:
//! `-rf` is a negation at the start of an operand but a plain value after
//! `args:`, `AND` is an operator between operands but a value after a colon,
//! and range bounds may contain `:` (timestamps) although ordinary words may
//! not. So instead of producing a token stream up front, the lexer offers two
//! entry points that the parser calls depending on what it expects next:
//! [`Lexer::peek`] (the start of an operand or an operator) and
//! [`Lexer::field_value`] (directly after `field:`).
//!
//! All positions are indexes into a `Vec<char>`, so they are character
//! positions, which is what [`ParseError`] promises.

use crate::ast::Bound;
use crate::error::ParseError;

/// Characters that end a word (besides whitespace) unless escaped.
const WORD_DELIMITERS: [char; 8] = ['(', ')', '"', ':', '[', ']', '{', '}'];

/// Whether `c` may appear unescaped inside a word.
pub(crate) fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !WORD_DELIMITERS.contains(&c)
}

/// Whether `text` spells one of the boolean keywords recognised between
/// operands (`TO` is only special inside ranges, so it is not included).
pub(crate) fn is_operator_keyword(text: &str) -> bool {
    ["and", "or", "not"]
        .iter()
        .any(|k| text.eq_ignore_ascii_case(k))
}

/// A scanned word, with the information the parser needs to classify it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Word {
    /// The word with every escape removed.
    pub text: String,
    /// The word as a wildcard pattern: escapes removed except `\*`, `\?`, `\\`.
    pub pattern: String,
    /// Contains an unescaped `*` or `?`.
    pub has_wildcard: bool,
    /// Is exactly one unescaped `*` (match-all / field exists).
    pub is_star: bool,
    /// Contained at least one backslash escape (so it can never be a keyword).
    pub escaped: bool,
}

/// A complete value: anything that can stand after `field:` or alone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueToken {
    Word(Word),
    Phrase(String),
    /// Ranges and comparisons alike.
    Range {
        lower: Bound,
        upper: Bound,
    },
}

/// What the lexer found at the start of an operand (or between operands).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    LParen,
    RParen,
    /// `AND` (any case) or `&&`.
    And,
    /// `OR` (any case) or `||`.
    Or,
    /// `NOT` (any case), `!` or `-`.
    Not,
    /// `+`, which only marks a required clause and has no effect here.
    Plus,
    /// `name:`; the colon is part of the token.
    Field(String),
    Value(ValueToken),
    Eof,
}

/// A token with its character span (`end` is exclusive).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

/// What follows `field:`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue {
    /// `field:(`: a group whose terms all apply to the field.
    Group,
    Value(ValueToken),
}

/// A range bound before the bracket decides whether it is inclusive.
enum RawBound {
    Star,
    Text(String),
}

pub(crate) struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    pub(crate) fn new(input: &str) -> Self {
        Self {
            chars: input.chars().collect(),
            pos: 0,
        }
    }

    /// Current position (character index).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to `pos`, which must come from a span this lexer returned.
    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// The character at the current position, without skipping whitespace.
    pub(crate) fn current_char(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Source text of a span, for error messages that quote the input.
    pub(crate) fn text(&self, start: usize, end: usize) -> String {
        self.chars
            .get(start..end)
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    }

    /// Scans the next operand-position token without consuming it; call
    /// [`Lexer::set_pos`] with `token.end` to consume.
    pub(crate) fn peek(&self) -> Result<Token, ParseError> {
        let start = self.skip_whitespace(self.pos);
        let token = |kind, end| Token { kind, start, end };
        let Some(&c) = self.chars.get(start) else {
            return Ok(token(TokenKind::Eof, start));
        };
        let next = self.chars.get(start + 1).copied();
        match c {
            '(' => Ok(token(TokenKind::LParen, start + 1)),
            ')' => Ok(token(TokenKind::RParen, start + 1)),
            '-' | '!' => Ok(token(TokenKind::Not, start + 1)),
            '+' => Ok(token(TokenKind::Plus, start + 1)),
            '&' if next == Some('&') => Ok(token(TokenKind::And, start + 2)),
            '|' if next == Some('|') => Ok(token(TokenKind::Or, start + 2)),
            ':' => Err(ParseError::new(start, "missing field name before ':'")),
            ']' | '}' => Err(ParseError::new(
                start,
                format!("unexpected '{c}' outside a range"),
            )),
            '"' | '[' | '{' | '>' | '<' => {
                let (value, end) = self.scan_value(start)?;
                Ok(token(TokenKind::Value(value), end))
            }
            _ => {
                let (word, end) = self.scan_word(start)?;
                if self.chars.get(end) == Some(&':') {
                    let raw = self.text(start, end);
                    if !is_valid_field_name(&raw) {
                        return Err(ParseError::new(
                            start,
                            format!("invalid field name '{raw}'"),
                        ));
                    }
                    return Ok(token(TokenKind::Field(raw), end + 1));
                }
                let kind = if word.escaped {
                    TokenKind::Value(ValueToken::Word(word))
                } else if word.text.eq_ignore_ascii_case("and") {
                    TokenKind::And
                } else if word.text.eq_ignore_ascii_case("or") {
                    TokenKind::Or
                } else if word.text.eq_ignore_ascii_case("not") {
                    TokenKind::Not
                } else {
                    TokenKind::Value(ValueToken::Word(word))
                };
                Ok(token(kind, end))
            }
        }
    }

    /// Scans what follows `field:` at the current position (no whitespace
    /// is skipped: `field: value` is rejected so that a stray colon is
    /// reported instead of silently swallowing the next term). Returns the
    /// value and the position just after it.
    pub(crate) fn field_value(&self, field: &str) -> Result<(FieldValue, usize), ParseError> {
        let at = self.pos;
        match self.chars.get(at) {
            None | Some(')') => Err(missing_value(at, field)),
            Some(c) if c.is_whitespace() => Err(missing_value(at, field)),
            Some('(') => Ok((FieldValue::Group, at + 1)),
            Some(':') => Err(ParseError::new(
                at,
                format!("nested field: unexpected ':' after '{field}:'"),
            )),
            Some(&c @ (']' | '}')) => Err(ParseError::new(
                at,
                format!("unexpected '{c}' outside a range"),
            )),
            Some(_) => {
                let (value, end) = self.scan_value(at)?;
                Ok((FieldValue::Value(value), end))
            }
        }
    }

    fn skip_whitespace(&self, mut at: usize) -> usize {
        while self.chars.get(at).is_some_and(|c| c.is_whitespace()) {
            at += 1;
        }
        at
    }

    /// Scans a phrase, range, comparison or word starting at `at`.
    fn scan_value(&self, at: usize) -> Result<(ValueToken, usize), ParseError> {
        match self.chars.get(at) {
            Some('"') => {
                let (text, end) = self.scan_phrase(at)?;
                Ok((ValueToken::Phrase(text), end))
            }
            Some('[' | '{') => self.scan_range(at),
            Some('>' | '<') => self.scan_comparison(at),
            _ => {
                let (word, end) = self.scan_word(at)?;
                Ok((ValueToken::Word(word), end))
            }
        }
    }

    /// A run of word characters; `\` escapes any following character.
    fn scan_word(&self, at: usize) -> Result<(Word, usize), ParseError> {
        let mut word = Word {
            text: String::new(),
            pattern: String::new(),
            has_wildcard: false,
            is_star: false,
            escaped: false,
        };
        let mut i = at;
        while let Some(&c) = self.chars.get(i) {
            if c == '\\' {
                let Some(&escaped) = self.chars.get(i + 1) else {
                    return Err(dangling_escape(i));
                };
                word.escaped = true;
                word.text.push(escaped);
                if matches!(escaped, '*' | '?' | '\\') {
                    word.pattern.push('\\');
                }
                word.pattern.push(escaped);
                i += 2;
            } else if is_word_char(c) {
                word.has_wildcard |= matches!(c, '*' | '?');
                word.text.push(c);
                word.pattern.push(c);
                i += 1;
            } else {
                break;
            }
        }
        word.is_star = i == at + 1 && self.chars.get(at) == Some(&'*');
        Ok((word, i))
    }

    /// `"..."` where only `\"` and `\\` are escapes; any other backslash is
    /// kept literally so that Windows paths like `"C:\Users"` work as typed.
    fn scan_phrase(&self, at: usize) -> Result<(String, usize), ParseError> {
        let mut text = String::new();
        let mut i = at + 1;
        loop {
            match self.chars.get(i) {
                None => return Err(ParseError::new(at, "unterminated phrase")),
                Some('"') => return Ok((text, i + 1)),
                Some('\\') => match self.chars.get(i + 1) {
                    Some(&c @ ('"' | '\\')) => {
                        text.push(c);
                        i += 2;
                    }
                    _ => {
                        text.push('\\');
                        i += 1;
                    }
                },
                Some(&c) => {
                    text.push(c);
                    i += 1;
                }
            }
        }
    }

    /// `>x`, `>=x`, `<x`, `<=x`. The bound is an ordinary word or phrase
    /// (so a timestamp with colons must be quoted); `*` means unbounded.
    fn scan_comparison(&self, at: usize) -> Result<(ValueToken, usize), ParseError> {
        let greater = self.chars.get(at) == Some(&'>');
        let mut i = at + 1;
        let inclusive = self.chars.get(i) == Some(&'=');
        if inclusive {
            i += 1;
        }
        let (raw, end) = match self.chars.get(i) {
            Some('"') => {
                let (text, end) = self.scan_phrase(i)?;
                (RawBound::Text(text), end)
            }
            Some(&c) if is_word_char(c) => {
                let (word, end) = self.scan_word(i)?;
                let raw = if word.is_star {
                    RawBound::Star
                } else {
                    RawBound::Text(word.text)
                };
                (raw, end)
            }
            _ => {
                return Err(ParseError::new(
                    i,
                    format!("missing bound after '{}'", self.text(at, i)),
                ));
            }
        };
        let bound = make_bound(raw, inclusive);
        let value = if greater {
            ValueToken::Range {
                lower: bound,
                upper: Bound::Unbounded,
            }
        } else {
            ValueToken::Range {
                lower: Bound::Unbounded,
                upper: bound,
            }
        };
        Ok((value, end))
    }

    /// `[a TO b]`, `{a TO b}` or mixed brackets. Whitespace around `TO` is
    /// required; bounds may contain any character except whitespace, `]`
    /// and `}` (unless escaped) so timestamps need no quoting.
    fn scan_range(&self, open: usize) -> Result<(ValueToken, usize), ParseError> {
        let lower_inclusive = self.chars.get(open) == Some(&'[');
        let unclosed = || ParseError::new(open, "unclosed range: missing ']' or '}'");

        let at = self.skip_whitespace(open + 1);
        let (lower, after_lower) = self.scan_range_bound(at, open, "lower")?;

        let to_start = self.skip_whitespace(after_lower);
        if to_start >= self.chars.len() {
            return Err(unclosed());
        }
        let mut to_end = to_start;
        while self
            .chars
            .get(to_end)
            .is_some_and(|&c| !c.is_whitespace() && c != ']' && c != '}')
        {
            to_end += 1;
        }
        if to_start == after_lower || !self.text(to_start, to_end).eq_ignore_ascii_case("to") {
            return Err(ParseError::new(to_start, "range is missing 'TO'"));
        }

        match self.chars.get(to_end) {
            None => return Err(unclosed()),
            Some(']' | '}') => {
                return Err(ParseError::new(to_end, "missing upper bound in range"));
            }
            Some(_) => {}
        }
        let at = self.skip_whitespace(to_end);
        let (upper, after_upper) = self.scan_range_bound(at, open, "upper")?;

        let close = self.skip_whitespace(after_upper);
        let upper_inclusive = match self.chars.get(close) {
            None => return Err(unclosed()),
            Some(']') => true,
            Some('}') => false,
            Some(_) => {
                return Err(ParseError::new(
                    close,
                    "expected ']' or '}' to close the range",
                ));
            }
        };
        let value = ValueToken::Range {
            lower: make_bound(lower, lower_inclusive),
            upper: make_bound(upper, upper_inclusive),
        };
        Ok((value, close + 1))
    }

    fn scan_range_bound(
        &self,
        at: usize,
        open: usize,
        which: &str,
    ) -> Result<(RawBound, usize), ParseError> {
        match self.chars.get(at) {
            None => Err(ParseError::new(open, "unclosed range: missing ']' or '}'")),
            Some('"') => {
                let (text, end) = self.scan_phrase(at)?;
                Ok((RawBound::Text(text), end))
            }
            Some(']' | '}') => Err(ParseError::new(
                at,
                format!("missing {which} bound in range"),
            )),
            Some(_) => {
                let mut text = String::new();
                let mut i = at;
                while let Some(&c) = self.chars.get(i) {
                    if c == '\\' {
                        let Some(&escaped) = self.chars.get(i + 1) else {
                            return Err(dangling_escape(i));
                        };
                        text.push(escaped);
                        i += 2;
                    } else if c.is_whitespace() || c == ']' || c == '}' {
                        break;
                    } else {
                        text.push(c);
                        i += 1;
                    }
                }
                let star = i == at + 1 && self.chars.get(at) == Some(&'*');
                let raw = if star {
                    RawBound::Star
                } else {
                    RawBound::Text(text)
                };
                Ok((raw, i))
            }
        }
    }
}

fn make_bound(raw: RawBound, inclusive: bool) -> Bound {
    match raw {
        RawBound::Star => Bound::Unbounded,
        RawBound::Text(text) if inclusive => Bound::Inclusive(text),
        RawBound::Text(text) => Bound::Exclusive(text),
    }
}

/// `[A-Za-z_@][A-Za-z0-9_.@-]*`. ASCII-only on purpose: field names are
/// identifiers of the search schema, never user content.
fn is_valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_' || first == '@')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
}

fn missing_value(at: usize, field: &str) -> ParseError {
    ParseError::new(at, format!("missing value after '{field}:'"))
}

fn dangling_escape(at: usize) -> ParseError {
    ParseError::new(at, "dangling escape character '\\' at end of query")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_the_documented_pattern() {
        for ok in [
            "a",
            "psm.connection_policy",
            "@timestamp",
            "_x-y.z",
            "client.ip",
        ] {
            assert!(is_valid_field_name(ok), "{ok}");
        }
        for bad in ["", "1a", "-a", ".a", "é", "a*", "a\\b", "a b"] {
            assert!(!is_valid_field_name(bad), "{bad}");
        }
    }

    #[test]
    fn keywords_are_recognised_only_as_whole_unescaped_words() {
        let kind = |s: &str| Lexer::new(s).peek().map(|t| t.kind);
        assert_eq!(kind("aNd x"), Ok(TokenKind::And));
        assert_eq!(kind("||x"), Ok(TokenKind::Or));
        assert_eq!(kind("not"), Ok(TokenKind::Not));
        assert!(matches!(kind("android"), Ok(TokenKind::Value(_))));
        assert!(matches!(kind("\\AND"), Ok(TokenKind::Value(_))));
        assert_eq!(kind("and:x"), Ok(TokenKind::Field("and".into())));
    }

    #[test]
    fn word_pattern_keeps_only_wildcard_relevant_escapes() {
        let (word, end) = Lexer::new("a\\*b\\:c*\\\\ rest")
            .scan_word(0)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(end, 10);
        assert_eq!(word.text, "a*b:c*\\");
        assert_eq!(word.pattern, "a\\*b:c*\\\\");
        assert!(word.has_wildcard);
        assert!(!word.is_star);
    }

    #[test]
    fn peek_does_not_consume() {
        let lexer = Lexer::new("  foo bar");
        let first = lexer.peek();
        assert_eq!(lexer.peek(), first);
        assert_eq!(lexer.pos(), 0);
        assert_eq!(first.map(|t| (t.start, t.end)), Ok((2, 5)));
    }
}
