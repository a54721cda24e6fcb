//! The gateway's own SSH connection to the target server.
//!
//! Besides checking the target's host key, the handler receives the channels the target opens
//! towards the client (remote forwards, X11, agent requests). It never relays them itself: it
//! hands each one, still unanswered, to the session, which checks the channel policy, opens the
//! matching channel to the client and only then accepts the target's channel.

use std::sync::{Arc, Mutex};

use custos_config::objects::ssh::HostKeyCheck;
use russh::client::{ChannelOpenHandle, Msg, Session};
use russh::keys::PublicKeyOrCertificate;
use russh::{Channel, ChannelOpenFailure};
use tokio::sync::mpsc;

use crate::hostkeys::{KnownHosts, Verdict};

/// How many target-opened channels may wait for the session to relay them. The handler runs
/// inside the target connection's event loop and must not wait, so beyond this the target's
/// channel is refused (an X11 client or port-forward user retries; nothing piles up).
pub const TARGET_CHANNEL_QUEUE: usize = 16;

/// What kind of channel the target opened, with what it said about it.
#[derive(Debug, Clone)]
pub enum TargetChannelKind {
    /// A connection to a remote forward (`ssh -R`).
    ForwardedTcpip {
        connected_address: String,
        connected_port: u32,
        originator_address: String,
        originator_port: u32,
    },
    /// An X11 client on the target connected to the forwarded display.
    X11 {
        originator_address: String,
        originator_port: u32,
    },
    /// A program on the target wants the client's agent.
    Agent,
}

/// A channel the target opened, not yet accepted: dropping `reply` refuses it.
pub struct TargetChannel {
    pub channel: Channel<Msg>,
    pub kind: TargetChannelKind,
    pub reply: ChannelOpenHandle,
}

pub struct UpstreamHandler {
    pub check: HostKeyCheck,
    pub known_hosts: Arc<KnownHosts>,
    pub host: String,
    pub port: u16,
    /// Why the host key was refused, for the session record and the client.
    pub refusal: Arc<Mutex<Option<String>>>,
    /// Where target-opened channels go: the session relaying this connection.
    pub opened: mpsc::Sender<TargetChannel>,
}

impl UpstreamHandler {
    /// Hands a target-opened channel to the session without waiting (see
    /// [`TARGET_CHANNEL_QUEUE`]); a channel nobody can take is refused by dropping its reply.
    fn hand_over(&self, channel: Channel<Msg>, kind: TargetChannelKind, reply: ChannelOpenHandle) {
        if let Err(e) = self.opened.try_send(TargetChannel {
            channel,
            kind,
            reply,
        }) {
            tracing::warn!(target = %self.host, error = %e, "a channel the target opened was refused");
        }
    }
}

impl russh::client::Handler for UpstreamHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(
                "the target presented a certificate; only plain host keys are supported".into(),
            );
            return Ok(false);
        };
        let presented = match key.to_openssh() {
            Ok(line) => {
                let mut parts = line.split_whitespace();
                (
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                )
            }
            Err(_) => return Ok(false),
        };
        match self
            .known_hosts
            .check(&self.check, &self.host, self.port, &presented)
        {
            Verdict::Trusted | Verdict::Learned => Ok(true),
            Verdict::Mismatch(why) => {
                tracing::warn!(target = %self.host, port = self.port, reason = %why, "host key refused");
                *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                Ok(false)
            }
        }
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let kind = TargetChannelKind::ForwardedTcpip {
            connected_address: connected_address.into(),
            connected_port,
            originator_address: originator_address.into(),
            originator_port,
        };
        self.hand_over(channel, kind, reply);
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        channel: Channel<Msg>,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let kind = TargetChannelKind::X11 {
            originator_address: originator_address.into(),
            originator_port,
        };
        self.hand_over(channel, kind, reply);
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.hand_over(channel, TargetChannelKind::Agent, reply);
        Ok(())
    }

    // russh accepts these by default. A target has no business opening them towards the
    // gateway's client side, and an accepted channel nobody reads would only hold resources.

    async fn server_channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        prohibit(reply).await
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        prohibit(reply).await
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        prohibit(reply).await
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        prohibit(reply).await
    }
}

/// Refuses a channel the target may not open towards the gateway.
async fn prohibit(reply: ChannelOpenHandle) -> Result<(), russh::Error> {
    reply
        .reject(ChannelOpenFailure::AdministrativelyProhibited)
        .await;
    Ok(())
}
