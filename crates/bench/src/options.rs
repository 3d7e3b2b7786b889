//! Command-line options of a benchmark run: the workload, its shape (producers, consumers,
//! partitions, record and batch sizes), durability, bounds (record count and duration) and
//! where the server is. Owns parsing and the checks that make a run bounded; runs nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Producers only: records/s, MB/s and produce-acknowledgement latency.
    Produce,
    /// Fills a topic first (not timed), then consumers read it from offset 0.
    Consume,
    /// Producers at a target rate and consumers together: produce-to-consume latency.
    EndToEnd,
}

/// How far a produce waits on the server before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DurabilityMode {
    /// Acknowledged once in the server's page cache.
    Written,
    /// Acknowledged once fsynced (group commit across concurrent produces).
    Durable,
}

/// When the created topic syncs data produced with `written` durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopicPolicy {
    /// The server's default: synced in the background every second, with write-back started
    /// continuously so the syncs stay short.
    SyncInterval,
    /// Left to the operating system: the page cache absorbs bursts at memory speed.
    OsDecides,
    /// Every produce is synced, whatever it asks for.
    AlwaysDurable,
}

/// Which client code sends produce requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProduceClient {
    /// The client library's `Producer`: one `send` per record, batching, one batch in flight
    /// per partition. What an application gets.
    Producer,
    /// Batches built here and sent with raw-batch Produce calls, `--in-flight` at once per
    /// producer: measures the server rather than the client library's per-record cost.
    Raw,
}

/// Which client code fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FetchClient {
    /// The client library's `Consumer` with assigned partitions: every record decoded.
    Consumer,
    /// Raw-batch Fetch calls; each batch's CRC is checked and its records counted from the
    /// header, not decoded.
    Raw,
}

/// Options of one benchmark run.
#[derive(Debug, Clone, Parser)]
#[command(name = "rivulet-bench", version, about)]
#[non_exhaustive]
pub struct BenchOptions {
    /// What to measure.
    #[arg(long, value_enum, default_value = "produce")]
    pub workload: Workload,

    /// Address of a running server (127.0.0.1 only).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub server: SocketAddr,

    /// Start this `rivulet` binary on a temporary data directory and a free port, measure it,
    /// and stop it afterwards; overrides --server.
    #[arg(long, value_name = "PATH_TO_RIVULET")]
    pub spawn_server: Option<PathBuf>,

    /// Process id of the running server, to report its peak RSS (VmHWM over its lifetime).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Data directory of the running server, to report its bytes on disk.
    #[arg(long)]
    pub server_data_dir: Option<PathBuf>,

    /// Topic to use; created unless --existing-topic. Default: a new `bench-<time>` topic.
    #[arg(long)]
    pub topic: Option<String>,

    /// Use the topic as it is (consume: read what it holds, no fill).
    #[arg(long)]
    pub existing_topic: bool,

    /// Partitions of the created topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,

    /// Concurrent producers, each with its own connection.
    #[arg(long, default_value_t = 1)]
    pub producers: u32,

    /// Concurrent consumers, each with its own connection; partitions are dealt among them.
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,

    /// Bytes of each record's value (synthetic, incompressible payloads).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,

    /// Take record values from this file instead, one per line (JSON lines, for instance),
    /// cycling through its first 1,000,000 lines.
    #[arg(long)]
    pub payload_file: Option<PathBuf>,

    /// Close a batch at this many bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_bytes: usize,

    /// How long a batch waits for more records (client producer).
    #[arg(long, default_value_t = 5.0)]
    pub linger_ms: f64,

    /// Produce requests in flight per producer (raw producer).
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,

    /// Durability of every produce.
    #[arg(long, value_enum, default_value = "written")]
    pub durability: DurabilityMode,

    /// Durability policy of the created topic: when `written` data is synced.
    #[arg(long, value_enum, default_value = "sync-interval")]
    pub topic_policy: TopicPolicy,

    /// Which client sends produce requests.
    #[arg(long, value_enum, default_value = "producer")]
    pub produce_client: ProduceClient,

    /// Which client fetches.
    #[arg(long, value_enum, default_value = "raw")]
    pub fetch_client: FetchClient,

    /// Bytes asked for per fetch.
    #[arg(long, default_value_t = 4 << 20)]
    pub fetch_bytes: u32,

    /// Records to produce in total (or to fill the topic with, for consume). The run stops at
    /// whichever of --records and --duration comes first.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,

    /// Longest time the measured phase may take, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,

    /// Records per second across all producers; sends are scheduled by intended time and
    /// latency is measured from it, so a stall cannot hide behind the sends it delayed.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Write the JSON report to this file too (appended as one line).
    #[arg(long)]
    pub json_out: Option<PathBuf>,

    /// Seconds between progress lines on standard error; 0 turns them off.
    #[arg(long, default_value_t = 1.0)]
    pub progress: f64,
}

impl BenchOptions {
    /// The measured phase's time bound.
    pub fn duration_limit(&self) -> Duration {
        Duration::from_secs_f64(self.duration.clamp(0.1, 24.0 * 3600.0))
    }

    /// Checks the options before anything runs.
    ///
    /// # Errors
    ///
    /// When a count is zero, the server is not on 127.0.0.1, or a size cannot hold a stamp.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.server.ip().is_loopback(),
            "only 127.0.0.1 servers are benchmarked, not {}",
            self.server
        );
        anyhow::ensure!(self.partitions >= 1, "--partitions must be at least 1");
        anyhow::ensure!(self.producers >= 1, "--producers must be at least 1");
        anyhow::ensure!(self.consumers >= 1, "--consumers must be at least 1");
        anyhow::ensure!(self.records >= 1, "--records must be at least 1");
        anyhow::ensure!(self.in_flight >= 1, "--in-flight must be at least 1");
        anyhow::ensure!(self.duration > 0.0, "--duration must be positive");
        anyhow::ensure!(self.linger_ms >= 0.0, "--linger-ms must not be negative");
        if let Some(rate) = self.rate {
            anyhow::ensure!(rate > 0.0, "--rate must be positive");
        }
        Ok(())
    }
}
