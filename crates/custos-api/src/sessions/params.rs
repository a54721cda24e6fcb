//! Search parameters shared by the listing, the count and the aggregations: `q`, `start`, `end`
//! (ISO 8601), and their echo in paging URLs.

use custos_search::time::parse_instant;

use crate::error::ApiError;
use crate::request::ApiRequest;

/// `q`, `start` and `end` of a request, checked.
pub struct SearchParams {
    pub q: Option<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl SearchParams {
    pub fn from_request(req: &ApiRequest) -> Result<SearchParams, ApiError> {
        let time = |name: &str| -> Result<Option<i64>, ApiError> {
            match req.query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(text) => parse_instant(text).map(|i| Some(i.micros)).ok_or_else(|| ApiError::Syntax {
                    field: name.into(),
                    message: format!(
                        "'{text}' is not an ISO 8601 time (for example 2017-01-25, 2017-01-25T10:00 or 2017-01-25T10:00:00Z)"
                    ),
                }),
            }
        };
        Ok(SearchParams {
            q: req.query.get("q").filter(|q| !q.trim().is_empty()).cloned(),
            start: time("start")?,
            end: time("end")?,
        })
    }

    pub fn filter(&self) -> custos_search::Filter<'_> {
        custos_search::Filter {
            q: self.q.as_deref(),
            start: self.start,
            end: self.end,
        }
    }
}

/// The parameters that select results (not the page), re-encoded for paging URLs, so that
/// following `meta.next` keeps asking the same question.
pub fn carried(req: &ApiRequest, names: &[&str]) -> String {
    let mut out = String::new();
    for name in names {
        if let Some(value) = req.query.get(*name).filter(|v| !v.is_empty()) {
            out.push('&');
            out.push_str(name);
            out.push('=');
            out.push_str(&encode(value));
        }
    }
    out
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',' | b'*') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn values_survive_the_round_trip_through_a_url() {
        assert_eq!(
            encode("protocol:ssh AND \"a b\""),
            "protocol%3Assh%20AND%20%22a%20b%22"
        );
        assert_eq!(encode("-start_time"), "-start_time");
        assert_eq!(encode("client.ip,protocol"), "client.ip,protocol");
        assert_eq!(encode("a&b=c+d"), "a%26b%3Dc%2Bd");
    }
}
