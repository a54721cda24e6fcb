//! Connection policies as the gateway applies them: which listeners exist, which policy a new
//! connection falls under (top-down), and which channels it may open.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use custos_config::document::Document;
use custos_config::objects::local_database::{GROUPS, USERS};
use custos_config::objects::ssh::{
    ChannelPolicy, ChannelRule, SSH_CHANNEL_POLICIES, SSH_CONNECTIONS, SshConnection, parse_network,
};
use serde::Deserialize;
use serde_json::Value;

use crate::evidence::{self, EvidencePolicy};

/// One active connection policy with what it refers to, frozen at a revision: sessions keep
/// the snapshot they started with, so a commit never changes a running session's rules.
#[derive(Debug)]
pub struct ConnectionRuntime {
    pub key: String,
    pub policy: SshConnection,
    pub channel_policy_name: String,
    pub channel_rules: Vec<ChannelRule>,
    /// Local user name → names of the local groups it belongs to (for channel rules by group).
    pub user_groups: Vec<(String, Vec<String>)>,
    /// The audit policy: how this policy's trails are encrypted, signed and time-stamped.
    pub evidence: Arc<EvidencePolicy>,
}

/// Whether `ip` is inside `IP` or `IP/prefix`.
pub fn in_network(ip: IpAddr, network: &str) -> bool {
    let Some((net, prefix)) = parse_network(network) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn user_groups(doc: &Document) -> Vec<(String, Vec<String>)> {
    let name_of = |body: &Value| body.get("name").and_then(Value::as_str).map(str::to_string);
    let Some(users) = doc.collection(USERS) else {
        return Vec::new();
    };
    users
        .iter()
        .filter_map(|(key, user)| {
            let name = name_of(&user.body)?;
            let groups = doc
                .collection(GROUPS)
                .map(|groups| {
                    groups
                        .iter()
                        .filter(|(_, g)| g.refs.iter().any(|r| r.node == USERS && r.key == key))
                        .filter_map(|(_, g)| name_of(&g.body))
                        .collect()
                })
                .unwrap_or_default();
            Some((name, groups))
        })
        .collect()
}

/// The active SSH connection policies of a revision, in evaluation order.
pub fn load(doc: &Document) -> Vec<Arc<ConnectionRuntime>> {
    let Some(connections) = doc.collection(SSH_CONNECTIONS) else {
        return Vec::new();
    };
    let groups = user_groups(doc);
    let tsa = evidence::local_tsa(doc);
    connections
        .iter()
        .filter_map(|(key, stored)| {
            let policy = match SshConnection::deserialize(&stored.body) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(policy = %key, error = %e, "connection policy cannot be applied");
                    return None;
                }
            };
            if !policy.active {
                return None;
            }
            let channel = doc
                .object(SSH_CHANNEL_POLICIES, Some(policy.policies.channel_policy.key()))
                .and_then(|c| ChannelPolicy::deserialize(&c.body).ok());
            let (channel_policy_name, channel_rules) = channel
                .map(|c| (c.name, c.rules))
                .unwrap_or_else(|| ("(missing)".into(), Vec::new()));
            let evidence = EvidencePolicy::load(doc, policy.policies.audit_policy.key(), tsa.as_ref());
            if let Some(why) = &evidence.unusable {
                tracing::error!(policy = %key, reason = %why, "the audit policy cannot be applied; sessions under this connection policy will be refused");
            }
            Some(Arc::new(ConnectionRuntime {
                key: key.to_string(),
                evidence: Arc::new(evidence),
                policy,
                channel_policy_name,
                channel_rules,
                user_groups: groups.clone(),
            }))
        })
        .collect()
}

impl ConnectionRuntime {
    /// The sockets this policy listens on: each target address × each port.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for target in &self.policy.network.targets {
            let Some((ip, _)) = parse_network(target) else {
                continue;
            };
            for port in &self.policy.network.ports {
                if let Ok(port) = u16::try_from(*port) {
                    out.push(SocketAddr::new(ip, port));
                }
            }
        }
        out
    }

    pub fn admits(&self, client: IpAddr, listener: SocketAddr) -> bool {
        self.listeners().contains(&listener)
            && self
                .policy
                .network
                .clients
                .iter()
                .any(|n| in_network(client, n))
    }

    /// The first rule allowing `channel` for this client, target and user; `None` = denied.
    pub fn allows(
        &self,
        channel: &str,
        client: IpAddr,
        target: Option<IpAddr>,
        user: &str,
    ) -> Option<&ChannelRule> {
        let groups: &[String] = self
            .user_groups
            .iter()
            .find(|(name, _)| name == user)
            .map_or(&[], |(_, g)| g.as_slice());
        self.channel_rules.iter().find(|rule| {
            rule.channel == channel
                && (rule.clients.is_empty() || rule.clients.iter().any(|n| in_network(client, n)))
                && (rule.targets.is_empty()
                    || target.is_some_and(|t| rule.targets.iter().any(|n| in_network(t, n))))
                && (rule.usergroups.is_empty()
                    || rule.usergroups.iter().any(|g| groups.contains(g)))
        })
    }
}

/// The policy a new connection falls under: the first active one that admits it.
pub fn select(
    policies: &[Arc<ConnectionRuntime>],
    client: IpAddr,
    listener: SocketAddr,
) -> Option<Arc<ConnectionRuntime>> {
    policies
        .iter()
        .find(|p| p.admits(client, listener))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(in_network(ip, "10.0.0.0/8"));
        assert!(in_network(ip, "0.0.0.0/0"));
        assert!(in_network(ip, "10.1.2.3"));
        assert!(!in_network(ip, "10.1.2.4"));
        assert!(!in_network(ip, "::/0"));
        assert!(in_network("::1".parse().unwrap(), "::/0"));
    }
}
