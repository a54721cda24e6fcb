//! Checking target servers' host keys: pinned keys from the policy, or trust on first use with
//! the first key seen stored per `host:port` (in the data directory, written atomically).
//! A mismatch refuses the session and says why.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use custos_config::objects::retention::HostKey;
use custos_config::objects::ssh::HostKeyCheck;

/// The key a server presented, as `(algorithm, base64 blob)`.
pub type PresentedKey = (String, String);

pub struct KnownHosts {
    path: PathBuf,
    keys: Mutex<BTreeMap<String, PresentedKey>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Trusted,
    /// Not seen before: now stored.
    Learned,
    Mismatch(String),
}

fn pinned_key(key: &HostKey) -> Option<PresentedKey> {
    let parsed = match key {
        HostKey::Line(line) => custos_keys::parse_ssh_public_key(line).ok()?,
        HostKey::Pair(p) => {
            custos_keys::ssh_public_key_from_selection(&p.selection, &p.value).ok()?
        }
    };
    Some((parsed.algorithm, parsed.base64))
}

impl KnownHosts {
    pub fn open(path: PathBuf) -> std::io::Result<KnownHosts> {
        let keys = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(KnownHosts {
            path,
            keys: Mutex::new(keys),
        })
    }

    /// Decides whether `presented` may be trusted for `host:port` under `check`.
    pub fn check(
        &self,
        check: &HostKeyCheck,
        host: &str,
        port: u16,
        presented: &PresentedKey,
    ) -> Verdict {
        let id = format!("{host}:{port}");
        match check {
            HostKeyCheck::Pinned(pinned) => {
                if pinned
                    .keys
                    .iter()
                    .filter_map(pinned_key)
                    .any(|k| &k == presented)
                {
                    Verdict::Trusted
                } else {
                    Verdict::Mismatch(format!(
                        "the host key of {id} ({}) is not one of the keys pinned in the connection policy",
                        presented.0
                    ))
                }
            }
            HostKeyCheck::TrustOnFirstUse(_) => {
                let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
                match keys.get(&id) {
                    Some(known) if known == presented => Verdict::Trusted,
                    Some(known) => Verdict::Mismatch(format!(
                        "the host key of {id} changed: stored {} key, presented {} key with a different value; if the change is expected, remove the stored key",
                        known.0, presented.0
                    )),
                    None => {
                        keys.insert(id.clone(), presented.clone());
                        if let Err(e) = self.save(&keys) {
                            tracing::error!(error = %e, "cannot store a learned host key");
                            return Verdict::Mismatch(format!(
                                "cannot store the host key of {id}: {e}"
                            ));
                        }
                        tracing::info!(target = %id, algorithm = %presented.0, "learned a host key (trust on first use)");
                        Verdict::Learned
                    }
                }
            }
        }
    }

    fn save(&self, keys: &BTreeMap<String, PresentedKey>) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(keys).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_config::union::NoFields;

    #[test]
    fn trust_on_first_use_learns_then_detects_a_change() {
        let dir = std::env::temp_dir().join(format!("custos-kh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("known_hosts.json");
        let _ = std::fs::remove_file(&path);
        let tofu = HostKeyCheck::TrustOnFirstUse(NoFields {});
        let a = ("ssh-ed25519".to_string(), "AAAA1".to_string());
        let b = ("ssh-ed25519".to_string(), "AAAA2".to_string());
        let hosts = KnownHosts::open(path.clone()).unwrap();
        assert_eq!(hosts.check(&tofu, "h", 22, &a), Verdict::Learned);
        assert_eq!(hosts.check(&tofu, "h", 22, &a), Verdict::Trusted);
        assert!(matches!(
            hosts.check(&tofu, "h", 22, &b),
            Verdict::Mismatch(_)
        ));
        assert_eq!(
            hosts.check(&tofu, "h", 2222, &b),
            Verdict::Learned,
            "per port"
        );
        // Survives reopening.
        let again = KnownHosts::open(path).unwrap();
        assert!(matches!(
            again.check(&tofu, "h", 22, &b),
            Verdict::Mismatch(_)
        ));
    }
}
