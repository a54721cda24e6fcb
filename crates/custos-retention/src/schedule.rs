//! Runs each archive/cleanup and backup policy at its `start_times` (`H:MM`, UTC: the node's clock is
//! kept in UTC, so a schedule means the same on every node of a cluster).
//!
//! The scheduler looks at the clock every second and starts a policy once per matching minute.
//! A start time that comes while the policy's previous job still runs is skipped (jobs of one
//! policy never overlap), and logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::{Outcome, Retention, now_micros};

/// Minutes since midnight of `H:MM` / `HH:MM`.
pub(crate) fn minute_of_day(time: &str) -> Option<u32> {
    let (h, m) = time.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// `(day number, minute of day)` of Unix microseconds, UTC.
pub(crate) fn day_and_minute(micros: i64) -> (i64, u32) {
    let minutes = micros.div_euclid(60_000_000);
    (minutes.div_euclid(1440), minutes.rem_euclid(1440) as u32)
}

/// The policies due at `now` that have not been started in this minute yet; remembers them.
pub(crate) fn due(
    policies: &[(String, Vec<String>)],
    now: i64,
    fired: &mut HashMap<String, (i64, u32)>,
) -> Vec<String> {
    let at = day_and_minute(now);
    let mut out = Vec::new();
    for (key, times) in policies {
        let matches = times.iter().any(|t| minute_of_day(t) == Some(at.1));
        if matches && fired.get(key) != Some(&at) {
            fired.insert(key.clone(), at);
            out.push(key.clone());
        }
    }
    out
}

pub(crate) async fn run(engine: Arc<Retention>) {
    let mut fired = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let policies: Vec<(String, Vec<String>)> = engine
            .policies()
            .into_iter()
            .map(|(k, p)| (k, p.start_times))
            .chain(
                engine
                    .backup_policies()
                    .into_iter()
                    .map(|(k, p)| (k, p.start_times)),
            )
            .collect();
        for key in due(&policies, now_micros(), &mut fired) {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                if let Some(Outcome::AlreadyRunning { policy, .. }) =
                    engine.run_policy(&key, "schedule").await
                {
                    tracing::warn!(%policy, "skipped a scheduled run: the previous one is still running");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_starts_once_in_each_of_its_minutes() {
        let minute = 60_000_000i64;
        let day = 1440 * minute;
        let policies = vec![
            (
                "a".to_string(),
                vec!["1:05".to_string(), "23:59".to_string()],
            ),
            ("b".to_string(), vec!["01:05".to_string()]),
            ("c".to_string(), vec![]),
        ];
        let mut fired = HashMap::new();
        let at_0105 = 20_000 * day + 65 * minute;
        assert_eq!(
            due(&policies, at_0105 - 1, &mut fired),
            Vec::<String>::new()
        );
        assert_eq!(due(&policies, at_0105, &mut fired), ["a", "b"]);
        assert!(due(&policies, at_0105 + 59_000_000, &mut fired).is_empty());
        assert!(due(&policies, at_0105 + minute, &mut fired).is_empty());
        assert_eq!(due(&policies, at_0105 + day, &mut fired), ["a", "b"]);
        assert_eq!(
            due(&policies, 20_001 * day + 1439 * minute, &mut fired),
            ["a"]
        );
        assert_eq!(minute_of_day("24:00"), None);
        assert_eq!(minute_of_day("7:60"), None);
        assert_eq!(minute_of_day("07:30"), Some(450));
    }
}
