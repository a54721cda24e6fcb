//! Starts the real `custos` binary on a free loopback port and drives it over HTTPS.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const ADMIN_PASSWORD: &str = "Adm1n-test-password";

pub struct Server {
    child: Option<Child>,
    pub base: String,
    dir: tempfile::TempDir,
    pub stderr_log: PathBuf,
    extra_env: Vec<(String, String)>,
    extra_args: Vec<String>,
    data: Option<PathBuf>,
}

#[derive(Default, Clone)]
pub struct Options {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// An existing data directory to serve (default: a fresh one in the server's temp dir).
    pub data_dir: Option<PathBuf>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Server {
            child: None,
            base: String::new(),
            stderr_log: dir.path().join("server.log"),
            dir,
            extra_env: options.env,
            extra_args: options.args,
            data: options.data_dir,
        };
        server.spawn().await;
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    async fn spawn(&mut self) {
        let data = self.data_dir();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_custos"));
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--admin-password")
            .arg(ADMIN_PASSWORD)
            .args(&self.extra_args)
            .env("CUSTOS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        for (k, v) in &self.extra_env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn custos");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("custos: listening on ") {
                    return url.trim().to_string();
                }
            }
            panic!(
                "custos exited before listening; see {}",
                self.stderr_log.display()
            );
        })
        .await
        .expect("custos did not start in time");
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.base = base;
        self.child = Some(child);
    }

    /// Kills the server with SIGKILL (no chance to clean up).
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts the server again on the same data directory.
    pub async fn restart(&mut self) {
        self.kill9().await;
        self.spawn().await;
    }

    /// Like [`Server::restart`], with other environment variables.
    pub async fn restart_with_env(&mut self, env: Vec<(String, String)>) {
        self.kill9().await;
        self.extra_env = env;
        self.spawn().await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// A client with an empty cookie jar that trusts this server's certificate.
    pub fn client(&self) -> Client {
        let cert =
            std::fs::read(self.data_dir().join("tls/server.crt")).expect("server certificate");
        let cert = reqwest::Certificate::from_pem(&cert).expect("pem");
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .tls_certs_only([cert])
            .https_only(true)
            .build()
            .expect("client");
        Client {
            http,
            base: self.base.clone(),
            basic: None,
        }
    }

    /// A client logged in (cookie) as `user`.
    pub async fn login(&self, user: &str, password: &str) -> Client {
        let client = self.client();
        let r = client
            .with_basic(user, password)
            .get("/api/authentication")
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "login of {user} failed: {}",
            r.json
        );
        client
    }

    pub async fn admin(&self) -> Client {
        self.login("admin", ADMIN_PASSWORD).await
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    basic: Option<(String, String)>,
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Response {
    /// The SPS error type (`error.type`), if this is an error envelope.
    pub fn error_type(&self) -> &str {
        self.json["error"]["type"].as_str().unwrap_or("")
    }
}

impl Client {
    /// The same cookie jar, additionally sending Basic credentials on every request.
    pub fn with_basic(&self, user: &str, password: &str) -> Client {
        Client {
            basic: Some((user.into(), password.into())),
            ..self.clone()
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some((u, p)) = &self.basic {
            rb = rb.basic_auth(u, Some(p));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(body) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(body.to_vec());
        }
        let r = rb.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            json,
            text,
        }
    }

    /// `GET` of a binary resource (e.g. an audit trail): status, headers and the raw bytes.
    pub async fn get_bytes(&self, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut rb = self.http.get(format!("{}{}", self.base, path));
        if let Some((u, p)) = &self.basic {
            rb = rb.basic_auth(u, Some(p));
        }
        let r = rb.send().await.expect("request");
        let (status, headers) = (r.status(), r.headers().clone());
        let bytes = r.bytes().await.expect("body").to_vec();
        (status, headers, bytes)
    }

    /// Like [`Client::get_bytes`], but a body that fails half way is an `Err` (not a panic).
    pub async fn try_get_bytes(&self, path: &str) -> Result<(StatusCode, Vec<u8>), String> {
        let mut rb = self.http.get(format!("{}{}", self.base, path));
        if let Some((u, p)) = &self.basic {
            rb = rb.basic_auth(u, Some(p));
        }
        let r = rb.send().await.map_err(|e| e.to_string())?;
        let status = r.status();
        let bytes = r.bytes().await.map_err(|e| format!("{e:?}"))?;
        Ok((status, bytes.to_vec()))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path, Some(body.to_string().as_bytes()), &[])
            .await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.request(Method::PUT, path, Some(body.to_string().as_bytes()), &[])
            .await
    }
    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path, None, &[]).await
    }

    /// `POST /api/transaction` with an empty body.
    pub async fn open_transaction(&self) -> Response {
        // reqwest sends no Content-Length for an empty body; SPS demands one (411 otherwise).
        let r = self
            .request(
                Method::POST,
                "/api/transaction",
                Some(b""),
                &[("content-length", "0")],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "open transaction: {}", r.json);
        r
    }

    /// Commits and asserts that it succeeded and closed the transaction.
    pub async fn commit_ok(&self) {
        let r = self.commit().await;
        assert_eq!(r.status, StatusCode::OK, "commit: {}", r.json);
        assert_eq!(r.json["body"]["status"], "closed", "{}", r.json);
    }

    /// `body.status` of `GET /api/transaction` for this login.
    pub async fn transaction_status(&self) -> Value {
        self.get("/api/transaction").await.json["body"]["status"].clone()
    }

    pub async fn commit(&self) -> Response {
        self.put("/api/transaction", &serde_json::json!({"status": "commit"}))
            .await
    }

    /// Creates an object (inside the open transaction) and returns its key.
    pub async fn create(&self, path: &str, body: &Value) -> String {
        let r = self.post(path, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "POST {path}: {}", r.json);
        r.json["key"].as_str().expect("key").to_string()
    }

    /// Creates a user with a fresh password object, optionally in groups (by name); returns its key.
    /// Must run inside an open transaction.
    pub async fn create_user(&self, name: &str, password: &str, groups: &[&str]) -> String {
        let pw = self
            .create(
                "/api/configuration/passwords",
                &serde_json::json!({"plain": password}),
            )
            .await;
        let key = self
            .create(
                "/api/configuration/aaa/local_database/users",
                &serde_json::json!({"name": name, "password": pw}),
            )
            .await;
        for group in groups {
            let gkey = self.group_key(group).await;
            let path = format!("/api/configuration/aaa/local_database/groups/{gkey}");
            let mut body = self.get(&path).await.json["body"].clone();
            body["members"]
                .as_array_mut()
                .expect("members")
                .push(Value::String(key.clone()));
            let r = self.put(&path, &body).await;
            assert_eq!(r.status, StatusCode::OK, "PUT {path}: {}", r.json);
        }
        key
    }

    /// The key of the group named `name`.
    pub async fn group_key(&self, name: &str) -> String {
        let list = self
            .get("/api/configuration/aaa/local_database/groups")
            .await;
        for item in list.json["items"].as_array().expect("items") {
            let key = item["key"].as_str().expect("key");
            let g = self
                .get(&format!(
                    "/api/configuration/aaa/local_database/groups/{key}"
                ))
                .await;
            if g.json["body"]["name"] == name {
                return key.to_string();
            }
        }
        panic!("no group named {name}");
    }
}

/// Parses a seed sample (JSON text) for comparison.
pub fn sample(text: &str) -> Value {
    serde_json::from_str(text).expect("sample JSON")
}

/// Polls `check` until it returns `Some` (at most `secs` seconds).
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
