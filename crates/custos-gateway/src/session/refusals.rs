//! Channel-policy checks and refusals, logged and recorded, and recording that waits for the
//! trail of a pending login.

use custos_sessions::Verdict;
use custos_trail::Record;
use serde_json::json;

use super::gate::Op;
use super::{Relay, lock};

impl Relay {
    /// The channel-policy decision for a channel type, logged and recorded when it denies.
    pub(super) async fn permitted(&self, channel_type: &str) -> bool {
        let target = *lock(&self.target_ip);
        let user = lock(&self.server_user).clone();
        let allowed = self
            .policy
            .allows(channel_type, self.peer.ip(), target, &user)
            .is_some();
        if !allowed {
            let why = format!(
                "channel policy {} does not allow {channel_type}",
                self.policy.channel_policy_name
            );
            tracing::warn!(client = %self.peer, reason = %why, "channel refused");
            self.record(Record::Event(
                json!({"type": "channel-denied", "channel": channel_type, "reason": why}),
            ))
            .await;
        }
        allowed
    }

    /// Refuses something the client (or the target) asked for, saying why in the log and in
    /// the trail.
    pub(super) async fn refuse(&self, what: &str, why: String) {
        tracing::warn!(client = %self.peer, request = %what, reason = %why, "request refused");
        self.record(Record::Event(
            json!({"type": "refused", "request": what, "reason": why}),
        ))
        .await;
    }

    pub(super) fn note_refusal(&self, login: &str, method: &str, verdict: Verdict, why: String) {
        tracing::warn!(client = %self.peer, user = %login, reason = %why, "session refused");
        {
            let mut record = lock(&self.shared.record);
            record.gateway_username = Some(login.to_string());
            record.auth_method = Some(method.into());
        }
        self.shared.note(verdict, why);
    }

    /// Records now, or once the pending login has created the trail.
    pub(super) async fn record(&self, record: Record) {
        if let Err(Op::Record(record)) = self.defer(Op::Record(record)) {
            self.record_now(record).await;
        }
    }

    pub(super) async fn record_now(&self, record: Record) {
        if let Some((_, recorder)) = self.connected() {
            recorder.record(record).await;
        }
    }
}
