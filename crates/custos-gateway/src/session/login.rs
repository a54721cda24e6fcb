//! The gateway's connection to the target, the client's password and keyboard-interactive
//! logins passed through to it, and the start of the session once the target let the client in.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_sessions::{Endpoint, Verdict};
use russh::client;
use russh::server::{Auth, Session};
use serde_json::json;
use tokio::sync::mpsc;

use super::key_login::login_deadline;
use super::target_channels::serve_target_channels;
use super::{ClientHandler, Connected, Relay, Upstream, lock};
use crate::recorder::Recorder;
use crate::target;
use crate::transcript::Transcriber;
use crate::upstream::{TARGET_CHANNEL_QUEUE, UpstreamHandler};

/// How long the gateway waits for the target to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

impl Relay {
    /// Resolves the target and opens the gateway's own SSH connection to it (host key checked).
    pub(super) async fn open_upstream(&self, login: &str) -> Result<Upstream, (Verdict, String)> {
        if self.policy.policy.on_storage_full == "refuse_new"
            && let Some(why) = crate::storage::short_of_space(&self.ctx.data_dir.join("trails"))
        {
            return Err((Verdict::Fail, why));
        }
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
    pub(super) async fn start_session(
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
        let transcript = self
            .ctx
            .text_sink
            .get()
            .filter(|_| self.policy.evidence.indexes_content())
            .map(|sink| Transcriber::new(key.clone(), sink.clone()));
        let (recorder, failed) = Recorder::start(
            &self.ctx.data_dir.join(&trail_name),
            &header,
            self.policy.evidence.clone(),
            transcript,
        )
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
}

impl ClientHandler {
    /// Whether the client authenticated (or is authenticating) already.
    pub(super) fn logged_in(&self) -> bool {
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

    pub(super) async fn password_login(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<Auth, russh::Error> {
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

    /// Keyboard-interactive pass-through: the target's prompts go to the client and the
    /// client's answers to the target (never logged, never recorded).
    pub(super) async fn keyboard_interactive_login<'a>(
        &'a mut self,
        user: &str,
        submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, russh::Error> {
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

    pub(super) async fn client_authenticated(
        &mut self,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
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
}
