//! Checking a user name and password against the local user database.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use custos_config::acl::Privileges;
use custos_config::document::Document;
use custos_config::objects::aaa_settings::{AAA_SETTINGS, AaaSettings};
use custos_config::objects::local_database::{ADMIN_KEY, GROUPS, USERS};
use custos_config::objects::passwords::{PASSWORDS, verify_password};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::error::ApiError;
use crate::state::Api;

/// How long a verified Basic credential is trusted without hashing again (per revision).
const VERIFIED_FOR: Duration = Duration::from_secs(60);

/// A hash made once per process so that a nonexistent user costs as much as a real one.
fn dummy_hash() -> &'static Value {
    static DUMMY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let hash =
            custos_config::objects::passwords::hash_password("no such user").unwrap_or_default();
        serde_json::json!({"hash": hash})
    })
}

/// Parses `Authorization: Basic base64(user:password)` (UTF-8).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The privileges of `user_key`, from the groups it is a member of.
pub fn privileges_of(doc: &Document, user_key: &str) -> Privileges {
    if user_key == ADMIN_KEY {
        return Privileges::superuser();
    }
    let groups: Vec<&str> = doc
        .collection(GROUPS)
        .map(|groups| {
            groups
                .iter()
                .filter(|(_, g)| g.refs.iter().any(|r| r.node == USERS && r.key == user_key))
                .filter_map(|(_, g)| g.body.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    Privileges::from_groups(groups)
}

fn find_user<'d>(doc: &'d Document, name: &str) -> Option<(&'d str, Option<&'d Value>)> {
    let users = doc.collection(USERS)?;
    let (key, user) = users
        .iter()
        .find(|(_, u)| u.body.get("name").and_then(Value::as_str) == Some(name))?;
    let password = user
        .refs
        .iter()
        .find(|r| r.node == PASSWORDS)
        .and_then(|r| doc.object(PASSWORDS, Some(&r.key)))
        .map(|p| &p.body);
    Some((key, password))
}

impl Api {
    /// Verifies credentials; on success returns the user's key. Throttled per user and address.
    pub(crate) async fn verify(
        &self,
        user: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<String, ApiError> {
        let now = Instant::now();
        if let Some(retry_after) = self.throttle.locked(user, address, now) {
            return Err(ApiError::Throttled { retry_after });
        }
        let snapshot = self.committed();
        let cache_key = self.credential_fingerprint(user, password);
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cache_key)
            .is_some_and(|(rev, at)| {
                *rev == snapshot.revision && now.duration_since(*at) < VERIFIED_FOR
            });

        let local_enabled = snapshot
            .doc
            .singleton(AAA_SETTINGS)
            .and_then(|s| AaaSettings::deserialize(&s.body).ok())
            .is_none_or(|s| s.local_accounts_enabled());
        let found = find_user(&snapshot.doc, user);
        let key = found.map(|(k, _)| k.to_string());
        let allowed = key
            .as_deref()
            .is_some_and(|k| local_enabled || k == ADMIN_KEY);

        let ok = if cached {
            allowed
        } else {
            let stored = found
                .and_then(|(_, p)| p.cloned())
                .unwrap_or_else(|| dummy_hash().clone());
            let password = password.to_string();
            let matches = tokio::task::spawn_blocking(move || verify_password(&stored, &password))
                .await
                .unwrap_or(false);
            matches && allowed
        };
        match (ok, key) {
            (true, Some(key)) => {
                self.throttle.succeeded(user);
                let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if verified.len() > 10_000 {
                    verified.clear();
                }
                verified.insert(cache_key, (snapshot.revision, now));
                Ok(key)
            }
            _ => {
                self.throttle.failed(user, address, now);
                tracing::warn!(user = %user, %address, "authentication failed");
                Err(ApiError::AuthenticationFailure)
            }
        }
    }

    /// A keyed hash of the credentials, so the cache never holds a password.
    fn credential_fingerprint(&self, user: &str, password: &str) -> [u8; 32] {
        // A 64-byte key is exactly SHA-256's block size, so this constructor is infallible.
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&self.cache_key.into());
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parsing() {
        // "admin:pa:ss" — the password may contain colons.
        assert_eq!(
            parse_basic("Basic YWRtaW46cGE6c3M="),
            Some(("admin".into(), "pa:ss".into()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic YWRtaW4="), None, "no colon");
    }
}
