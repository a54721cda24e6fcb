//! One client connection to the gateway: authenticates the client on the target (its password
//! or keyboard-interactive answers passed through, or its public key proven to the target again
//! through the client's forwarded agent), then relays and records every allowed channel.
//!
//! A recorded byte travels: client socket → russh server → `data()` here → recorder queue and
//! the upstream channel; and back: upstream channel → `relay_upstream` → recorder and client.
//! Channels the target opens (remote forwards, X11, agent) are bridged by two tasks instead,
//! `relay_client` and `relay_upstream`.
//!
//! russh runs every handler callback inside the client connection's event loop, so a callback
//! must never wait for something only that loop can deliver, such as the client's answer to a
//! channel the gateway opens towards it. That work runs in tasks; what the client asks while a
//! public-key login waits for its agent is queued in the [`Gate`] and applied in order after.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use custos_sessions::{Endpoint, LiveHandle, SessionRecord, Verdict};
use custos_trail::{Direction, Record};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PublicKey};
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{
    Channel, ChannelId, ChannelMsg, ChannelOpenFailure, ChannelReadHalf, ChannelWriteHalf,
    Disconnect, Sig, client, server,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Context;
use crate::policy::ConnectionRuntime;
use crate::recorder::Recorder;
use crate::target;
use crate::upstream::{TARGET_CHANNEL_QUEUE, TargetChannel, TargetChannelKind, UpstreamHandler};

/// How long the gateway waits for the target to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a public-key login may take from the client's authentication to the target's
/// answer: the client opens a session channel with agent forwarding, and its agent signs (an
/// agent may ask its user to confirm).
const AGENT_LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a client may send on its session channel before its public-key login to the target
/// completes (typed-ahead input). Beyond it the session fails rather than buffer without bound.
const MAX_DEFERRED_BYTES: usize = 1 << 20;

const PUBLICKEY: &str = "publickey";

/// Why a public-key session was refused when the client did not forward its agent.
const NO_AGENT: &str = "public-key logins need the client's SSH agent: connect with agent forwarding (ssh -A), holding the key in the agent, so the gateway can log in to the target with the same key";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the handler and the connection's owner (which finalises the session) share.
pub struct Shared {
    pub record: Mutex<SessionRecord>,
    pub connected: Mutex<Option<Connected>>,
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

/// A request the client made on a session channel, relayed to the target's channel.
enum Request {
    Pty {
        term: String,
        cols: u32,
        rows: u32,
        px_width: u32,
        px_height: u32,
        modes: Vec<(russh::Pty, u32)>,
    },
    Env {
        name: String,
        value: String,
    },
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
    X11 {
        single_connection: bool,
        protocol: String,
        cookie: String,
        screen: u32,
    },
    AgentForward,
    WindowChange {
        cols: u32,
        rows: u32,
        px_width: u32,
        px_height: u32,
    },
    Signal(Sig),
}

impl Request {
    /// How the request appears in the trail.
    fn record(&self, channel: u32) -> Record {
        let (request, details) = match self {
            Request::Pty {
                term,
                cols,
                rows,
                px_width,
                px_height,
                ..
            } => (
                "pty-req",
                json!({"term": term, "cols": cols, "rows": rows, "px_width": px_width, "px_height": px_height}),
            ),
            Request::Env { name, value } => ("env", json!({"name": name, "value": value})),
            Request::Shell => ("shell", json!({})),
            Request::Exec(command) => {
                ("exec", json!({"command": String::from_utf8_lossy(command)}))
            }
            Request::Subsystem(name) => ("subsystem", json!({"name": name})),
            // The cookie is left out: it is OpenSSH's stand-in for the real one, but it still
            // opens the forwarded display for as long as the session lasts.
            Request::X11 {
                single_connection,
                protocol,
                screen,
                ..
            } => (
                "x11-req",
                json!({"single_connection": single_connection, "protocol": protocol, "screen": screen}),
            ),
            Request::AgentForward => ("auth-agent-req@openssh.com", json!({})),
            Request::Signal(signal) => ("signal", json!({"signal": format!("{signal:?}")})),
            Request::WindowChange {
                cols,
                rows,
                px_width,
                px_height,
            } => {
                return Record::WindowChange {
                    channel,
                    cols: *cols,
                    rows: *rows,
                    px_width: *px_width,
                    px_height: *px_height,
                };
            }
        };
        Record::ChannelRequest {
            channel,
            request: request.into(),
            details,
        }
    }

    /// Sends the request on the target's channel. The target's answer is not awaited (it
    /// arrives on the channel's read half), so `Ok` means "sent".
    async fn send(&self, up: &ChannelWriteHalf<client::Msg>) -> Result<(), russh::Error> {
        match self {
            Request::Pty {
                term,
                cols,
                rows,
                px_width,
                px_height,
                modes,
            } => {
                up.request_pty(false, term, *cols, *rows, *px_width, *px_height, modes)
                    .await
            }
            Request::Env { name, value } => up.set_env(false, name.as_str(), value.as_str()).await,
            Request::Shell => up.request_shell(false).await,
            Request::Exec(command) => up.exec(false, command.clone()).await,
            Request::Subsystem(name) => up.request_subsystem(false, name.as_str()).await,
            Request::X11 {
                single_connection,
                protocol,
                cookie,
                screen,
            } => {
                up.request_x11(
                    false,
                    *single_connection,
                    protocol.as_str(),
                    cookie.as_str(),
                    *screen,
                )
                .await
            }
            Request::AgentForward => up.agent_forward(false).await,
            Request::WindowChange {
                cols,
                rows,
                px_width,
                px_height,
            } => up.window_change(*cols, *rows, *px_width, *px_height).await,
            Request::Signal(signal) => up.signal(signal.clone()).await,
        }
    }
}

/// Something the client asked for that reaches the target (and the trail).
enum Op {
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
struct Gate {
    /// The session channel the login belongs to; other channels are not queued.
    channel: Option<ChannelId>,
    ops: VecDeque<Op>,
    /// Data bytes in `ops`.
    bytes: usize,
    /// More than [`MAX_DEFERRED_BYTES`] arrived: the session fails rather than relay a part.
    overflowed: bool,
    /// The login failed: nothing will be relayed.
    failed: bool,
    /// Whether the login's course is decided (the agent request came, or a shell without it,
    /// or the deadline passed): whichever comes first acts, the others do nothing.
    claimed: bool,
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

    /// The channel-policy decision for a channel type, logged and recorded when it denies.
    async fn permitted(&self, channel_type: &str) -> bool {
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
    async fn refuse(&self, what: &str, why: String) {
        tracing::warn!(client = %self.peer, request = %what, reason = %why, "request refused");
        self.record(Record::Event(
            json!({"type": "refused", "request": what, "reason": why}),
        ))
        .await;
    }

    fn note_refusal(&self, login: &str, method: &str, verdict: Verdict, why: String) {
        tracing::warn!(client = %self.peer, user = %login, reason = %why, "session refused");
        {
            let mut record = lock(&self.shared.record);
            record.gateway_username = Some(login.to_string());
            record.auth_method = Some(method.into());
        }
        self.shared.note(verdict, why);
    }

    /// Queues `op` while a public-key login is pending. `Err` gives it back to be carried out
    /// now; `Ok(false)` means it was dropped (the login failed or the client sent too much).
    fn defer(&self, op: Op) -> Result<bool, Op> {
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
    fn login_pending(&self) -> bool {
        lock(&self.gate).is_some() && self.connected().is_none()
    }

    /// Decides the course of a pending public-key login, once: `true` for the first caller.
    fn claim_login(&self) -> bool {
        match lock(&self.gate).as_mut() {
            Some(gate) if !gate.claimed => {
                gate.claimed = true;
                true
            }
            _ => false,
        }
    }

    /// Records now, or once the pending login has created the trail.
    async fn record(&self, record: Record) {
        if let Err(Op::Record(record)) = self.defer(Op::Record(record)) {
            self.record_now(record).await;
        }
    }

    async fn record_now(&self, record: Record) {
        if let Some((_, recorder)) = self.connected() {
            recorder.record(record).await;
        }
    }

    /// Carries out what the client asked, or queues it while its login is pending. `true`
    /// when it was sent (or queued).
    async fn submit(&self, op: Op) -> bool {
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

    async fn request(&self, id: ChannelId, request: Request) -> bool {
        let Some(up) = self.upstream_channel(id) else {
            return false;
        };
        self.record_now(request.record(channel_number(id))).await;
        match request {
            Request::X11 { .. } => self.x11.store(true, Ordering::Relaxed),
            Request::AgentForward => self.agent.store(true, Ordering::Relaxed),
            _ => {}
        }
        request.send(&up).await.is_ok()
    }

    async fn data(&self, id: ChannelId, bytes: Bytes) -> bool {
        // Only relayed channels: the agent channel the gateway itself uses to log in, and the
        // channels the target opened (relayed by `relay_client`), are not fed from here.
        let (Some(up), Some((_, recorder))) = (self.upstream_channel(id), self.connected()) else {
            return false;
        };
        recorder
            .record(Record::Data {
                channel: channel_number(id),
                direction: Direction::ClientToServer,
                extended: false,
                bytes: bytes.clone(),
            })
            .await;
        if recorder.has_failed() {
            return false;
        }
        // Waits for the target's window: back-pressure reaches the client through russh.
        up.data_bytes(bytes).await.is_ok()
    }

    async fn eof(&self, id: ChannelId) -> bool {
        let Some(up) = self.upstream_channel(id) else {
            return false;
        };
        self.record_now(Record::ChannelEof {
            channel: channel_number(id),
        })
        .await;
        up.eof().await.is_ok()
    }

    /// Resolves the target and opens the gateway's own SSH connection to it (host key checked).
    async fn open_upstream(&self, login: &str) -> Result<Upstream, (Verdict, String)> {
        let target = target::resolve(&self.policy.policy.server_address, login)
            .map_err(|why| (Verdict::Deny, why))?;
        *lock(&self.server_user) = target.username.clone();
        let refusal = Arc::new(Mutex::new(None));
        let (opened_tx, opened) = mpsc::channel(TARGET_CHANNEL_QUEUE);
        let handler = UpstreamHandler {
            check: self.policy.policy.host_key_check.clone(),
            known_hosts: self.ctx.known_hosts.clone(),
            host: target.host.clone(),
            port: target.port,
            refusal: refusal.clone(),
            opened: opened_tx,
        };
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| {
            (
                Verdict::Fail,
                format!("{}:{} did not answer", target.host, target.port),
            )
        })?
        .map_err(|e| {
            (
                Verdict::Fail,
                format!("cannot connect to {}:{}: {e}", target.host, target.port),
            )
        })?;
        let _ = stream.set_nodelay(true);
        let server = stream.peer_addr().ok();
        let local = stream.local_addr().ok();
        *lock(&self.target_ip) = server.map(|s| s.ip());
        let handle = client::connect_stream(self.ctx.client_config.clone(), stream, handler)
            .await
            .map_err(|e| {
                let why = lock(&refusal).take();
                (
                    Verdict::Fail,
                    why.unwrap_or_else(|| format!("SSH to the target failed: {e}")),
                )
            })?;
        Ok(Upstream {
            handle,
            target,
            server,
            local,
            opened,
        })
    }

    /// The client is logged in on the target: create the trail, list the live session, store
    /// the record, watch for termination, and serve the channels the target opens.
    async fn start_session(
        self: &Arc<Self>,
        login: &str,
        upstream: Upstream,
        method: &str,
    ) -> Result<(), (Verdict, String)> {
        let Upstream {
            handle,
            target,
            server,
            local,
            opened,
        } = upstream;
        let (key, trail_name, header) = {
            let mut record = lock(&self.shared.record);
            record.gateway_username = Some(login.to_string());
            record.server_username = Some(target.username.clone());
            record.server = server.map(|s| Endpoint {
                ip: s.ip(),
                port: s.port(),
            });
            record.server_local = local.map(|s| Endpoint {
                ip: s.ip(),
                port: s.port(),
            });
            record.auth_method = Some(method.into());
            record.verdict = Verdict::Accept;
            // A failed attempt before this one (another key, a wrong password) no longer applies.
            record.reason = None;
            record.trail = Some(format!("trails/{}.trail", record.key));
            let header = json!({"session": record.to_sps_body(record.start_time)});
            (
                record.key.clone(),
                record.trail.clone().unwrap_or_default(),
                header,
            )
        };
        let (recorder, failed) = Recorder::start(&self.ctx.data_dir.join(&trail_name), &header)
            .map_err(|e| (Verdict::Fail, format!("cannot create the audit trail: {e}")))?;
        let (live, signal) = self.ctx.live.register(lock(&self.shared.record).clone());
        *lock(&self.shared.connected) = Some(Connected {
            upstream: Arc::new(handle),
            recorder,
            live: Some(live),
        });
        self.ctx.save(&self.shared).await;
        tracing::info!(session = %key, client = %self.peer, target = %target.host, user = %target.username, method, "session started");
        self.ctx.watch_session(self.shared.clone(), signal, failed);
        tokio::spawn(serve_target_channels(self.clone(), opened));
        Ok(())
    }

    fn note_channel_accepted(&self) {
        let mut record = lock(&self.shared.record);
        record.has_accepted_channel = true;
        record.channel_policy = Some(self.policy.channel_policy_name.clone());
    }

    /// Joins an accepted client channel to its target channel: records the opening, keeps the
    /// writing half for client data, and relays the target's side.
    async fn attach(
        &self,
        id: ChannelId,
        opened: Channel<client::Msg>,
        kind: &str,
        meta: Value,
        client: server::Handle,
    ) {
        let Some((_, recorder)) = self.connected() else {
            return;
        };
        let number = channel_number(id);
        recorder
            .record(Record::ChannelOpen {
                channel: number,
                kind: kind.into(),
                meta,
            })
            .await;
        let (read, write) = opened.split();
        lock(&self.channels).insert(id, Arc::new(write));
        self.note_channel_accepted();
        tokio::spawn(relay_upstream(read, client, id, number, recorder));
    }

    /// The target side of a session channel the client opened while its public-key login was
    /// pending (the client's channel was accepted then).
    async fn open_deferred_session(&self, id: ChannelId) -> bool {
        let (Some((upstream, _)), Some(client)) = (self.connected(), self.client()) else {
            return false;
        };
        match upstream.channel_open_session().await {
            Ok(opened) => {
                self.attach(id, opened, "session", json!({}), client).await;
                true
            }
            Err(e) => {
                self.refuse(
                    "session",
                    format!("the target refused a session channel: {e}"),
                )
                .await;
                let _ = client.close(id).await;
                false
            }
        }
    }

    /// Asks the target to listen for the client (`ssh -R`); returns the port it listens on.
    async fn remote_forward(&self, address: &str, port: u32) -> Option<u32> {
        let (upstream, _) = self.connected()?;
        // Listed before the target answers: it may accept a connection, and open its channel,
        // before its answer arrives. Port 0 stands for the port the target is choosing.
        let asked = (address.to_string(), port);
        lock(&self.forwards).push(asked.clone());
        let result = upstream.tcpip_forward(address, port).await;
        // russh gives the port only when the target chose it (a request for port 0).
        let bound = result
            .as_ref()
            .ok()
            .map(|&p| if port == 0 { p } else { port });
        {
            let mut forwards = lock(&self.forwards);
            if let Some(i) = forwards.iter().position(|f| *f == asked) {
                forwards.remove(i);
            }
            if let Some(bound) = bound {
                forwards.push((address.to_string(), bound));
            }
        }
        match result {
            Ok(_) => {
                self.record(Record::Event(
                    json!({"type": "remote-forward", "address": address, "port": bound}),
                ))
                .await;
            }
            Err(e) => {
                self.refuse(
                    "remote-forward",
                    format!("the target refused to listen on {address}:{port}: {e}"),
                )
                .await;
            }
        }
        bound
    }

    async fn cancel_remote_forward(&self, address: &str, port: u32) -> bool {
        let Some((upstream, _)) = self.connected() else {
            return false;
        };
        let known = |(a, p): &(String, u32)| a == address && *p == port;
        if !lock(&self.forwards).iter().any(known) {
            return false;
        }
        match upstream.cancel_tcpip_forward(address, port).await {
            Ok(()) => {
                lock(&self.forwards).retain(|f| !known(f));
                self.record(Record::Event(
                    json!({"type": "remote-forward-cancelled", "address": address, "port": port}),
                ))
                .await;
                true
            }
            Err(e) => {
                self.refuse(
                    "cancel-remote-forward",
                    format!("the target did not stop listening on {address}:{port}: {e}"),
                )
                .await;
                false
            }
        }
    }

    /// Whether the client asked for what the target's channel claims to serve: a target
    /// cannot push connections, displays or agent requests the client never wanted.
    fn expects(&self, kind: &TargetChannelKind) -> Result<(), String> {
        match kind {
            TargetChannelKind::ForwardedTcpip {
                connected_address,
                connected_port,
                ..
            } => {
                let known = lock(&self.forwards)
                    .iter()
                    .any(|(a, p)| a == connected_address && (p == connected_port || *p == 0));
                if known {
                    Ok(())
                } else {
                    Err(format!(
                        "the target opened a connection for {connected_address}:{connected_port}, which the client did not ask to forward"
                    ))
                }
            }
            TargetChannelKind::X11 { .. } if !self.x11.load(Ordering::Relaxed) => Err(
                "the target opened an X11 channel, but the client did not ask for X11 forwarding"
                    .into(),
            ),
            TargetChannelKind::Agent if !self.agent.load(Ordering::Relaxed) => {
                Err("the target asked for the client's agent, which is not forwarded to it".into())
            }
            _ => Ok(()),
        }
    }

    /// A channel the target opened: checked against the channel policy and what the client
    /// asked for, then opened towards the client and bridged (the target's channel is accepted
    /// only once the client accepted its side).
    async fn accept_target_channel(&self, opened: TargetChannel) {
        let TargetChannel {
            channel,
            kind,
            reply,
        } = opened;
        let (policy_type, trail_kind, meta) = describe(&kind);
        if !self.permitted(policy_type).await {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return;
        }
        if let Err(why) = self.expects(&kind) {
            self.refuse(policy_type, why).await;
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return;
        }
        let Some(client) = self.client() else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        };
        let towards_client = match open_towards_client(&client, &kind).await {
            Ok(c) => c,
            Err(e) => {
                self.refuse(
                    policy_type,
                    format!("the client refused the {trail_kind} channel: {e}"),
                )
                .await;
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return;
            }
        };
        reply.accept().await;
        self.bridge(towards_client, channel, trail_kind, meta, client)
            .await;
    }

    /// Relays a target-opened channel and its client-side twin both ways, recording both.
    async fn bridge(
        &self,
        towards_client: Channel<Msg>,
        from_target: Channel<client::Msg>,
        kind: &str,
        meta: Value,
        client: server::Handle,
    ) {
        let Some((_, recorder)) = self.connected() else {
            return;
        };
        let id = towards_client.id();
        let number = channel_number(id);
        recorder
            .record(Record::ChannelOpen {
                channel: number,
                kind: kind.into(),
                meta,
            })
            .await;
        self.note_channel_accepted();
        // The client's data arrives on the channel's own read half, buffered from the moment
        // the channel exists: none is lost while this task catches up.
        let (client_read, _) = towards_client.split();
        let (target_read, target_write) = from_target.split();
        tokio::spawn(relay_upstream(
            target_read,
            client,
            id,
            number,
            recorder.clone(),
        ));
        tokio::spawn(relay_client(client_read, target_write, number, recorder));
    }

    /// After the login through the agent: applies what the client asked meanwhile, in order,
    /// then lets the handler act directly.
    async fn release_gate(&self, key: &PublicKey) {
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

    /// Refuses a public-key session whose login to the target failed: the record says why,
    /// and so does the client's session channel (as stderr) and the disconnect message.
    async fn fail_login(&self, verdict: Verdict, why: String, channel: Option<ChannelId>) {
        if let Some(gate) = lock(&self.gate).as_mut() {
            gate.failed = true;
            gate.ops.clear();
        }
        let login = lock(&self.shared.record)
            .gateway_username
            .clone()
            .unwrap_or_default();
        self.note_refusal(&login, PUBLICKEY, verdict, why.clone());
        let client = self.client();
        if let (Some(client), Some(channel)) = (&client, channel) {
            let _ = client
                .extended_data(channel, 1, Bytes::from(format!("custos: {why}\r\n")))
                .await;
            let _ = client.exit_status_request(channel, 255).await;
            let _ = client.close(channel).await;
        }
        disconnect(client, None, &why).await;
    }
}

/// The policy's name for a target-opened channel, its SSH type for the trail, and what the
/// trail says about it.
fn describe(kind: &TargetChannelKind) -> (&'static str, &'static str, Value) {
    match kind {
        TargetChannelKind::ForwardedTcpip {
            connected_address,
            connected_port,
            originator_address,
            originator_port,
        } => (
            "remote-forward",
            "forwarded-tcpip",
            json!({"address": connected_address, "port": connected_port,
                   "originator": originator_address, "originator_port": originator_port}),
        ),
        TargetChannelKind::X11 {
            originator_address,
            originator_port,
        } => (
            "x11",
            "x11",
            json!({"originator": originator_address, "originator_port": originator_port}),
        ),
        TargetChannelKind::Agent => ("agent-forward", "auth-agent@openssh.com", json!({})),
    }
}

async fn open_towards_client(
    client: &server::Handle,
    kind: &TargetChannelKind,
) -> Result<Channel<Msg>, russh::Error> {
    match kind {
        TargetChannelKind::ForwardedTcpip {
            connected_address,
            connected_port,
            originator_address,
            originator_port,
        } => {
            client
                .channel_open_forwarded_tcpip(
                    connected_address.as_str(),
                    *connected_port,
                    originator_address.as_str(),
                    *originator_port,
                )
                .await
        }
        TargetChannelKind::X11 {
            originator_address,
            originator_port,
        } => {
            client
                .channel_open_x11(originator_address.as_str(), *originator_port)
                .await
        }
        TargetChannelKind::Agent => client.channel_open_agent().await,
    }
}

/// Serves the channels the target opens until its connection ends, each in a task of its own
/// (opening the client's side waits for the client).
async fn serve_target_channels(relay: Arc<Relay>, mut opened: mpsc::Receiver<TargetChannel>) {
    while let Some(channel) = opened.recv().await {
        let relay = relay.clone();
        tokio::spawn(async move { relay.accept_target_channel(channel).await });
    }
}

/// A public key the target would accept (it answered `PK_OK`), with the connection that asked.
struct Probe {
    login: String,
    upstream: Upstream,
    accepted: Vec<PublicKey>,
}

/// A client that proved its key to the gateway and has yet to prove it to the target, through
/// its agent.
struct KeyLogin {
    login: String,
    upstream: Upstream,
    key: PublicKey,
}

/// Why [`ProbeOnly`] stopped.
enum ProbeStop {
    /// The target would accept the key: it asked for the signature.
    Accepted,
    Gone,
}

impl From<russh::SendError> for ProbeStop {
    fn from(_: russh::SendError) -> Self {
        ProbeStop::Gone
    }
}

/// A signer that never signs. russh first asks the target whether it would accept a key, and
/// wants a signature only after the target said yes (`PK_OK`): this signer's refusal then ends
/// the attempt (russh leaves the connection usable), and the answer is known without a key.
struct ProbeOnly;

impl russh::Signer for ProbeOnly {
    type Error = ProbeStop;

    async fn auth_sign(
        &mut self,
        _key: &AgentIdentity,
        _hash_alg: Option<HashAlg>,
        _to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, ProbeStop> {
        Err(ProbeStop::Accepted)
    }
}

/// The signature hash for an RSA key: the best the target announces (SHA-1 if none).
async fn rsa_hash(handle: &client::Handle<UpstreamHandler>, key: &PublicKey) -> Option<HashAlg> {
    if !matches!(key.algorithm(), russh::keys::Algorithm::Rsa { .. }) {
        return None;
    }
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

/// Whether the target would let `upstream`'s user in with `key`.
async fn target_accepts(upstream: &mut Upstream, key: &PublicKey) -> Result<bool, String> {
    let hash = rsa_hash(&upstream.handle, key).await;
    let user = upstream.target.username.clone();
    match upstream
        .handle
        .authenticate_publickey_with(user, key.clone(), hash, &mut ProbeOnly)
        .await
    {
        Err(ProbeStop::Accepted) => Ok(true),
        Ok(client::AuthResult::Failure { .. }) => Ok(false),
        Ok(client::AuthResult::Success) => {
            Err("the target let the user in without a signature; refusing to use it".into())
        }
        Err(ProbeStop::Gone) => Err("the connection to the target was lost".into()),
    }
}

/// Logs in to the target with the client's key, the client's forwarded agent signing.
async fn sign_in_with_agent(
    login: &mut KeyLogin,
    client: &server::Handle,
) -> Result<(), (Verdict, String)> {
    let fingerprint = login.key.fingerprint(HashAlg::Sha256);
    let channel = client.channel_open_agent().await.map_err(|e| {
        (
            Verdict::AuthFail,
            format!("the client did not let the gateway use its agent: {e}"),
        )
    })?;
    // Closed when dropped, at the end of this function: the gateway uses the agent only here.
    let mut agent = AgentClient::connect(channel.into_stream());
    let hash = rsa_hash(&login.upstream.handle, &login.key).await;
    let user = login.upstream.target.username.clone();
    let result = login
        .upstream
        .handle
        .authenticate_publickey_with(user.clone(), login.key.clone(), hash, &mut agent)
        .await;
    match result {
        Ok(client::AuthResult::Success) => Ok(()),
        Ok(client::AuthResult::Failure { .. }) => Err((
            Verdict::AuthFail,
            format!("the target refused the public key {fingerprint} of {user}"),
        )),
        Err(e) => Err((
            Verdict::AuthFail,
            format!("the client's agent did not sign with the public key {fingerprint}: {e}"),
        )),
    }
}

/// The public-key login of a client that forwarded its agent: sign in on the target, start the
/// session, apply what the client asked meanwhile; or refuse the session, saying why.
async fn run_agent_login(
    relay: Arc<Relay>,
    mut login: KeyLogin,
    client: server::Handle,
    channel: ChannelId,
) {
    let signed = tokio::time::timeout(AGENT_LOGIN_TIMEOUT, sign_in_with_agent(&mut login, &client))
        .await
        .unwrap_or_else(|_| {
            Err((
                Verdict::AuthFail,
                format!(
                    "the client's agent did not sign within {} s",
                    AGENT_LOGIN_TIMEOUT.as_secs()
                ),
            ))
        });
    let KeyLogin {
        login,
        upstream,
        key,
    } = login;
    let started = match signed {
        Ok(()) => relay.start_session(&login, upstream, PUBLICKEY).await,
        Err(refused) => Err(refused),
    };
    match started {
        Ok(()) => relay.release_gate(&key).await,
        Err((verdict, why)) => relay.fail_login(verdict, why, Some(channel)).await,
    }
}

/// Ends a public-key session whose client never forwarded its agent on a session channel
/// (for instance `ssh -N`): the gateway cannot log in to the target without it.
/// It holds the connection's state weakly: a connection that ended meanwhile is left alone.
async fn login_deadline(relay: Weak<Relay>, channel: Arc<Mutex<Option<ChannelId>>>) {
    tokio::time::sleep(AGENT_LOGIN_TIMEOUT).await;
    let Some(relay) = relay.upgrade() else {
        return;
    };
    if relay.claim_login() {
        let channel = *lock(&channel);
        relay
            .fail_login(
                Verdict::AuthFail,
                format!(
                    "{NO_AGENT} (no agent forwarding within {} s)",
                    AGENT_LOGIN_TIMEOUT.as_secs()
                ),
                channel,
            )
            .await;
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

    /// Whether the client authenticated (or is authenticating) already.
    fn logged_in(&self) -> bool {
        self.relay.connected().is_some() || self.pending_key.is_some() || self.relay.login_pending()
    }

    async fn connect_upstream(
        &mut self,
        login: &str,
        password: &str,
    ) -> Result<(), (Verdict, String)> {
        let mut upstream = self.relay.open_upstream(login).await?;
        let result = upstream
            .handle
            .authenticate_password(upstream.target.username.clone(), password)
            .await
            .map_err(|e| {
                (
                    Verdict::Fail,
                    format!("authentication to the target failed: {e}"),
                )
            })?;
        if !matches!(result, client::AuthResult::Success) {
            return Err((
                Verdict::AuthFail,
                format!(
                    "the target refused the password of {}",
                    upstream.target.username
                ),
            ));
        }
        self.relay.start_session(login, upstream, "password").await
    }

    /// The connection that asks the target about `user`'s keys: the one from an earlier offer
    /// of the same user, or a new one.
    async fn probe_for(&mut self, user: &str) -> Result<Probe, (Verdict, String)> {
        if let Some(probe) = self.probe.take().filter(|p| p.login == user) {
            return Ok(probe);
        }
        Ok(Probe {
            login: user.to_string(),
            upstream: self.relay.open_upstream(user).await?,
            accepted: Vec::new(),
        })
    }

    fn is_waiting_channel(&self, channel: ChannelId) -> bool {
        self.pending_key.is_some() && *lock(&self.waiting_channel) == Some(channel)
    }

    /// A shell, command or subsystem was asked for on the channel of a public-key login
    /// without the client's agent: the gateway cannot log in to the target, so the session
    /// ends, saying why on the channel, in the disconnect message and in the record.
    fn refuse_without_agent(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if !self.relay.claim_login() {
            return session.channel_failure(channel);
        }
        self.pending_key = None;
        if let Some(gate) = lock(&self.relay.gate).as_mut() {
            gate.failed = true;
            gate.ops.clear();
        }
        let login = lock(&self.relay.shared.record)
            .gateway_username
            .clone()
            .unwrap_or_default();
        self.relay
            .note_refusal(&login, PUBLICKEY, Verdict::AuthFail, NO_AGENT.into());
        // No failure reply: OpenSSH would exit on it before showing anything; the disconnect
        // ends the request, and OpenSSH prints its message.
        session.extended_data(channel, 1, Bytes::from(format!("custos: {NO_AGENT}\r\n")))?;
        session.disconnect(Disconnect::ByApplication, NO_AGENT, "")
    }

    /// The checks common to shell, exec and subsystem requests, then the request itself.
    async fn start_program(
        &mut self,
        channel: ChannelId,
        channel_type: &str,
        request: Request,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if !self.relay.permitted(channel_type).await {
            return reply(session, channel, false);
        }
        if self.is_waiting_channel(channel) {
            return self.refuse_without_agent(channel, session);
        }
        let ok = self.relay.submit(Op::Request(channel, request)).await;
        reply(session, channel, ok)
    }
}

fn channel_number(id: ChannelId) -> u32 {
    // ChannelId renders as its number; the trail keys channels by the client-side id.
    format!("{id}").parse().unwrap_or(0)
}

impl russh::server::Handler for ClientHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.logged_in() {
            return Ok(Auth::reject());
        }
        // Public keys offered before are no longer in play; their connection goes.
        self.probe = None;
        match self.connect_upstream(user, password).await {
            Ok(()) => Ok(Auth::Accept),
            Err((verdict, why)) => {
                self.relay.note_refusal(user, "password", verdict, why);
                Ok(Auth::reject())
            }
        }
    }

    /// A public key is accepted only if the target would accept it too (asked without a
    /// signature, see [`ProbeOnly`]): a client whose key the target does not know goes on to
    /// its other keys or methods, as it would connecting directly.
    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.logged_in() {
            return Ok(Auth::reject());
        }
        let key = offer.public_key;
        let known = |p: &Probe| {
            p.login == user && p.accepted.iter().any(|k| k.key_data() == key.key_data())
        };
        // russh asks again for the signed request that follows the client's query.
        if self.probe.as_ref().is_some_and(known) {
            return Ok(Auth::Accept);
        }
        let mut probe = match self.probe_for(user).await {
            Ok(probe) => probe,
            Err((verdict, why)) => {
                self.relay.note_refusal(user, PUBLICKEY, verdict, why);
                return Ok(Auth::reject());
            }
        };
        match target_accepts(&mut probe.upstream, key).await {
            Ok(true) => {
                probe.accepted.push(key.clone());
                self.probe = Some(probe);
                Ok(Auth::Accept)
            }
            Ok(false) => {
                let why = format!(
                    "the target does not accept the public key {} of {}",
                    key.fingerprint(HashAlg::Sha256),
                    probe.upstream.target.username
                );
                self.relay
                    .note_refusal(user, PUBLICKEY, Verdict::AuthFail, why);
                self.probe = Some(probe);
                Ok(Auth::reject())
            }
            Err(why) => {
                self.relay.note_refusal(user, PUBLICKEY, Verdict::Fail, why);
                Ok(Auth::reject())
            }
        }
    }

    /// russh verified the signature: the client holds the key. The login to the target waits
    /// for the client's agent, on its first session channel.
    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let key = key.public_key;
        let Some(probe) = self.probe.take_if(|p| {
            p.login == user && p.accepted.iter().any(|k| k.key_data() == key.key_data())
        }) else {
            return Ok(Auth::reject());
        };
        {
            let mut record = lock(&self.relay.shared.record);
            record.gateway_username = Some(user.to_string());
            record.auth_method = Some(PUBLICKEY.into());
            record.verdict = Verdict::Accept;
            // Replaced when the login completes; says why if the client never lets it.
            record.reason = Some(NO_AGENT.into());
        }
        *lock(&self.relay.gate) = Some(Gate::default());
        self.pending_key = Some(KeyLogin {
            login: user.to_string(),
            upstream: probe.upstream,
            key: key.clone(),
        });
        Ok(Auth::Accept)
    }

    /// Keyboard-interactive pass-through: the target's prompts go to the client and the
    /// client's answers to the target (never logged, never recorded).
    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        const METHOD: &str = "keyboard-interactive";
        if self.logged_in() {
            return Ok(Auth::reject());
        }
        self.probe = None;
        let result = match response {
            None => {
                let mut upstream = match self.relay.open_upstream(user).await {
                    Ok(u) => u,
                    Err((verdict, why)) => {
                        self.relay.note_refusal(user, METHOD, verdict, why);
                        return Ok(Auth::reject());
                    }
                };
                let started = upstream
                    .handle
                    .authenticate_keyboard_interactive_start(
                        upstream.target.username.clone(),
                        Some(submethods.to_string()),
                    )
                    .await;
                self.pending_interactive = Some((user.to_string(), upstream));
                started
            }
            Some(answers) => {
                let answers: Vec<String> = answers
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .collect();
                let Some((_, upstream)) = self.pending_interactive.as_mut() else {
                    return Ok(Auth::reject());
                };
                upstream
                    .handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await
            }
        };
        match result {
            Ok(client::KeyboardInteractiveAuthResponse::InfoRequest {
                name,
                instructions,
                prompts,
            }) => {
                let prompts: Vec<(std::borrow::Cow<'static, str>, bool)> = prompts
                    .into_iter()
                    .map(|p| (p.prompt.into(), p.echo))
                    .collect();
                Ok(Auth::Partial {
                    name: name.into(),
                    instructions: instructions.into(),
                    prompts: prompts.into(),
                })
            }
            Ok(client::KeyboardInteractiveAuthResponse::Success) => {
                let Some((login, upstream)) = self.pending_interactive.take() else {
                    return Ok(Auth::reject());
                };
                match self.relay.start_session(&login, upstream, METHOD).await {
                    Ok(()) => Ok(Auth::Accept),
                    Err((verdict, why)) => {
                        self.relay.note_refusal(&login, METHOD, verdict, why);
                        Ok(Auth::reject())
                    }
                }
            }
            Ok(client::KeyboardInteractiveAuthResponse::Failure { .. }) => {
                self.pending_interactive = None;
                let why = format!(
                    "the target refused the keyboard-interactive login of {}",
                    lock(&self.relay.server_user)
                );
                self.relay
                    .note_refusal(user, METHOD, Verdict::AuthFail, why);
                Ok(Auth::reject())
            }
            Err(e) => {
                self.pending_interactive = None;
                self.relay.note_refusal(
                    user,
                    METHOD,
                    Verdict::Fail,
                    format!("keyboard-interactive login to the target failed: {e}"),
                );
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let key = lock(&self.relay.shared.record).key.clone();
        self.relay.ctx.remember_client(&key, session.handle());
        *lock(&self.relay.client) = Some(session.handle());
        if self.pending_key.is_some() {
            tokio::spawn(login_deadline(
                Arc::downgrade(&self.relay),
                self.waiting_channel.clone(),
            ));
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let id = channel.id();
        drop(channel);
        if self.pending_key.is_some() && lock(&self.waiting_channel).is_none() {
            // The login needs this channel (the agent request comes on it), so it is accepted
            // now; its target side is opened once the login completes.
            *lock(&self.waiting_channel) = Some(id);
            if let Some(gate) = lock(&self.relay.gate).as_mut() {
                gate.channel = Some(id);
            }
            reply.accept().await;
            self.relay.submit(Op::OpenSession(id)).await;
            return Ok(());
        }
        let Some((upstream, _)) = self.relay.connected() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let opened = match upstream.channel_open_session().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "the target refused a session channel");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        reply.accept().await;
        self.relay
            .attach(id, opened, "session", json!({}), session.handle())
            .await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = Request::Pty {
            term: term.into(),
            cols: col_width,
            rows: row_height,
            px_width: pix_width,
            px_height: pix_height,
            modes: modes.to_vec(),
        };
        let ok = self.relay.submit(Op::Request(channel, request)).await;
        reply(session, channel, ok)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = Request::Env {
            name: variable_name.into(),
            value: variable_value.into(),
        };
        let ok = self.relay.submit(Op::Request(channel, request)).await;
        reply(session, channel, ok)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start_program(channel, "session-shell", Request::Shell, session)
            .await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start_program(
            channel,
            "session-exec",
            Request::Exec(data.to_vec()),
            session,
        )
        .await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = Request::Subsystem(name.into());
        self.start_program(channel, "session-subsystem", request, session)
            .await
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = Request::WindowChange {
            cols: col_width,
            rows: row_height,
            px_width: pix_width,
            px_height: pix_height,
        };
        self.relay.submit(Op::Request(channel, request)).await;
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.relay
            .submit(Op::Request(channel, Request::Signal(signal)))
            .await;
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let bytes = Bytes::copy_from_slice(data);
        self.relay.submit(Op::Data(channel, bytes)).await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some((upstream, _)) = self.relay.connected() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if !self.relay.permitted("local-forward").await {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let id = channel.id();
        drop(channel);
        let opened = match upstream
            .channel_open_direct_tcpip(
                host_to_connect,
                port_to_connect,
                originator_address,
                originator_port,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                self.relay
                    .refuse(
                        "local-forward",
                        format!(
                            "the target refused to open {host_to_connect}:{port_to_connect}: {e}"
                        ),
                    )
                    .await;
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        reply.accept().await;
        let meta = json!({"host": host_to_connect, "port": port_to_connect,
                          "originator": originator_address, "originator_port": originator_port});
        self.relay
            .attach(id, opened, "direct-tcpip", meta, session.handle())
            .await;
        Ok(())
    }

    /// X11 channels come from the server side (the target, relayed by the gateway); a client
    /// opening one towards the gateway is refused.
    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.relay
            .refuse("x11", "a client may not open x11 channels".into())
            .await;
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        single_connection: bool,
        x11_auth_protocol: &str,
        x11_auth_cookie: &str,
        x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.relay.permitted("x11").await {
            return reply(session, channel, false);
        }
        let request = Request::X11 {
            single_connection,
            protocol: x11_auth_protocol.into(),
            cookie: x11_auth_cookie.into(),
            screen: x11_screen_number,
        };
        let ok = self.relay.submit(Op::Request(channel, request)).await;
        reply(session, channel, ok)
    }

    /// On the channel of a pending public-key login, the agent request starts the login (the
    /// gateway uses the agent itself, whatever the policy says about relaying it to the
    /// target). Otherwise, and in addition when the policy allows it, the request is relayed
    /// to the target, whose agent channels are then bridged to the client's agent.
    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if self.is_waiting_channel(channel) {
            if !self.relay.claim_login() {
                return Ok(false);
            }
            if let (Some(login), Some(client)) = (self.pending_key.take(), self.relay.client()) {
                tokio::spawn(run_agent_login(self.relay.clone(), login, client, channel));
            }
            if self.relay.permitted("agent-forward").await {
                self.relay
                    .submit(Op::Request(channel, Request::AgentForward))
                    .await;
            }
            return Ok(true);
        }
        if !self.relay.permitted("agent-forward").await {
            return Ok(false);
        }
        Ok(self
            .relay
            .submit(Op::Request(channel, Request::AgentForward))
            .await)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if !self.relay.permitted("remote-forward").await {
            return Ok(false);
        }
        if self.relay.login_pending() {
            // OpenSSH asks for its remote forwards before it opens the session channel that
            // carries the agent: they are requested from the target once the login completes.
            // A port the target would choose cannot be told to the client before then.
            if *port == 0 {
                self.relay
                    .refuse(
                        "remote-forward",
                        format!("{address}:0 (a port chosen by the target) cannot be forwarded before the public-key login to the target completes"),
                    )
                    .await;
                return Ok(false);
            }
            if let Ok(queued) = self
                .relay
                .defer(Op::RemoteForward(address.to_string(), *port))
            {
                return Ok(queued);
            }
        }
        match self.relay.remote_forward(address, *port).await {
            Some(bound) => {
                *port = bound;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(self
            .relay
            .submit(Op::CancelRemoteForward(address.to_string(), port))
            .await)
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.relay.submit(Op::Eof(channel)).await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.relay.submit(Op::Close(channel)).await;
        Ok(())
    }
}

fn reply(session: &mut Session, channel: ChannelId, ok: bool) -> Result<(), russh::Error> {
    if ok {
        session.channel_success(channel)
    } else {
        session.channel_failure(channel)
    }
}

/// Forwards what the target sends on one channel to the client, recording it.
async fn relay_upstream(
    mut upstream: ChannelReadHalf,
    client: server::Handle,
    id: ChannelId,
    channel: u32,
    recorder: Recorder,
) {
    while let Some(message) = upstream.wait().await {
        if recorder.has_failed() {
            break;
        }
        match message {
            ChannelMsg::Data { data } => {
                recorder
                    .record(Record::Data {
                        channel,
                        direction: Direction::ServerToClient,
                        extended: false,
                        bytes: data.clone(),
                    })
                    .await;
                if client.data(id, data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::ExtendedData { data, ext } => {
                recorder
                    .record(Record::Data {
                        channel,
                        direction: Direction::ServerToClient,
                        extended: true,
                        bytes: data.clone(),
                    })
                    .await;
                if client.extended_data(id, ext, data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::ExitStatus { exit_status } => {
                recorder
                    .record(Record::ExitStatus {
                        channel,
                        code: exit_status,
                    })
                    .await;
                let _ = client.exit_status_request(id, exit_status).await;
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                recorder
                    .record(Record::ExitSignal {
                        channel,
                        signal: format!("{signal_name:?}"),
                        core_dumped,
                        message: error_message.clone(),
                    })
                    .await;
                let _ = client
                    .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                    .await;
            }
            ChannelMsg::Eof => {
                recorder.record(Record::ChannelEof { channel }).await;
                let _ = client.eof(id).await;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    recorder.record(Record::ChannelClose { channel }).await;
    let _ = client.close(id).await;
}

/// Forwards what the client sends on a channel the target opened (remote forward, X11, agent)
/// to the target, recording it. The close is recorded by `relay_upstream`, which sees the
/// target's answering close.
async fn relay_client(
    mut client: ChannelReadHalf,
    target: ChannelWriteHalf<client::Msg>,
    channel: u32,
    recorder: Recorder,
) {
    while let Some(message) = client.wait().await {
        if recorder.has_failed() {
            break;
        }
        match message {
            ChannelMsg::Data { data } => {
                recorder
                    .record(Record::Data {
                        channel,
                        direction: Direction::ClientToServer,
                        extended: false,
                        bytes: data.clone(),
                    })
                    .await;
                if target.data_bytes(data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::Eof => {
                recorder.record(Record::ChannelEof { channel }).await;
                let _ = target.eof().await;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = target.close().await;
}

/// Closes both SSH connections of a session (termination, or a trail that cannot be written).
pub async fn disconnect(
    client: Option<server::Handle>,
    upstream: Option<Arc<client::Handle<UpstreamHandler>>>,
    why: &str,
) {
    // The target first: that also releases a handler waiting for the target's window, so the
    // client's session loop is free to process its own disconnect.
    if let Some(upstream) = upstream {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            upstream.disconnect(Disconnect::ByApplication, why, ""),
        )
        .await;
    }
    if let Some(client) = client {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            client.disconnect(Disconnect::ByApplication, why.to_string(), String::new()),
        )
        .await;
    }
}
