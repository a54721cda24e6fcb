//! Where an archived trail goes below the target's directory: the policy's `template`, with the
//! node id in front when `include_node_id_in_path` is set (so cluster nodes sharing a target
//! never write to the same place).

use custos_sessions::SessionRecord;

/// The layout used when a policy names none: by the day of archiving, as SPS's default.
pub const DEFAULT_TEMPLATE: &str = "archive_date";

/// `YYYY-MM-DD` of Unix microseconds (UTC).
fn day(micros: i64) -> String {
    custos_sessions::iso_time(micros)
        .and_then(|t| t.get(..10).map(str::to_string))
        .unwrap_or_else(|| "unknown-date".into())
}

/// A path segment made of what is safe in file names on every target (SMB forbids more than
/// POSIX does): letters, digits, `.`, `-`, `_`; anything else becomes `_`. Never `.` or `..`.
fn segment(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match cleaned.trim_matches('.') {
        "" => "_".into(),
        _ => cleaned,
    }
}

/// The trail's path relative to the target directory, `/`-separated, for a trail archived at
/// `now` (Unix microseconds).
pub fn destination(
    template: Option<&str>,
    node_id: Option<&str>,
    record: &SessionRecord,
    now: i64,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(node) = node_id {
        parts.push(segment(node));
    }
    for element in template.unwrap_or(DEFAULT_TEMPLATE).split('/') {
        parts.push(match element {
            "protocol" => segment(&record.protocol.to_ascii_lowercase()),
            "connection" => segment(&record.connection_policy),
            "archive_date" => day(now),
            "connection_date" => day(record.start_time),
            other => segment(other),
        });
    }
    let file = record
        .trail
        .as_deref()
        .and_then(|t| t.rsplit('/').next())
        .map_or_else(|| format!("{}.trail", record.key), segment);
    parts.push(file);
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_sessions::{Endpoint, Verdict};

    fn record() -> SessionRecord {
        let local = Endpoint {
            ip: "127.0.0.1".parse().unwrap(),
            port: 1,
        };
        SessionRecord {
            key: "K3y".into(),
            session_id: "svc/K3y/prod db:1".into(),
            protocol: "SSH".into(),
            node_id: "n".into(),
            client: local,
            gateway: local,
            server: None,
            server_local: None,
            gateway_username: None,
            server_username: None,
            connection_policy: "prod db/../x".into(),
            connection_policy_id: "1".into(),
            channel_policy: None,
            auth_method: None,
            // 2023-11-14
            start_time: 1_700_000_000_000_000,
            end_time: None,
            active: false,
            verdict: Verdict::Accept,
            reason: None,
            has_accepted_channel: true,
            trail: Some("trails/K3y.trail".into()),
            archived: false,
            archive: None,
        }
    }

    #[test]
    fn every_template_lays_out_its_directories() {
        let now = 1_763_856_000_000_000; // 2025-11-23
        let r = record();
        let cases = [
            (None, "2025-11-23/K3y.trail"),
            (
                Some("protocol/connection/archive_date"),
                "ssh/prod_db_.._x/2025-11-23/K3y.trail",
            ),
            (
                Some("protocol/connection/connection_date"),
                "ssh/prod_db_.._x/2023-11-14/K3y.trail",
            ),
            (Some("archive_date"), "2025-11-23/K3y.trail"),
            (Some("connection_date"), "2023-11-14/K3y.trail"),
            (
                Some("archive_date/connection"),
                "2025-11-23/prod_db_.._x/K3y.trail",
            ),
        ];
        for (template, expected) in cases {
            assert_eq!(
                destination(template, None, &r, now),
                expected,
                "{template:?}"
            );
        }
        assert_eq!(
            destination(Some("connection_date"), Some("node-7"), &r, now),
            "node-7/2023-11-14/K3y.trail"
        );
    }

    #[test]
    fn names_cannot_climb_out_of_the_target() {
        assert_eq!(segment(".."), "_");
        assert_eq!(segment("a/b"), "a_b");
        assert_eq!(segment(""), "_");
        assert_eq!(segment("..x"), "..x");
    }
}
