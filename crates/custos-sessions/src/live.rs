//! The registry of live sessions: listing them and terminating one on request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::record::{SessionRecord, Verdict};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TerminateError {
    #[error("no active session has this id")]
    NotFound,
    #[error("the session did not end within {0:?}")]
    Failed(Duration),
}

struct Live {
    record: SessionRecord,
    terminate: watch::Sender<bool>,
    /// Waiters for the end of the session (terminate requests).
    ended: Vec<oneshot::Sender<()>>,
}

/// All sessions in progress on this node, keyed by their SPS session id.
#[derive(Clone, Default)]
pub struct LiveSessions {
    inner: Arc<Mutex<HashMap<String, Live>>>,
}

/// Held by the gateway for one session: updates the listed record and ends it.
pub struct LiveHandle {
    sessions: LiveSessions,
    session_id: String,
}

/// Resolves when an administrator asked to terminate the session.
#[derive(Clone)]
pub struct TerminateSignal {
    receiver: watch::Receiver<bool>,
}

impl TerminateSignal {
    pub async fn requested(&mut self) {
        // An error means the session left the registry: nobody can ask any more, so this
        // never resolves (a finished session must not look terminated).
        if self.receiver.wait_for(|asked| *asked).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow()
    }
}

impl LiveSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists a new live session.
    pub fn register(&self, record: SessionRecord) -> (LiveHandle, TerminateSignal) {
        let (terminate, receiver) = watch::channel(false);
        let session_id = record.session_id.clone();
        self.lock().insert(
            session_id.clone(),
            Live {
                record,
                terminate,
                ended: Vec::new(),
            },
        );
        (
            LiveHandle {
                sessions: self.clone(),
                session_id,
            },
            TerminateSignal { receiver },
        )
    }

    /// The live sessions, oldest first.
    pub fn list(&self) -> Vec<SessionRecord> {
        let mut records: Vec<SessionRecord> =
            self.lock().values().map(|l| l.record.clone()).collect();
        records.sort_by_key(|r| r.start_time);
        records
    }

    pub fn get(&self, session_id: &str) -> Option<SessionRecord> {
        self.lock().get(session_id).map(|l| l.record.clone())
    }

    /// Asks the session to end and waits until its gateway has closed it (both connections,
    /// trail finalised), at most `within`.
    pub async fn terminate(
        &self,
        session_id: &str,
        within: Duration,
    ) -> Result<(), TerminateError> {
        let ended = {
            let mut sessions = self.lock();
            let live = sessions
                .get_mut(session_id)
                .ok_or(TerminateError::NotFound)?;
            let (tx, rx) = oneshot::channel();
            live.ended.push(tx);
            let _ = live.terminate.send(true);
            rx
        };
        match tokio::time::timeout(within, ended).await {
            Ok(_) => Ok(()),
            Err(_) => Err(TerminateError::Failed(within)),
        }
    }
}

impl LiveHandle {
    /// Changes the listed record (e.g. once the target is known).
    pub fn update(&self, change: impl FnOnce(&mut SessionRecord)) {
        if let Some(live) = self.sessions.lock().get_mut(&self.session_id) {
            change(&mut live.record);
        }
    }

    pub fn record(&self) -> Option<SessionRecord> {
        self.sessions.get(&self.session_id)
    }

    /// Removes the session from the registry, completing it; returns the final record.
    pub fn finish(self, end_micros: i64, verdict: Option<Verdict>) -> Option<SessionRecord> {
        let live = self.sessions.lock().remove(&self.session_id)?;
        let mut record = live.record;
        record.active = false;
        record.end_time = Some(end_micros);
        if let Some(verdict) = verdict {
            record.verdict = verdict;
        }
        for waiter in live.ended {
            let _ = waiter.send(());
        }
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Endpoint;

    fn record(id: &str) -> SessionRecord {
        let ep = Endpoint {
            ip: "127.0.0.1".parse().unwrap(),
            port: 1,
        };
        SessionRecord {
            key: "k".into(),
            session_id: id.into(),
            protocol: "SSH".into(),
            node_id: "n".into(),
            client: ep,
            gateway: ep,
            server: None,
            server_local: None,
            gateway_username: None,
            server_username: None,
            connection_policy: "p".into(),
            connection_policy_id: "pk".into(),
            channel_policy: None,
            auth_method: None,
            start_time: 1,
            end_time: None,
            active: true,
            verdict: Verdict::Accept,
            reason: None,
            has_accepted_channel: false,
            trail: None,
            archived: false,
            archive: None,
        }
    }

    #[tokio::test]
    async fn terminate_waits_for_the_gateway_to_finish() {
        let sessions = LiveSessions::default();
        let (handle, mut signal) = sessions.register(record("svc/a/p:1"));
        assert_eq!(sessions.list().len(), 1);
        let gateway = tokio::spawn(async move {
            signal.requested().await;
            handle.finish(2, Some(Verdict::Terminated))
        });
        sessions
            .terminate("svc/a/p:1", Duration::from_secs(1))
            .await
            .unwrap();
        let finished = gateway.await.unwrap().unwrap();
        assert_eq!(finished.verdict, Verdict::Terminated);
        assert!(!finished.active);
        assert!(sessions.list().is_empty());
        assert_eq!(
            sessions
                .terminate("svc/a/p:1", Duration::from_secs(1))
                .await,
            Err(TerminateError::NotFound)
        );
    }

    #[tokio::test]
    async fn a_session_that_does_not_end_fails_to_terminate() {
        let sessions = LiveSessions::default();
        let (_handle, _signal) = sessions.register(record("svc/b/p:1"));
        assert!(matches!(
            sessions
                .terminate("svc/b/p:1", Duration::from_millis(50))
                .await,
            Err(TerminateError::Failed(_))
        ));
    }
}
