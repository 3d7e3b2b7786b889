//! The report of a run: counts, rates, latency percentiles, server footprint and the machine
//! it ran on, as JSON and as a Markdown table row. Owns the formatting; measures nothing
//! except the machine facts it reads from /proc.

use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::options::{DurabilityMode, FetchClient, ProduceClient, TopicPolicy, Workload};

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Samples (records).
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of a histogram in µs, or `None` when it is empty.
    pub fn from_histogram(hist: &Histogram<u64>) -> Option<Latency> {
        if hist.is_empty() {
            return None;
        }
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        Some(Latency {
            count: hist.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: hist.max() as f64 / 1000.0,
        })
    }
}

/// Records and bytes moved by one side of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Records acknowledged (produce) or read (consume).
    pub records: u64,
    /// Their value bytes.
    pub bytes: u64,
    /// Seconds from the first send (or fetch) to the last acknowledgement (or record).
    pub seconds: f64,
    /// Records per second.
    pub records_per_s: f64,
    /// Value megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
}

impl Throughput {
    /// Rates of `records` and `bytes` over `seconds`.
    pub fn new(records: u64, bytes: u64, seconds: f64) -> Throughput {
        let s = seconds.max(1e-9);
        Throughput {
            records,
            bytes,
            seconds,
            records_per_s: records as f64 / s,
            mb_per_s: bytes as f64 / s / 1e6,
        }
    }
}

/// The machine a run was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the run started.
    pub load_start: f64,
    /// 1-minute load average when it ended.
    pub load_end: f64,
}

impl Machine {
    /// Reads the facts from /proc; unknown ones are left empty or zero.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(String::new, |m| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let load = load_average();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: memory_kib / (1024.0 * 1024.0),
            kernel,
            load_start: load,
            load_end: load,
        }
    }

    /// One line for the top of a table.
    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB, Linux {}, load {:.2} -> {:.2}",
            self.cores, self.cpu, self.memory_gib, self.kernel, self.load_start, self.load_end
        )
    }
}

/// The 1-minute load average, or 0 if unknown.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was measured.
    pub workload: Workload,
    /// Durability of every produce.
    pub durability: DurabilityMode,
    /// The topic's durability policy (for a topic the run created).
    pub topic_policy: TopicPolicy,
    /// Client used to produce.
    pub produce_client: ProduceClient,
    /// Client used to fetch.
    pub fetch_client: FetchClient,
    /// Topic used.
    pub topic: String,
    /// Its partitions.
    pub partitions: u32,
    /// Producers.
    pub producers: u32,
    /// Consumers (0 for produce runs).
    pub consumers: u32,
    /// Mean record value size in bytes.
    pub record_size: f64,
    /// Batch size bound in bytes.
    pub batch_bytes: usize,
    /// Client producer linger in ms.
    pub linger_ms: f64,
    /// Target rate in records/s, if any.
    pub target_rate: Option<f64>,
    /// Produce side (the fill, for consume runs).
    pub produce: Throughput,
    /// Consume side, if consumers ran.
    pub consume: Option<Throughput>,
    /// Produce acknowledgement latency, from each record's intended send time.
    pub produce_latency: Option<Latency>,
    /// Produce-to-consume latency, from each record's intended send time.
    pub end_to_end_latency: Option<Latency>,
    /// Failed produces and fetches.
    pub errors: u64,
    /// The server's peak resident set (VmHWM), in bytes, when its pid is known.
    pub server_peak_rss_bytes: Option<u64>,
    /// Bytes on disk: the topic's partitions as the server reports them.
    pub topic_bytes_on_disk: Option<u64>,
    /// Bytes under the server's data directory, when it is known.
    pub data_dir_bytes: Option<u64>,
    /// The machine.
    pub machine: Machine,
    /// When the run started, ms since the Unix epoch.
    pub started_at_ms: u64,
}

impl Report {
    /// Header of the Markdown table that [`Report::markdown_row`] fills.
    pub const MARKDOWN_HEADER: &'static str = "| workload | record | producers | consumers | \
        partitions | durability | records/s | MB/s | p50 ms | p90 ms | p99 ms | p99.9 ms | \
        max ms | server peak RSS | on disk | load |\n| --- | ---: | ---: | ---: | ---: | --- | \
        ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

    /// One Markdown table row: the main side's rates and its latency (end-to-end when
    /// measured, else produce acknowledgement).
    pub fn markdown_row(&self) -> String {
        let side = match (self.workload, &self.consume) {
            (Workload::Consume, Some(consume)) => consume,
            _ => &self.produce,
        };
        let latency = self.end_to_end_latency.as_ref().or(match self.workload {
            Workload::Consume => None,
            _ => self.produce_latency.as_ref(),
        });
        let ms = |f: fn(&Latency) -> f64| {
            latency.map_or_else(|| "-".to_owned(), |l| format!("{:.2}", f(l)))
        };
        let mib = |b: Option<u64>| {
            b.map_or_else(
                || "-".to_owned(),
                |b| format!("{:.0} MiB", b as f64 / 1048576.0),
            )
        };
        format!(
            "| {} | {} B | {} | {} | {} | {} | {:.0} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            serde_json::to_value(self.workload)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            self.record_size.round(),
            self.producers,
            self.consumers,
            self.partitions,
            match (self.durability, self.topic_policy) {
                (DurabilityMode::Durable, _) => "durable",
                (DurabilityMode::Written, TopicPolicy::SyncInterval) => "written",
                (DurabilityMode::Written, TopicPolicy::OsDecides) => "written (os-decides)",
                (DurabilityMode::Written, TopicPolicy::AlwaysDurable) => "written (always-durable)",
            },
            side.records_per_s,
            side.mb_per_s,
            ms(|l| l.p50_ms),
            ms(|l| l.p90_ms),
            ms(|l| l.p99_ms),
            ms(|l| l.p999_ms),
            ms(|l| l.max_ms),
            mib(self.server_peak_rss_bytes),
            mib(self.data_dir_bytes.or(self.topic_bytes_on_disk)),
            self.machine.load_end,
        )
    }
}
