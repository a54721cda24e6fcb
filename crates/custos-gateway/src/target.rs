//! Where a session goes: the policy's fixed server, or the target the client names in its user
//! name (`ssh 'root@10.0.0.5:2222'@gateway`), as SPS's in-band destination selection does.

use std::net::IpAddr;

use custos_config::objects::ssh::{Inband, InbandDomain, ServerAddress};

use crate::policy::in_network;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// The user name to log in as on the target.
    pub username: String,
}

/// Resolves the target of a session from the policy and the user name the client gave.
pub fn resolve(server: &ServerAddress, login: &str) -> Result<Target, String> {
    match server {
        ServerAddress::Fix(fix) => Ok(Target {
            host: fix.address.clone(),
            port: u16::try_from(fix.port).map_err(|_| "invalid port in the policy".to_string())?,
            username: login.to_string(),
        }),
        ServerAddress::Inband(inband) => inband_target(inband, login),
        ServerAddress::Original(_) => Err(
            "the policy uses the original destination, which needs transparent mode; Custos is a non-transparent gateway (use fix or inband)".into(),
        ),
    }
}

fn inband_target(inband: &Inband, login: &str) -> Result<Target, String> {
    let (user, destination) = login
        .rsplit_once('@')
        .ok_or_else(|| "name the target in the user name: user@host[:port]".to_string())?;
    if user.is_empty() {
        return Err("the user name before '@' is empty".into());
    }
    let (host, port) = split_port(destination)?;
    let matches = |d: &InbandDomain| domain_matches(d, &host);
    let Some(domain) = inband.domains.iter().find(|d| matches(d)) else {
        return Err(format!("{host} is not a target this policy allows"));
    };
    if inband.exception_domains.iter().any(matches) {
        return Err(format!("{host} is excluded by this policy"));
    }
    let port = port
        .or_else(|| domain.port.and_then(|p| u16::try_from(p).ok()))
        .unwrap_or(22);
    Ok(Target {
        host,
        port,
        username: user.to_string(),
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` (a bare IPv6 address has no port).
fn split_port(destination: &str) -> Result<(String, Option<u16>), String> {
    let bad_port = |p: &str| format!("{p:?} is not a port");
    if let Some(rest) = destination.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed '['")?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| bad_port(p))?),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected {after:?} after the address")),
        };
        return Ok((host.to_string(), port));
    }
    if destination.parse::<IpAddr>().is_ok() {
        return Ok((destination.to_string(), None));
    }
    match destination.rsplit_once(':') {
        Some((host, p)) => Ok((host.to_string(), Some(p.parse().map_err(|_| bad_port(p))?))),
        None => Ok((destination.to_string(), None)),
    }
}

fn domain_matches(domain: &InbandDomain, host: &str) -> bool {
    match domain.selection.as_str() {
        "address" => host
            .parse::<IpAddr>()
            .is_ok_and(|ip| in_network(ip, &domain.value)),
        "domain" => {
            let host = host.to_ascii_lowercase();
            let value = domain.value.to_ascii_lowercase();
            match value.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => host == value,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inband() -> ServerAddress {
        serde_json::from_value(serde_json::json!({
            "selection": "inband",
            "domains": [{"selection": "address", "value": "127.0.0.0/8"}, {"selection": "domain", "value": "*.example.com", "port": 2200}],
            "exception_domains": [{"selection": "address", "value": "127.0.0.9"}]
        }))
        .unwrap()
    }

    #[test]
    fn inband_names_user_host_and_port() {
        let t = resolve(&inband(), "root@127.0.0.5:2222").unwrap();
        assert_eq!(
            t,
            Target {
                host: "127.0.0.5".into(),
                port: 2222,
                username: "root".into()
            }
        );
        let t = resolve(&inband(), "alice@db.example.com").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("db.example.com", 2200));
        assert_eq!(resolve(&inband(), "a@b@127.0.0.1").unwrap().username, "a@b");
        assert!(resolve(&inband(), "root@10.0.0.1").is_err(), "not allowed");
        assert!(resolve(&inband(), "root@127.0.0.9").is_err(), "exception");
        assert!(resolve(&inband(), "root").is_err(), "no target");
        assert!(resolve(&inband(), "root@127.0.0.1:x").is_err());
    }
}
