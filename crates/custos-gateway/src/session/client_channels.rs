//! The channels the client opens: session channels and their requests, joined to the target's
//! channels, and the data, EOF and close of every client-opened channel (session or local
//! forward).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use custos_trail::{Direction, Record};
use russh::server::{Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, client, server};
use serde_json::{Value, json};

use super::gate::Op;
use super::relay_tasks::relay_upstream;
use super::request::Request;
use super::{ClientHandler, Relay, channel_number, lock};

impl Relay {
    pub(super) async fn request(&self, id: ChannelId, request: Request) -> bool {
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

    pub(super) async fn data(&self, id: ChannelId, bytes: Bytes) -> bool {
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
        // Waits for the target's window: back-pressure reaches the client through russh. Unless
        // the session is being closed: then the window may never come.
        let mut closing = self.shared.closing.subscribe();
        tokio::select! {
            sent = up.data_bytes(bytes) => sent.is_ok(),
            _ = closing.wait_for(|closing| *closing) => false,
        }
    }

    pub(super) async fn eof(&self, id: ChannelId) -> bool {
        let Some(up) = self.upstream_channel(id) else {
            return false;
        };
        self.record_now(Record::ChannelEof {
            channel: channel_number(id),
        })
        .await;
        up.eof().await.is_ok()
    }

    pub(super) fn note_channel_accepted(&self) {
        let mut record = lock(&self.shared.record);
        record.has_accepted_channel = true;
        record.channel_policy = Some(self.policy.channel_policy_name.clone());
    }

    /// Joins an accepted client channel to its target channel: records the opening, keeps the
    /// writing half for client data, and relays the target's side.
    pub(super) async fn attach(
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
    pub(super) async fn open_deferred_session(&self, id: ChannelId) -> bool {
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
}

impl ClientHandler {
    /// The checks common to shell, exec and subsystem requests, then the request itself.
    pub(super) async fn start_program(
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

    pub(super) async fn open_session_channel(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
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
}

pub(super) fn reply(
    session: &mut Session,
    channel: ChannelId,
    ok: bool,
) -> Result<(), russh::Error> {
    if ok {
        session.channel_success(channel)
    } else {
        session.channel_failure(channel)
    }
}
