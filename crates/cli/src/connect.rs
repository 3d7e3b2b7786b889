//! The `--server` flag every client command shares, the runtime client commands run on, and
//! the connection to the server.
//!
//! Client commands log the client library's warnings (a retried produce, a consumer position
//! reset) to standard error; `RUST_LOG` changes the filter. The server itself is never started
//! here.

use anyhow::Context;
use clap::Args;
use rivulet_client::Client;
use tracing_subscriber::EnvFilter;

use crate::exit::usage_error;

/// The server address every client command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// Address of the Rivulet server, as HOST:PORT.
    #[arg(
        long,
        env = "RIVULET_SERVER",
        value_name = "ADDR",
        default_value = "127.0.0.1:7070"
    )]
    pub(crate) server: String,
}

impl ServerArgs {
    /// Connects to the server.
    ///
    /// # Errors
    ///
    /// A bad address, or no connection (exit code 4).
    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        let address = self.server.trim();
        let port = address
            .rsplit_once(':')
            .map(|(_, port)| port.trim_end_matches('/'));
        if port.is_none_or(|port| port.parse::<u16>().is_err()) {
            return Err(usage_error(format!(
                "invalid server address {address:?}: expected HOST:PORT, like 127.0.0.1:7070"
            )));
        }
        Client::connect(address)
            .await
            .with_context(|| format!("server {} unreachable", self.server))
    }
}

/// Runs a client command's future on a fresh runtime, with the client library's warnings
/// logged to standard error.
pub(crate) fn run_client<F, Fut>(command: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|filter| EnvFilter::try_new(filter).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command())
}
