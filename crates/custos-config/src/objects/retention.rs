//! Archive/cleanup and backup policies (`/api/configuration/policies/archive_cleanup_policies`,
//! `…/backup_policies`), per the SPS 8.0 reference (seed 003).
//!
//! Enumerations and the elements that apply "only if type is set to …" are checked by
//! `validate`, so a broken rule is a `SemanticError` naming its field rather than a parse error.

use serde::{Deserialize, Serialize};

use super::key_material::PrivateKeys;
use super::rules;
use crate::problem::Problems;
use crate::reference::Ref;
use crate::schema::{ConfigObject, Context};
use crate::secret::Secret;

pub const ARCHIVE_CLEANUP_POLICIES: &str = "/api/configuration/policies/archive_cleanup_policies";
pub const BACKUP_POLICIES: &str = "/api/configuration/policies/backup_policies";

pub struct ArchiveCleanupPolicies;
impl crate::reference::RefTarget for ArchiveCleanupPolicies {
    const NODE: &'static str = ARCHIVE_CLEANUP_POLICIES;
}
pub struct BackupPolicies;
impl crate::reference::RefTarget for BackupPolicies {
    const NODE: &'static str = BACKUP_POLICIES;
}

/// Directory layouts of archived trails below the target path. The reference names the choices
/// without their values; these are Custos's spellings, one per layout the SPS web UI offers.
pub const TEMPLATES: &[&str] = &[
    "protocol/connection/archive_date",
    "protocol/connection/connection_date",
    "archive_date",
    "connection_date",
    "archive_date/connection",
];
pub const SMB_PROTOCOL_VERSIONS: &[&str] = &["1.0", "2.0", "2.1", "3.0", "3.1.1"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub send_filelist: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_count_limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub selection: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmbAuthentication {
    pub selection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Never shown; kept when a client PUTs back what it read (without the password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

/// A pinned SSH host key: written as an OpenSSH public key line or as `{selection, value}`,
/// always stored and shown as `{selection, value}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HostKey {
    Pair(HostKeyPair),
    Line(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKeyPair {
    pub selection: String,
    pub value: String,
}

/// Where data goes. One shape for every `type`; `validate` enforces which elements apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<SmbAuthentication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<Ref<PrivateKeys>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<HostKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveCleanupPolicy {
    pub name: String,
    #[serde(default)]
    pub include_node_id_in_path: bool,
    pub notification_event: NotificationEvent,
    pub target: Target,
    #[serde(default)]
    pub start_times: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    pub retention_days: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPolicy {
    pub name: String,
    #[serde(default)]
    pub include_node_id_in_path: bool,
    pub notification_event: NotificationEvent,
    pub target: Target,
    #[serde(default)]
    pub start_times: Vec<String>,
}

/// Which elements a target type takes.
struct TargetRules {
    kind: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
}

const TARGET_RULES: &[TargetRules] = &[
    TargetRules {
        kind: "smb",
        required: &["server", "protocol_version", "share", "authentication"],
        optional: &["domain", "path"],
    },
    TargetRules {
        kind: "nfs",
        required: &["server", "path"],
        optional: &[],
    },
    TargetRules {
        kind: "none",
        required: &[],
        optional: &[],
    },
    TargetRules {
        kind: "rsync",
        required: &["server", "username", "path", "auth_key", "host_key", "port"],
        optional: &[],
    },
];

impl Target {
    fn present(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut mark = |set: bool, name| {
            if set {
                out.push(name)
            }
        };
        mark(self.server.is_some(), "server");
        mark(self.domain.is_some(), "domain");
        mark(self.protocol_version.is_some(), "protocol_version");
        mark(self.share.is_some(), "share");
        mark(self.authentication.is_some(), "authentication");
        mark(self.username.is_some(), "username");
        mark(self.path.is_some(), "path");
        mark(self.auth_key.is_some(), "auth_key");
        mark(self.host_key.is_some(), "host_key");
        mark(self.port.is_some(), "port");
        out
    }

    /// Keeps a secret the client did not resend, and writes a host key line in canonical form.
    fn complete(&mut self, previous: Option<&Target>) {
        if let (Some(auth), Some(prev)) = (
            self.authentication.as_mut(),
            previous.and_then(|p| p.authentication.as_ref()),
        ) && auth.selection == "password"
            && auth.password.is_none()
            && auth.username == prev.username
        {
            auth.password = prev.password.clone();
        }
        if let Some(HostKey::Line(line)) = &self.host_key
            && let Ok(key) = custos_keys::parse_ssh_public_key(line)
            && let Some(selection) = custos_keys::host_key_selection(&key.algorithm)
        {
            self.host_key = Some(HostKey::Pair(HostKeyPair {
                selection: selection.to_string(),
                value: key.base64,
            }));
        }
    }

    fn validate(&self, allowed_kinds: &[&str], problems: &mut Problems<'_>) {
        if !allowed_kinds.contains(&self.kind.as_str()) {
            problems.add(
                "target.type",
                format!("must be one of {}", allowed_kinds.join(", ")),
            );
            return;
        }
        let Some(rules) = TARGET_RULES.iter().find(|r| r.kind == self.kind) else {
            return;
        };
        let present = self.present();
        for field in rules.required {
            if !present.contains(field) {
                problems.add(
                    format!("target.{field}"),
                    format!("is required when type is {}", self.kind),
                );
            }
        }
        for field in &present {
            if !rules.required.contains(field) && !rules.optional.contains(field) {
                let owners: Vec<&str> = TARGET_RULES
                    .iter()
                    .filter(|r| r.required.contains(field) || r.optional.contains(field))
                    .map(|r| r.kind)
                    .collect();
                problems.add(
                    format!("target.{field}"),
                    format!("only applies when type is {}", owners.join(" or ")),
                );
            }
        }
        if let Some(server) = &self.server {
            match server.selection.as_str() {
                "ip" => {
                    if server.value.parse::<std::net::IpAddr>().is_err() {
                        problems.add(
                            "target.server.value",
                            format!("{:?} is not an IP address", server.value),
                        );
                    }
                }
                "fqdn" => rules::host(problems, "target.server.value", &server.value),
                _ => problems.add("target.server.selection", "must be ip or fqdn"),
            }
        }
        if let Some(version) = &self.protocol_version
            && !SMB_PROTOCOL_VERSIONS.contains(&version.as_str())
        {
            problems.add(
                "target.protocol_version",
                format!("must be one of {}", SMB_PROTOCOL_VERSIONS.join(", ")),
            );
        }
        if let Some(share) = &self.share {
            relative_path(problems, "target.share", share);
            smbclient_word(problems, "target.share", share);
        }
        if let Some(domain) = &self.domain
            && domain
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '\\' || c == '/')
        {
            problems.add(
                "target.domain",
                "must be a domain name without spaces or slashes",
            );
        }
        if let Some(auth) = &self.authentication {
            match auth.selection.as_str() {
                "password" => {
                    // smbclient reads the credentials from a file of `key=value` lines.
                    if auth
                        .username
                        .as_deref()
                        .is_some_and(|u| u.chars().any(char::is_control))
                    {
                        problems.add(
                            "target.authentication.username",
                            "must not contain control characters",
                        );
                    }
                    if auth
                        .password
                        .as_ref()
                        .is_some_and(|p| p.expose().chars().any(|c| c == '\n' || c == '\r'))
                    {
                        problems.add(
                            "target.authentication.password",
                            "must not contain line breaks",
                        );
                    }
                    match &auth.username {
                        Some(u) if !u.is_empty() => {}
                        _ => problems.add(
                            "target.authentication.username",
                            "is required when selection is password",
                        ),
                    }
                    if auth.password.is_none() {
                        problems.add(
                            "target.authentication.password",
                            "is required when selection is password",
                        );
                    }
                }
                "anonymous" => {
                    if auth.username.is_some() {
                        problems.add(
                            "target.authentication.username",
                            "only applies when selection is password",
                        );
                    }
                    if auth.password.is_some() {
                        problems.add(
                            "target.authentication.password",
                            "only applies when selection is password",
                        );
                    }
                }
                _ => problems.add(
                    "target.authentication.selection",
                    "must be password or anonymous",
                ),
            }
        }
        if let Some(username) = &self.username
            && (username.is_empty()
                || username
                    .chars()
                    .any(|c| c.is_whitespace() || c == '@' || c == ':'))
        {
            problems.add(
                "target.username",
                "must be a user name without spaces, '@' or ':'",
            );
        }
        if let Some(path) = &self.path {
            if self.kind == "smb" {
                relative_path(problems, "target.path", path);
                smbclient_word(problems, "target.path", path);
            } else {
                absolute_path(problems, "target.path", path);
            }
        }
        if let Some(port) = self.port
            && !(1..=65535).contains(&port)
        {
            problems.add("target.port", "must be 1–65535");
        }
        match &self.host_key {
            Some(HostKey::Line(_)) => problems.add(
                "target.host_key",
                "is not a valid OpenSSH public key (expected e.g. \"ssh-ed25519 AAAA…\")",
            ),
            Some(HostKey::Pair(pair)) => {
                if let Err(e) =
                    custos_keys::ssh_public_key_from_selection(&pair.selection, &pair.value)
                {
                    problems.add("target.host_key", e.0);
                }
            }
            None => {}
        }
    }
}

fn absolute_path(problems: &mut Problems<'_>, field: &str, path: &str) {
    if !path.starts_with('/') {
        problems.add(field, "must be an absolute path");
    }
    path_segments(problems, field, path);
}

fn relative_path(problems: &mut Problems<'_>, field: &str, path: &str) {
    if path.is_empty() {
        problems.add(field, "must not be empty");
    }
    if path.starts_with('/') || path.starts_with('\\') {
        problems.add(field, "must not start with a slash");
    }
    path_segments(problems, field, path);
}

/// Share and directory names reach `smbclient` inside its command lists, which split at every
/// `;` and have no escape for `"`.
fn smbclient_word(problems: &mut Problems<'_>, field: &str, value: &str) {
    if value.contains(['"', ';']) {
        problems.add(field, "must not contain '\"' or ';'");
    }
}

fn path_segments(problems: &mut Problems<'_>, field: &str, path: &str) {
    if path.split(['/', '\\']).any(|s| s == "..") {
        problems.add(field, "must not contain '..'");
    }
    if path.chars().any(char::is_control) {
        problems.add(field, "must not contain control characters");
    }
}

fn notification(event: &NotificationEvent, problems: &mut Problems<'_>) {
    if !["all", "errors-only", "none"].contains(&event.kind.as_str()) {
        problems.add(
            "notification_event.type",
            "must be all, errors-only or none",
        );
    }
    if let Some(limit) = event.file_count_limit
        && limit < 1
    {
        problems.add(
            "notification_event.file_count_limit",
            "must be a positive integer",
        );
    }
}

/// `H:MM` or `HH:MM`, a valid time of day; no time twice.
fn start_times(times: &[String], problems: &mut Problems<'_>) {
    for (i, time) in times.iter().enumerate() {
        let valid = time.split_once(':').is_some_and(|(h, m)| {
            (1..=2).contains(&h.len())
                && m.len() == 2
                && h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
                && h.parse::<u8>().is_ok_and(|h| h < 24)
                && m.parse::<u8>().is_ok_and(|m| m < 60)
        });
        if !valid {
            problems.add(
                format!("start_times[{i}]"),
                format!("{time:?} is not a time of day in H:MM or HH:MM"),
            );
        }
    }
    rules::no_duplicates(problems, "start_times", times);
}

fn previous_target(ctx: &Context<'_>) -> Option<Target> {
    ctx.previous
        .and_then(|p| p.get("target"))
        .and_then(|t| Target::deserialize(t).ok())
}

impl ConfigObject for ArchiveCleanupPolicy {
    fn complete(&mut self, ctx: &Context<'_>) {
        self.target.complete(previous_target(ctx).as_ref());
    }

    fn validate(&self, _ctx: &Context<'_>, problems: &mut Problems<'_>) {
        rules::name(problems, "name", &self.name);
        notification(&self.notification_event, problems);
        self.target.validate(&["smb", "nfs", "none"], problems);
        start_times(&self.start_times, problems);
        if let Some(template) = &self.template
            && !TEMPLATES.contains(&template.as_str())
        {
            problems.add(
                "template",
                format!("must be one of {}", TEMPLATES.join(", ")),
            );
        }
        if self.retention_days < 0 {
            problems.add("retention_days", "must be a non-negative number of days");
        }
    }
}

impl ConfigObject for BackupPolicy {
    fn complete(&mut self, ctx: &Context<'_>) {
        self.target.complete(previous_target(ctx).as_ref());
    }

    fn validate(&self, _ctx: &Context<'_>, problems: &mut Problems<'_>) {
        rules::name(problems, "name", &self.name);
        notification(&self.notification_event, problems);
        self.target.validate(&["rsync", "smb", "nfs"], problems);
        start_times(&self.start_times, problems);
    }
}
