//! Process wiring: builds the listeners, the shard mesh, one Kafka sidecar
//! and one glommio executor per CPU, installs the signal handler, and waits
//! for the shards to drain.

use std::net::SocketAddr;
use std::sync::Arc;

use glommio::channels::channel_mesh::MeshBuilder;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{info, warn};

use crate::config::Config;
use crate::kafka::Sidecar;
use crate::model::ShardId;
use crate::shard::mesh::MESH_CAPACITY;
use crate::stream::plan::defer_accept;
use crate::sys::socket::client_listener;
mod admission;
mod executor;

use self::executor::{Control, ShardSpec, Shared};

/// Batches a sidecar may have in flight to its shard before its fetch loops
/// wait (backpressure on fetching, never loss).
const SIDECAR_CHANNEL: usize = 1024;

/// On-demand Kafka requests queued per shard.
const REQUEST_CHANNEL: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start shard {shard} on CPU {cpu}: {message}")]
    Shard {
        shard: usize,
        cpu: usize,
        message: String,
    },
    #[error("cannot start the kafka sidecar: {0}")]
    Sidecar(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("shard {0} failed")]
    ShardFailed(usize),
}

/// Runs the server until SIGTERM/SIGINT, then drains and returns.
pub fn run(config: Config, cpus: &[usize]) -> Result<(), ServerError> {
    let shards = cpus.len();
    let listen = config.listen;
    let admin_listen = config.admin_listen;
    let defer = defer_accept(config.connections.request_timeout);
    for warning in config.warnings() {
        warn!("{warning}");
    }
    let (shared, fd_warning) = Shared::new(config, shards);
    if let Some(warning) = fd_warning {
        warn!("{warning}");
    }
    info!(
        max = shared.admission.max(),
        "connections counted from their accept, process-wide"
    );
    let shared = Arc::new(shared);
    // Keys from URLs are fetched on a thread of their own, for the life of
    // the process.
    let _fetcher = crate::guard::fetch::spawn(Arc::clone(&shared.keys));
    let mesh = (shards > 1).then(|| MeshBuilder::full(shards, MESH_CAPACITY));
    let mut admin = match admin_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|source| ServerError::Listen { addr, source })?,
        ),
        None => None,
    };
    // Port 0 asks for an ephemeral port: the first listener picks it and the
    // others join the same one.
    let first = client_listener(listen, defer).map_err(|source| ServerError::Listen {
        addr: listen,
        source,
    })?;
    let bound = first
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(listen);
    let mut listeners = vec![first];
    for _ in 1..shards {
        listeners.push(
            client_listener(bound, defer).map_err(|source| ServerError::Listen {
                addr: bound,
                source,
            })?,
        );
    }
    let admin_bound = admin.as_ref().and_then(|l| l.local_addr().ok());
    let mut controls = Vec::with_capacity(shards);
    let mut handles = Vec::with_capacity(shards);
    // Every sidecar's request channel exists before any shard starts, so
    // the topic table can tell them all about a topic a request names.
    let (request_txs, request_rxs): (Vec<_>, Vec<_>) =
        (0..shards).map(|_| flume::bounded(REQUEST_CHANNEL)).unzip();
    shared.topics.set_sidecars(request_txs.clone());
    let channels = request_txs.into_iter().zip(request_rxs);
    for (((i, &cpu), listener), (requests, requests_rx)) in
        cpus.iter().enumerate().zip(listeners).zip(channels)
    {
        let (to_shard, from_sidecar) = flume::bounded(SIDECAR_CHANNEL);
        let (control_tx, control) = flume::bounded(1);
        controls.push(control_tx);
        Sidecar {
            shard: ShardId(i),
            shards,
            cpu,
            topics: Arc::clone(&shared.topics),
            kafka: shared.config.kafka.clone(),
            to_shard,
            requests: requests_rx,
            metrics: Arc::clone(&shared.metrics[i]),
        }
        .spawn()
        .map_err(ServerError::Sidecar)?;
        let spec = ShardSpec {
            id: ShardId(i),
            shards,
            cpu,
            shared: Arc::clone(&shared),
            mesh: mesh.clone(),
            from_sidecar,
            requests,
            control,
            listener,
            admin: if i == 0 { admin.take() } else { None },
        };
        let handle = executor::spawn(spec).map_err(|e| ServerError::Shard {
            shard: i,
            cpu,
            message: e.to_string(),
        })?;
        handles.push(handle);
    }
    // Tests and scripts read this line to find ephemeral ports.
    let admin_text = admin_bound.map_or_else(|| "none".to_owned(), |a| a.to_string());
    info!("sse-kafka serving listen={bound} admin={admin_text} cpus={cpus:?}");

    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(ServerError::Signals)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut received = 0;
            for signal in signals.forever() {
                if signal == SIGHUP {
                    // Its default action would end every stream.
                    warn!("SIGHUP: the config is not re-read yet; restart to apply a new one");
                    continue;
                }
                received += 1;
                if received > 1 {
                    // A second signal while draining: stop now.
                    std::process::exit(1);
                }
                info!(signal, "shutting down: draining streams");
                crate::ops::notify::stopping();
                for c in &controls {
                    let _ = c.send(Control::Shutdown);
                }
            }
        })
        .map_err(ServerError::Signals)?;

    for (i, h) in handles.into_iter().enumerate() {
        h.join().map_err(|_| ServerError::ShardFailed(i))?;
    }
    Ok(())
}
