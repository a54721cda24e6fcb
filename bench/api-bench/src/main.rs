//! Benchmark of the Custos REST API. Run `bench/api.sh` (it builds the release binary first).
//!
//! Measures, in one run on one machine:
//! 1. authenticated `GET` throughput (cookie login, ACL check, tree engine, envelope) with `wrk`,
//!    against a reference: the anonymous `GET /api/authentication/types` on the same server
//!    (TLS + HTTP + routing only), so the ratio shows what authentication and the engine cost;
//! 2. commit latency (`PUT /api/transaction` after changing one object) with 10,000 objects in the
//!    configuration, against the same measurement on a fresh configuration.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PASSWORD: &str = "bench-admin-password";

struct Server {
    _child: Child,
    base: String,
    cert: Vec<u8>,
    _dir: tempfile::TempDir,
}

async fn start(binary: &str) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-password",
            PASSWORD,
            "--data-dir",
        ])
        .arg(&data)
        .env("CUSTOS_LOG", "warn,rustls=error")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting custos")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let base = loop {
        match lines.next_line().await? {
            Some(line) => {
                if let Some(url) = line.strip_prefix("custos: listening on ") {
                    break url.to_string();
                }
            }
            None => bail!("custos exited"),
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let cert = std::fs::read(data.join("tls/server.crt"))?;
    Ok(Server {
        _child: child,
        base,
        cert,
        _dir: dir,
    })
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(server: &Server) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .tls_certs_only([reqwest::Certificate::from_pem(&server.cert)?])
            .build()?;
        Ok(Client {
            http,
            base: server.base.clone(),
        })
    }
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        rb = match body {
            Some(b) => rb.json(&b),
            None => rb.header("content-length", "0"),
        };
        let r = rb.send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, json) = self.send(method.clone(), path, body).await?;
        if status != want {
            bail!("{method} {path}: {status} {json}");
        }
        Ok(json)
    }
}

async fn login(server: &Server) -> anyhow::Result<(Client, String)> {
    let client = Client::new(server)?;
    let r = client
        .http
        .get(format!("{}/api/authentication", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_string();
    Ok((client, cookie))
}

/// Runs wrk and returns requests per second.
fn wrk(url: &str, cookie: Option<&str>, seconds: u32, connections: u32) -> anyhow::Result<f64> {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(cookie) = cookie {
        cmd.args(["-H", &format!("Cookie: {cookie}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        bail!("wrk saw errors:\n{text}");
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .context(format!("no Requests/sec in wrk output:\n{text}"))?;
    Ok(rps)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

const GROUPS: &str = "/api/configuration/aaa/local_database/groups";

/// Commit latency of a one-object change, `rounds` times; returns sorted latencies.
async fn commit_latencies(
    client: &Client,
    key: &str,
    rounds: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(rounds);
    for i in 0..rounds {
        client
            .expect(reqwest::Method::POST, "/api/transaction", None, 200)
            .await?;
        client
            .expect(
                reqwest::Method::PUT,
                &format!("{GROUPS}/{key}"),
                Some(json!({"name": format!("bench-target-{i}")})),
                200,
            )
            .await?;
        let t = Instant::now();
        client
            .expect(
                reqwest::Method::PUT,
                "/api/transaction",
                Some(json!({"status": "commit"})),
                200,
            )
            .await?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let binary = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/custos".into());
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let server = start(&binary).await?;
    let (client, cookie) = login(&server).await?;

    // 1. GET throughput.
    let reference = wrk(
        &format!("{}/api/authentication/types", server.base),
        None,
        seconds,
        64,
    )?;
    let object = wrk(
        &format!(
            "{}/api/configuration/aaa/local_database/users/-1",
            server.base
        ),
        Some(&cookie),
        seconds,
        64,
    )?;
    let listing = wrk(
        &format!(
            "{}/api/configuration/aaa/local_database/groups",
            server.base
        ),
        Some(&cookie),
        seconds,
        64,
    )?;
    println!("GET throughput ({seconds} s each, wrk -t2 -c64, same machine):");
    println!("  reference anonymous GET /api/authentication/types : {reference:>9.0} req/s");
    println!(
        "  authenticated GET of an object (users/-1)         : {object:>9.0} req/s  ratio {:.2}  target >= 20000",
        object / reference
    );
    println!(
        "  authenticated GET of a listing (groups, 27 items) : {listing:>9.0} req/s  ratio {:.2}",
        listing / reference
    );

    // 2. Commit latency, fresh configuration, then with 10,000 objects.
    client
        .expect(reqwest::Method::POST, "/api/transaction", None, 200)
        .await?;
    let created = client
        .expect(
            reqwest::Method::POST,
            GROUPS,
            Some(json!({"name": "bench-target"})),
            201,
        )
        .await?;
    let key = created["key"].as_str().context("key")?.to_string();
    client
        .expect(
            reqwest::Method::PUT,
            "/api/transaction",
            Some(json!({"status": "commit"})),
            200,
        )
        .await?;
    let rounds = 100;
    let small = commit_latencies(&client, &key, rounds).await?;

    let t = Instant::now();
    client
        .expect(reqwest::Method::POST, "/api/transaction", None, 200)
        .await?;
    for i in 0..10_000 {
        client
            .expect(
                reqwest::Method::POST,
                GROUPS,
                Some(json!({"name": format!("bulk-{i}")})),
                201,
            )
            .await?;
    }
    let bulk_commit = Instant::now();
    client
        .expect(
            reqwest::Method::PUT,
            "/api/transaction",
            Some(json!({"status": "commit"})),
            200,
        )
        .await?;
    let bulk_commit = bulk_commit.elapsed();
    let populate = t.elapsed();
    let large = commit_latencies(&client, &key, rounds).await?;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "Commit latency of a one-object change ({rounds} commits each, PUT /api/transaction):"
    );
    println!(
        "  fresh configuration (~30 objects) : p50 {:6.2} ms  p99 {:6.2} ms",
        ms(percentile(&small, 0.5)),
        ms(percentile(&small, 0.99))
    );
    println!(
        "  with 10,027 objects               : p50 {:6.2} ms  p99 {:6.2} ms  ratio p50 {:.2}  target < 10 ms",
        ms(percentile(&large, 0.5)),
        ms(percentile(&large, 0.99)),
        ms(percentile(&large, 0.5)) / ms(percentile(&small, 0.5))
    );
    println!(
        "  creating 10,000 objects over REST took {:.1} s; committing them at once {:.0} ms",
        populate.as_secs_f64(),
        ms(bulk_commit)
    );

    // GET throughput again with the large configuration (the document size must not matter).
    let object_large = wrk(
        &format!(
            "{}/api/configuration/aaa/local_database/users/-1",
            server.base
        ),
        Some(&cookie),
        seconds,
        64,
    )?;
    println!(
        "  authenticated GET of an object with 10,027 objects: {object_large:>9.0} req/s  ratio to fresh {:.2}",
        object_large / object
    );
    Ok(())
}
