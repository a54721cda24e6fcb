//! The SSH gateway of Custos: listens per active SSH connection policy, proxies each session to
//! its target with the gateway's own SSH connection, records every allowed channel into an
//! audit trail, lists live sessions and ends them on request.
//!
//! **Invariant:** the gateway knows the configuration only through committed revisions
//! ([`Gateway::apply`]); a session keeps the policy snapshot it started with.

mod evidence;
mod hostkeys;
mod policy;
mod recorder;
mod session;
mod storage;
mod target;
mod transcript;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_config::document::Document;
use custos_sessions::{
    Endpoint, LiveSessions, SessionRecord, SessionStore, TerminateSignal, Verdict, new_session_key,
};
use russh::keys::PrivateKey;
use russh::{client, server};
use tokio::sync::watch;

use crate::hostkeys::KnownHosts;
use crate::policy::ConnectionRuntime;
use crate::session::{ClientHandler, Shared};

pub use crate::policy::in_network;
pub use crate::transcript::TextSink;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the gateway host key: {0}")]
    HostKey(String),
}

/// What every session of the gateway shares.
pub struct Context {
    pub data_dir: PathBuf,
    pub node_id: String,
    pub live: LiveSessions,
    pub store: Arc<dyn SessionStore>,
    /// Where terminal text goes for the search index (none: text is not indexed).
    pub(crate) text_sink: std::sync::OnceLock<Arc<dyn TextSink>>,
    known_hosts: Arc<KnownHosts>,
    client_config: Arc<client::Config>,
    server_config: Arc<server::Config>,
    /// The client side of each live session, by session key, to disconnect it.
    clients: Mutex<HashMap<String, server::Handle>>,
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Context {
    async fn save(&self, shared: &Shared) {
        let record = shared
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Err(e) = self.store.save(record).await {
            tracing::error!(error = %e, "cannot store a session record");
        }
    }

    fn remember_client(&self, key: &str, handle: server::Handle) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), handle);
    }

    fn next_number(&self, policy: &str) -> u64 {
        let counter = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(policy.to_string())
            .or_default()
            .clone();
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Ends a session when an administrator terminates it or its trail cannot be written
    /// (failing closed: no unrecorded traffic).
    fn watch_session(
        self: &Arc<Self>,
        shared: Arc<Shared>,
        mut signal: TerminateSignal,
        mut failed: watch::Receiver<Option<String>>,
    ) {
        let ctx = self.clone();
        tokio::spawn(async move {
            let (verdict, why) = tokio::select! {
                _ = signal.requested() => (Verdict::Terminated, "terminated by an administrator".to_string()),
                changed = failed.wait_for(|f| f.is_some()) => match changed {
                    Ok(error) => (Verdict::Fail, format!("the audit trail could not be written: {}", error.clone().unwrap_or_default())),
                    Err(_) => return,
                },
            };
            shared.note(verdict, why.clone());
            // Release a relay waiting for the target's window first: its connection is about
            // to go, and the client's session loop must be free to process the disconnect.
            shared.closing.send_replace(true);
            let key = shared
                .record
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .key
                .clone();
            let client = ctx
                .clients
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned();
            let upstream = shared
                .connected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|c| c.upstream.clone());
            tracing::warn!(session = %key, reason = %why, "closing the session");
            session::disconnect(client, upstream, &why).await;
        });
    }

    /// After the client connection ends: finalise the trail, close the target connection, and
    /// store the record.
    async fn finish(&self, shared: &Shared) {
        let connected = shared
            .connected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let end = now_micros();
        let key = shared
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .key
            .clone();
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let mut live = None;
        if let Some(mut connected) = connected {
            if let Err(e) = connected.recorder.finish().await {
                shared.note(
                    Verdict::Fail,
                    format!("the audit trail could not be completed: {e}"),
                );
            }
            let _ = connected
                .upstream
                .disconnect(russh::Disconnect::ByApplication, "session ended", "")
                .await;
            live = connected.live.take();
        }
        {
            let mut record = shared.record.lock().unwrap_or_else(|p| p.into_inner());
            record.active = false;
            record.end_time = Some(end);
            if record.verdict == Verdict::Accept && record.server_username.is_none() {
                record.verdict = Verdict::AuthFail;
                record
                    .reason
                    .get_or_insert_with(|| "the client did not authenticate".into());
            }
        }
        let record = shared
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Connections that never tried to authenticate (port scans, health checks) are not
        // sessions: logged, not recorded.
        if record.gateway_username.is_none() && live.is_none() {
            tracing::info!(client = %record.client.ip, "connection closed before authentication");
            return;
        }
        // The final record is stored before the session leaves the live registry, so nobody
        // sees it neither live nor ended (and a terminate request completes after both).
        self.save(shared).await;
        if let Some(live) = live {
            let _ = live.finish(end, Some(record.verdict));
        }
        tracing::info!(session = %record.key, verdict = record.verdict.as_str(), "session ended");
    }
}

/// Loads or creates the gateway's own host key (`ssh_host_ed25519_key`, OpenSSH format, 0600).
fn host_key(data_dir: &Path) -> Result<PrivateKey, GatewayError> {
    let path = data_dir.join("ssh_host_ed25519_key");
    match std::fs::read_to_string(&path) {
        Ok(pem) => PrivateKey::from_openssh(pem).map_err(|e| GatewayError::HostKey(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed: [u8; 32] = rand::random();
            let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
                &seed,
            ));
            let pem = key
                .to_openssh(russh::keys::ssh_key::LineEnding::LF)
                .map_err(|e| GatewayError::HostKey(e.to_string()))?;
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let tmp = path.with_extension("tmp");
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| GatewayError::Io(tmp.display().to_string(), e))?;
            file.write_all(pem.as_bytes())
                .and_then(|_| file.sync_all())
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| GatewayError::Io(path.display().to_string(), e))?;
            tracing::info!(path = %path.display(), "generated the gateway's SSH host key");
            Ok(key)
        }
        Err(e) => Err(GatewayError::Io(path.display().to_string(), e)),
    }
}

struct Listener {
    task: tokio::task::JoinHandle<()>,
}

/// The running gateway.
pub struct Gateway {
    ctx: Arc<Context>,
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
    policies: watch::Sender<Arc<Vec<Arc<ConnectionRuntime>>>>,
}

impl Gateway {
    pub fn new(
        data_dir: &Path,
        node_id: String,
        live: LiveSessions,
        store: Arc<dyn SessionStore>,
    ) -> Result<Arc<Gateway>, GatewayError> {
        let trails = data_dir.join("trails");
        std::fs::create_dir_all(&trails)
            .map_err(|e| GatewayError::Io(trails.display().to_string(), e))?;
        let known_hosts = KnownHosts::open(data_dir.join("known_hosts.json"))
            .map_err(|e| GatewayError::Io("known_hosts.json".into(), e))?;
        let server_config = server::Config {
            keys: vec![host_key(data_dir)?],
            methods: russh::MethodSet::from(
                &[
                    russh::MethodKind::Password,
                    russh::MethodKind::KeyboardInteractive,
                    russh::MethodKind::PublicKey,
                ][..],
            ),
            auth_rejection_time: Duration::from_millis(500),
            auth_rejection_time_initial: Some(Duration::ZERO),
            nodelay: true,
            preferred: preferred_algorithms(),
            ..Default::default()
        };
        let client_config = client::Config {
            nodelay: true,
            preferred: preferred_algorithms(),
            ..Default::default()
        };
        let ctx = Arc::new(Context {
            data_dir: data_dir.to_path_buf(),
            node_id,
            live,
            store,
            text_sink: std::sync::OnceLock::new(),
            known_hosts: Arc::new(known_hosts),
            client_config: Arc::new(client_config),
            server_config: Arc::new(server_config),
            clients: Mutex::new(HashMap::new()),
            counters: Mutex::new(HashMap::new()),
        });
        let (policies, _) = watch::channel(Arc::new(Vec::new()));
        Ok(Arc::new(Gateway {
            ctx,
            listeners: Mutex::new(HashMap::new()),
            policies,
        }))
    }

    /// Sends the terminal text of sessions that start from now on to `sink` (once; later calls
    /// are ignored).
    pub fn set_text_sink(&self, sink: Arc<dyn TextSink>) {
        let _ = self.ctx.text_sink.set(sink);
    }

    /// Applies a committed revision: new listeners start, unused ones stop; running sessions
    /// keep going with the policy they started under.
    pub async fn apply(self: &Arc<Self>, doc: &Document) {
        let policies = Arc::new(policy::load(doc));
        let wanted: Vec<SocketAddr> = {
            let mut all: Vec<SocketAddr> = policies.iter().flat_map(|p| p.listeners()).collect();
            all.sort();
            all.dedup();
            all
        };
        self.policies.send_replace(policies);
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        listeners.retain(|addr, listener| {
            let keep = wanted.contains(addr);
            if !keep {
                listener.task.abort();
                tracing::info!(%addr, "SSH listener stopped");
            }
            keep
        });
        for addr in wanted {
            if listeners.contains_key(&addr) {
                continue;
            }
            match std::net::TcpListener::bind(addr).and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            }) {
                Ok(socket) => {
                    tracing::info!(%addr, "SSH listener started");
                    let task = tokio::spawn(accept_loop(
                        self.ctx.clone(),
                        socket,
                        addr,
                        self.policies.subscribe(),
                    ));
                    listeners.insert(addr, Listener { task });
                }
                Err(e) => tracing::error!(%addr, error = %e, "cannot listen for SSH"),
            }
        }
    }

    /// The addresses the gateway listens on now.
    pub fn listening(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = self
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        out.sort();
        out
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }
}

async fn accept_loop(
    ctx: Arc<Context>,
    socket: tokio::net::TcpListener,
    local: SocketAddr,
    policies: watch::Receiver<Arc<Vec<Arc<ConnectionRuntime>>>>,
) {
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(%local, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let current = policies.borrow().clone();
        let Some(policy) = policy::select(&current, peer.ip(), local) else {
            tracing::warn!(client = %peer, %local, "no connection policy admits this client");
            continue;
        };
        tokio::spawn(serve_connection(ctx.clone(), policy, stream, peer, local));
    }
}

async fn serve_connection(
    ctx: Arc<Context>,
    policy: Arc<ConnectionRuntime>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let key = new_session_key();
    let number = ctx.next_number(&policy.policy.name);
    let record = SessionRecord {
        session_id: format!("svc/{key}/{}:{number}", policy.policy.name),
        key,
        protocol: "SSH".into(),
        node_id: ctx.node_id.clone(),
        client: Endpoint {
            ip: peer.ip(),
            port: peer.port(),
        },
        gateway: Endpoint {
            ip: local.ip(),
            port: local.port(),
        },
        server: None,
        server_local: None,
        gateway_username: None,
        server_username: None,
        connection_policy: policy.policy.name.clone(),
        connection_policy_id: policy.key.clone(),
        channel_policy: None,
        auth_method: None,
        start_time: now_micros(),
        end_time: None,
        active: true,
        verdict: Verdict::Accept,
        reason: None,
        has_accepted_channel: false,
        trail: None,
        archived: false,
        archive: None,
    };
    let shared = Arc::new(Shared {
        record: Mutex::new(record),
        connected: Mutex::new(None),
        closing: watch::channel(false).0,
    });
    let handler = ClientHandler::new(ctx.clone(), policy, peer, shared.clone());
    match server::run_stream(ctx.server_config.clone(), stream, handler).await {
        Ok(running) => {
            if let Err(e) = running.await {
                tracing::debug!(client = %peer, error = %e, "SSH session ended with an error");
            }
        }
        Err(e) => tracing::debug!(client = %peer, error = %e, "SSH handshake failed"),
    }
    ctx.finish(&shared).await;
}

/// russh's defaults, except that AES-256-GCM comes before ChaCha20-Poly1305 where the CPU has
/// AES and carry-less multiply instructions. Why: the gateway decrypts and re-encrypts every
/// byte; measured on the gateway's machine kind (AVX-512/VAES), ChaCha20-Poly1305 cost about
/// 0.7 CPU-s/GiB on the target leg and AES-256-GCM about 0.12. The client still chooses on its
/// own leg (SSH lets the client's order win); this order decides the leg to the target and
/// what a client without a preference gets. Without those instructions ChaCha20 is faster.
fn preferred_algorithms() -> russh::Preferred {
    let mut preferred = russh::Preferred::default();
    if aes_is_accelerated() {
        preferred.cipher = std::borrow::Cow::Borrowed(&[
            russh::cipher::AES_256_GCM,
            russh::cipher::CHACHA20_POLY1305,
            russh::cipher::AES_256_CTR,
            russh::cipher::AES_192_CTR,
            russh::cipher::AES_128_CTR,
        ]);
    }
    preferred
}

#[cfg(target_arch = "x86_64")]
fn aes_is_accelerated() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn aes_is_accelerated() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn aes_is_accelerated() -> bool {
    false
}
