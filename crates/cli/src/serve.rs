//! `rivulet serve`: settings from flags, `RIVULET_*` variables and a TOML file (in that order
//! of precedence, then built-in defaults), logging, the runtime, and the signal handling
//! around [`rivulet_server::serve_with`].
//!
//! The server's stop on SIGINT or SIGTERM is graceful: no new calls, running requests finish,
//! subscriptions end with a resume hint, every log is flushed and marked clean. SIGKILL is a
//! crash the next start recovers from; nothing acknowledged as durable is lost.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rivulet_broker::{Broker, BrokerConfig, MembershipTimeouts};
use rivulet_server::ServerConfig;
use serde::Deserialize;
use tokio::net::TcpListener;
use tracing::info;
use tracing_subscriber::EnvFilter;

const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
const DEFAULT_DATA_DIR: &str = "rivulet-data";
const DEFAULT_LOG_LEVEL: &str = "info";
/// Range of `group_session_timeout_ms` and `group_rebalance_timeout_ms`.
const MIN_GROUP_TIMEOUT_MS: u64 = 100;
const MAX_GROUP_TIMEOUT_MS: u64 = 3_600_000;

/// Arguments of `rivulet serve`. Every setting can also come from a `RIVULET_*` environment
/// variable or from the `--config` file; a flag wins over the variable, which wins over the
/// file.
#[derive(Debug, Args)]
#[command(after_help = "\
CONFIG FILE (TOML; every key optional, named like the flags with '_' for '-'):
    listen = \"127.0.0.1:7070\"
    data_dir = \"rivulet-data\"
    log_level = \"info\"
    max_request_bytes = 16777216
    max_response_bytes = 268435456
    stream_buffer = 8
    max_partitions = 10000
    max_in_flight_bytes = 67108864
    group_session_timeout_ms = 10000
    group_rebalance_timeout_ms = 30000

LOGGING: --log-level (or RIVULET_LOG_LEVEL) wins; otherwise RUST_LOG, then the file's log_level,
then 'info'. Values are tracing filter directives, e.g. 'debug' or 'info,rivulet_server=debug'.
Per-RPC lines are logged at debug level.

STOPPING: SIGINT or SIGTERM stops gracefully (running requests finish, logs are flushed and
marked clean).")]
pub(crate) struct ServeArgs {
    /// Address to serve gRPC on; port 0 picks a free port. The bound address is printed as
    /// 'listening on ADDR' on standard output. [default: 127.0.0.1:7070]
    #[arg(long, env = "RIVULET_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Directory holding all data; created if missing. [default: ./rivulet-data]
    #[arg(long, env = "RIVULET_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// TOML file with settings (see below).
    #[arg(long, env = "RIVULET_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log filter. [default: info]
    #[arg(long, env = "RIVULET_LOG_LEVEL", value_name = "FILTER")]
    log_level: Option<String>,

    /// Largest gRPC request accepted, in bytes (1024 to 4294967295); larger ones are refused
    /// before anything is stored. [default: 16777216]
    #[arg(long, env = "RIVULET_MAX_REQUEST_BYTES", value_name = "BYTES")]
    max_request_bytes: Option<usize>,

    /// Largest gRPC response sent, in bytes (1024 to 4294967295, and at least
    /// max_request_bytes + 65536). [default: 268435456]
    #[arg(long, env = "RIVULET_MAX_RESPONSE_BYTES", value_name = "BYTES")]
    max_response_bytes: Option<usize>,

    /// Responses a subscription or produce stream may queue for a client that is not
    /// reading (at least 1). [default: 8]
    #[arg(long, env = "RIVULET_STREAM_BUFFER", value_name = "N")]
    stream_buffer: Option<usize>,

    /// Largest partition count a topic may have. [default: 10000]
    #[arg(long, env = "RIVULET_MAX_PARTITIONS", value_name = "N")]
    max_partitions: Option<u32>,

    /// Bytes of produce requests processed at once; past it produces are refused with
    /// RESOURCE_EXHAUSTED and a retry hint. [default: 67108864]
    #[arg(long, env = "RIVULET_MAX_IN_FLIGHT_BYTES", value_name = "BYTES")]
    max_in_flight_bytes: Option<u64>,

    /// A consumer-group member without a heartbeat for this many milliseconds (100 to
    /// 3600000) is removed and its partitions move. [default: 10000]
    #[arg(long, env = "RIVULET_GROUP_SESSION_TIMEOUT_MS", value_name = "MS")]
    group_session_timeout_ms: Option<u64>,

    /// A member still holding a revoked partition after this many milliseconds (100 to
    /// 3600000) is fenced (removed). [default: 30000]
    #[arg(long, env = "RIVULET_GROUP_REBALANCE_TIMEOUT_MS", value_name = "MS")]
    group_rebalance_timeout_ms: Option<u64>,
}

/// The `--config` file. Keys match the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    log_level: Option<String>,
    max_request_bytes: Option<usize>,
    max_response_bytes: Option<usize>,
    stream_buffer: Option<usize>,
    max_partitions: Option<u32>,
    max_in_flight_bytes: Option<u64>,
    group_session_timeout_ms: Option<u64>,
    group_rebalance_timeout_ms: Option<u64>,
}

/// Every setting, resolved.
#[derive(Debug)]
struct Settings {
    listen: SocketAddr,
    data_dir: PathBuf,
    log_filter: String,
    server: ServerConfig,
    broker: BrokerConfig,
}

impl Settings {
    fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let listen = match args.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse()?,
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let log_filter = args
            .log_level
            .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()))
            .or(file.log_level)
            .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());

        let mut server = ServerConfig::default();
        if let Some(bytes) = args.max_request_bytes.or(file.max_request_bytes) {
            server = server.with_max_request_bytes(bytes);
        }
        if let Some(bytes) = args.max_response_bytes.or(file.max_response_bytes) {
            server = server.with_max_response_bytes(bytes);
        }
        if let Some(responses) = args.stream_buffer.or(file.stream_buffer) {
            if responses == 0 {
                anyhow::bail!(
                    "invalid settings: stream_buffer = 0 is out of range: it must be at least 1 \
                     (responses a stream may queue for a client that is not reading)"
                );
            }
            server = server.with_stream_buffer(responses);
        }

        let mut broker = BrokerConfig::new(&data_dir);
        if let Some(max) = args.max_partitions.or(file.max_partitions) {
            broker = broker.with_max_partitions(max);
        }
        if let Some(bytes) = args.max_in_flight_bytes.or(file.max_in_flight_bytes) {
            broker = broker.with_max_in_flight_bytes(bytes);
        }
        let mut timeouts = MembershipTimeouts::default();
        // A member's timeouts: below 100 ms members expire between their own heartbeats;
        // above an hour a dead member holds its partitions for longer than anyone waits.
        let in_range = |name: &str, ms: u64| {
            if !(MIN_GROUP_TIMEOUT_MS..=MAX_GROUP_TIMEOUT_MS).contains(&ms) {
                anyhow::bail!(
                    "invalid settings: {name} = {ms} is out of range: it must be \
                     {MIN_GROUP_TIMEOUT_MS} to {MAX_GROUP_TIMEOUT_MS} milliseconds (1 hour)"
                );
            }
            Ok(Duration::from_millis(ms))
        };
        if let Some(ms) = args
            .group_session_timeout_ms
            .or(file.group_session_timeout_ms)
        {
            timeouts.session = in_range("group_session_timeout_ms", ms)?;
        }
        if let Some(ms) = args
            .group_rebalance_timeout_ms
            .or(file.group_rebalance_timeout_ms)
        {
            timeouts.rebalance = in_range("group_rebalance_timeout_ms", ms)?;
        }
        broker = broker.with_group_timeouts(timeouts);
        server.validate().context("invalid settings")?;
        broker.validate().context("invalid settings")?;

        Ok(Settings {
            listen,
            data_dir,
            log_filter,
            server,
            broker,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Runs `rivulet serve` until SIGINT or SIGTERM.
pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    let filter = EnvFilter::try_new(&settings.log_filter)
        .with_context(|| format!("invalid log filter {:?}", settings.log_filter))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let broker = Broker::open(settings.broker)
        .await
        .with_context(|| format!("cannot open data directory {}", settings.data_dir.display()))?;
    let broker = Arc::new(broker);
    let listener = match TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            broker.shutdown().await?;
            return Err(err).with_context(|| format!("cannot listen on {}", settings.listen));
        }
    };
    let local_addr = listener.local_addr()?;

    let topics = broker.list_topics();
    let descriptions: Vec<_> = topics
        .iter()
        .filter_map(|t| broker.describe_topic(t).ok())
        .collect();
    let partitions: usize = descriptions.iter().map(|t| t.partitions.len()).sum();
    let records: u64 = descriptions
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.log_end_offset - p.log_start_offset)
        .sum();
    info!(
        listen = %local_addr,
        data_dir = %settings.data_dir.display(),
        topics = topics.len(),
        partitions,
        records,
        groups = broker.list_groups().map_or(0, |g| g.len()),
        recovery = "partitions recovered after an unclean stop are logged above",
        "rivulet started"
    );
    // For scripts and tests that start the server on port 0.
    println!("listening on {local_addr}");

    rivulet_server::serve_with(
        listener,
        broker,
        settings.server,
        crate::stop::stop_signal(),
    )
    .await?;
    info!("rivulet stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn resolve(argv: &[&str]) -> Settings {
        let args = Wrapper::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))
            .unwrap()
            .args;
        Settings::resolve(args).unwrap()
    }

    #[test]
    fn flags_win_over_the_config_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rivulet.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"from-file\"\nmax_request_bytes = 1234\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();

        let settings = resolve(&["--config", config, "--data-dir", "from-flag"]);
        assert_eq!(settings.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(settings.data_dir, PathBuf::from("from-flag"));
        assert_eq!(settings.server.max_request_bytes, 1234);
    }

    #[test]
    fn settings_out_of_range_are_refused_before_the_server_starts() {
        for (argv, says) in [
            (&["--max-request-bytes", "0"][..], "max_request_bytes = 0"),
            (
                &["--max-response-bytes", "10"][..],
                "max_response_bytes = 10",
            ),
            (
                &["--max-request-bytes", "300000000"][..],
                "at least max_request_bytes (300000000)",
            ),
            (&["--stream-buffer", "0"][..], "stream_buffer = 0"),
            (
                &["--group-session-timeout-ms", "1"][..],
                "group_session_timeout_ms = 1 is out of range",
            ),
            (
                &["--group-rebalance-timeout-ms", "18446744073709551615"][..],
                "100 to 3600000 milliseconds",
            ),
        ] {
            let args =
                Wrapper::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))
                    .unwrap()
                    .args;
            let err = format!("{:#}", Settings::resolve(args).unwrap_err());
            assert!(err.starts_with("invalid settings: "), "{err}");
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn unknown_keys_in_the_config_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rivulet.toml");
        std::fs::write(&file, "listne = \"127.0.0.1:9000\"\n").unwrap();
        let err = read_file(&file).unwrap_err();
        assert!(format!("{err:#}").contains("listne"), "{err:#}");
    }
}
