//! The state the REST server shares between requests: the committed configuration, the store,
//! logins, the failed-login throttle and the one open transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use custos_config::document::Document;
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

pub struct Api {
    pub(crate) store: Store,
    committed: RwLock<Arc<Snapshot>>,
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
}

impl Api {
    pub(crate) fn new(store: Store, snapshot: Snapshot, options: ApiOptions) -> Api {
        Api {
            store,
            committed: RwLock::new(Arc::new(snapshot)),
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
        }
    }

    pub fn committed(&self) -> Arc<Snapshot> {
        self.committed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn publish(&self, snapshot: Snapshot) {
        *self.committed.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
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
