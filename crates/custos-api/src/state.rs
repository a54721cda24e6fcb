//! The state the REST server shares between requests: the committed configuration, the store,
//! logins, the failed-login throttle, the one open transaction and the registry of live sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use custos_config::document::Document;
use custos_search::SearchIndex;
use custos_sessions::LiveSessions;
use custos_store::Store;

use crate::login::{LoginId, Logins};
use crate::throttle::Throttle;
use crate::transaction::OpenTransaction;

/// A committed revision of the configuration.
#[derive(Debug)]
pub struct Snapshot {
    pub revision: i64,
    pub doc: Document,
}

/// Facts about this node that `GET /api/info` reports.
#[derive(Clone, Debug)]
pub struct ServerIdentity {
    pub hostname: String,
    pub domainname: String,
    pub node_id: String,
}

/// Behaviour switches of the REST server.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// Open a transaction on the first write instead of answering 409 `NoTransaction`
    /// (as SPS versions newer than the reference excerpts do).
    pub auto_open_transaction: bool,
    pub identity: ServerIdentity,
}

/// How long `DELETE /api/active-sessions` waits for the gateway to close a session (both
/// connections and the trail) before answering 500 `SessionTerminationFailed`.
pub const TERMINATE_WITHIN: Duration = Duration::from_secs(5);

pub struct Api {
    /// Shared with the gateways, which save session records through it.
    pub(crate) store: Arc<Store>,
    /// The sessions in progress on this node, registered by the gateways.
    pub(crate) live: LiveSessions,
    /// The session search index (fed by the gateways and the store; read here).
    pub(crate) search: Arc<SearchIndex>,
    /// [`TERMINATE_WITHIN`]; shorter in tests.
    pub(crate) terminate_within: Duration,
    committed: RwLock<Arc<Snapshot>>,
    /// Every published revision, for the gateways that follow the configuration.
    revisions: tokio::sync::watch::Sender<Arc<Snapshot>>,
    pub(crate) logins: Logins,
    pub(crate) throttle: Throttle,
    /// The configuration lock: at most one open transaction.
    pub(crate) transaction: tokio::sync::Mutex<Option<OpenTransaction>>,
    /// Who holds the lock, readable without waiting for a commit in progress.
    pub(crate) lock_owner: RwLock<Option<LoginId>>,
    /// Recently verified Basic credentials: keyed hash → (revision verified against, when).
    pub(crate) verified: Mutex<HashMap<[u8; 32], (i64, Instant)>>,
    pub(crate) cache_key: [u8; 64],
    pub(crate) options: ApiOptions,
    /// The archive/cleanup engine, attached by the binary once it runs.
    pub(crate) retention: std::sync::OnceLock<Arc<custos_retention::Retention>>,
}

impl Api {
    pub(crate) fn new(
        store: Arc<Store>,
        live: LiveSessions,
        search: Arc<SearchIndex>,
        snapshot: Snapshot,
        options: ApiOptions,
    ) -> Api {
        let snapshot = Arc::new(snapshot);
        Api {
            store,
            live,
            search,
            terminate_within: TERMINATE_WITHIN,
            revisions: tokio::sync::watch::channel(snapshot.clone()).0,
            committed: RwLock::new(snapshot),
            logins: Logins::default(),
            throttle: Throttle::default(),
            transaction: tokio::sync::Mutex::new(None),
            lock_owner: RwLock::new(None),
            verified: Mutex::new(HashMap::new()),
            cache_key: {
                let mut key = [0u8; 64];
                rand::fill(&mut key);
                key
            },
            options,
            retention: std::sync::OnceLock::new(),
        }
    }

    /// Hands the API the archive/cleanup engine (once; later calls are ignored).
    pub fn attach_retention(&self, engine: Arc<custos_retention::Retention>) {
        let _ = self.retention.set(engine);
    }

    pub fn committed(&self) -> Arc<Snapshot> {
        self.committed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn publish(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        *self.committed.write().unwrap_or_else(|p| p.into_inner()) = snapshot.clone();
        self.revisions.send_replace(snapshot);
    }

    /// This node's identifier, as `GET /api/info` reports it.
    pub fn committed_node_id(&self) -> String {
        self.options.identity.node_id.clone()
    }

    /// Follows committed revisions: the receiver sees the current one and every later commit.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Snapshot>> {
        self.revisions.subscribe()
    }

    pub(crate) fn lock_owner(&self) -> Option<LoginId> {
        *self.lock_owner.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_lock_owner(&self, owner: Option<LoginId>) {
        *self.lock_owner.write().unwrap_or_else(|p| p.into_inner()) = owner;
    }

    /// Periodic housekeeping: expired logins and idle transactions.
    pub async fn sweep(&self) {
        let now = Instant::now();
        self.logins.sweep(now);
        let mut slot = self.transaction.lock().await;
        if slot.as_ref().is_some_and(|t| t.expired(now, &self.logins)) {
            *slot = None;
            self.set_lock_owner(None);
        }
    }
}
