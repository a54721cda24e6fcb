//! Paging of search listings as SPS does it (API notes §8.1): `limit` defaults to and clamps at
//! 500, `offset` cannot reach past 10000, and `meta` carries relative URLs of the first, last,
//! previous and next pages (`null` where there is none).

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::request::ApiRequest;

/// Default and largest page size; larger requests are clamped, not refused.
pub const MAX_LIMIT: i64 = 500;
/// The last offset a listing may start at: SPS makes results beyond it unreachable.
pub const MAX_OFFSET: i64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// The page a request asks for; malformed or out-of-window numbers are 400 `SyntacticError`.
    pub fn from_request(req: &ApiRequest) -> Result<Page, ApiError> {
        let limit = req.query_number("limit", MAX_LIMIT)?;
        if limit == 0 {
            return Err(ApiError::Syntax {
                field: "limit".into(),
                message: format!("limit must be between 1 and {MAX_LIMIT}"),
            });
        }
        let offset = req.query_number("offset", 0)?;
        if offset > MAX_OFFSET {
            return Err(ApiError::Syntax {
                field: "offset".into(),
                message: format!(
                    "offset {offset} is beyond {MAX_OFFSET}: results past the first {MAX_OFFSET} cannot be listed; narrow the search instead"
                ),
            });
        }
        Ok(Page {
            limit: limit.min(MAX_LIMIT),
            offset,
        })
    }

    /// Adds `limit`, `offset`, `match_count` and the page URLs of a listing at `base` that has
    /// `total` results in all.
    pub fn add_meta(&self, base: &str, total: i64, meta: &mut Map<String, Value>) {
        self.add_meta_with(base, total, "", "", meta);
    }

    /// [`add_meta`](Self::add_meta) for a search: the URLs carry `fields` and the parameters
    /// that select the results (`carried`, already encoded as `&name=value…`).
    pub fn add_meta_with(
        &self,
        base: &str,
        total: i64,
        fields: &str,
        carried: &str,
        meta: &mut Map<String, Value>,
    ) {
        let Page { limit, offset } = *self;
        // SPS's page URLs name `fields` even when empty; clients follow them verbatim.
        let url = |offset: i64| {
            json!(format!(
                "{base}?limit={limit}&offset={offset}&fields={fields}{carried}"
            ))
        };
        let last = if total > 0 {
            ((total - 1) / limit * limit).min(MAX_OFFSET)
        } else {
            0
        };
        let after = offset.saturating_add(limit);
        let next = if after < total && after <= MAX_OFFSET {
            url(after)
        } else {
            Value::Null
        };
        let previous = if offset > 0 {
            url((offset - limit).max(0))
        } else {
            Value::Null
        };
        meta.insert("limit".into(), json!(limit));
        meta.insert("offset".into(), json!(offset));
        meta.insert("match_count".into(), json!(total));
        meta.insert("first".into(), url(0));
        meta.insert("last".into(), url(last));
        meta.insert("previous".into(), previous);
        meta.insert("next".into(), next);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Instant;

    use axum::http::{HeaderMap, Method, Version};

    use super::*;

    fn request(query: &[(&str, &str)]) -> ApiRequest {
        ApiRequest {
            method: Method::GET,
            version: Version::HTTP_11,
            path: "/api/audit/sessions".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            headers: HeaderMap::new(),
            body: Default::default(),
            peer: "127.0.0.1".parse().unwrap(),
            now: Instant::now(),
        }
    }

    fn page(query: &[(&str, &str)]) -> Result<Page, String> {
        Page::from_request(&request(query)).map_err(|e| e.code().to_string())
    }

    #[test]
    fn limits_default_clamp_and_reject_garbage() {
        assert_eq!(
            page(&[]),
            Ok(Page {
                limit: 500,
                offset: 0
            })
        );
        assert_eq!(page(&[("limit", "10000")]).map(|p| p.limit), Ok(500));
        assert_eq!(
            page(&[("limit", "7"), ("offset", "10000")]),
            Ok(Page {
                limit: 7,
                offset: 10000
            })
        );
        for bad in [
            ("limit", "abc"),
            ("limit", "-1"),
            ("limit", "0"),
            ("offset", "1.5"),
            ("offset", "10001"),
        ] {
            assert_eq!(page(&[bad]), Err("SyntacticError".into()), "{bad:?}");
        }
    }

    fn meta(limit: i64, offset: i64, total: i64) -> Value {
        let mut meta = Map::new();
        Page { limit, offset }.add_meta("/x", total, &mut meta);
        Value::Object(meta)
    }

    #[test]
    fn a_single_page_points_first_and_last_at_itself_as_sps_does() {
        let m = meta(500, 0, 39);
        assert_eq!(m["first"], "/x?limit=500&offset=0&fields=");
        assert_eq!(m["last"], "/x?limit=500&offset=0&fields=");
        assert_eq!(
            (m["previous"].clone(), m["next"].clone()),
            (Value::Null, Value::Null)
        );
        assert_eq!(m["match_count"], 39);
        assert_eq!(meta(500, 0, 0)["last"], "/x?limit=500&offset=0&fields=");
    }

    #[test]
    fn middle_pages_link_both_ways_and_the_last_page_ends() {
        let m = meta(10, 10, 25);
        assert_eq!(m["previous"], "/x?limit=10&offset=0&fields=");
        assert_eq!(m["next"], "/x?limit=10&offset=20&fields=");
        assert_eq!(m["last"], "/x?limit=10&offset=20&fields=");
        let end = meta(10, 20, 25);
        assert_eq!(end["next"], Value::Null);
        // An offset not on the grid still steps back without going below zero.
        assert_eq!(meta(10, 5, 25)["previous"], "/x?limit=10&offset=0&fields=");
    }

    #[test]
    fn links_never_leave_the_offset_window() {
        let m = meta(500, 10_000, 1_000_000);
        assert_eq!(m["next"], Value::Null);
        assert_eq!(m["last"], "/x?limit=500&offset=10000&fields=");
    }
}
