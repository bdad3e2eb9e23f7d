//! The service manager's notifications (systemd's `Type=notify`, through
//! `sd-notify`): `READY=1` once every shard has Kafka metadata and
//! positions for its topics and every guard has keys (what
//! `/health/ready` answers), `STOPPING=1` when a signal starts the drain.
//! Without `NOTIFY_SOCKET` (not started by systemd) nothing is sent.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{info, warn};

use crate::ops::metrics::{self, ShardMetrics};

/// How often readiness is looked at until it holds: the flags it reads are
/// set by every shard and by the key fetcher, on their own threads, during
/// start-up.
const READY_POLL: Duration = Duration::from_millis(20);

/// Whether a service manager listens: `NOTIFY_SOCKET` is set.
fn managed() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

fn send(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        warn!(error = %e, "cannot notify the service manager");
    }
}

/// Under a service manager, sends `READY=1` once the process is ready
/// (shard 0 runs it). A process stopped before it is ready never says so.
pub async fn when_ready(shards: Arc<[Arc<ShardMetrics>]>) {
    if !managed() {
        return;
    }
    while !metrics::all_ready(&shards) {
        glommio::timer::sleep(READY_POLL).await;
    }
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
    info!("told the service manager: ready");
}

/// `STOPPING=1`: the drain has begun.
pub fn stopping() {
    if managed() {
        send(&[
            NotifyState::Stopping,
            NotifyState::Status("draining streams"),
        ]);
    }
}
