//! rivulet-bench: drives a running Rivulet server over gRPC, the way Kafka's
//! producer-perf-test and OpenMessaging Benchmark drive theirs, and reports records/s, MB/s,
//! latency percentiles, the server's peak RSS and bytes on disk, beside the durability mode
//! and the machine.
//!
//! Module map:
//! - `options`: the command line ([`BenchOptions`]) and its bounds.
//! - `payload`: record values, synthetic or from a file.
//! - `produce`: producers (the client library's `Producer`, or raw batches), pacing by intended
//!   send time and the latency stamp.
//! - `consume`: consumers (the client library's `Consumer`, or raw fetches).
//! - `stats`: shared counters, histograms and the progress line.
//! - `server`: a spawned `rivulet serve`, peak RSS and disk usage.
//! - `report`: [`Report`], as JSON and as a Markdown row.
//! - `run`: [`run`], one run from start to report.
//!
//! Only servers on 127.0.0.1 are driven, and every loop is bounded by a record count and a
//! deadline.

mod consume;
mod options;
mod payload;
mod produce;
mod report;
mod run;
mod server;
mod stats;

pub use options::{BenchOptions, DurabilityMode, FetchClient, ProduceClient, Workload};
pub use report::{Latency, Machine, Report, Throughput};
pub use run::run;
