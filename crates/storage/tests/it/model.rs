//! A partition log driven by random operations and checked, step by step, against an in-memory
//! model: a `Vec` of records indexed by offset plus the log start and end.

use std::fs;
use std::time::SystemTime;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rivulet_format::BatchHeader;
use rivulet_storage::{LogConfig, PartitionLog, StorageError};

use crate::fixture::{Spec, build, segment_bases, segment_file};

/// What the log should hold.
#[derive(Debug, Default)]
struct Model {
    /// Record `i` has offset `i`; records below `log_start` are kept but no longer visible.
    records: Vec<Spec>,
    /// `(base, next)` of every appended batch still in the log.
    batches: Vec<(u64, u64)>,
    log_start: u64,
}

impl Model {
    fn log_end(&self) -> u64 {
        self.records.len() as u64
    }

    fn offset_for_timestamp(&self, timestamp: i64) -> Option<u64> {
        (self.log_start..self.log_end()).find(|&o| self.records[o as usize].timestamp >= timestamp)
    }

    /// Batch boundaries a truncation may use: batch bases at or after the log start, and the end.
    fn boundaries(&self) -> Vec<u64> {
        self.batches
            .iter()
            .map(|&(base, _)| base)
            .filter(|&base| base >= self.log_start)
            .chain(std::iter::once(self.log_end()))
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Spec>),
    /// `pick` chooses the offset (see [`pick_offset`]).
    Read {
        pick: (u8, u64),
        max_bytes: usize,
    },
    Roll,
    EnforceRetention,
    DeleteBefore((u8, u64)),
    TruncateTo(u64),
    TruncateInsideBatch(u64),
    OffsetForTimestamp(i64),
    CloseAndReopen,
    DropAndReopen,
}

fn payload(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        6 => proptest::collection::vec(any::<u8>(), 1..max).prop_map(Some),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    // A narrow range so that equal and backwards timestamps are common.
    (0i64..2_000, payload(12), payload(200)).prop_map(|(timestamp, key, value)| Spec {
        timestamp,
        key,
        value,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => proptest::collection::vec(spec(), 1..20).prop_map(Op::Append),
        8 => ((0u8..10, any::<u64>()), prop_oneof![0usize..80, 80usize..4000, Just(1 << 20)])
            .prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        1 => Just(Op::Roll),
        1 => Just(Op::EnforceRetention),
        1 => (0u8..10, any::<u64>()).prop_map(Op::DeleteBefore),
        1 => any::<u64>().prop_map(Op::TruncateTo),
        1 => any::<u64>().prop_map(Op::TruncateInsideBatch),
        3 => (-10i64..2_100).prop_map(Op::OffsetForTimestamp),
        1 => Just(Op::CloseAndReopen),
        1 => Just(Op::DropAndReopen),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (
        1024u64..8192,
        64u32..1024,
        prop_oneof![Just(None), (2_000u64..30_000).prop_map(Some)],
    )
        .prop_map(|(segment_bytes, interval, retention_bytes)| {
            crate::fixture::small_config()
                .with_segment_bytes(segment_bytes)
                .with_index_interval_bytes(interval)
                .with_retention_bytes(retention_bytes)
        })
}

/// An offset mostly inside `[log_start, log_end]`, sometimes just outside or far outside.
fn pick_offset(model: &Model, (kind, raw): (u8, u64)) -> u64 {
    let (start, end) = (model.log_start, model.log_end());
    match kind {
        0 => start,
        1 => end,
        2 => end + 1 + raw % 3,
        3 => start.saturating_sub(1 + raw % 3),
        4 => raw,
        _ => start + raw % (end - start + 1),
    }
}

#[test]
fn random_operations_match_a_model_of_the_log() {
    let mut runner = TestRunner::new(Config {
        // Modest by default so the suite stays fast; set PROPTEST_CASES to hunt longer.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    });
    let strategy = (config(), proptest::collection::vec(op(), 1..120));
    runner
        .run(&strategy, |(config, ops)| {
            run_ops(config, &ops);
            Ok(())
        })
        .unwrap();
}

fn run_ops(config: LogConfig, ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let context = format!("step {step}: {op:?}");
        match op {
            Op::Append(specs) => {
                let info = log.append(&mut build(specs)).expect(&context);
                let base = model.log_end();
                assert_eq!(info.base_offset, base, "{context}");
                assert_eq!(info.last_offset, base + specs.len() as u64 - 1, "{context}");
                let max_ts = specs.iter().map(|s| s.timestamp).max().unwrap();
                assert_eq!(info.max_timestamp, max_ts, "{context}");
                model.records.extend(specs.iter().cloned());
                model.batches.push((base, model.log_end()));
            }
            Op::Read { pick, max_bytes } => {
                let offset = pick_offset(&model, *pick);
                check_read(&log, &model, offset, *max_bytes, &context);
            }
            Op::Roll => log.roll().expect(&context),
            Op::EnforceRetention => {
                let before = log.log_start_offset();
                let outcome = log.enforce_retention(SystemTime::now()).expect(&context);
                let after = log.log_start_offset();
                assert_eq!(outcome.log_start_offset, after, "{context}");
                assert!(after >= before && after <= model.log_end(), "{context}");
                if after != before {
                    assert!(
                        model.batches.iter().any(|&(base, _)| base == after)
                            || after == model.log_end(),
                        "{context}: new log start {after} is not a batch boundary"
                    );
                }
                check_retention_stopped_in_time(&log, &config, outcome.segments_deleted, &context);
                model.log_start = after;
            }
            Op::DeleteBefore(pick) => {
                let offset = pick_offset(&model, *pick);
                let result = log.delete_before(offset);
                if offset > model.log_end() {
                    assert_out_of_range(result, offset, &model, &context);
                } else {
                    result.expect(&context);
                    model.log_start = model.log_start.max(offset);
                }
            }
            Op::TruncateTo(raw) => {
                let boundaries = model.boundaries();
                let offset = boundaries[(*raw % boundaries.len() as u64) as usize];
                log.truncate_to(offset).expect(&context);
                model.records.truncate(offset as usize);
                model.batches.retain(|&(base, _)| base < offset);
            }
            Op::TruncateInsideBatch(raw) => {
                let inside: Vec<(u64, u64, u64)> = model
                    .batches
                    .iter()
                    .flat_map(|&(base, next)| (base + 1..next).map(move |o| (o, base, next)))
                    .filter(|&(o, _, _)| o >= model.log_start)
                    .collect();
                if inside.is_empty() {
                    continue;
                }
                let (offset, base, next) = inside[(*raw % inside.len() as u64) as usize];
                match log.truncate_to(offset) {
                    Err(StorageError::NotBatchBoundary {
                        offset: o,
                        batch_base,
                        batch_last,
                    }) => assert_eq!((o, batch_base, batch_last), (offset, base, next - 1)),
                    other => panic!("{context}: truncating inside a batch gave {other:?}"),
                }
            }
            Op::OffsetForTimestamp(ts) => {
                let found = log.offset_for_timestamp(*ts).expect(&context);
                assert_eq!(found, model.offset_for_timestamp(*ts), "{context}");
            }
            Op::CloseAndReopen => {
                log.close().expect(&context);
                let (reopened, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
                assert!(report.clean_shutdown, "{context}: {report:?}");
                assert!(report.rebuilt_indexes.is_empty(), "{context}: {report:?}");
                assert!(report.torn_tail.is_none(), "{context}: {report:?}");
                assert!(report.corrupt_ranges.is_empty(), "{context}: {report:?}");
                log = reopened;
            }
            Op::DropAndReopen => {
                drop(log);
                let (reopened, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
                assert!(!report.clean_shutdown, "{context}: {report:?}");
                assert!(report.torn_tail.is_none(), "{context}: {report:?}");
                assert!(report.corrupt_ranges.is_empty(), "{context}: {report:?}");
                log = reopened;
            }
        }
        assert_eq!(log.log_start_offset(), model.log_start, "{context}");
        assert_eq!(log.log_end_offset(), model.log_end(), "{context}");
        assert!(log.durable_offset() <= log.log_end_offset(), "{context}");
    }

    // Finally every visible record, read back from the start in small steps.
    let start = model.log_start;
    let all = crate::fixture::read_all(&log, start);
    assert_eq!(all.len() as u64, model.log_end() - start);
    for record in &all {
        assert_record(record, &model, "final read");
    }
}

/// Checks a read at `offset` against the model.
fn check_read(log: &PartitionLog, model: &Model, offset: u64, max_bytes: usize, context: &str) {
    let result = log.read(offset, max_bytes);
    if offset < model.log_start || offset > model.log_end() {
        assert_out_of_range(result, offset, model, context);
        return;
    }
    let read = result.expect(context);
    assert_eq!(read.log_start_offset(), model.log_start, "{context}");
    assert_eq!(read.log_end_offset(), model.log_end(), "{context}");
    let records = read.records().expect(context);
    if offset == model.log_end() {
        assert!(
            read.is_empty(),
            "{context}: read at the log end returned batches"
        );
        return;
    }
    assert!(
        !records.is_empty(),
        "{context}: read at {offset} returned no record"
    );
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.offset as u64, offset + i as u64, "{context}");
        assert_record(record, model, context);
    }
    assert_eq!(
        read.next_offset(),
        offset + records.len() as u64,
        "{context}"
    );

    // Within max_bytes, unless the first batch alone is larger.
    let first = read.batches().next().unwrap();
    let first_header = BatchHeader::read(&first).unwrap();
    assert!(first_header.base_offset as u64 <= offset, "{context}");
    assert!((first_header.next_offset() as u64) > offset, "{context}");
    assert!(
        read.byte_len() <= max_bytes.max(first.len()),
        "{context}: read {} bytes for max_bytes {max_bytes}",
        read.byte_len()
    );
}

fn assert_record(record: &rivulet_format::Record, model: &Model, context: &str) {
    let offset = record.offset as u64;
    let want = &model.records[offset as usize];
    assert_eq!(
        record.timestamp, want.timestamp,
        "{context}: offset {offset}"
    );
    assert_eq!(
        record.key.as_deref(),
        want.key.as_deref(),
        "{context}: offset {offset}"
    );
    assert_eq!(
        record.value.as_deref(),
        want.value.as_deref(),
        "{context}: offset {offset}"
    );
}

fn assert_out_of_range<T: std::fmt::Debug>(
    result: Result<T, StorageError>,
    offset: u64,
    model: &Model,
    context: &str,
) {
    match result {
        Err(StorageError::OffsetOutOfRange {
            requested,
            log_start,
            log_end,
        }) => assert_eq!(
            (requested, log_start, log_end),
            (offset, model.log_start, model.log_end()),
            "{context}"
        ),
        other => panic!("{context}: offset {offset} out of range gave {other:?}"),
    }
}

/// Size-based retention deletes the oldest sealed segments while what remains stays at or above
/// the limit, and no further.
fn check_retention_stopped_in_time(
    log: &PartitionLog,
    config: &LogConfig,
    deleted: usize,
    context: &str,
) {
    let Some(limit) = config.retention_bytes else {
        assert_eq!(deleted, 0, "{context}");
        return;
    };
    let size = log.size_bytes();
    if deleted > 0 {
        assert!(
            size >= limit,
            "{context}: deleted down to {size} bytes, limit {limit}"
        );
    }
    let bases = segment_bases(log.dir());
    assert_eq!(bases.len(), log.segment_count(), "{context}");
    if bases.len() > 1 {
        let oldest = fs::metadata(segment_file(log.dir(), bases[0], "log"))
            .unwrap()
            .len();
        assert!(
            size - oldest < limit,
            "{context}: {size} bytes left with limit {limit}, but the oldest segment \
             ({oldest} bytes) could go"
        );
    }
}
