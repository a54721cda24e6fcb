//! A request the client makes on a session channel: how the trail shows it, and how it is
//! relayed to the target's channel.

use custos_trail::Record;
use russh::{ChannelWriteHalf, Sig, client};
use serde_json::json;

/// A request the client made on a session channel, relayed to the target's channel.
pub(super) enum Request {
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
    pub(super) fn record(&self, channel: u32) -> Record {
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
    pub(super) async fn send(
        &self,
        up: &ChannelWriteHalf<client::Msg>,
    ) -> Result<(), russh::Error> {
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
