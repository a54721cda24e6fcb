//! Questions asked of the index: which sessions match (sorted, paged, counted), their top values
//! and histograms, and where in one session's text a query hits.
//!
//! Every question takes the caller's [`Visibility`], so that audit-data access rules restrict
//! all of them the same way, in one place.

use std::ops::Bound as RangeBound;

use custos_query::Query;
use serde_json::{Value as Json, json};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, EmptyQuery, Occur, RangeQuery};
use tantivy::schema::Value;
use tantivy::{DateTime, DocAddress, Order, Searcher, TantivyDocument, Term};

use crate::documents::lines_of;
use crate::index::SearchIndex;
use crate::linematch::line_matches;
use crate::schema::{FieldKind, FieldSpec, KIND_SESSION, KIND_TEXT, lookup, sid};
use crate::time::iso;
use crate::translate::{QueryError, Translated, Translator, all_of, date_term, kind_is};

/// Which sessions a caller may see.
#[derive(Clone, Debug)]
pub enum Visibility {
    /// Everything ("search in all connections", the administrator).
    All,
    /// Sessions matching at least one of these audit-data rule queries; none: nothing.
    Rules(Vec<Query>),
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The client's query or parameter is wrong (HTTP 400).
    #[error("{0}")]
    Query(#[from] QueryError),
    /// The index failed (HTTP 500).
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
}

fn bad(message: impl Into<String>) -> SearchError {
    SearchError::Query(QueryError {
        message: message.into(),
        position: None,
    })
}

/// The order of a listing: a field and a direction (`-start_time`: newest first).
#[derive(Clone, Copy, Debug)]
pub struct Sort {
    pub field: &'static FieldSpec,
    pub descending: bool,
}

impl Sort {
    /// Parses `sort=`: a field name, `-` first for descending; empty is `-start_time`.
    pub fn parse(text: &str) -> Result<Sort, QueryError> {
        let text = text.trim();
        let (descending, name) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let name = if name.is_empty() { "start_time" } else { name };
        let descending = descending || text.is_empty();
        let field = lookup(name).ok_or_else(|| QueryError {
            message: format!("cannot sort by unknown field '{name}'"),
            position: None,
        })?;
        if matches!(field.kind, FieldKind::Content(_)) {
            return Err(QueryError {
                message: format!("cannot sort by '{name}': it is terminal text"),
                position: None,
            });
        }
        Ok(Sort { field, descending })
    }
}

/// A search of sessions: `q`, `start`/`end` (Unix microseconds) and the caller's visibility.
#[derive(Clone, Debug, Default)]
pub struct Filter<'a> {
    pub q: Option<&'a str>,
    /// Sessions that started at or after this time.
    pub start: Option<i64>,
    /// Sessions that ended at or before this time.
    pub end: Option<i64>,
}

/// One page of matching sessions, and how many match in all.
#[derive(Debug)]
pub struct Page {
    pub keys: Vec<String>,
    pub total: usize,
}

/// A hit in one session's text.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentHit {
    /// Microseconds since the session start.
    pub at: i64,
    /// `screen` or `command`.
    pub kind: &'static str,
    pub text: String,
}

/// Parses a query for search, reporting the position of a syntax error.
pub fn parse_query(q: &str) -> Result<Query, QueryError> {
    custos_query::parse(q).map_err(|e| QueryError {
        message: e.message.clone(),
        position: Some(e.position),
    })
}

impl SearchIndex {
    fn translator<'a>(&'a self, searcher: &'a Searcher, source: &'a str) -> Translator<'a> {
        Translator {
            fields: self.fields(),
            searcher,
            source,
        }
    }

    /// The query over session documents that `filter` and `visibility` select.
    fn session_filter(
        &self,
        searcher: &Searcher,
        filter: &Filter<'_>,
        visibility: &Visibility,
    ) -> Result<Translated, SearchError> {
        let fields = self.fields();
        let mut parts = vec![kind_is(fields, KIND_SESSION)];
        if let Some(q) = filter.q.filter(|q| !q.trim().is_empty()) {
            let query = parse_query(q)?;
            parts.push(self.translator(searcher, q).sessions(&query)?);
        }
        let time = |name: &str| fields.schema.get_field(name);
        if let (Some(start), Ok(field)) = (filter.start, time("start_time")) {
            parts.push(Box::new(RangeQuery::new(
                RangeBound::Included(date_term(field, start)),
                RangeBound::Unbounded,
            )));
        }
        if let (Some(end), Ok(field)) = (filter.end, time("end_time")) {
            parts.push(Box::new(RangeQuery::new(
                RangeBound::Unbounded,
                RangeBound::Included(date_term(field, end)),
            )));
        }
        parts.push(self.visibility_filter(searcher, visibility)?);
        Ok(all_of(parts))
    }

    fn visibility_filter(
        &self,
        searcher: &Searcher,
        visibility: &Visibility,
    ) -> Result<Translated, SearchError> {
        let Visibility::Rules(rules) = visibility else {
            return Ok(kind_is(self.fields(), KIND_SESSION));
        };
        let mut any = Vec::new();
        for rule in rules {
            // Rules were checked when configured; one that no longer translates (e.g. a field
            // renamed) grants nothing rather than failing every search of its users.
            match self.translator(searcher, "").sessions(rule) {
                Ok(q) => any.push((Occur::Should, q)),
                Err(e) => {
                    tracing::warn!(rule = %rule, error = %e, "an audit-data rule cannot be applied; it grants nothing")
                }
            }
        }
        if any.is_empty() {
            return Ok(Box::new(EmptyQuery));
        }
        Ok(Box::new(BooleanQuery::new(any)))
    }

    /// The page `offset..offset + limit` of matching sessions in `sort` order, and the total.
    pub fn search(
        &self,
        filter: &Filter<'_>,
        visibility: &Visibility,
        sort: Sort,
        offset: usize,
        limit: usize,
    ) -> Result<Page, SearchError> {
        let searcher = self.searcher();
        let query = self.session_filter(&searcher, filter, visibility)?;
        let order = if sort.descending {
            Order::Desc
        } else {
            Order::Asc
        };
        let top = TopDocs::with_limit(limit.max(1)).and_offset(offset);
        let name = sort.field.internal;
        let q = query.as_ref();
        let (addresses, total) = match sort.field.kind {
            FieldKind::Time => sorted(
                &searcher,
                q,
                top.order_by_fast_field::<DateTime>(name, order),
            )?,
            FieldKind::Number => sorted(&searcher, q, top.order_by_fast_field::<i64>(name, order))?,
            FieldKind::Flag => sorted(&searcher, q, top.order_by_fast_field::<bool>(name, order))?,
            FieldKind::Keyword | FieldKind::Identifier => {
                sorted(&searcher, q, top.order_by_string_fast_field(name, order))?
            }
            FieldKind::Content(_) => return Err(bad("cannot sort by terminal text")),
        };
        let keys = if limit == 0 {
            Vec::new()
        } else {
            addresses
                .into_iter()
                .map(|a| self.key_of(&searcher, a))
                .collect::<Result<_, _>>()?
        };
        Ok(Page { keys, total })
    }

    fn key_of(&self, searcher: &Searcher, address: DocAddress) -> Result<String, SearchError> {
        let doc: TantivyDocument = searcher.doc(address)?;
        Ok(doc
            .get_first(self.fields().key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string())
    }

    /// How many sessions match.
    pub fn count(
        &self,
        filter: &Filter<'_>,
        visibility: &Visibility,
    ) -> Result<usize, SearchError> {
        let searcher = self.searcher();
        let query = self.session_filter(&searcher, filter, visibility)?;
        Ok(searcher.search(query.as_ref(), &Count)?)
    }

    /// Whether session `key` is indexed and visible.
    pub fn visible(&self, key: &str, visibility: &Visibility) -> Result<bool, SearchError> {
        let searcher = self.searcher();
        let fields = self.fields();
        let query = all_of(vec![
            Box::new(tantivy::query::TermQuery::new(
                Term::from_field_text(fields.key, key),
                tantivy::schema::IndexRecordOption::Basic,
            )),
            self.visibility_filter(&searcher, visibility)?,
        ]);
        Ok(searcher.search(query.as_ref(), &Count)? > 0)
    }

    /// The top `size` values of `field` among matching sessions, each with the top values of
    /// `sub_field` among its sessions.
    pub fn stats(
        &self,
        filter: &Filter<'_>,
        visibility: &Visibility,
        field: &str,
        sub_field: Option<&str>,
        size: usize,
    ) -> Result<Json, SearchError> {
        let spec = aggregatable(field)?;
        let sub = sub_field.map(aggregatable).transpose()?;
        let mut terms =
            json!({"terms": {"field": spec.internal, "size": size, "min_doc_count": 1}});
        if let Some(sub) = sub {
            terms["aggs"] = json!({"sub": {"terms": {"field": sub.internal, "size": size, "min_doc_count": 1}}});
        }
        let result = self.aggregate(filter, visibility, json!({ "values": terms }))?;
        let values = &result["values"];
        let buckets = |node: &Json| -> Vec<Json> {
            node["buckets"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .map(|b| (b["key"].clone(), b["doc_count"].clone()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
                .into_iter()
                .map(|(k, n)| json!({"value": k, "count": n}))
                .collect()
        };
        let mut out = Vec::new();
        for (bucket, plain) in values["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(buckets(values))
        {
            let mut item = plain;
            if let Some(sub) = sub {
                item["sub_fields"] = json!({ sub.name: buckets(&bucket["sub"]) });
            }
            out.push(item);
        }
        Ok(json!({
            "field": spec.name,
            "values": out,
            "other_count": values["sum_other_doc_count"].as_u64().unwrap_or(0),
        }))
    }

    /// Counts of matching sessions per bin of `field` (a time: `bin` is a duration; a number:
    /// `bin` is the bin width).
    pub fn histogram(
        &self,
        filter: &Filter<'_>,
        visibility: &Visibility,
        field: &str,
        bin: &str,
    ) -> Result<Json, SearchError> {
        let spec = lookup(field).ok_or_else(|| bad(format!("unknown field '{field}'")))?;
        let (request, is_time) = match spec.kind {
            FieldKind::Time => {
                let seconds = bin_seconds(bin)?;
                (
                    json!({"bins": {"date_histogram": {"field": spec.internal, "fixed_interval": format!("{seconds}s"), "min_doc_count": 0}}}),
                    true,
                )
            }
            FieldKind::Number => {
                let width: f64 = bin
                    .trim()
                    .parse()
                    .ok()
                    .filter(|w: &f64| *w > 0.0 && w.is_finite())
                    .ok_or_else(|| {
                        bad(format!(
                            "bin-size of the number '{}' must be a positive number, not '{bin}'",
                            spec.name
                        ))
                    })?;
                (
                    json!({"bins": {"histogram": {"field": spec.internal, "interval": width, "min_doc_count": 0}}}),
                    false,
                )
            }
            _ => {
                return Err(bad(format!(
                    "a histogram needs a time or number field (start_time, end_time, duration, …), not '{}'; use stats for values",
                    spec.name
                )));
            }
        };
        let result = self.aggregate(filter, visibility, request)?;
        let bins: Vec<Json> = result["bins"]["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                let count = b["doc_count"].clone();
                if is_time {
                    let millis = b["key"].as_f64().unwrap_or(0.0);
                    json!({"start": iso((millis * 1000.0) as i64), "count": count})
                } else {
                    json!({"start": b["key"], "count": count})
                }
            })
            .collect();
        Ok(json!({"field": spec.name, "bin_size": bin, "bins": bins}))
    }

    fn aggregate(
        &self,
        filter: &Filter<'_>,
        visibility: &Visibility,
        request: Json,
    ) -> Result<Json, SearchError> {
        let searcher = self.searcher();
        let query = self.session_filter(&searcher, filter, visibility)?;
        let aggs: Aggregations = serde_json::from_value(request).map_err(|e| {
            SearchError::Index(tantivy::TantivyError::InvalidArgument(e.to_string()))
        })?;
        let collector = AggregationCollector::from_aggs(
            aggs,
            AggContextParams::new(
                AggregationLimitsGuard::default(),
                self.shared.index.tokenizers().clone(),
            ),
        );
        let result = match searcher.search(query.as_ref(), &collector) {
            Ok(r) => r,
            // Too many bins or buckets is the request's fault, not the server's.
            Err(tantivy::TantivyError::AggregationError(e)) => {
                return Err(bad(format!(
                    "cannot aggregate: {e}; ask for fewer or larger bins"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        serde_json::to_value(&result)
            .map_err(|e| SearchError::Index(tantivy::TantivyError::InternalError(e.to_string())))
    }

    /// Where `q` hits in the text of session `key`, in time order, at most `max` hits.
    pub fn content(&self, key: &str, q: &str, max: usize) -> Result<Vec<ContentHit>, SearchError> {
        let query = parse_query(q)?;
        let searcher = self.searcher();
        let fields = self.fields();
        let text = self.translator(&searcher, q).text(&query)?;
        let scoped = all_of(vec![
            kind_is(fields, KIND_TEXT),
            Box::new(tantivy::query::TermQuery::new(
                Term::from_field_u64(fields.sid, sid(key)),
                tantivy::schema::IndexRecordOption::Basic,
            )),
            text,
        ]);
        let docs = searcher.search(
            scoped.as_ref(),
            &TopDocs::with_limit(max.max(1)).order_by_fast_field::<i64>("at", Order::Asc),
        )?;
        let mut hits = Vec::new();
        for (_, address) in docs {
            let doc: TantivyDocument = searcher.doc(address)?;
            let at = doc
                .get_first(fields.at)
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            let packed = doc
                .get_first(fields.lines)
                .and_then(|v| v.as_bytes())
                .unwrap_or(&[]);
            let (body, kind) = match doc.get_first(fields.screen).and_then(|v| v.as_str()) {
                Some(s) => (s, "screen"),
                None => (
                    doc.get_first(fields.command)
                        .and_then(|v| v.as_str())
                        .unwrap_or(""),
                    "command",
                ),
            };
            let lines = lines_of(body, at, packed);
            let matching: Vec<_> = lines
                .iter()
                .filter(|(line, _)| line_matches(&query, kind, line))
                .collect();
            // The document matched as a whole (e.g. `a AND b` on two lines): show its start.
            let shown = if matching.is_empty() {
                lines.first().into_iter().collect()
            } else {
                matching
            };
            for (line, time) in shown {
                hits.push(ContentHit {
                    at: *time,
                    kind,
                    text: line.clone(),
                });
                if hits.len() >= max {
                    return Ok(hits);
                }
            }
        }
        hits.sort_by_key(|h| h.at);
        Ok(hits)
    }
}

/// The documents `top` picks (whatever its sort key) and how many match in all.
fn sorted<K: Send + Sync + 'static>(
    searcher: &Searcher,
    query: &dyn tantivy::query::Query,
    top: impl tantivy::collector::Collector<Fruit = Vec<(K, DocAddress)>>,
) -> tantivy::Result<(Vec<DocAddress>, usize)> {
    let (docs, total) = searcher.search(query, &(top, Count))?;
    Ok((docs.into_iter().map(|(_, a)| a).collect(), total))
}

/// Fields whose values can be counted.
fn aggregatable(name: &str) -> Result<&'static FieldSpec, SearchError> {
    let spec = lookup(name).ok_or_else(|| bad(format!("unknown field '{name}'")))?;
    match spec.kind {
        FieldKind::Keyword | FieldKind::Identifier | FieldKind::Number | FieldKind::Flag => {
            Ok(spec)
        }
        FieldKind::Time => Err(bad(format!("'{name}' is a time: use the histogram for it"))),
        FieldKind::Content(_) => Err(bad(format!(
            "'{name}' is terminal text: it has no values to count"
        ))),
    }
}

/// A bin size: `second`, `minute`, `hour`, `day`, `week` (or plural), or `<n>s|m|h|d|w`.
pub fn bin_seconds(bin: &str) -> Result<u64, SearchError> {
    let text = bin.trim().to_ascii_lowercase();
    let named = match text.trim_end_matches('s') {
        "second" => Some(1),
        "minute" => Some(60),
        "hour" => Some(3600),
        "day" => Some(86_400),
        "week" => Some(7 * 86_400),
        _ => None,
    };
    if let Some(seconds) = named {
        return Ok(seconds);
    }
    let unit = text.chars().last().unwrap_or(' ');
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => 0,
    };
    let count: Option<u64> = text
        .get(..text.len().saturating_sub(1))
        .and_then(|n| n.parse().ok());
    match count {
        Some(n) if scale > 0 && n > 0 => Ok(n * scale),
        _ => Err(bad(format!(
            "bin-size must be second, minute, hour, day, week or a count with a unit (30m, 6h, 2d), not '{bin}'"
        ))),
    }
}
