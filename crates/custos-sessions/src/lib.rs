//! Recorded sessions: what a session record holds and how SPS shows it, and the registry of live
//! sessions through which they are listed and terminated.
//!
//! **Invariant:** no protocol and no storage here. Gateways fill records and register live
//! sessions; the store persists records through [`SessionStore`]; the REST API reads both.

mod live;
mod record;

pub use live::{LiveHandle, LiveSessions, TerminateError, TerminateSignal};
pub use record::{Endpoint, SessionRecord, TrailArchive, Verdict, iso_time, new_session_key};

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so that [`SessionStore`] stays object-safe without extra crates.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Durable storage of session records (implemented by `custos-store`).
pub trait SessionStore: Send + Sync {
    /// Inserts or replaces the record with the same key.
    fn save(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), String>>;

    /// Saves several records at once: all of them or (on error) possibly none. Stores that can
    /// write them in one transaction override this (one commit instead of one per record).
    fn save_all(&self, records: Vec<SessionRecord>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            for record in records {
                self.save(record).await?;
            }
            Ok(())
        })
    }
}
