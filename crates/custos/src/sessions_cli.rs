//! `custos sessions list|kill`: the active sessions of a running server, through its REST API
//! (the same endpoints and privileges as any SPS client: `/special/active_sessions`).
//!
//! The password comes from `CUSTOS_PASSWORD` only, never from an option, so that it does not show
//! in the process list. The server's certificate is trusted explicitly (the self-signed one in the
//! data directory, or `--ca`), never by turning verification off.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::{Method, Url};
use serde_json::Value;

#[derive(clap::Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: SessionsCommand,
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Print one line per active session: session id, user, client, target, start time.
    List,
    /// Terminate an active session and wait until the gateway has closed it.
    Kill {
        /// The session id, as `list` prints it (`svc/<id>/<connection policy>:<n>`).
        session_id: String,
    },
}

#[derive(clap::Args)]
struct ClientArgs {
    /// Base URL of the server's REST API.
    #[arg(
        long,
        env = "CUSTOS_URL",
        default_value = "https://127.0.0.1:8443",
        global = true
    )]
    url: Url,
    /// User to log in as (the password is read from CUSTOS_PASSWORD).
    #[arg(long, env = "CUSTOS_USER", default_value = "admin", global = true)]
    user: String,
    /// Data directory of the server, whose `tls/server.crt` is trusted unless --ca is given.
    #[arg(
        long,
        env = "CUSTOS_DATA_DIR",
        default_value = "./custos-data",
        global = true
    )]
    data_dir: PathBuf,
    /// PEM file with the certificate(s) to trust instead of the data directory's.
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
}

/// A logged-in view of one server: every request carries Basic credentials (no cookie needed
/// for one or two requests).
struct Client {
    http: reqwest::Client,
    base: Url,
    user: String,
    password: String,
}

impl Client {
    fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        if args.url.scheme() != "https" {
            bail!("--url must be an https:// URL (got {})", args.url);
        }
        let password = std::env::var("CUSTOS_PASSWORD").map_err(|_| {
            anyhow::anyhow!(
                "set CUSTOS_PASSWORD to the password of {} (it is not taken as an option, so that it never shows in the process list)",
                args.user
            )
        })?;
        let ca = args
            .ca
            .clone()
            .unwrap_or_else(|| args.data_dir.join("tls/server.crt"));
        let pem = std::fs::read(&ca)
            .with_context(|| format!("reading the certificate to trust, {}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificate", ca.display()))?;
        if certs.is_empty() {
            bail!("{} holds no PEM certificate", ca.display());
        }
        let http = reqwest::Client::builder()
            .tls_certs_only(certs)
            .https_only(true)
            .build()
            .context("setting up the HTTPS client")?;
        Ok(Client {
            http,
            base: args.url.clone(),
            user: args.user.clone(),
            password,
        })
    }

    /// Sends a request; a non-2xx answer becomes an error carrying SPS's `error.type` and message.
    async fn send(&self, method: Method, url: Url) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method.clone(), url.clone())
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await.context("reading the response")?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        match (
            json["error"]["type"].as_str(),
            json["error"]["message"].as_str(),
        ) {
            (Some(kind), Some(message)) => bail!("{kind}: {message}"),
            _ => bail!("{method} {url}: HTTP {status}: {text}"),
        }
    }

    fn url(&self, path: &str) -> anyhow::Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("joining {path} to {}", self.base))
    }
}

pub async fn run(args: SessionsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.client)?;
    match args.command {
        SessionsCommand::List => {
            let listing = client
                .send(Method::GET, client.url("/api/active-sessions")?)
                .await?;
            let items = listing["items"].as_array().cloned().unwrap_or_default();
            for item in &items {
                println!("{}", line(item));
            }
            if items.is_empty() {
                eprintln!("no active sessions");
            }
        }
        SessionsCommand::Kill { session_id } => {
            let mut url = client.url("/api/active-sessions")?;
            url.query_pairs_mut().append_pair("id", &session_id);
            client.send(Method::DELETE, url).await?;
            println!("terminated {session_id}");
        }
    }
    Ok(())
}

/// `ip:port` of a `{ip, port}` object (brackets around IPv6), `-` if absent.
fn address(endpoint: &Value) -> String {
    match (endpoint["ip"].as_str(), endpoint["port"].as_u64()) {
        (Some(ip), Some(port)) if ip.contains(':') => format!("[{ip}]:{port}"),
        (Some(ip), Some(port)) => format!("{ip}:{port}"),
        _ => "-".into(),
    }
}

/// One tab-separated line of `list`: session id, user, client, target, start time.
fn line(item: &Value) -> String {
    let body = &item["body"];
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let user = body["user"]["gateway_username"]
        .as_str()
        .or(body["user"]["name"].as_str())
        .unwrap_or("-");
    [
        text(&item["key"]),
        user.to_string(),
        address(&body["client"]),
        address(&body["server"]),
        text(&body["start_time"]),
    ]
    .join("\t")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_names_the_session_user_ends_and_start() {
        let item = json!({
            "key": "svc/abc/demo:1",
            "body": {
                "user": {"gateway_username": "alice", "name": "root"},
                "client": {"ip": "2001:db8::1", "port": 40000},
                "server": {"ip": "192.0.2.9", "port": 22},
                "start_time": "2026-01-02T03:04:05.000Z",
            },
        });
        assert_eq!(
            line(&item),
            "svc/abc/demo:1\talice\t[2001:db8::1]:40000\t192.0.2.9:22\t2026-01-02T03:04:05.000Z"
        );
        let unknown_target =
            json!({"key": "k", "body": {"user": {}, "client": {}, "server": null}});
        assert_eq!(line(&unknown_target), "k\t-\t-\t-\t-");
    }
}
