//! Port forwards: local ones (`ssh -L`, channels the client opens) and remote ones (`ssh -R`,
//! the target listening for the client), including those asked for before a public-key login
//! completes.

use custos_trail::Record;
use russh::server::{Msg, Session};
use russh::{Channel, ChannelOpenFailure};
use serde_json::json;

use super::gate::Op;
use super::{ClientHandler, Relay, lock};

impl Relay {
    /// Asks the target to listen for the client (`ssh -R`); returns the port it listens on.
    pub(super) async fn remote_forward(&self, address: &str, port: u32) -> Option<u32> {
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

    pub(super) async fn cancel_remote_forward(&self, address: &str, port: u32) -> bool {
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
}

impl ClientHandler {
    /// A local forward (`ssh -L`): the target opens the connection, the client's channel is
    /// joined to it.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parameters of russh's channel_open_direct_tcpip, passed on unchanged"
    )]
    pub(super) async fn open_local_forward(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
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

    pub(super) async fn request_remote_forward(
        &mut self,
        address: &str,
        port: &mut u32,
    ) -> Result<bool, russh::Error> {
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
}
