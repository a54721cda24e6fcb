//! Canonical text form of a [`Query`].
//!
//! The output is meant to be stored (e.g. normalised access rules) and shown
//! back to people, so it must re-parse to an equal tree. It is canonical:
//! explicit `AND`/`OR`/`NOT` keywords, every conjunction nested inside a
//! disjunction parenthesised, field groups expanded, comparisons used for
//! half-open ranges, and only the escapes that are actually needed.

use std::fmt;

use crate::ast::{Bound, Query, Value};
use crate::lexer::is_operator_keyword;

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::All => f.write_str("*"),
            Query::Term { field, value } => {
                if let Some(name) = field {
                    write!(f, "{name}:")?;
                }
                write_value(f, value, field.is_none())
            }
            // Not produced by the parser; these spellings keep the meaning
            // (empty conjunction is true, empty disjunction is false).
            Query::And(items) if items.is_empty() => f.write_str("*"),
            Query::Or(items) if items.is_empty() => f.write_str("NOT *"),
            Query::And(items) => write_joined(f, items, " AND "),
            Query::Or(items) => write_joined(f, items, " OR "),
            Query::Not(inner) => {
                f.write_str("NOT ")?;
                write_operand(f, inner)
            }
        }
    }
}

fn write_joined(f: &mut fmt::Formatter<'_>, items: &[Query], separator: &str) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write_operand(f, item)?;
    }
    Ok(())
}

/// Writes a child of a boolean operator, parenthesising compound children.
fn write_operand(f: &mut fmt::Formatter<'_>, query: &Query) -> fmt::Result {
    match query {
        Query::And(_) | Query::Or(_) => write!(f, "({query})"),
        _ => write!(f, "{query}"),
    }
}

/// `bare` is true when there is no `field:` prefix, where a leading `-`,
/// `!`, `+`, `&&`, `||` or a keyword would be read as an operator.
fn write_value(f: &mut fmt::Formatter<'_>, value: &Value, bare: bool) -> fmt::Result {
    match value {
        Value::Exact(text) => f.write_str(&escape_word(text, bare, &[])),
        Value::Phrase(text) => f.write_str(&quote(text)),
        Value::Wildcard(pattern) => f.write_str(&escape_pattern(pattern, bare)),
        Value::Any => f.write_str("*"),
        Value::Range { lower, upper } => write_range(f, lower, upper),
    }
}

fn write_range(f: &mut fmt::Formatter<'_>, lower: &Bound, upper: &Bound) -> fmt::Result {
    match (lower, upper) {
        (Bound::Inclusive(v), Bound::Unbounded) => write!(f, ">={}", comparison_bound(v)),
        (Bound::Exclusive(v), Bound::Unbounded) => write!(f, ">{}", comparison_bound(v)),
        (Bound::Unbounded, Bound::Inclusive(v)) => write!(f, "<={}", comparison_bound(v)),
        (Bound::Unbounded, Bound::Exclusive(v)) => write!(f, "<{}", comparison_bound(v)),
        _ => {
            let open = if matches!(lower, Bound::Exclusive(_)) {
                '{'
            } else {
                '['
            };
            let close = if matches!(upper, Bound::Exclusive(_)) {
                '}'
            } else {
                ']'
            };
            write!(
                f,
                "{open}{} TO {}{close}",
                range_bound(lower),
                range_bound(upper)
            )
        }
    }
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Characters that must always be escaped inside a word.
fn always_escaped(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '(' | ')' | '"' | ':' | '[' | ']' | '{' | '}' | '\\' | '*' | '?'
        )
}

/// Whether `c` at the start of a word would change how it is lexed.
fn escaped_when_leading(c: char, bare: bool, extra: &[char]) -> bool {
    matches!(c, '>' | '<')
        || (bare && matches!(c, '-' | '+' | '!' | '&' | '|'))
        || extra.contains(&c)
}

/// Escapes literal text so that it scans back as one word with this text.
fn escape_word(text: &str, bare: bool, extra_leading: &[char]) -> String {
    if text.is_empty() {
        // A zero-length word does not exist; an empty phrase is the closest
        // spelling and is what the parser produces for `""` anyway.
        return "\"\"".to_owned();
    }
    let keyword = bare && is_operator_keyword(text);
    let mut out = String::with_capacity(text.len() + 2);
    for (i, c) in text.chars().enumerate() {
        let leading = i == 0 && (keyword || escaped_when_leading(c, bare, extra_leading));
        if leading || always_escaped(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes a wildcard pattern: its own `\x` escapes and the unescaped
/// wildcards are kept as they are, everything else is escaped like a word.
fn escape_pattern(pattern: &str, bare: bool) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    let mut chars = pattern.chars();
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                out.push(chars.next().unwrap_or('\\'));
            }
            '*' | '?' => out.push(c),
            _ => {
                if always_escaped(c) || (first && escaped_when_leading(c, bare, &[])) {
                    out.push('\\');
                }
                out.push(c);
            }
        }
        first = false;
    }
    out
}

/// The bound after `>`/`<`: a word, where a leading `=` would otherwise be
/// read as part of the operator.
fn comparison_bound(text: &str) -> String {
    escape_word(text, false, &['='])
}

/// A bound inside brackets: only whitespace, closing brackets, quotes,
/// backslashes and `*` need escaping there.
fn range_bound(bound: &Bound) -> String {
    let text = match bound {
        Bound::Unbounded => return "*".to_owned(),
        Bound::Inclusive(text) | Bound::Exclusive(text) => text,
    };
    if text.is_empty() {
        return "\"\"".to_owned();
    }
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if c.is_whitespace() || matches!(c, ']' | '}' | '"' | '\\' | '*') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders a value on its own, to check escaping without building queries.
    fn render(value: &Value, bare: bool) -> String {
        struct Shim<'a>(&'a Value, bool);
        impl fmt::Display for Shim<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_value(f, self.0, self.1)
            }
        }
        Shim(value, bare).to_string()
    }

    #[test]
    fn bare_words_escape_operator_lookalikes_but_field_values_do_not() {
        let exact = |s: &str| Value::Exact(s.to_owned());
        assert_eq!(render(&exact("-rf"), true), "\\-rf");
        assert_eq!(render(&exact("-rf"), false), "-rf");
        assert_eq!(render(&exact("and"), true), "\\and");
        assert_eq!(render(&exact("and"), false), "and");
        assert_eq!(render(&exact(">5"), false), "\\>5");
        assert_eq!(render(&exact("a b:c*"), false), "a\\ b\\:c\\*");
    }

    #[test]
    fn patterns_keep_their_own_escapes() {
        let pattern = Value::Wildcard("a\\*b*:".to_owned());
        assert_eq!(render(&pattern, false), "a\\*b*\\:");
    }

    #[test]
    fn ranges_print_as_comparisons_when_half_open() {
        let range = |lower, upper| Value::Range { lower, upper };
        let inc = |s: &str| Bound::Inclusive(s.to_owned());
        let exc = |s: &str| Bound::Exclusive(s.to_owned());
        assert_eq!(render(&range(inc("5"), Bound::Unbounded), false), ">=5");
        assert_eq!(render(&range(exc("=5"), Bound::Unbounded), false), ">\\=5");
        assert_eq!(render(&range(Bound::Unbounded, exc("5")), false), "<5");
        assert_eq!(
            render(&range(Bound::Unbounded, Bound::Unbounded), false),
            "[* TO *]"
        );
        assert_eq!(
            render(&range(exc("a b"), inc("10:00")), false),
            "{a\\ b TO 10:00]"
        );
    }
}
