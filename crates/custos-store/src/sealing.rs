//! Sealing of secrets at rest: every `{"$secret": …}` in a body is written to disk as
//! `{"$sealed": base64(nonce ‖ AES-256-GCM ciphertext)}` under the data directory's secrets key.
//! The object's path is the associated data, so a sealed value copied into another object does
//! not open there.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use custos_config::secret::{SEALED_KEY, SECRET_KEY, is_sealed, is_secret, map_secrets};
use serde_json::{Value, json};

use crate::StoreError;

/// Length of the secrets key file's content.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(…)")
    }
}

fn aad(node: &str, key: Option<&str>) -> Vec<u8> {
    format!("custos-secret\0{node}\0{}", key.unwrap_or("")).into_bytes()
}

impl Sealer {
    pub fn new(key: &[u8; KEY_LEN]) -> Sealer {
        Sealer {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// A copy of `body` whose secrets are sealed.
    pub fn seal(&self, body: &Value, node: &str, key: Option<&str>) -> Result<Value, StoreError> {
        let mut sealed = body.clone();
        let aad = aad(node, key);
        map_secrets(
            &mut sealed,
            &mut |v: &mut Value| -> Result<(), StoreError> {
                if !is_secret(v) {
                    return Ok(());
                }
                let plain = v[SECRET_KEY]
                    .as_str()
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec();
                let nonce: [u8; NONCE_LEN] = rand::random();
                let ciphertext = self
                    .cipher
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: &plain,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| StoreError::Corrupt("sealing a secret failed".into()))?;
                let mut out = nonce.to_vec();
                out.extend_from_slice(&ciphertext);
                *v = json!({ SEALED_KEY: STANDARD.encode(out) });
                Ok(())
            },
        )?;
        Ok(sealed)
    }

    /// Opens the sealed secrets of a stored body in place.
    pub fn open(&self, body: &mut Value, node: &str, key: Option<&str>) -> Result<(), StoreError> {
        let aad = aad(node, key);
        map_secrets(body, &mut |v: &mut Value| -> Result<(), StoreError> {
            if !is_sealed(v) {
                return Ok(());
            }
            let wrong = || {
                StoreError::Corrupt(format!(
                    "a secret of {node}/{} cannot be opened: wrong secrets key or damaged data",
                    key.unwrap_or("")
                ))
            };
            let raw = STANDARD
                .decode(v[SEALED_KEY].as_str().unwrap_or_default())
                .map_err(|_| wrong())?;
            if raw.len() < NONCE_LEN {
                return Err(wrong());
            }
            let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
            let plain = self
                .cipher
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| wrong())?;
            let plain = String::from_utf8(plain).map_err(|_| wrong())?;
            *v = json!({ SECRET_KEY: plain });
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_the_object() {
        let sealer = Sealer::new(&[7; KEY_LEN]);
        let body = json!({"user": "u", "password": {"$secret": "hunter2"}});
        let sealed = sealer.seal(&body, "/n", Some("k1")).unwrap();
        let text = sealed.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(SEALED_KEY));

        let mut opened = sealed.clone();
        sealer.open(&mut opened, "/n", Some("k1")).unwrap();
        assert_eq!(opened, body);

        // Moved to another object, or opened with another key: refused.
        assert!(sealer.open(&mut sealed.clone(), "/n", Some("k2")).is_err());
        assert!(
            Sealer::new(&[8; KEY_LEN])
                .open(&mut sealed.clone(), "/n", Some("k1"))
                .is_err()
        );
        // Two seals of the same value differ (fresh nonce).
        assert_ne!(sealer.seal(&body, "/n", Some("k1")).unwrap(), sealed);
    }
}
