//! What the client asks that reaches the target ([`Op`]): carried out at once or, while a
//! public-key login waits for the client's agent, queued in the [`Gate`] and applied in order
//! once the login completes.

use std::collections::VecDeque;

use bytes::Bytes;
use custos_sessions::Verdict;
use custos_trail::Record;
use russh::ChannelId;
use russh::keys::{HashAlg, PublicKey};
use serde_json::json;

use super::request::Request;
use super::{Relay, disconnect, lock};

/// What a client may send on its session channel before its public-key login to the target
/// completes (typed-ahead input). Beyond it the session fails rather than buffer without bound.
const MAX_DEFERRED_BYTES: usize = 1 << 20;

/// Something the client asked for that reaches the target (and the trail).
pub(super) enum Op {
    /// A trail record made before the trail existed (a refusal, an event).
    Record(Record),
    /// Open the target's session channel for the client's session channel.
    OpenSession(ChannelId),
    Request(ChannelId, Request),
    Data(ChannelId, Bytes),
    Eof(ChannelId),
    Close(ChannelId),
    RemoteForward(String, u32),
    CancelRemoteForward(String, u32),
}

impl Op {
    fn channel(&self) -> Option<ChannelId> {
        match self {
            Op::OpenSession(id)
            | Op::Request(id, _)
            | Op::Data(id, _)
            | Op::Eof(id)
            | Op::Close(id) => Some(*id),
            Op::Record(_) | Op::RemoteForward(..) | Op::CancelRemoteForward(..) => None,
        }
    }
}

/// What the client asks while its public-key login to the target is in progress, applied in
/// order once the target session exists. The client's requests are answered at once, as they
/// are when relayed directly (where the target's own answer is not awaited either).
#[derive(Default)]
pub(super) struct Gate {
    /// The session channel the login belongs to; other channels are not queued.
    pub(super) channel: Option<ChannelId>,
    pub(super) ops: VecDeque<Op>,
    /// Data bytes in `ops`.
    bytes: usize,
    /// More than [`MAX_DEFERRED_BYTES`] arrived: the session fails rather than relay a part.
    overflowed: bool,
    /// The login failed: nothing will be relayed.
    pub(super) failed: bool,
    /// Whether the login's course is decided (the agent request came, or a shell without it,
    /// or the deadline passed): whichever comes first acts, the others do nothing.
    claimed: bool,
}

impl Relay {
    /// Queues `op` while a public-key login is pending. `Err` gives it back to be carried out
    /// now; `Ok(false)` means it was dropped (the login failed or the client sent too much).
    pub(super) fn defer(&self, op: Op) -> Result<bool, Op> {
        let mut gate = lock(&self.gate);
        let Some(gate) = gate.as_mut() else {
            return Err(op);
        };
        if op.channel().is_some_and(|c| Some(c) != gate.channel) {
            return Err(op);
        }
        if gate.failed || gate.overflowed {
            return Ok(false);
        }
        if let Op::Data(_, bytes) = &op {
            gate.bytes += bytes.len();
            if gate.bytes > MAX_DEFERRED_BYTES {
                gate.overflowed = true;
                return Ok(false);
            }
        }
        gate.ops.push_back(op);
        Ok(true)
    }

    /// Whether a public-key login is still waiting for the target (the gate is also present
    /// while its queue drains, but then the session exists).
    pub(super) fn login_pending(&self) -> bool {
        lock(&self.gate).is_some() && self.connected().is_none()
    }

    /// Decides the course of a pending public-key login, once: `true` for the first caller.
    pub(super) fn claim_login(&self) -> bool {
        match lock(&self.gate).as_mut() {
            Some(gate) if !gate.claimed => {
                gate.claimed = true;
                true
            }
            _ => false,
        }
    }

    /// Carries out what the client asked, or queues it while its login is pending. `true`
    /// when it was sent (or queued).
    pub(super) async fn submit(&self, op: Op) -> bool {
        match self.defer(op) {
            Ok(queued) => queued,
            Err(op) => self.apply(op).await,
        }
    }

    async fn apply(&self, op: Op) -> bool {
        match op {
            Op::Record(record) => {
                self.record_now(record).await;
                true
            }
            Op::OpenSession(id) => self.open_deferred_session(id).await,
            Op::Request(id, request) => self.request(id, request).await,
            Op::Data(id, bytes) => self.data(id, bytes).await,
            Op::Eof(id) => self.eof(id).await,
            Op::Close(id) => {
                let up = lock(&self.channels).remove(&id);
                if let Some(up) = up {
                    let _ = up.close().await;
                }
                true
            }
            Op::RemoteForward(address, port) => self.remote_forward(&address, port).await.is_some(),
            Op::CancelRemoteForward(address, port) => {
                self.cancel_remote_forward(&address, port).await
            }
        }
    }

    /// After the login through the agent: applies what the client asked meanwhile, in order,
    /// then lets the handler act directly.
    pub(super) async fn release_gate(&self, key: &PublicKey) {
        self.record_now(Record::Event(json!({
            "type": "public-key-login",
            "algorithm": key.algorithm().as_str(),
            "fingerprint": key.fingerprint(HashAlg::Sha256).to_string(),
        })))
        .await;
        loop {
            let next = {
                let mut gate = lock(&self.gate);
                let Some(pending) = gate.as_mut() else {
                    return;
                };
                if pending.overflowed {
                    None
                } else {
                    let op = pending.ops.pop_front();
                    if let Some(Op::Data(_, bytes)) = &op {
                        pending.bytes = pending.bytes.saturating_sub(bytes.len());
                    }
                    if op.is_none() {
                        *gate = None;
                        return;
                    }
                    op
                }
            };
            match next {
                Some(op) => {
                    self.apply(op).await;
                }
                None => return self.fail_overflowed().await,
            }
        }
    }

    async fn fail_overflowed(&self) {
        let why = format!(
            "the client sent more than {MAX_DEFERRED_BYTES} bytes before its login to the target completed"
        );
        tracing::warn!(client = %self.peer, reason = %why, "closing the session");
        self.shared.note(Verdict::Fail, why.clone());
        *lock(&self.gate) = None;
        let upstream = self.connected().map(|(u, _)| u);
        disconnect(self.client(), upstream, &why).await;
    }
}
