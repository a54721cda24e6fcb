//! The public-key login to the target, signed by the client's forwarded agent once the client
//! asks for agent forwarding on its first session channel; its deadline, and its refusal.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use custos_sessions::Verdict;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PublicKey};
use russh::server::{Auth, Session, VerifiedPublicKey};
use russh::{ChannelId, Disconnect, client, server};

use super::gate::Gate;
use super::key_probe::rsa_hash;
use super::{ClientHandler, Relay, Upstream, disconnect, lock};

/// How long a public-key login may take from the client's authentication to the target's
/// answer: the client opens a session channel with agent forwarding, and its agent signs (an
/// agent may ask its user to confirm).
const AGENT_LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) const PUBLICKEY: &str = "publickey";

/// Why a public-key session was refused when the client did not forward its agent.
const NO_AGENT: &str = "public-key logins need the client's SSH agent: connect with agent forwarding (ssh -A), holding the key in the agent, so the gateway can log in to the target with the same key";

/// A client that proved its key to the gateway and has yet to prove it to the target, through
/// its agent.
pub(super) struct KeyLogin {
    login: String,
    upstream: Upstream,
    key: PublicKey,
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
pub(super) async fn run_agent_login(
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
pub(super) async fn login_deadline(relay: Weak<Relay>, channel: Arc<Mutex<Option<ChannelId>>>) {
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

impl Relay {
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

impl ClientHandler {
    pub(super) fn is_waiting_channel(&self, channel: ChannelId) -> bool {
        self.pending_key.is_some() && *lock(&self.waiting_channel) == Some(channel)
    }

    /// A shell, command or subsystem was asked for on the channel of a public-key login
    /// without the client's agent: the gateway cannot log in to the target, so the session
    /// ends, saying why on the channel, in the disconnect message and in the record.
    pub(super) fn refuse_without_agent(
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

    /// russh verified the signature: the client holds the key. The login to the target waits
    /// for the client's agent, on its first session channel.
    pub(super) async fn public_key_verified(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, russh::Error> {
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
}
