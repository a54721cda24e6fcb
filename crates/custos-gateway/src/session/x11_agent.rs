//! The client's X11 and agent-forwarding requests (the agent request also starts a pending
//! public-key login), and its refused attempts to open X11 channels itself.

use russh::server::Session;
use russh::{ChannelId, ChannelOpenFailure};

use super::ClientHandler;
use super::client_channels::reply;
use super::gate::Op;
use super::key_login::run_agent_login;
use super::request::Request;

impl ClientHandler {
    /// X11 channels come from the server side (the target, relayed by the gateway); a client
    /// opening one towards the gateway is refused.
    pub(super) async fn refuse_client_x11_channel(
        &mut self,
        reply: russh::server::ChannelOpenHandle,
    ) -> Result<(), russh::Error> {
        self.relay
            .refuse("x11", "a client may not open x11 channels".into())
            .await;
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    pub(super) async fn relay_x11_request(
        &mut self,
        channel: ChannelId,
        single_connection: bool,
        x11_auth_protocol: &str,
        x11_auth_cookie: &str,
        x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
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
    pub(super) async fn agent_forward_request(
        &mut self,
        channel: ChannelId,
    ) -> Result<bool, russh::Error> {
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
}
