//! Admission control on the trail storage, for connection policies with
//! `on_storage_full: refuse_new`.
//!
//! Both storage-full behaviours fail closed: a session whose trail cannot be written is closed
//! (verdict FAIL) and nothing unrecorded is relayed. `refuse_new` adds a reserve: while the
//! trail directory's filesystem has less than [`RESERVE`] free, new sessions of the policy are
//! refused before the gateway logs in to the target, so that the sessions already running can
//! go on writing into the reserve instead of all failing at once when the disk fills.

use std::path::Path;

/// Free space below which `refuse_new` policies refuse new sessions.
pub const RESERVE: u64 = 64 << 20;

/// Why a new session must be refused, if the trail storage is short of space.
pub fn short_of_space(trails: &Path) -> Option<String> {
    match nix::sys::statvfs::statvfs(trails) {
        Ok(stats) => {
            let free = stats
                .blocks_available()
                .saturating_mul(stats.fragment_size());
            (free < RESERVE).then(|| {
                format!(
                    "the audit trail storage is nearly full ({} MiB free, {} MiB reserved for running sessions); new sessions are refused",
                    free >> 20,
                    RESERVE >> 20
                )
            })
        }
        // Unknown is not full: a session that then cannot write its trail is closed anyway.
        Err(e) => {
            tracing::warn!(dir = %trails.display(), error = %e, "cannot read the trail storage's free space");
            None
        }
    }
}
