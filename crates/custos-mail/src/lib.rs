//! A small SMTP client: one plain-text message to a relay (RFC 5321 commands, RFC 5322
//! headers), for notifications. Addresses are checked by the configuration; this crate still
//! refuses line breaks anywhere they could inject commands or headers.
//!
//! **Invariant:** no configuration, no HTTP; a message either is accepted by the server
//! (`250` after the data) or the call fails with the server's reply.

use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot reach the SMTP server {server}: {source}")]
    Connect {
        server: String,
        source: std::io::Error,
    },
    #[error("the SMTP server {server} did not answer in time")]
    Timeout { server: String },
    #[error("the SMTP server refused {command}: {reply}")]
    Refused { command: String, reply: String },
    #[error("SMTP connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A plain-text message.
#[derive(Clone, Debug)]
pub struct Message {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// Where to send.
#[derive(Clone, Debug)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    /// The name this client gives in `EHLO`.
    pub hello: String,
    pub timeout: Duration,
}

fn has_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

/// `Subject` as RFC 2047 UTF-8 when it is not plain ASCII.
fn header_text(text: &str) -> String {
    if text.is_ascii() {
        text.to_string()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

/// The message as sent after `DATA`: headers, body with CRLF line ends and leading dots
/// doubled, and the terminating `.`.
pub fn render(message: &Message, now: time::OffsetDateTime) -> String {
    let date = now
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let id: u64 = rand::random();
    let domain = message
        .from
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d);
    let mut out = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\nMessage-ID: <{id:016x}@{domain}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        message.from,
        message.to.join(", "),
        header_text(&message.subject.replace(['\r', '\n'], " ")),
    );
    for line in message.body.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

struct Session {
    reader: BufReader<tokio::io::ReadHalf<TcpStream>>,
    writer: tokio::io::WriteHalf<TcpStream>,
}

impl Session {
    /// Reads one (possibly multi-line) reply: its code and text.
    async fn reply(&mut self) -> Result<(u16, String), MailError> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await? == 0 {
                return Err(MailError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            let line = line.trim_end();
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| MailError::Invalid(format!("not an SMTP reply: {line:?}")))?;
            text.push_str(line.get(4..).unwrap_or_default());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
            text.push(' ');
        }
    }

    async fn expect(&mut self, command: &str, ok: &[u16]) -> Result<(), MailError> {
        let (code, text) = self.reply().await?;
        if ok.contains(&code) {
            Ok(())
        } else {
            Err(MailError::Refused {
                command: command
                    .split_whitespace()
                    .next()
                    .unwrap_or(command)
                    .to_string(),
                reply: format!("{code} {text}"),
            })
        }
    }

    async fn command(&mut self, command: &str, ok: &[u16]) -> Result<(), MailError> {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .await?;
        self.expect(command, ok).await
    }
}

/// Sends `message` through `relay`.
pub async fn send(relay: &Relay, message: &Message) -> Result<(), MailError> {
    let all = std::iter::once(&message.from).chain(&message.to);
    if all.clone().any(|a| has_break(a) || a.contains(['<', '>'])) || has_break(&relay.hello) {
        return Err(MailError::Invalid(
            "an address contains a line break or angle bracket".into(),
        ));
    }
    if message.to.is_empty() {
        return Err(MailError::Invalid("the message has no recipient".into()));
    }
    let server = format!("{}:{}", relay.host, relay.port);
    tokio::time::timeout(relay.timeout, async {
        let stream = TcpStream::connect((relay.host.as_str(), relay.port))
            .await
            .map_err(|source| MailError::Connect {
                server: server.clone(),
                source,
            })?;
        let (read, writer) = tokio::io::split(stream);
        let mut s = Session {
            reader: BufReader::new(read),
            writer,
        };
        s.expect("the connection", &[220]).await?;
        s.command(&format!("EHLO {}", relay.hello), &[250]).await?;
        s.command(&format!("MAIL FROM:<{}>", message.from), &[250])
            .await?;
        for to in &message.to {
            s.command(&format!("RCPT TO:<{to}>"), &[250, 251]).await?;
        }
        s.command("DATA", &[354]).await?;
        s.writer
            .write_all(render(message, time::OffsetDateTime::now_utc()).as_bytes())
            .await?;
        s.expect("the message", &[250]).await?;
        // The message is accepted; a failing QUIT changes nothing.
        let _ = s.command("QUIT", &[221]).await;
        Ok(())
    })
    .await
    .map_err(|_| MailError::Timeout { server })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_dot_stuffed_and_headers_cannot_be_injected() {
        let m = Message {
            from: "custos@example.com".into(),
            to: vec!["a@example.com".into(), "b@example.com".into()],
            subject: "job\r\nBcc: x@y".into(),
            body: "one\n.two\n".into(),
        };
        let text = render(&m, time::OffsetDateTime::UNIX_EPOCH);
        assert!(text.contains("Subject: job  Bcc: x@y\r\n"), "{text}");
        assert!(text.contains("To: a@example.com, b@example.com\r\n"));
        assert!(text.ends_with("\r\none\r\n..two\r\n.\r\n"), "{text}");
        assert!(
            render(
                &Message {
                    subject: "Archiv für alle".into(),
                    ..m
                },
                time::OffsetDateTime::UNIX_EPOCH
            )
            .contains("Subject: =?UTF-8?B?")
        );
    }

    #[tokio::test]
    async fn an_unreachable_relay_is_an_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let relay = Relay {
            host: "127.0.0.1".into(),
            port,
            hello: "custos".into(),
            timeout: Duration::from_secs(5),
        };
        let m = Message {
            from: "a@b.c".into(),
            to: vec!["d@e.f".into()],
            subject: "s".into(),
            body: "b".into(),
        };
        assert!(matches!(
            send(&relay, &m).await,
            Err(MailError::Connect { .. })
        ));
        let bad = Message {
            to: vec!["d@e.f>\r\nRCPT TO:<x@y".into()],
            ..m
        };
        assert!(matches!(
            send(&relay, &bad).await,
            Err(MailError::Invalid(_))
        ));
    }
}
