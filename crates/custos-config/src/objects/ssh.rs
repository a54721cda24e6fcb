//! SSH connection policies and channel policies (`/api/configuration/ssh/connections`,
//! `…/channel_policies`), following SPS's layout (API notes §10).
//!
//! Custos is a non-transparent gateway: as in SPS's non-transparent mode, `network.targets` are
//! the gateway's own addresses that clients connect to, and each target host address × each
//! port is a listener. `server_address` says where the session goes from there. Policies are
//! evaluated top-down; the first active policy whose clients, targets and ports match is used.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::audit_policy::AuditPolicies;
use super::key_material::PrivateKeys;
use super::retention::{ArchiveCleanupPolicies, BackupPolicies, HostKey};
use super::rules;
use crate::problem::Problems;
use crate::reference::{Ref, RefTarget};
use crate::schema::{ConfigObject, Context};
use crate::union::NoFields;

pub const SSH_CONNECTIONS: &str = "/api/configuration/ssh/connections";
pub const SSH_CHANNEL_POLICIES: &str = "/api/configuration/ssh/channel_policies";

/// Built-in channel policies (negative keys, undeletable).
pub const SHELL_ONLY_CHANNEL_POLICY_KEY: &str = "-1";
pub const ALL_SESSION_CHANNEL_POLICY_KEY: &str = "-2";

/// The SSH channel types a channel policy can allow.
pub const CHANNEL_TYPES: &[&str] = &[
    "session-shell",
    "session-exec",
    "session-subsystem",
    "local-forward",
    "remote-forward",
    "agent-forward",
    "x11",
];

pub struct SshChannelPolicies;
impl RefTarget for SshChannelPolicies {
    const NODE: &'static str = SSH_CHANNEL_POLICIES;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Client ("from") addresses, `IP` or `IP/prefix`; `0.0.0.0/0` or `::/0` for any.
    pub clients: Vec<String>,
    /// The gateway addresses clients connect to (host addresses: each is a listener).
    pub targets: Vec<String>,
    /// Ports the gateway listens on.
    pub ports: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedServer {
    pub address: String,
    pub port: i64,
}

/// A domain (or address) clients may name in-band, as `user@target[:port]@gateway`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InbandDomain {
    pub selection: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inband {
    pub domains: Vec<InbandDomain>,
    #[serde(default)]
    pub exception_domains: Vec<InbandDomain>,
}

crate::selection_union! {
    #[derive(Debug, Clone)]
    pub enum ServerAddress {
        "original" => Original(NoFields),
        "fix" => Fix(FixedServer),
        "inband" => Inband(Inband),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedHostKeys {
    pub keys: Vec<HostKey>,
}

crate::selection_union! {
    /// How the gateway checks the target server's host key (Custos; SPS keeps trusted keys
    /// under `/api/ssh-host-keys`): trust on first use, or only the pinned keys.
    #[derive(Debug, Clone)]
    pub enum HostKeyCheck {
        "trust_on_first_use" => TrustOnFirstUse(NoFields),
        "pinned" => Pinned(PinnedHostKeys),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPolicies {
    pub channel_policy: Ref<SshChannelPolicies>,
    pub audit_policy: Ref<AuditPolicies>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_cleanup_policy: Option<Ref<ArchiveCleanupPolicies>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_policy: Option<Ref<BackupPolicies>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    pub enabled: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConnection {
    pub name: String,
    #[serde(default = "yes")]
    pub active: bool,
    /// Four-eyes authorisers; not supported yet, so it must be empty.
    #[serde(default)]
    pub access_control: Vec<Value>,
    pub network: Network,
    pub server_address: ServerAddress,
    pub policies: ConnectionPolicies,
    #[serde(default)]
    pub log_audit_trail_downloads: bool,
    #[serde(default = "default_host_key_check")]
    pub host_key_check: HostKeyCheck,
    /// What happens when the trail storage fills. Both fail closed: a session whose trail
    /// cannot be written is ended (verdict FAIL). `close_session` does only that;
    /// `refuse_new` also refuses new sessions while less than 64 MiB is free, keeping that
    /// reserve for the sessions already running.
    #[serde(default = "default_storage_full")]
    pub on_storage_full: String,
    /// Key the gateway offers to the target when the client's own key cannot be forwarded
    /// (agent forwarding is preferred). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_key: Option<Ref<PrivateKeys>>,
}

fn yes() -> bool {
    true
}
fn default_host_key_check() -> HostKeyCheck {
    HostKeyCheck::TrustOnFirstUse(NoFields {})
}
fn default_storage_full() -> String {
    "close_session".into()
}

/// `IP` or `IP/prefix` (prefix within the address family's length).
pub fn parse_network(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
    };
    Some((addr, prefix))
}

fn port(problems: &mut Problems<'_>, field: &str, port: i64) {
    if !(1..=65535).contains(&port) {
        problems.add(field, "must be 1–65535");
    }
}

impl ConfigObject for SshConnection {
    fn validate(&self, _ctx: &Context<'_>, problems: &mut Problems<'_>) {
        rules::name(problems, "name", &self.name);
        if !self.access_control.is_empty() {
            problems.add(
                "access_control",
                "four-eyes authorisation is not supported yet; leave it empty",
            );
        }
        if self.network.clients.is_empty() {
            problems.add(
                "network.clients",
                "at least one client network is required (0.0.0.0/0 for any)",
            );
        }
        for (i, c) in self.network.clients.iter().enumerate() {
            if parse_network(c).is_none() {
                problems.add(
                    format!("network.clients[{i}]"),
                    format!("{c:?} is not an IP address or IP/prefix"),
                );
            }
        }
        if self.network.targets.is_empty() {
            problems.add(
                "network.targets",
                "at least one gateway address is required",
            );
        }
        for (i, t) in self.network.targets.iter().enumerate() {
            match parse_network(t) {
                Some((addr, prefix)) if prefix == if addr.is_ipv4() { 32 } else { 128 } => {}
                _ => problems.add(
                    format!("network.targets[{i}]"),
                    format!("{t:?} must be a single IP address (the gateway listens on it)"),
                ),
            }
        }
        if self.network.ports.is_empty() {
            problems.add("network.ports", "at least one port is required");
        }
        for (i, p) in self.network.ports.iter().enumerate() {
            port(problems, &format!("network.ports[{i}]"), *p);
        }
        rules::no_duplicates(problems, "network.ports", &self.network.ports);
        match &self.server_address {
            ServerAddress::Original(_) => {}
            ServerAddress::Fix(fix) => {
                rules::host(problems, "server_address.address", &fix.address);
                port(problems, "server_address.port", fix.port);
            }
            ServerAddress::Inband(inband) => {
                if inband.domains.is_empty() {
                    problems.add(
                        "server_address.domains",
                        "at least one allowed target is required",
                    );
                }
                for (list, name) in [
                    (&inband.domains, "domains"),
                    (&inband.exception_domains, "exception_domains"),
                ] {
                    for (i, d) in list.iter().enumerate() {
                        let field = format!("server_address.{name}[{i}]");
                        match d.selection.as_str() {
                            "address" => {
                                if parse_network(&d.value).is_none() {
                                    problems.add(
                                        format!("{field}.value"),
                                        format!("{:?} is not an IP address or IP/prefix", d.value),
                                    );
                                }
                            }
                            "domain" => {
                                let pattern = d.value.strip_prefix("*.").unwrap_or(&d.value);
                                rules::host(problems, &format!("{field}.value"), pattern);
                            }
                            _ => problems
                                .add(format!("{field}.selection"), "must be address or domain"),
                        }
                        if let Some(p) = d.port {
                            port(problems, &format!("{field}.port"), p);
                        }
                    }
                }
            }
        }
        if let HostKeyCheck::Pinned(pinned) = &self.host_key_check {
            if pinned.keys.is_empty() {
                problems.add("host_key_check.keys", "at least one pinned key is required");
            }
            for (i, key) in pinned.keys.iter().enumerate() {
                let field = format!("host_key_check.keys[{i}]");
                let valid = match key {
                    HostKey::Line(line) => custos_keys::parse_ssh_public_key(line).is_ok(),
                    HostKey::Pair(p) => {
                        custos_keys::ssh_public_key_from_selection(&p.selection, &p.value).is_ok()
                    }
                };
                if !valid {
                    problems.add(field, "is not a valid SSH public key");
                }
            }
        }
        if !["close_session", "refuse_new"].contains(&self.on_storage_full.as_str()) {
            problems.add("on_storage_full", "must be close_session or refuse_new");
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    /// One of [`CHANNEL_TYPES`].
    pub channel: String,
    /// Client addresses this rule applies to (`IP` or `IP/prefix`); empty means any.
    #[serde(default)]
    pub clients: Vec<String>,
    /// Target server addresses this rule applies to; empty means any.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Gateway usergroups whose members this rule applies to; empty means anybody.
    #[serde(default)]
    pub usergroups: Vec<String>,
    /// Record the channel's traffic (the reference's `actions.audit`).
    #[serde(default = "yes")]
    pub audit: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPolicy {
    pub name: String,
    pub rules: Vec<ChannelRule>,
}

impl ConfigObject for ChannelPolicy {
    fn validate(&self, _ctx: &Context<'_>, problems: &mut Problems<'_>) {
        rules::name(problems, "name", &self.name);
        for (i, rule) in self.rules.iter().enumerate() {
            if !CHANNEL_TYPES.contains(&rule.channel.as_str()) {
                problems.add(
                    format!("rules[{i}].channel"),
                    format!("must be one of {}", CHANNEL_TYPES.join(", ")),
                );
            }
            for (list, name) in [(&rule.clients, "clients"), (&rule.targets, "targets")] {
                for (j, net) in list.iter().enumerate() {
                    if parse_network(net).is_none() {
                        problems.add(
                            format!("rules[{i}].{name}[{j}]"),
                            format!("{net:?} is not an IP address or IP/prefix"),
                        );
                    }
                }
            }
            for (j, group) in rule.usergroups.iter().enumerate() {
                rules::name(problems, &format!("rules[{i}].usergroups[{j}]"), group);
            }
        }
    }
}

/// The built-in channel policies: SPS's default allows the terminal only.
pub fn builtin_channel_policies() -> [(&'static str, Value); 2] {
    let rule = |channel: &str| json!({"channel": channel, "clients": [], "targets": [], "usergroups": [], "audit": true});
    [
        (
            SHELL_ONLY_CHANNEL_POLICY_KEY,
            json!({"name": "shell-only", "rules": [rule("session-shell")]}),
        ),
        (
            ALL_SESSION_CHANNEL_POLICY_KEY,
            json!({"name": "all-session", "rules": [rule("session-shell"), rule("session-exec"), rule("session-subsystem")]}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        assert!(parse_network("10.0.0.0/8").is_some());
        assert!(parse_network("::/0").is_some());
        assert_eq!(parse_network("127.0.0.1").map(|n| n.1), Some(32));
        assert!(parse_network("10.0.0.0/33").is_none());
        assert!(parse_network("10.0.0").is_none());
    }
}
