//! One client connection to the gateway: authenticates the client by passing its password to
//! the target (the gateway's own SSH connection), then relays and records every allowed channel.
//!
//! A recorded byte travels: client socket → russh server → `data()` here → recorder queue and
//! the upstream channel; and back: upstream channel → `relay_upstream` → recorder and client.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use custos_sessions::{Endpoint, LiveHandle, SessionRecord, Verdict};
use custos_trail::{Direction, Record};
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, ChannelWriteHalf, Disconnect, Sig, client};
use serde_json::json;

use crate::Context;
use crate::policy::ConnectionRuntime;
use crate::recorder::Recorder;
use crate::target;
use crate::upstream::UpstreamHandler;

/// How long the gateway waits for the target to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

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
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        record.verdict = verdict;
        record.reason = Some(reason.into());
    }
    fn connected(&self) -> Option<(Arc<client::Handle<UpstreamHandler>>, Recorder)> {
        let guard = self.connected.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .map(|c| (c.upstream.clone(), c.recorder.clone()))
    }
}

pub struct ClientHandler {
    pub ctx: Arc<Context>,
    pub policy: Arc<ConnectionRuntime>,
    pub peer: SocketAddr,
    pub shared: Arc<Shared>,
    channels: HashMap<ChannelId, ChannelWriteHalf<client::Msg>>,
    target_ip: Option<IpAddr>,
    server_user: String,
    /// A keyboard-interactive login in progress: the client's name and the target connection.
    pending_interactive: Option<(String, Upstream)>,
}

impl ClientHandler {
    pub fn new(
        ctx: Arc<Context>,
        policy: Arc<ConnectionRuntime>,
        peer: SocketAddr,
        shared: Arc<Shared>,
    ) -> Self {
        ClientHandler {
            ctx,
            policy,
            peer,
            shared,
            channels: HashMap::new(),
            target_ip: None,
            server_user: String::new(),
            pending_interactive: None,
        }
    }

    /// The channel-policy decision for a channel type, logged and recorded when it denies.
    async fn permitted(&self, channel_type: &str) -> bool {
        let allowed = self
            .policy
            .allows(
                channel_type,
                self.peer.ip(),
                self.target_ip,
                &self.server_user,
            )
            .is_some();
        if !allowed {
            let why = format!(
                "channel policy {} does not allow {channel_type}",
                self.policy.channel_policy_name
            );
            tracing::warn!(client = %self.peer, reason = %why, "channel refused");
            if let Some((_, recorder)) = self.shared.connected() {
                recorder
                    .record(Record::Event(
                        json!({"type": "channel-denied", "channel": channel_type, "reason": why}),
                    ))
                    .await;
            }
        }
        allowed
    }

    /// Refuses something the client asked for, saying why in the log and in the trail.
    async fn refuse(&self, what: &str, why: String) {
        tracing::warn!(client = %self.peer, request = %what, reason = %why, "request refused");
        self.record(Record::Event(
            json!({"type": "refused", "request": what, "reason": why}),
        ))
        .await;
    }

    /// Why a channel type that the policy may allow is still refused: not relayed yet.
    fn unsupported(&self, channel_type: &str) -> String {
        format!(
            "{channel_type} is allowed by channel policy {} but not relayed by this version of Custos",
            self.policy.channel_policy_name
        )
    }

    /// Records a request the client made on a channel.
    async fn record_request(&self, channel: ChannelId, request: &str, details: serde_json::Value) {
        self.record(Record::ChannelRequest {
            channel: channel_number(channel),
            request: request.into(),
            details,
        })
        .await;
    }

    async fn record(&self, record: Record) {
        if let Some((_, recorder)) = self.shared.connected() {
            recorder.record(record).await;
        }
    }

    fn upstream_channel(&self, id: ChannelId) -> Option<&ChannelWriteHalf<client::Msg>> {
        self.channels.get(&id)
    }

    /// Resolves the target and opens the gateway's own SSH connection to it (host key checked).
    async fn open_upstream(&mut self, login: &str) -> Result<Upstream, (Verdict, String)> {
        let target = target::resolve(&self.policy.policy.server_address, login)
            .map_err(|why| (Verdict::Deny, why))?;
        self.server_user = target.username.clone();
        let refusal = Arc::new(Mutex::new(None));
        let handler = UpstreamHandler {
            check: self.policy.policy.host_key_check.clone(),
            known_hosts: self.ctx.known_hosts.clone(),
            host: target.host.clone(),
            port: target.port,
            refusal: refusal.clone(),
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
        self.target_ip = server.map(|s| s.ip());
        let handle = client::connect_stream(self.ctx.client_config.clone(), stream, handler)
            .await
            .map_err(|e| {
                let why = refusal.lock().unwrap_or_else(|p| p.into_inner()).take();
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
        })
    }

    async fn connect_upstream(
        &mut self,
        login: &str,
        password: &str,
    ) -> Result<(), (Verdict, String)> {
        let mut upstream = self.open_upstream(login).await?;
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
        self.start_session(login, upstream, "password").await
    }

    /// The client is logged in on the target: create the trail, list the live session, store
    /// the record, and watch for termination.
    async fn start_session(
        &mut self,
        login: &str,
        upstream: Upstream,
        method: &str,
    ) -> Result<(), (Verdict, String)> {
        let Upstream {
            handle,
            target,
            server,
            local,
        } = upstream;
        let (key, trail_name) = {
            let mut record = self.shared.record.lock().unwrap_or_else(|p| p.into_inner());
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
            record.trail = Some(format!("trails/{}.trail", record.key));
            (record.key.clone(), record.trail.clone().unwrap_or_default())
        };
        let header = {
            let record = self.shared.record.lock().unwrap_or_else(|p| p.into_inner());
            json!({"session": record.to_sps_body(record.start_time)})
        };
        let (recorder, failed) = Recorder::start(&self.ctx.data_dir.join(&trail_name), &header)
            .map_err(|e| (Verdict::Fail, format!("cannot create the audit trail: {e}")))?;
        let (live, signal) = self.ctx.live.register(
            self.shared
                .record
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        );
        let upstream = Arc::new(handle);
        *self
            .shared
            .connected
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Connected {
            upstream,
            recorder,
            live: Some(live),
        });
        self.ctx.save(&self.shared).await;
        tracing::info!(session = %key, client = %self.peer, target = %target.host, user = %target.username, method, "session started");
        self.ctx.watch_session(self.shared.clone(), signal, failed);
        Ok(())
    }

    /// Joins an accepted client channel to its target channel: records the opening, keeps the
    /// writing half for client data, and relays the target's side.
    async fn attach(
        &mut self,
        id: ChannelId,
        opened: Channel<client::Msg>,
        kind: &str,
        meta: serde_json::Value,
        recorder: Recorder,
        client: russh::server::Handle,
    ) {
        let number = channel_number(id);
        recorder
            .record(Record::ChannelOpen {
                channel: number,
                kind: kind.into(),
                meta,
            })
            .await;
        let (read, write) = opened.split();
        self.channels.insert(id, write);
        {
            let mut record = self.shared.record.lock().unwrap_or_else(|p| p.into_inner());
            record.has_accepted_channel = true;
            record.channel_policy = Some(self.policy.channel_policy_name.clone());
        }
        tokio::spawn(relay_upstream(read, client, id, number, recorder));
    }

    fn note_refusal(&self, login: &str, method: &str, verdict: Verdict, why: String) {
        tracing::warn!(client = %self.peer, user = %login, reason = %why, "session refused");
        {
            let mut record = self.shared.record.lock().unwrap_or_else(|p| p.into_inner());
            record.gateway_username = Some(login.to_string());
            record.auth_method = Some(method.into());
        }
        self.shared.note(verdict, why);
    }
}

/// The gateway's connection to the target while the client logs in.
pub struct Upstream {
    handle: client::Handle<UpstreamHandler>,
    target: target::Target,
    server: Option<SocketAddr>,
    local: Option<SocketAddr>,
}

/// Forwards what the target sends on one channel to the client, recording it.
async fn relay_upstream(
    mut upstream: russh::ChannelReadHalf,
    client: russh::server::Handle,
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

fn channel_number(id: ChannelId) -> u32 {
    // ChannelId renders as its number; the trail keys channels by the client-side id.
    format!("{id}").parse().unwrap_or(0)
}

impl russh::server::Handler for ClientHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.shared.connected().is_some() {
            return Ok(Auth::reject());
        }
        match self.connect_upstream(user, password).await {
            Ok(()) => Ok(Auth::Accept),
            Err((verdict, why)) => {
                self.note_refusal(user, "password", verdict, why);
                Ok(Auth::reject())
            }
        }
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
        if self.shared.connected().is_some() {
            return Ok(Auth::reject());
        }
        let result = match response {
            None => {
                let mut upstream = match self.open_upstream(user).await {
                    Ok(u) => u,
                    Err((verdict, why)) => {
                        self.note_refusal(user, METHOD, verdict, why);
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
                match self.start_session(&login, upstream, METHOD).await {
                    Ok(()) => Ok(Auth::Accept),
                    Err((verdict, why)) => {
                        self.note_refusal(&login, METHOD, verdict, why);
                        Ok(Auth::reject())
                    }
                }
            }
            Ok(client::KeyboardInteractiveAuthResponse::Failure { .. }) => {
                self.pending_interactive = None;
                let why = format!(
                    "the target refused the keyboard-interactive login of {}",
                    self.server_user
                );
                self.note_refusal(user, METHOD, Verdict::AuthFail, why);
                Ok(Auth::reject())
            }
            Err(e) => {
                self.pending_interactive = None;
                self.note_refusal(
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
        let key = self
            .shared
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .key
            .clone();
        self.ctx.remember_client(&key, session.handle());
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some((upstream, recorder)) = self.shared.connected() else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let id = channel.id();
        drop(channel);
        let opened = match upstream.channel_open_session().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "the target refused a session channel");
                reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        reply.accept().await;
        self.attach(id, opened, "session", json!({}), recorder, session.handle())
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
        self.record_request(channel, "pty-req", json!({"term": term, "cols": col_width, "rows": row_height, "px_width": pix_width, "px_height": pix_height})).await;
        let ok = match self.upstream_channel(channel) {
            Some(up) => up
                .request_pty(
                    false, term, col_width, row_height, pix_width, pix_height, modes,
                )
                .await
                .is_ok(),
            None => false,
        };
        reply(session, channel, ok)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.record_request(
            channel,
            "env",
            json!({"name": variable_name, "value": variable_value}),
        )
        .await;
        let ok = match self.upstream_channel(channel) {
            Some(up) => up
                .set_env(false, variable_name, variable_value)
                .await
                .is_ok(),
            None => false,
        };
        reply(session, channel, ok)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.permitted("session-shell").await {
            return reply(session, channel, false);
        }
        self.record_request(channel, "shell", json!({})).await;
        let ok = match self.upstream_channel(channel) {
            Some(up) => up.request_shell(false).await.is_ok(),
            None => false,
        };
        reply(session, channel, ok)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.permitted("session-exec").await {
            return reply(session, channel, false);
        }
        self.record_request(
            channel,
            "exec",
            json!({"command": String::from_utf8_lossy(data)}),
        )
        .await;
        let ok = match self.upstream_channel(channel) {
            Some(up) => up.exec(false, data.to_vec()).await.is_ok(),
            None => false,
        };
        reply(session, channel, ok)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.permitted("session-subsystem").await {
            return reply(session, channel, false);
        }
        self.record_request(channel, "subsystem", json!({"name": name}))
            .await;
        let ok = match self.upstream_channel(channel) {
            Some(up) => up.request_subsystem(false, name).await.is_ok(),
            None => false,
        };
        reply(session, channel, ok)
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
        self.record(Record::WindowChange {
            channel: channel_number(channel),
            cols: col_width,
            rows: row_height,
            px_width: pix_width,
            px_height: pix_height,
        })
        .await;
        if let Some(up) = self.upstream_channel(channel) {
            let _ = up
                .window_change(col_width, row_height, pix_width, pix_height)
                .await;
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.record_request(channel, "signal", json!({"signal": format!("{signal:?}")}))
            .await;
        if let Some(up) = self.upstream_channel(channel) {
            let _ = up.signal(signal).await;
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let bytes = Bytes::copy_from_slice(data);
        self.record(Record::Data {
            channel: channel_number(channel),
            direction: Direction::ClientToServer,
            extended: false,
            bytes: bytes.clone(),
        })
        .await;
        let failed = self.shared.connected().is_some_and(|(_, r)| r.has_failed());
        if let (Some(up), false) = (self.upstream_channel(channel), failed) {
            // Waits for the target's window: back-pressure reaches the client through russh.
            let _ = up.data_bytes(bytes).await;
        }
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
        let Some((upstream, recorder)) = self.shared.connected() else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if !self.permitted("local-forward").await {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
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
                self.refuse(
                    "local-forward",
                    format!("the target refused to open {host_to_connect}:{port_to_connect}: {e}"),
                )
                .await;
                reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        reply.accept().await;
        let meta = json!({"host": host_to_connect, "port": port_to_connect,
                          "originator": originator_address, "originator_port": originator_port});
        self.attach(id, opened, "direct-tcpip", meta, recorder, session.handle())
            .await;
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.permitted("x11").await {
            self.refuse("x11", self.unsupported("x11")).await;
        }
        reply
            .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.permitted("x11").await {
            self.refuse("x11", self.unsupported("x11")).await;
        }
        reply(session, channel, false)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if self.permitted("agent-forward").await {
            self.refuse("agent-forward", self.unsupported("agent-forward"))
                .await;
        }
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if self.permitted("remote-forward").await {
            self.refuse(
                "remote-forward",
                format!("{} ({address}:{port})", self.unsupported("remote-forward")),
            )
            .await;
        }
        Ok(false)
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.record(Record::ChannelEof {
            channel: channel_number(channel),
        })
        .await;
        if let Some(up) = self.upstream_channel(channel) {
            let _ = up.eof().await;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(up) = self.channels.remove(&channel) {
            let _ = up.close().await;
        }
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

/// Closes both SSH connections of a session (termination, or a trail that cannot be written).
pub async fn disconnect(
    client: Option<russh::server::Handle>,
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
