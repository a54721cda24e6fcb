//! Failed-login throttling per user name and per source address.
//!
//! After `FREE_FAILURES` failures a key is locked for a delay that doubles with every further
//! failure, up to `MAX_LOCK`. While locked, even correct credentials are refused, so guessing
//! cannot proceed faster than the lock allows. Keys are forgotten after a quiet period.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_FAILURES: u32 = 5;
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// An address may fail more often than a user (NAT, several admins), but not without bound.
const ADDRESS_FACTOR: u32 = 4;

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

#[derive(Hash, PartialEq, Eq, Clone)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Default)]
pub struct Throttle {
    records: Mutex<HashMap<Key, Record>>,
}

impl Throttle {
    /// Seconds to wait if `user` or `address` is locked now.
    pub fn locked(&self, user: &str, address: IpAddr, now: Instant) -> Option<u64> {
        let records = self.lock();
        [Key::User(user.to_string()), Key::Address(address)]
            .iter()
            .filter_map(|k| records.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until.duration_since(now).as_secs().max(1))
            .max()
    }

    pub fn failed(&self, user: &str, address: IpAddr, now: Instant) {
        let mut records = self.lock();
        if records.len() > 100_000 {
            records.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
        }
        for (key, free) in [
            (Key::User(user.to_string()), FREE_FAILURES),
            (Key::Address(address), FREE_FAILURES * ADDRESS_FACTOR),
        ] {
            let record = records.entry(key).or_insert(Record {
                failures: 0,
                locked_until: None,
                last: now,
            });
            if now.duration_since(record.last) > FORGET_AFTER {
                record.failures = 0;
            }
            record.failures += 1;
            record.last = now;
            if record.failures >= free {
                let exponent = (record.failures - free).min(12);
                let lock = Duration::from_secs(1u64 << exponent).min(MAX_LOCK);
                record.locked_until = Some(now + lock);
            }
        }
    }

    /// A successful login clears the user's record (not the address's: one right password from an
    /// address should not excuse its failures against other users).
    pub fn succeeded(&self, user: &str) {
        self.lock().remove(&Key::User(user.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_free_failures_and_backs_off() {
        let t = Throttle::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            t.failed("bob", ip, now);
        }
        assert_eq!(t.locked("bob", ip, now), None);
        t.failed("bob", ip, now);
        assert_eq!(t.locked("bob", ip, now), Some(1));
        t.failed("bob", ip, now);
        assert_eq!(t.locked("bob", ip, now), Some(2));
        assert_eq!(t.locked("bob", ip, now + Duration::from_secs(3)), None);
        t.succeeded("bob");
        assert_eq!(t.locked("bob", ip, now), None);
    }

    #[test]
    fn an_address_is_locked_across_users() {
        let t = Throttle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        for i in 0..FREE_FAILURES * ADDRESS_FACTOR {
            t.failed(&format!("user{i}"), ip, now);
        }
        assert!(t.locked("someone-else", ip, now).is_some());
        assert!(
            t.locked("someone-else", "10.0.0.2".parse().unwrap(), now)
                .is_none()
        );
    }
}
