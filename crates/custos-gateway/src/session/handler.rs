//! russh's server callbacks for one client. Those that only turn what the client sent into an
//! [`Op`] stay here; the others hand over to the module that owns their work.

use bytes::Bytes;
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, Sig};

use super::ClientHandler;
use super::client_channels::reply;
use super::gate::Op;
use super::request::Request;

impl russh::server::Handler for ClientHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.password_login(user, password).await
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.public_key_offered(user, offer).await
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.public_key_verified(user, key).await
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        self.keyboard_interactive_login(user, submethods, response)
            .await
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.client_authenticated(session).await
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.open_session_channel(channel, reply, session).await
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
        self.open_local_forward(
            channel,
            host_to_connect,
            port_to_connect,
            originator_address,
            originator_port,
            reply,
            session,
        )
        .await
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_client_x11_channel(reply).await
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
        self.relay_x11_request(
            channel,
            single_connection,
            x11_auth_protocol,
            x11_auth_cookie,
            x11_screen_number,
            session,
        )
        .await
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.agent_forward_request(channel).await
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.request_remote_forward(address, port).await
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
