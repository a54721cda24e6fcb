//! Search results as CSV (`format=csv` or `Accept: text/csv`): one row per session, a column
//! per requested field (the `key` first), values as in the JSON body; lists joined with `;`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::request::ApiRequest;

/// The columns when `fields` names none.
pub const DEFAULT_COLUMNS: &[&str] = &[
    "start_time",
    "end_time",
    "protocol",
    "user.name",
    "user.gateway_username",
    "client.ip",
    "server.ip",
    "server.port",
    "recording.connection_policy",
    "verdict",
    "active",
];

/// Whether the client asked for CSV.
pub fn wanted(req: &ApiRequest) -> bool {
    req.query
        .get("format")
        .is_some_and(|f| f.eq_ignore_ascii_case("csv"))
        || req
            .header("accept")
            .is_some_and(|a| a.to_ascii_lowercase().contains("text/csv"))
}

/// Renders a search listing (`items` with `body`, `meta.fields`) as CSV.
pub fn response(listing: &Value) -> Response {
    let fields: Vec<String> = listing["meta"]["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut out = String::new();
    let header_row: Vec<String> = std::iter::once("key".to_string())
        .chain(fields.iter().cloned())
        .collect();
    push_row(&mut out, &header_row);
    for item in listing["items"].as_array().into_iter().flatten() {
        let mut row = vec![item["key"].as_str().unwrap_or_default().to_string()];
        for field in &fields {
            let value = field
                .split('.')
                .try_fold(&item["body"], |node, part| node.get(part))
                .unwrap_or(&Value::Null);
            row.push(cell(value));
        }
        push_row(&mut out, &row);
    }
    let mut response = (StatusCode::OK, out).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// RFC 4180: quote cells holding a comma, quote or line break; double inner quotes. Cells that
/// a spreadsheet would run as a formula are prefixed with `'` (CSV injection).
fn push_row(out: &mut String, cells: &[String]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let cell = if cell.starts_with(['=', '+', '-', '@']) && cell.parse::<f64>().is_err() {
            format!("'{cell}")
        } else {
            cell.clone()
        };
        if cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&cell);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quotes_commas_quotes_and_formulas() {
        let mut out = String::new();
        push_row(
            &mut out,
            &[
                "a,b".into(),
                "say \"hi\"".into(),
                "=cmd()".into(),
                "-5".into(),
            ],
        );
        assert_eq!(out, "\"a,b\",\"say \"\"hi\"\"\",'=cmd(),-5\r\n");
    }

    #[test]
    fn a_listing_becomes_rows_under_a_header() {
        let listing = json!({
            "items": [{"key": "k1", "body": {"protocol": "SSH", "user": {"server_username": ["a", "b"]}, "active": false}}],
            "meta": {"fields": ["protocol", "user.server_username", "active", "missing"]},
        });
        let response = response(&listing);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/csv; charset=utf-8"
        );
    }

    #[test]
    fn cells_render_json_values() {
        assert_eq!(cell(&json!(["a", "b"])), "a;b");
        assert_eq!(cell(&json!(null)), "");
        assert_eq!(cell(&json!(22)), "22");
        assert_eq!(cell(&json!(true)), "true");
    }
}
