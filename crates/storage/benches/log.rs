//! Criterion benches of the partition log: append, sequential read, and recovery scan.
//!
//! Run with `cargo bench -p rivulet-storage --bench log`. Sizes can be shrunk for a quick run
//! with `RIVULET_BENCH_RECOVERY_MIB` (default 1024, the size of a full default segment).

#![expect(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rivulet_format::{BatchBuilder, Compression};
use rivulet_storage::{FlushPolicy, LogConfig, PartitionLog};

fn batch(records: usize, record_bytes: usize) -> BytesMut {
    let value = vec![0x5a_u8; record_bytes];
    let mut builder = BatchBuilder::new(Compression::None);
    for i in 0..records {
        builder.push(1_700_000_000_000 + i as i64, None, Some(&value), &[]);
    }
    builder.build().expect("bench batch builds")
}

fn config(flush: FlushPolicy) -> LogConfig {
    LogConfig::default()
        .with_flush(flush)
        .with_max_batch_bytes(8 << 20)
}

/// A log whose active segment holds up to the largest segment size.
fn one_segment() -> LogConfig {
    config(FlushPolicy::Os).with_segment_bytes(rivulet_storage::MAX_SEGMENT_BYTES)
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for record_bytes in [100usize, 1024] {
        for records in [1usize, 100, 1000] {
            for (flush_name, flush) in [("os", FlushPolicy::Os), ("fsync", FlushPolicy::EveryBatch)]
            {
                let mut buf = batch(records, record_bytes);
                group.throughput(Throughput::Bytes(buf.len() as u64));
                let id = BenchmarkId::new(format!("{record_bytes}B-{flush_name}"), records);
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let dir = tempfile::tempdir().expect("temp dir");
                        let (log, _) = PartitionLog::open(dir.path(), config(flush)).expect("open");
                        let start = Instant::now();
                        for _ in 0..iters {
                            log.append(&mut buf).expect("append");
                        }
                        start.elapsed()
                    })
                });
            }
        }
    }
    group.finish();
}

/// Fills a log with `bytes` of 1 KiB records in batches of 1000, in one segment.
fn filled_log(dir: &std::path::Path, bytes: u64) -> PartitionLog {
    let (log, _) = PartitionLog::open(dir, one_segment()).expect("open");
    let mut buf = batch(1000, 1024);
    let batches = bytes.div_ceil(buf.len() as u64);
    for _ in 0..batches {
        log.append(&mut buf).expect("append");
    }
    log
}

fn read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group.sample_size(10);
    // Sealed segments are read through their maps; the active one with `pread`.
    for sealed in [true, false] {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = filled_log(dir.path(), 256 << 20);
        if sealed {
            log.roll().expect("roll");
        }
        let total = log.size_bytes();
        let end = log.log_end_offset();
        let name = if sealed { "sealed" } else { "active" };
        group.throughput(Throughput::Bytes(total));
        group.bench_function(format!("sequential-1MiB-reads-crc-checked-{name}"), |b| {
            b.iter(|| {
                let mut offset = 0;
                let mut bytes = 0usize;
                while offset < end {
                    let read = log.read(offset, 1 << 20).expect("read");
                    bytes += read.byte_len();
                    offset = read.next_offset();
                }
                assert_eq!(bytes as u64, total);
            })
        });
    }
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let mib: u64 = std::env::var("RIVULET_BENCH_RECOVERY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().expect("temp dir");
    // One active segment of `mib` MiB, dropped without `close`: every open scans it whole.
    drop(filled_log(dir.path(), mib << 20));

    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(mib << 20));
    group.bench_function(format!("unclean-open-scan-{mib}MiB"), |b| {
        b.iter(|| {
            let (log, report) =
                PartitionLog::open(dir.path(), config(FlushPolicy::Os)).expect("open");
            assert!(!report.clean_shutdown);
            drop(log);
        })
    });
    group.finish();
}

criterion_group!(benches, append, read, recovery);
criterion_main!(benches);
