//! Rivulet's gRPC server: the `rivulet.v1.Log` and `rivulet.v1.Admin` services over a
//! [`rivulet_broker::Broker`], plus the standard gRPC health service and server reflection.
//!
//! [`serve`] takes a bound listener, a shared broker and a shutdown future, and runs until the
//! future completes. Module map:
//! - `service`: the handlers, one file per service, each thin: check the request, call one
//!   broker method, convert the result. `service::subscribe` owns the per-subscription task.
//! - `convert`: generated messages to broker types and back; nothing else sees both.
//! - `error`: `ApiError` and its one conversion into a `tonic::Status`.
//! - `config`: [`ServerConfig`], the limits this layer enforces.
//! - `request_limit`: refuses request messages over the size limit with `RESOURCE_EXHAUSTED`.
//!
//! Invariants: no generated protobuf type appears in this crate's public API; request size
//! limits are enforced on the request body before the codec reads a message, so an oversized
//! produce is never buffered and never reaches storage; every stream the server sends is fed
//! through a bounded channel, so a slow client holds at most that channel's worth of memory and
//! slows nobody else.
//!
//! Shutdown: when the shutdown future completes, health reports NOT_SERVING, running
//! subscriptions end with `UNAVAILABLE` (naming the offset to resume from), the broker is shut
//! down (waiting fetches return what they have, running requests finish, logs are flushed and
//! marked clean), and then the transport stops accepting and drains its connections, dropping
//! any still open after [`ServerConfig::drain_timeout`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use rivulet_broker::{Broker, BrokerConfig};
//!
//! let broker = Arc::new(Broker::open(BrokerConfig::new("rivulet-data")).await?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
//! rivulet_server::serve(listener, broker, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

mod config;
mod convert;
mod error;
mod request_limit;
mod service;

use std::future::Future;
use std::sync::Arc;

use rivulet_broker::Broker;
use rivulet_proto::v1::admin_server::AdminServer;
use rivulet_proto::v1::log_server::LogServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tracing::{debug_span, error, info, warn};

pub use config::{
    InvalidServerConfig, MAX_MESSAGE_LIMIT, MIN_MESSAGE_LIMIT, RESPONSE_HEADROOM, ServerConfig,
};

use crate::request_limit::RequestLimit;
use crate::service::{AdminService, LogService, State};

/// Why [`serve`] stopped without being asked to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A limit in the [`ServerConfig`] is out of range.
    #[error("invalid server settings: {0}")]
    Config(#[from] InvalidServerConfig),
    /// The listener's address could not be read.
    #[error("cannot read the listener's address: {0}")]
    Listener(#[source] std::io::Error),
    /// The reflection service could not load the API's descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// The transport failed while serving.
    #[error("gRPC transport failed: {0}")]
    Transport(#[source] tonic::transport::Error),
}

/// Serves the Rivulet API on `listener` with default limits until `shutdown` completes; see
/// [`serve_with`].
///
/// # Errors
///
/// As [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_with(listener, broker, ServerConfig::default(), shutdown).await
}

/// Serves the Rivulet API, gRPC health and reflection on `listener` until `shutdown`
/// completes, then shuts the broker down (see the crate docs for the order) and returns.
///
/// The broker is shut down on every return path, so the caller only needs to drop it.
///
/// # Errors
///
/// [`ServeError`] if `config` is out of range ([`ServerConfig::validate`]), or the server
/// cannot start, or its transport fails.
pub async fn serve_with(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let result = run(listener, Arc::clone(&broker), config, shutdown).await;
    // On success the shutdown signal already shut the broker down.
    if result.is_err()
        && let Err(err) = broker.shutdown().await
    {
        error!(error = %err, "broker did not shut down cleanly");
    }
    result
}

async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    config.validate()?;
    let local_addr = listener.local_addr().map_err(ServeError::Listener)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = Arc::new(State::new(Arc::clone(&broker), config.clone(), stop_rx));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<LogServer<LogService>>().await;
    health.set_serving::<AdminServer<AdminService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(rivulet_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(ServeError::Reflection)?;

    // `RequestLimit` refuses oversized messages first, with the status gRPC prescribes; the
    // codec's own limit (OUT_OF_RANGE) stays as a backstop and bounds decompressed sizes.
    let limit = config.max_request_bytes;
    let log = LogServer::new(LogService::new(Arc::clone(&state)))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(config.max_response_bytes);
    let log = RequestLimit::new(log, limit);
    let admin = AdminServer::new(AdminService::new(state))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(config.max_response_bytes);
    let admin = RequestLimit::new(admin, limit);

    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        info!("shutting down: ending subscriptions, finishing running requests");
        health.set_not_serving::<LogServer<LogService>>().await;
        health.set_not_serving::<AdminServer<AdminService>>().await;
        let _ = stop_tx.send(true);
        // Wakes long-polls and waits for running requests, so the transport's drain below
        // finishes promptly.
        if let Err(err) = broker.shutdown().await {
            error!(error = %err, "broker did not shut down cleanly");
        }
        let _ = drain_tx.send(());
    };
    // A client that never answers the transport's goodbye must not hold the process forever;
    // by the time this runs the broker has flushed and closed every log.
    let drain_timeout = config.drain_timeout;
    let drain_deadline = async move {
        if drain_rx.await.is_ok() {
            tokio::time::sleep(drain_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };

    info!(%local_addr, "serving gRPC");
    let transport = Server::builder()
        .tcp_nodelay(true)
        .trace_fn(|request| debug_span!("rpc", path = %request.uri().path()))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(log)
        .add_service(admin)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), signal);
    tokio::select! {
        result = transport => result.map_err(ServeError::Transport),
        () = drain_deadline => {
            warn!(?drain_timeout, "connections still open after the drain timeout; closing them");
            Ok(())
        }
    }
}
