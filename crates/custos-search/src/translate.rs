//! From a parsed SPS query (`custos_query::Query`) to tantivy queries.
//!
//! Two targets:
//! - [`Translator::sessions`]: a query over session documents. Metadata conditions become typed
//!   term, range, wildcard and existence queries; content conditions are answered on the text
//!   documents first and become the set of matching sessions (by `sid`), so that
//!   `protocol:ssh AND NOT content:sudo` means what it says at the level of sessions.
//! - [`Translator::text`]: a query over one session's text documents (the `content` endpoint),
//!   where only content conditions make sense.
//!
//! Pure negation (`NOT x`, `-x`, also leading) is "everything except x", which tantivy's own
//! parser gets wrong; here it is always an explicit `All AND NOT x`.

use std::ops::Bound as RangeBound;

use custos_query::{Bound, Query, Value};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, ExistsQuery, Occur, PhraseQuery, Query as TantivyQuery,
    RangeQuery, RegexQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DateTime, Searcher, Term};

use crate::collect::SidCollector;
use crate::schema::{Content, FieldKind, FieldSpec, Fields, KIND_SESSION, KIND_TEXT, lookup};
use crate::time::{Instant, parse_instant};

/// Why a query cannot run: a message for people and, where known, the character position of
/// the problem in the query text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub message: String,
    pub position: Option<usize>,
}

pub type Translated = Box<dyn TantivyQuery>;

/// How one term (field, value) becomes a query.
type Leaf<T> = dyn Fn(&T, Option<&str>, &Value) -> Result<Translated, QueryError>;

pub struct Translator<'a> {
    pub fields: &'a Fields,
    pub searcher: &'a Searcher,
    /// The query's text, to point at the field an error is about.
    pub source: &'a str,
}

fn boxed(q: impl TantivyQuery) -> Translated {
    Box::new(q)
}

fn all_but(inner: Translated) -> Translated {
    boxed(BooleanQuery::new(vec![
        (Occur::Must, boxed(AllQuery)),
        (Occur::MustNot, inner),
    ]))
}

/// Documents of one kind.
pub fn kind_is(fields: &Fields, kind: u64) -> Translated {
    boxed(TermQuery::new(
        Term::from_field_u64(fields.kind, kind),
        IndexRecordOption::Basic,
    ))
}

/// `a AND b AND …`.
pub fn all_of(parts: Vec<Translated>) -> Translated {
    boxed(BooleanQuery::new(
        parts.into_iter().map(|q| (Occur::Must, q)).collect(),
    ))
}

impl Translator<'_> {
    fn error(&self, field: Option<&str>, message: String) -> QueryError {
        let position = field.and_then(|f| self.source.find(&format!("{f}:")));
        QueryError { message, position }
    }

    fn spec(&self, name: &str) -> Result<&'static FieldSpec, QueryError> {
        lookup(name).ok_or_else(|| {
            self.error(
                Some(name),
                format!(
                    "unknown field '{name}'; searchable fields are {}",
                    crate::schema::FIELDS
                        .iter()
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// The query over session documents (the caller adds `kind = session`).
    pub fn sessions(&self, query: &Query) -> Result<Translated, QueryError> {
        self.boolean(query, boxed(AllQuery), &|this, field, value| {
            let spec = this.term_spec(field)?;
            match spec.kind {
                FieldKind::Content(which) => {
                    let text = this.content_term(field, which, value)?;
                    this.sessions_with_text(text)
                }
                _ => this.metadata_term(spec, field, value),
            }
        })
    }

    /// The query over one session's text documents: content conditions only.
    pub fn text(&self, query: &Query) -> Result<Translated, QueryError> {
        self.boolean(query, kind_is(self.fields, KIND_TEXT), &|this, field, value| {
            let spec = this.term_spec(field)?;
            let FieldKind::Content(which) = spec.kind else {
                return Err(this.error(
                    field,
                    format!(
                        "'{}' is session metadata; the content of one session can only be searched for text (words, \"phrases\", wild*cards, content.screen:, content.command:)",
                        spec.name
                    ),
                ));
            };
            this.content_term(field, which, value)
        })
    }

    /// The boolean structure of `query`, with `all` for `*` and `leaf` for each term.
    fn boolean(
        &self,
        query: &Query,
        all: Translated,
        leaf: &Leaf<Self>,
    ) -> Result<Translated, QueryError> {
        let each = |items: &[Query], occur: Occur| -> Result<Translated, QueryError> {
            let parts = items
                .iter()
                .map(|q| Ok((occur, self.boolean(q, all.box_clone(), leaf)?)))
                .collect::<Result<_, QueryError>>()?;
            Ok(boxed(BooleanQuery::new(parts)))
        };
        match query {
            Query::All => Ok(all),
            Query::And(items) => each(items, Occur::Must),
            Query::Or(items) => each(items, Occur::Should),
            Query::Not(inner) => Ok(all_but(self.boolean(inner, all.box_clone(), leaf)?)),
            Query::Term { field, value } => leaf(self, field.as_deref(), value),
        }
    }

    /// The field a term names; no field means the terminal text.
    fn term_spec(&self, field: Option<&str>) -> Result<&'static FieldSpec, QueryError> {
        match field {
            Some(name) => self.spec(name),
            None => Ok(content_spec()),
        }
    }

    /// Sessions having a text document that matches `text`.
    fn sessions_with_text(&self, text: Translated) -> Result<Translated, QueryError> {
        let sids = self
            .searcher
            .search(text.as_ref(), &SidCollector)
            .map_err(|e| QueryError {
                message: format!("content search failed: {e}"),
                position: None,
            })?;
        if sids.is_empty() {
            return Ok(boxed(EmptyQuery));
        }
        Ok(boxed(TermSetQuery::new(
            sids.into_iter()
                .map(|sid| Term::from_field_u64(self.fields.sid, sid)),
        )))
    }

    fn content_term(
        &self,
        field: Option<&str>,
        which: Content,
        value: &Value,
    ) -> Result<Translated, QueryError> {
        let fields = self.fields.content_fields(which);
        let per_field = |f: Field| -> Result<Translated, QueryError> {
            Ok(match value {
                Value::Exact(word) | Value::Phrase(word) => words_query(f, word),
                Value::Wildcard(pattern) => {
                    // Terminal text is indexed word by word: a pattern matches one word.
                    regex_query(f, &wildcard_regex(pattern, true)).map_err(|m| {
                        self.error(field, format!("invalid wildcard '{pattern}': {m}"))
                    })?
                }
                Value::Any => kind_is(self.fields, KIND_TEXT),
                Value::Range { .. } => {
                    return Err(self.error(
                        field,
                        "ranges do not apply to terminal text; search for words or \"phrases\""
                            .into(),
                    ));
                }
            })
        };
        if fields.len() == 1 {
            return per_field(fields[0]);
        }
        Ok(boxed(BooleanQuery::new(
            fields
                .into_iter()
                .map(|f| Ok((Occur::Should, per_field(f)?)))
                .collect::<Result<_, QueryError>>()?,
        )))
    }

    fn metadata_term(
        &self,
        spec: &FieldSpec,
        name: Option<&str>,
        value: &Value,
    ) -> Result<Translated, QueryError> {
        let Some(field) = self.fields.field(spec) else {
            return Err(self.error(name, format!("'{}' is not searchable", spec.name)));
        };
        if let Value::Any = value {
            return Ok(boxed(ExistsQuery::new(spec.internal.to_string(), false)));
        }
        match spec.kind {
            FieldKind::Identifier | FieldKind::Keyword => {
                let case = |s: &str| {
                    if spec.kind == FieldKind::Keyword {
                        s.to_lowercase()
                    } else {
                        s.to_string()
                    }
                };
                Ok(match value {
                    Value::Exact(v) | Value::Phrase(v) => {
                        term(Term::from_field_text(field, &case(v)))
                    }
                    Value::Wildcard(pattern) => regex_query(
                        field,
                        &wildcard_regex(pattern, spec.kind == FieldKind::Keyword),
                    )
                    .map_err(|m| self.error(name, format!("invalid wildcard '{pattern}': {m}")))?,
                    Value::Range { lower, upper } => {
                        let bound = |b: &Bound| match b {
                            Bound::Unbounded => RangeBound::Unbounded,
                            Bound::Inclusive(v) => {
                                RangeBound::Included(Term::from_field_text(field, &case(v)))
                            }
                            Bound::Exclusive(v) => {
                                RangeBound::Excluded(Term::from_field_text(field, &case(v)))
                            }
                        };
                        boxed(RangeQuery::new(bound(lower), bound(upper)))
                    }
                    Value::Any => unreachable_any(),
                })
            }
            FieldKind::Number => {
                let number = |v: &str| {
                    v.trim().parse::<i64>().map_err(|_| {
                        self.error(
                            name,
                            format!("'{}' takes a whole number, not '{v}'", spec.name),
                        )
                    })
                };
                Ok(match value {
                    Value::Exact(v) | Value::Phrase(v) => {
                        term(Term::from_field_i64(field, number(v)?))
                    }
                    Value::Range { lower, upper } => {
                        let bound = |b: &Bound| -> Result<RangeBound<Term>, QueryError> {
                            Ok(match b {
                                Bound::Unbounded => RangeBound::Unbounded,
                                Bound::Inclusive(v) => {
                                    RangeBound::Included(Term::from_field_i64(field, number(v)?))
                                }
                                Bound::Exclusive(v) => {
                                    RangeBound::Excluded(Term::from_field_i64(field, number(v)?))
                                }
                            })
                        };
                        boxed(RangeQuery::new(bound(lower)?, bound(upper)?))
                    }
                    Value::Wildcard(v) => {
                        return Err(self.error(
                            name,
                            format!("'{}' is a number: wildcards such as '{v}' do not apply; use a range", spec.name),
                        ));
                    }
                    Value::Any => unreachable_any(),
                })
            }
            FieldKind::Time => {
                let instant = |v: &str| {
                    parse_instant(v).ok_or_else(|| {
                        self.error(
                            name,
                            format!(
                                "'{}' takes an ISO 8601 time (2024-01-31, 2024-01-31T10:00, 2024-01-31T10:00:00Z, …) or now-7d, not '{v}'",
                                spec.name
                            ),
                        )
                    })
                };
                let date = |micros: i64| date_term(field, micros);
                Ok(match value {
                    // A time written to the minute means that whole minute, and so on.
                    Value::Exact(v) | Value::Phrase(v) => {
                        let Instant { micros, span } = instant(v)?;
                        boxed(RangeQuery::new(
                            RangeBound::Included(date(micros)),
                            RangeBound::Excluded(date(micros.saturating_add(span))),
                        ))
                    }
                    Value::Range { lower, upper } => {
                        let low = match lower {
                            Bound::Unbounded => RangeBound::Unbounded,
                            Bound::Inclusive(v) => RangeBound::Included(date(instant(v)?.micros)),
                            Bound::Exclusive(v) => {
                                let i = instant(v)?;
                                RangeBound::Included(date(i.micros.saturating_add(i.span)))
                            }
                        };
                        let high = match upper {
                            Bound::Unbounded => RangeBound::Unbounded,
                            Bound::Inclusive(v) => {
                                let i = instant(v)?;
                                RangeBound::Excluded(date(i.micros.saturating_add(i.span)))
                            }
                            Bound::Exclusive(v) => RangeBound::Excluded(date(instant(v)?.micros)),
                        };
                        boxed(RangeQuery::new(low, high))
                    }
                    Value::Wildcard(v) => {
                        return Err(self.error(
                            name,
                            format!(
                                "'{}' is a time: wildcards such as '{v}' do not apply; use a range",
                                spec.name
                            ),
                        ));
                    }
                    Value::Any => unreachable_any(),
                })
            }
            FieldKind::Flag => {
                let flag =
                    |v: &str| match v.to_ascii_lowercase().as_str() {
                        "true" | "yes" | "1" => Ok(true),
                        "false" | "no" | "0" => Ok(false),
                        _ => Err(self
                            .error(name, format!("'{}' is true or false, not '{v}'", spec.name))),
                    };
                match value {
                    Value::Exact(v) | Value::Phrase(v) => {
                        Ok(term(Term::from_field_bool(field, flag(v)?)))
                    }
                    _ => Err(self.error(
                        name,
                        format!(
                            "'{}' is true or false: ranges and wildcards do not apply",
                            spec.name
                        ),
                    )),
                }
            }
            FieldKind::Content(_) => Err(self.error(name, "content is not metadata".into())),
        }
    }
}

/// `Value::Any` is answered before the per-kind match.
fn unreachable_any() -> Translated {
    boxed(EmptyQuery)
}

fn content_spec() -> &'static FieldSpec {
    // The catalogue always has `content`; fall back to its first entry only to avoid a panic path.
    lookup("content").unwrap_or(&crate::schema::FIELDS[0])
}

/// The largest instant the index can hold: dates are nanoseconds in an i64 (up to 2262).
const LATEST_MICROS: i64 = i64::MAX / 1000;

/// A date term, clamped to what the index can represent (so `end=2999-01-01` means "any time").
pub fn date_term(field: Field, micros: i64) -> Term {
    let micros = micros.clamp(-LATEST_MICROS, LATEST_MICROS);
    Term::from_field_date(field, DateTime::from_timestamp_micros(micros))
}

fn term(t: Term) -> Translated {
    boxed(TermQuery::new(t, IndexRecordOption::Basic))
}

/// A word or phrase of terminal text, split into words as the text was: `/etc/passwd` is the
/// phrase `etc passwd`.
fn words_query(field: Field, text: &str) -> Translated {
    let mut analyzer = crate::schema::text_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while let Some(token) = stream.next() {
        terms.push(Term::from_field_text(field, &token.text));
    }
    match terms.len() {
        0 => boxed(EmptyQuery),
        1 => boxed(TermQuery::new(terms.remove(0), IndexRecordOption::Basic)),
        _ => boxed(PhraseQuery::new(terms)),
    }
}

fn regex_query(field: Field, regex: &str) -> Result<Translated, String> {
    RegexQuery::from_pattern(regex, field)
        .map(boxed)
        .map_err(|e| e.to_string())
}

/// The regular expression of a wildcard pattern: `*` any run, `?` one character, `\*`, `\?`
/// and `\\` themselves; everything else literal (lower-cased for case-insensitive fields).
pub fn wildcard_regex(pattern: &str, lowercase: bool) -> String {
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '\\' => {
                if let Some(escaped) = chars.next() {
                    push_literal(&mut out, escaped, lowercase);
                }
            }
            other => push_literal(&mut out, other, lowercase),
        }
    }
    out
}

fn push_literal(out: &mut String, c: char, lowercase: bool) {
    if "\\.+*?()|[]{}^$#&-~\"<>@".contains(c) {
        out.push('\\');
        out.push(c);
    } else if lowercase {
        out.extend(c.to_lowercase());
    } else {
        out.push(c);
    }
}

/// The session documents (metadata only) that a query matches, ignoring the caller's rights.
pub fn kind_session(fields: &Fields) -> Translated {
    kind_is(fields, KIND_SESSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_anchored_regexes_of_literals() {
        assert_eq!(wildcard_regex("Adm*", true), "adm.*");
        assert_eq!(wildcard_regex("a?c", false), "a.c");
        assert_eq!(wildcard_regex("10.0.*", true), "10\\.0\\..*");
        assert_eq!(wildcard_regex("x\\*y*", true), "x\\*y.*");
        assert_eq!(wildcard_regex("(a|b)", true), "\\(a\\|b\\)");
    }
}
