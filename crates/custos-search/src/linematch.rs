//! Which lines of a text document a content query hits, so a hit is reported at its own line
//! (and time) rather than at the start of its document. Words are split exactly as the index
//! split them.

use custos_query::{Query, Value};

use crate::schema::{Content, FieldKind, lookup, text_analyzer};

/// Whether `line` (of kind `screen` or `command`) satisfies `query` on its own.
pub fn line_matches(query: &Query, kind: &str, line: &str) -> bool {
    let words = words(line);
    matches(query, kind, &words)
}

fn words(text: &str) -> Vec<String> {
    let mut analyzer = text_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(token) = stream.next() {
        out.push(token.text.clone());
    }
    out
}

fn matches(query: &Query, kind: &str, line: &[String]) -> bool {
    match query {
        Query::All => true,
        Query::And(items) => items.iter().all(|q| matches(q, kind, line)),
        Query::Or(items) => items.iter().any(|q| matches(q, kind, line)),
        Query::Not(inner) => !matches(inner, kind, line),
        Query::Term { field, value } => {
            let which = match field.as_deref().and_then(lookup).map(|s| s.kind) {
                None if field.is_none() => Content::Any,
                Some(FieldKind::Content(which)) => which,
                _ => return false,
            };
            let applies = match which {
                Content::Any => true,
                Content::Screen => kind == "screen",
                Content::Command => kind == "command",
            };
            applies && value_matches(value, line)
        }
    }
}

fn value_matches(value: &Value, line: &[String]) -> bool {
    match value {
        Value::Exact(text) | Value::Phrase(text) => {
            let wanted = words(text);
            !wanted.is_empty() && line.windows(wanted.len()).any(|w| w == wanted.as_slice())
        }
        Value::Wildcard(pattern) => line.iter().any(|w| glob(pattern, w)),
        Value::Any => !line.is_empty(),
        Value::Range { .. } => false,
    }
}

/// `*` and `?` glob matching of one lower-cased word (`\` escapes the next character).
fn glob(pattern: &str, word: &str) -> bool {
    let pattern: Vec<(char, bool)> = {
        let mut out = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(e) = chars.next() {
                        out.extend(e.to_lowercase().map(|l| (l, false)));
                    }
                }
                '*' | '?' => out.push((c, true)),
                _ => out.extend(c.to_lowercase().map(|l| (l, false))),
            }
        }
        out
    };
    let word: Vec<char> = word.chars().collect();
    // Classic two-pointer matching with backtracking to the last star.
    let (mut p, mut w, mut star, mut mark) = (0, 0, None, 0);
    while w < word.len() {
        match pattern.get(p) {
            Some(&('?', true)) => {
                p += 1;
                w += 1;
            }
            Some(&('*', true)) => {
                star = Some(p);
                mark = w;
                p += 1;
            }
            Some(&(c, false)) if c == word[w] => {
                p += 1;
                w += 1;
            }
            _ => match star {
                Some(s) => {
                    p = s + 1;
                    mark += 1;
                    w = mark;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&(c, wild)| wild && c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(q: &str, kind: &str, line: &str) -> bool {
        line_matches(&custos_query::parse(q).unwrap(), kind, line)
    }

    #[test]
    fn words_phrases_and_wildcards_match_per_line() {
        assert!(hit("passwd", "screen", "cat /etc/passwd"));
        assert!(hit("\"/etc/passwd\"", "screen", "cat /ETC/passwd"));
        assert!(!hit("\"passwd etc\"", "screen", "cat /etc/passwd"));
        assert!(hit("pass*", "screen", "cat /etc/passwd"));
        assert!(hit("p?sswd", "screen", "passwd"));
        assert!(!hit("pass", "screen", "passwd"), "whole words only");
        assert!(hit("cat AND NOT shadow", "screen", "cat /etc/passwd"));
        assert!(!hit("cat AND shadow", "screen", "cat /etc/passwd"));
    }

    #[test]
    fn fields_pick_the_kind_of_text() {
        assert!(hit("content.command:ls", "command", "ls -la"));
        assert!(!hit("content.command:ls", "screen", "ls -la"));
        assert!(hit("content.screen:ls OR command:ls", "command", "ls"));
        assert!(!hit("protocol:ssh", "screen", "protocol ssh"));
    }

    #[test]
    fn glob_backtracks() {
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("*", ""));
        assert!(glob("a\\*", "a*"));
        assert!(!glob("a\\*", "ab"));
    }
}
