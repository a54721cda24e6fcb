//! Transactions (`/api/transaction`) and the configuration lock.
//!
//! At most one transaction is open at a time; it belongs to one login and holds a private copy of
//! the configuration. Its owner reads and writes that copy; everyone else reads the committed one.
//! A commit validates the whole result, writes one durable revision, and publishes it; a rejected
//! commit leaves the transaction open for fixing. A transaction ends after 10 idle minutes, or
//! when its login ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_config::document::{Change, ChangeKind, Document};
use custos_config::edit;
use custos_config::tree::{Kind, tree};
use custos_store::{RevisionInfo, Write};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::login::{Login, LoginId, Logins};
use crate::state::{Api, Snapshot};

pub const TRANSACTION_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

pub struct OpenTransaction {
    pub owner: LoginId,
    pub owner_name: String,
    pub base: Arc<Snapshot>,
    pub work: Document,
    last_used: Instant,
}

impl OpenTransaction {
    pub fn expired(&self, now: Instant, logins: &Logins) -> bool {
        now.duration_since(self.last_used) >= TRANSACTION_IDLE_TIMEOUT
            || !logins.is_alive(&self.owner, now)
    }
    pub fn remaining(&self, now: Instant) -> Duration {
        TRANSACTION_IDLE_TIMEOUT.saturating_sub(now.duration_since(self.last_used))
    }
}

/// Renders one change as `/api/transaction/changes` and the changelog show it (secrets removed).
pub fn render_change(change: &Change) -> Value {
    let public = |v: &Option<Arc<custos_config::document::Stored>>| -> Value {
        let Some(stored) = v else { return Value::Null };
        let schema = tree().node(&change.node).and_then(|n| match &n.kind {
            Kind::Singleton { schema, .. } => Some(*schema),
            Kind::Collection(spec) => Some(spec.schema),
            _ => None,
        });
        schema.map_or(Value::Null, |s| s.public(&stored.body))
    };
    let mut out = json!({"type": change.kind.as_str(), "path": change.path()});
    if change.kind != ChangeKind::Create {
        out["old_value"] = public(&change.old);
    }
    if change.kind != ChangeKind::Delete {
        out["new_value"] = public(&change.new);
    }
    out
}

impl Api {
    /// Locks the transaction slot, first ending a transaction that has expired.
    pub(crate) async fn slot(&self) -> tokio::sync::MutexGuard<'_, Option<OpenTransaction>> {
        let mut slot = self.transaction.lock().await;
        if slot
            .as_ref()
            .is_some_and(|t| t.expired(Instant::now(), &self.logins))
        {
            tracing::info!("transaction expired; its changes are discarded");
            *slot = None;
            self.set_lock_owner(None);
        }
        slot
    }

    /// Opens a transaction for `login`, or confirms the one it already has.
    pub(crate) fn open_in(
        &self,
        slot: &mut Option<OpenTransaction>,
        login: &Login,
    ) -> Result<(), ApiError> {
        match slot {
            Some(t) if t.owner == login.id => {
                t.last_used = Instant::now();
                Ok(())
            }
            Some(t) => Err(ApiError::ConfigurationLocked {
                holder: t.owner_name.clone(),
            }),
            None => {
                if !login.privileges.may_write_somewhere() {
                    return Err(ApiError::Unauthorized);
                }
                let base = self.committed();
                *slot = Some(OpenTransaction {
                    owner: login.id,
                    owner_name: login.user.clone(),
                    work: base.doc.clone(),
                    base,
                    last_used: Instant::now(),
                });
                self.set_lock_owner(Some(login.id));
                tracing::info!(user = %login.user, "transaction opened");
                Ok(())
            }
        }
    }

    /// The transaction `login` may write in: its own, or (with auto-open) a new one.
    pub(crate) fn writable<'s>(
        &self,
        slot: &'s mut Option<OpenTransaction>,
        login: &Login,
    ) -> Result<&'s mut OpenTransaction, ApiError> {
        match slot {
            Some(t) if t.owner != login.id => {
                return Err(ApiError::ConfigurationLocked {
                    holder: t.owner_name.clone(),
                });
            }
            None if !self.options.auto_open_transaction => return Err(ApiError::NoTransaction),
            _ => {}
        }
        self.open_in(slot, login)?;
        slot.as_mut().ok_or(ApiError::NoTransaction)
    }

    /// Validates and durably commits the login's transaction.
    pub(crate) async fn commit(
        &self,
        slot: &mut Option<OpenTransaction>,
        login: &Login,
        message: &str,
    ) -> Result<i64, ApiError> {
        let tx = match slot {
            Some(t) if t.owner == login.id => t,
            Some(t) => {
                return Err(ApiError::ConfigurationLocked {
                    holder: t.owner_name.clone(),
                });
            }
            None => return Err(ApiError::NoTransaction),
        };
        tx.last_used = Instant::now();
        let now = unix_now();
        let mut changes = tx.work.changes_since(&tx.base.doc);
        if edit::collect_garbage(&mut tx.work, &changes) {
            changes = tx.work.changes_since(&tx.base.doc);
        }
        let problems = edit::validate(&tx.work, &changes, now);
        if !problems.is_empty() {
            return Err(ApiError::Semantic(problems));
        }
        let revision = if changes.is_empty() {
            tx.base.revision
        } else {
            self.write_revision(&changes, &login.user, message, now)
                .await?
        };
        let Some(tx) = slot.take() else {
            return Err(ApiError::NoTransaction);
        };
        if revision != tx.base.revision {
            self.publish(Snapshot {
                revision,
                doc: tx.work,
            });
            tracing::info!(user = %login.user, revision, changes = changes.len(), "configuration committed");
        }
        self.set_lock_owner(None);
        Ok(revision)
    }

    /// Writes the first revision of a fresh installation.
    pub(crate) async fn commit_initial(&self, doc: Document) -> Result<i64, ApiError> {
        let changes = doc.changes_since(&Document::default());
        let revision = self
            .write_revision(&changes, "custos", "initial configuration", unix_now())
            .await?;
        self.publish(Snapshot { revision, doc });
        Ok(revision)
    }

    /// Persists `changes` as one durable revision; returns its number.
    pub(crate) async fn write_revision(
        &self,
        changes: &[Change],
        author: &str,
        message: &str,
        now: i64,
    ) -> Result<i64, ApiError> {
        let rendered = Value::Array(changes.iter().map(render_change).collect());
        let writes: Vec<Write<'_>> = changes.iter().map(to_write).collect();
        let info = RevisionInfo {
            author,
            message,
            committed_at: now,
            schema_version: custos_config::SCHEMA_VERSION,
            changes: &rendered,
        };
        self.store
            .commit(info, &writes)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    pub(crate) fn rollback(
        &self,
        slot: &mut Option<OpenTransaction>,
        login: &Login,
    ) -> Result<(), ApiError> {
        match slot {
            Some(t) if t.owner == login.id => {
                *slot = None;
                self.set_lock_owner(None);
                tracing::info!(user = %login.user, "transaction rolled back");
                Ok(())
            }
            Some(t) => Err(ApiError::ConfigurationLocked {
                holder: t.owner_name.clone(),
            }),
            None => Ok(()),
        }
    }
}

fn to_write(change: &Change) -> Write<'_> {
    match (&change.new, &change.key) {
        (Some(new), key) => Write::Put {
            node: &change.node,
            key: key.as_deref(),
            body: &new.body,
        },
        (None, Some(key)) => Write::Delete {
            node: &change.node,
            key,
        },
        // A singleton is never deleted; an empty write list entry is harmless.
        (None, None) => Write::Delete {
            node: &change.node,
            key: "",
        },
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_config::acl::Privileges;

    fn open_for(logins: &Logins, now: Instant) -> OpenTransaction {
        let (_, login) = logins.start("admin", Privileges::superuser(), now);
        OpenTransaction {
            owner: login.id,
            owner_name: login.user,
            base: Arc::new(Snapshot {
                revision: 1,
                doc: Document::default(),
            }),
            work: Document::default(),
            last_used: now,
        }
    }

    #[test]
    fn a_transaction_expires_after_ten_idle_minutes() {
        let logins = Logins::default();
        let t0 = Instant::now();
        let tx = open_for(&logins, t0);
        let almost = t0 + TRANSACTION_IDLE_TIMEOUT - Duration::from_secs(1);
        assert!(!tx.expired(almost, &logins));
        assert_eq!(tx.remaining(almost), Duration::from_secs(1));
        // The login is still alive (20 minutes), but the transaction is not.
        assert!(tx.expired(t0 + TRANSACTION_IDLE_TIMEOUT, &logins));
    }

    #[test]
    fn a_transaction_ends_with_its_login() {
        let logins = Logins::default();
        let t0 = Instant::now();
        let tx = open_for(&logins, t0);
        assert!(!tx.expired(t0, &logins));
        logins.end(&tx.owner);
        assert!(tx.expired(t0, &logins));
    }
}
