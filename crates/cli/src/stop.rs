//! The stop request of a long-running command: the first SIGINT (Ctrl-C) or SIGTERM (what
//! `kill`, systemd and container runtimes send). `rivulet serve` shuts down gracefully on it;
//! `rivulet consume` stops polling, commits what it printed and leaves its group.

use tracing::{info, warn};

/// Completes on the first SIGINT or SIGTERM.
pub(crate) async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};

    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            warn!(error = %err, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!(signal = "SIGINT", "stop requested"),
        _ = term.recv() => info!(signal = "SIGTERM", "stop requested"),
    }
}
