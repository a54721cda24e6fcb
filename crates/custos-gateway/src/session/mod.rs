//! One client connection to the gateway: authenticates the client on the target (its password
//! or keyboard-interactive answers passed through, or its public key proven to the target again
//! through the client's forwarded agent), then relays and records every allowed channel.
//!
//! A recorded byte travels: client socket → russh server → `data()` (in `handler`) → recorder
//! queue and the upstream channel; and back: upstream channel → `relay_upstream` (in
//! `relay_tasks`) → recorder and client. Channels the target opens (remote forwards, X11,
//! agent) are bridged by two tasks instead, `relay_client` and `relay_upstream`.
//!
//! russh runs every handler callback inside the client connection's event loop, so a callback
//! must never wait for something only that loop can deliver, such as the client's answer to a
//! channel the gateway opens towards it. That work runs in tasks; what the client asks while a
//! public-key login waits for its agent is queued in the [`Gate`] and applied in order after.

mod client_channels;
mod disconnect;
mod forwards;
mod gate;
mod handler;
mod key_login;
mod key_probe;
mod login;
mod refusals;
mod relay_tasks;
mod request;
mod target_channels;
mod x11_agent;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use custos_sessions::{LiveHandle, SessionRecord, Verdict};
use russh::{ChannelId, ChannelWriteHalf, client, server};
use tokio::sync::mpsc;

use crate::Context;
use crate::policy::ConnectionRuntime;
use crate::recorder::Recorder;
use crate::target;
use crate::upstream::{TargetChannel, UpstreamHandler};

pub use self::disconnect::disconnect;
use self::gate::Gate;
use self::key_login::KeyLogin;
use self::key_probe::Probe;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the handler and the connection's owner (which finalises the session) share.
pub struct Shared {
    pub record: Mutex<SessionRecord>,
    pub connected: Mutex<Option<Connected>>,
    /// Set when the gateway closes the session (termination, trail failure): relays stop
    /// waiting for a target that will never open its window again.
    pub closing: tokio::sync::watch::Sender<bool>,
}

pub struct Connected {
    pub upstream: Arc<client::Handle<UpstreamHandler>>,
    pub recorder: Recorder,
    pub live: Option<LiveHandle>,
}

impl Shared {
    pub(crate) fn note(&self, verdict: Verdict, reason: impl Into<String>) {
        let mut record = lock(&self.record);
        record.verdict = verdict;
        record.reason = Some(reason.into());
    }
    fn connected(&self) -> Option<(Arc<client::Handle<UpstreamHandler>>, Recorder)> {
        let guard = lock(&self.connected);
        guard
            .as_ref()
            .map(|c| (c.upstream.clone(), c.recorder.clone()))
    }
}

/// The gateway's connection to the target while the client logs in.
pub struct Upstream {
    handle: client::Handle<UpstreamHandler>,
    target: target::Target,
    server: Option<SocketAddr>,
    local: Option<SocketAddr>,
    /// The channels the target opens towards the client (see [`UpstreamHandler`]).
    opened: mpsc::Receiver<TargetChannel>,
}

/// What the handler and its tasks share about one client connection.
struct Relay {
    ctx: Arc<Context>,
    policy: Arc<ConnectionRuntime>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    /// The client side, once authenticated, for tasks that open channels towards the client.
    client: Mutex<Option<server::Handle>>,
    /// Client-opened channels and their target channels; the handler's callbacks feed these.
    channels: Mutex<HashMap<ChannelId, Arc<ChannelWriteHalf<client::Msg>>>>,
    /// The target's address and user, for channel rules by target and by user.
    target_ip: Mutex<Option<IpAddr>>,
    server_user: Mutex<String>,
    /// Remote forwards the target listens on for the client: (address, port).
    forwards: Mutex<Vec<(String, u32)>>,
    /// An x11-req was relayed: the target may open x11 channels.
    x11: AtomicBool,
    /// The client forwards its agent and the policy relays it: the target may ask for it.
    agent: AtomicBool,
    /// Present while a public-key login waits for the client's agent.
    gate: Mutex<Option<Gate>>,
}

impl Relay {
    fn connected(&self) -> Option<(Arc<client::Handle<UpstreamHandler>>, Recorder)> {
        self.shared.connected()
    }

    fn client(&self) -> Option<server::Handle> {
        lock(&self.client).clone()
    }

    fn upstream_channel(&self, id: ChannelId) -> Option<Arc<ChannelWriteHalf<client::Msg>>> {
        lock(&self.channels).get(&id).cloned()
    }
}

pub struct ClientHandler {
    relay: Arc<Relay>,
    /// A keyboard-interactive login in progress: the client's name and the target connection.
    pending_interactive: Option<(String, Upstream)>,
    /// The target's answers about the public keys the client offered so far.
    probe: Option<Probe>,
    /// A public-key login waiting for the client's agent.
    pending_key: Option<KeyLogin>,
    /// The session channel that login belongs to (shared with its deadline).
    waiting_channel: Arc<Mutex<Option<ChannelId>>>,
}

impl ClientHandler {
    pub fn new(
        ctx: Arc<Context>,
        policy: Arc<ConnectionRuntime>,
        peer: SocketAddr,
        shared: Arc<Shared>,
    ) -> Self {
        ClientHandler {
            relay: Arc::new(Relay {
                ctx,
                policy,
                peer,
                shared,
                client: Mutex::new(None),
                channels: Mutex::new(HashMap::new()),
                target_ip: Mutex::new(None),
                server_user: Mutex::new(String::new()),
                forwards: Mutex::new(Vec::new()),
                x11: AtomicBool::new(false),
                agent: AtomicBool::new(false),
                gate: Mutex::new(None),
            }),
            pending_interactive: None,
            probe: None,
            pending_key: None,
            waiting_channel: Arc::new(Mutex::new(None)),
        }
    }
}

fn channel_number(id: ChannelId) -> u32 {
    // ChannelId renders as its number; the trail keys channels by the client-side id.
    format!("{id}").parse().unwrap_or(0)
}
