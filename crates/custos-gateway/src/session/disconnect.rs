//! The end of a session: both SSH connections closed, the target's first.

use std::sync::Arc;
use std::time::Duration;

use russh::{Disconnect, client, server};

use crate::upstream::UpstreamHandler;

/// Closes both SSH connections of a session (termination, or a trail that cannot be written).
pub async fn disconnect(
    client: Option<server::Handle>,
    upstream: Option<Arc<client::Handle<UpstreamHandler>>>,
    why: &str,
) {
    // The target first: that also releases a handler waiting for the target's window, so the
    // client's session loop is free to process its own disconnect.
    if let Some(upstream) = upstream {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            upstream.disconnect(Disconnect::ByApplication, why, ""),
        )
        .await;
    }
    if let Some(client) = client {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            client.disconnect(Disconnect::ByApplication, why.to_string(), String::new()),
        )
        .await;
    }
}
