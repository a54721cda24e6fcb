//! The session record, rendered as SPS renders `GET /api/audit/sessions/<id>` (API notes §8.2).

use std::net::IpAddr;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// How a session ended (or stands), with SPS's spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Connected and allowed (also while active).
    #[serde(rename = "ACCEPT")]
    Accept,
    /// The client failed to authenticate (to the gateway or the target).
    #[serde(rename = "AUTH_FAIL")]
    AuthFail,
    /// No policy allowed it, or a policy denied it.
    #[serde(rename = "DENY")]
    Deny,
    /// The gateway could not complete it (target unreachable, host key mismatch, storage).
    #[serde(rename = "FAIL")]
    Fail,
    /// Closed by an administrator.
    #[serde(rename = "TERMINATED")]
    Terminated,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "ACCEPT",
            Verdict::AuthFail => "AUTH_FAIL",
            Verdict::Deny => "DENY",
            Verdict::Fail => "FAIL",
            Verdict::Terminated => "TERMINATED",
        }
    }
}

/// One proxied session. Times are Unix microseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Opaque key of `/api/audit/sessions/<key>` (22 characters, URL-safe).
    pub key: String,
    /// SPS's recorded-session id, `svc/<key>/<connection policy name>:<n>`.
    pub session_id: String,
    pub protocol: String,
    pub node_id: String,
    pub client: Endpoint,
    /// The gateway address the client connected to.
    pub gateway: Endpoint,
    /// The target server, once known.
    pub server: Option<Endpoint>,
    /// The gateway's own end of the server connection.
    pub server_local: Option<Endpoint>,
    /// The user name the client gave the gateway (for in-band targets: `user@host`).
    pub gateway_username: Option<String>,
    /// The user name used on the target server.
    pub server_username: Option<String>,
    pub connection_policy: String,
    pub connection_policy_id: String,
    pub channel_policy: Option<String>,
    pub auth_method: Option<String>,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub active: bool,
    pub verdict: Verdict,
    /// Why it ended or was refused, for people (e.g. "host key mismatch").
    pub reason: Option<String>,
    pub has_accepted_channel: bool,
    /// The trail file, relative to the data directory.
    pub trail: Option<String>,
    pub archived: bool,
    /// Where an archive/cleanup policy put the trail (or that it deleted it); `None` while
    /// the trail is in the data directory. Absent in records written before issue 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<TrailArchive>,
}

/// What an archive/cleanup policy did with a session's trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailArchive {
    /// Name and key of the policy that moved (or deleted) the trail.
    pub policy: String,
    pub policy_id: String,
    /// `smb` or `nfs` (archived, downloadable while the target is reachable), or `none`
    /// (deleted for good).
    pub target: String,
    /// The target's server (`smb`, `nfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The SMB share (with its directory path), or the NFS export path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    /// The file below the share or export, `/`-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Length and BLAKE3 digest of the trail, as read back from the target before the local
    /// copy was deleted.
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// When it was archived or deleted (Unix microseconds).
    pub time: i64,
}

impl TrailArchive {
    /// Whether the trail still exists somewhere (`none` deletes it).
    pub fn is_archived(&self) -> bool {
        self.target != "none"
    }

    /// `smb://server/share/path` or `nfs://server/export/path`, for people and logs.
    pub fn location(&self) -> Option<String> {
        let server = self.server.as_deref()?;
        let mut out = format!("{}://{server}", self.target);
        for part in [self.share.as_deref(), self.path.as_deref()]
            .into_iter()
            .flatten()
        {
            out.push('/');
            out.push_str(part.trim_start_matches('/'));
        }
        Some(out)
    }

    fn to_sps(&self) -> Value {
        json!({
            "policy": self.policy,
            "policy_id": self.policy_id,
            "type": self.target,
            "location": self.location(),
            "size": self.size,
            "blake3": self.blake3,
            "time": iso(self.time),
        })
    }
}

/// A fresh 22-character key (131 random bits, base62), as SPS's session keys look.
pub fn new_session_key() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..22)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Unix microseconds as SPS renders times (`2019-11-25T23:59:28.000Z`); `None` out of range.
pub fn iso_time(micros: i64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()?;
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).ok()
}

fn iso(micros: i64) -> Value {
    iso_time(micros).map_or(Value::Null, Value::String)
}

fn endpoint(e: &Endpoint) -> Value {
    json!({"ip": e.ip.to_string(), "name": e.ip.to_string(), "port": e.port})
}

impl SessionRecord {
    /// Seconds from start to end (or to `now_micros` while active).
    pub fn duration(&self, now_micros: i64) -> i64 {
        (self.end_time.unwrap_or(now_micros) - self.start_time).max(0) / 1_000_000
    }

    /// Whether the trail can be downloaded: it was recorded and not deleted by a cleanup
    /// policy (an archived trail is served from the archive).
    pub fn downloadable(&self) -> bool {
        self.trail.is_some() && self.archive.as_ref().is_none_or(TrailArchive::is_archived)
    }

    /// The body of `GET /api/audit/sessions/<key>`, in SPS's field layout.
    pub fn to_sps_body(&self, now_micros: i64) -> Value {
        let server = self.server.as_ref().map(|s| {
            json!({"id": s.ip.to_string(), "ip": s.ip.to_string(), "name": s.ip.to_string(), "port": s.port})
        });
        let href = format!("/api/audit/sessions/{}", self.key);
        json!({
            "active": self.active,
            "hidden": false,
            "phantom": false,
            "origin": "RECORDING",
            "protocol": self.protocol,
            "client": endpoint(&self.client),
            "user": {
                "id": self.server_username,
                "name": self.server_username,
                "gateway_username": self.gateway_username,
                "server_username": self.server_username.iter().collect::<Vec<_>>(),
            },
            "server": server,
            "creation_time": iso(self.start_time),
            "start_time": iso(self.start_time),
            "end_time": self.end_time.map_or(Value::Null, iso),
            "duration": self.duration(now_micros),
            "verdict": self.verdict.as_str(),
            "node_id": self.node_id,
            "trail_download_link": self.downloadable().then(|| format!("{href}/audit_trail")),
            "analytics": {"interesting_events": [], "scripted": false, "similar_sessions": [], "tags": []},
            "recording": {
                "archived": self.archived,
                "auth_method": self.auth_method,
                "channel_policy": self.channel_policy,
                "connection_policy": self.connection_policy,
                "connection_policy_id": self.connection_policy_id,
                "has_accepted_channel": self.has_accepted_channel,
                "verdict": self.verdict.as_str(),
                "reason": self.reason,
                "session_id": self.session_id,
                "server_local": self.server_local.as_ref().map(endpoint),
                "target": self.server.as_ref().map(endpoint),
                "gateway": endpoint(&self.gateway),
                "audit_trail": {
                    "archive": self.archive.as_ref().filter(|a| a.is_archived()).map(TrailArchive::to_sps),
                    "deleted": self.archive.as_ref().filter(|a| !a.is_archived()).map(|a| json!({
                        "policy": a.policy, "policy_id": a.policy_id, "time": iso(a.time),
                    })),
                    "download": self.downloadable().then(|| json!({"href": format!("{href}/audit_trail")})),
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SessionRecord {
        SessionRecord {
            key: new_session_key(),
            session_id: "svc/x/demo:1".into(),
            protocol: "SSH".into(),
            node_id: "n".into(),
            client: Endpoint {
                ip: "127.0.0.1".parse().unwrap(),
                port: 40000,
            },
            gateway: Endpoint {
                ip: "127.0.0.1".parse().unwrap(),
                port: 2222,
            },
            server: Some(Endpoint {
                ip: "127.0.0.1".parse().unwrap(),
                port: 22,
            }),
            server_local: None,
            gateway_username: Some("alice".into()),
            server_username: Some("alice".into()),
            connection_policy: "demo".into(),
            connection_policy_id: "abc".into(),
            channel_policy: Some("all-session".into()),
            auth_method: Some("password".into()),
            start_time: 1_700_000_000_000_000,
            end_time: Some(1_700_000_042_500_000),
            active: false,
            verdict: Verdict::Accept,
            reason: None,
            has_accepted_channel: true,
            trail: Some("trails/x.trail".into()),
            archived: false,
            archive: None,
        }
    }

    #[test]
    fn renders_the_sps_layout() {
        let r = record();
        assert_eq!(r.key.len(), 22);
        let body = r.to_sps_body(0);
        assert_eq!(body["duration"], 42);
        assert_eq!(body["start_time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(body["recording"]["session_id"], "svc/x/demo:1");
        assert_eq!(body["user"]["server_username"], json!(["alice"]));
        assert_eq!(body["client"]["port"], 40000);
        assert!(
            body["recording"]["audit_trail"]["download"]["href"]
                .as_str()
                .unwrap()
                .ends_with("/audit_trail")
        );
    }
}
