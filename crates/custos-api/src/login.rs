//! REST login sessions: the `session_id` cookie, its 20-minute sliding idle timeout, and the
//! privileges captured at login (so group changes apply at the next login, as SPS documents).
//!
//! Session ids are 160 random bits shown as 40 lowercase hex characters. The table is keyed by
//! the SHA-256 of the id, so a lookup's timing says nothing about the secret itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use custos_config::acl::Privileges;
use rand::Rng;
use sha2::{Digest, Sha256};

pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Identifies a login without revealing its cookie (the SHA-256 of the session id).
pub type LoginId = [u8; 32];

#[derive(Clone, Debug)]
pub struct Login {
    pub id: LoginId,
    pub user: String,
    pub privileges: Privileges,
    expires: Instant,
    /// The configuration revision the privileges were computed from.
    revision: i64,
}

impl Login {
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires.saturating_duration_since(now)
    }
}

#[derive(Default)]
pub struct Logins {
    table: Mutex<HashMap<LoginId, Login>>,
    /// Logins made by requests that carry Basic credentials and no cookie, per user name, so that
    /// cookie-less clients (e.g. `curl -u`) keep one login, and so one transaction, across requests.
    basic: Mutex<HashMap<String, LoginId>>,
}

pub fn login_id(session_id: &str) -> LoginId {
    Sha256::digest(session_id.as_bytes()).into()
}

fn new_session_id() -> String {
    let bytes: [u8; 20] = rand::rng().random();
    hex::encode(bytes)
}

impl Logins {
    /// Starts a login; returns the cookie value and the login.
    pub fn start(&self, user: &str, privileges: Privileges, now: Instant) -> (String, Login) {
        let session_id = new_session_id();
        let login = Login {
            id: login_id(&session_id),
            user: user.to_string(),
            privileges,
            expires: now + IDLE_TIMEOUT,
            revision: 0,
        };
        self.lock().insert(login.id, login.clone());
        (session_id, login)
    }

    /// The login of a cookie, refreshed (sliding timeout), if it is still valid.
    pub fn touch(&self, session_id: &str, now: Instant) -> Option<Login> {
        self.touch_id(&login_id(session_id), now)
    }

    fn touch_id(&self, id: &LoginId, now: Instant) -> Option<Login> {
        let mut table = self.lock();
        match table.get_mut(id) {
            Some(login) if login.expires > now => {
                login.expires = now + IDLE_TIMEOUT;
                Some(login.clone())
            }
            Some(_) => {
                table.remove(id);
                None
            }
            None => None,
        }
    }

    /// The cookie-less Basic login of `user`, started if needed. Its privileges are replaced
    /// when the configuration revision has changed since they were computed.
    pub fn basic(&self, user: &str, privileges: Privileges, revision: i64, now: Instant) -> Login {
        let existing = self.basic_lock().get(user).copied();
        if let Some(id) = existing {
            let mut table = self.lock();
            if let Some(login) = table.get_mut(&id).filter(|l| l.expires > now) {
                login.expires = now + IDLE_TIMEOUT;
                if login.revision != revision {
                    login.privileges = privileges;
                    login.revision = revision;
                }
                return login.clone();
            }
        }
        let (_, mut login) = self.start(user, privileges, now);
        login.revision = revision;
        if let Some(stored) = self.lock().get_mut(&login.id) {
            stored.revision = revision;
        }
        self.basic_lock().insert(user.to_string(), login.id);
        login
    }

    pub fn is_alive(&self, id: &LoginId, now: Instant) -> bool {
        self.lock().get(id).is_some_and(|l| l.expires > now)
    }

    pub fn end(&self, id: &LoginId) {
        self.lock().remove(id);
        self.basic_lock().retain(|_, v| v != id);
    }

    /// Drops expired logins; called periodically so the table does not grow without bound.
    pub fn sweep(&self, now: Instant) {
        self.lock().retain(|_, l| l.expires > now);
        let alive: Vec<LoginId> = self.lock().keys().copied().collect();
        self.basic_lock().retain(|_, id| alive.contains(id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LoginId, Login>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn basic_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LoginId>> {
        self.basic.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_40_lowercase_hex_and_slide() {
        let logins = Logins::default();
        let t0 = Instant::now();
        let (sid, _) = logins.start("u", Privileges::default(), t0);
        assert_eq!(sid.len(), 40);
        assert!(
            sid.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let t1 = t0 + Duration::from_secs(19 * 60);
        assert!(logins.touch(&sid, t1).is_some());
        let t2 = t1 + Duration::from_secs(19 * 60);
        assert!(
            logins.touch(&sid, t2).is_some(),
            "each request extends the login"
        );
        assert!(
            logins
                .touch(&sid, t2 + IDLE_TIMEOUT + Duration::from_secs(1))
                .is_none()
        );
        assert!(logins.touch("0000", t0).is_none());
    }

    #[test]
    fn basic_logins_are_reused_per_user() {
        let logins = Logins::default();
        let t0 = Instant::now();
        let a = logins.basic("u", Privileges::default(), 1, t0);
        let b = logins.basic("u", Privileges::superuser(), 1, t0);
        assert_eq!(a.id, b.id);
        assert!(
            !b.privileges.is_superuser(),
            "same revision: privileges kept"
        );
        let c = logins.basic("u", Privileges::superuser(), 2, t0);
        assert_eq!(a.id, c.id);
        assert!(
            c.privileges.is_superuser(),
            "new revision: privileges refreshed"
        );
        logins.end(&a.id);
        assert_ne!(logins.basic("u", Privileges::default(), 2, t0).id, a.id);
    }
}
