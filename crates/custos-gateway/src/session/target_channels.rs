//! The channels the target opens towards the client (connections to remote forwards, X11,
//! agent): checked against the channel policy and what the client asked for, opened towards
//! the client and bridged both ways.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use custos_trail::Record;
use russh::server::Msg;
use russh::{Channel, ChannelOpenFailure, client, server};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::relay_tasks::{relay_client, relay_upstream};
use super::{Relay, channel_number, lock};
use crate::upstream::{TargetChannel, TargetChannelKind};

impl Relay {
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
pub(super) async fn serve_target_channels(
    relay: Arc<Relay>,
    mut opened: mpsc::Receiver<TargetChannel>,
) {
    while let Some(channel) = opened.recv().await {
        let relay = relay.clone();
        tokio::spawn(async move { relay.accept_target_channel(channel).await });
    }
}
