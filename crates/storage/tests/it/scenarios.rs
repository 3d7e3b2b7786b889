//! Acceptance scenarios BC-04, BC-05 and BC-07 at the
//! storage level: the partition log alone, with time passed in rather than waited for.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rivulet_storage::{LogConfig, PartitionLog, StorageError};

use crate::fixture::{batch, offsets, segment_bases, segment_file};

fn assert_out_of_range(log: &PartitionLog, offset: u64, start: u64, end: u64) {
    match log.read(offset, 1 << 20) {
        Err(StorageError::OffsetOutOfRange {
            requested,
            log_start,
            log_end,
        }) => assert_eq!((requested, log_start, log_end), (offset, start, end)),
        other => panic!("read at {offset} gave {other:?}, expected out of range"),
    }
}

fn bc_04_config() -> LogConfig {
    LogConfig::default()
        .with_segment_bytes(1024)
        .with_segment_age(Some(Duration::from_secs(1)))
        .with_retention_age(Some(Duration::from_secs(2)))
}

/// 50 records in batches of five, then a retention pass late enough that the active segment
/// rolls and every sealed segment expires: an empty active segment at 50 and nothing else.
fn bc_04_log_with_empty_active_segment(dir: &Path) {
    let (log, _) = PartitionLog::open(dir, bc_04_config()).unwrap();
    for i in 0..10 {
        log.append(&mut batch(5, 1_700_000_000_000 + i, 100))
            .unwrap();
    }
    assert!(log.segment_count() > 1);
    let outcome = log
        .enforce_retention(SystemTime::now() + Duration::from_secs(10))
        .unwrap();
    assert!(outcome.rolled);
    assert_eq!(outcome.log_start_offset, 50);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (50, 50));
    assert_eq!(segment_bases(dir), vec![50]);
    // kill -9 before any further write.
    drop(log);
}

/// After the restart the empty log still ends at 50, and the next record gets offset 50.
fn bc_04_check_after_restart(dir: &Path) {
    let (log, report) = PartitionLog::open(dir, bc_04_config()).unwrap();
    assert!(!report.clean_shutdown);
    assert_eq!((report.log_start_offset, report.log_end_offset), (50, 50));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (50, 50));
    assert_out_of_range(&log, 0, 50, 50);
    assert!(log.read(50, 1 << 20).unwrap().is_empty());

    // A consumer committed at 50 receives the new record at 50.
    assert_eq!(log.append(&mut batch(1, 1, 10)).unwrap().base_offset, 50);
    let read = log.read(50, 1 << 20).unwrap();
    assert_eq!(offsets(&read.records().unwrap()), vec![50]);
    drop(log);

    let (log, _) = PartitionLog::open(dir, bc_04_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (50, 51));
}

#[test]
fn bc_04_offsets_do_not_go_backwards_after_unclean_restart_with_empty_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    bc_04_log_with_empty_active_segment(dir.path());
    bc_04_check_after_restart(dir.path());
}

/// The empty segment's base offset is durable in its file name alone: neither the log-start
/// checkpoint nor its (empty) indexes are needed to remember it.
#[test]
fn bc_04_the_base_offset_of_an_empty_segment_survives_without_checkpoint_or_indexes() {
    let dir = tempfile::tempdir().unwrap();
    bc_04_log_with_empty_active_segment(dir.path());
    for name in fs::read_dir(dir.path()).unwrap() {
        let path = name.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "log") {
            fs::remove_file(path).unwrap();
        }
    }
    assert_eq!(
        fs::metadata(segment_file(dir.path(), 50, "log"))
            .unwrap()
            .len(),
        0
    );
    bc_04_check_after_restart(dir.path());
}

#[test]
fn bc_04_repeated_restarts_and_retention_passes_keep_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    bc_04_log_with_empty_active_segment(dir.path());
    for round in 0..3 {
        let (log, _) = PartitionLog::open(dir.path(), bc_04_config()).unwrap();
        let outcome = log
            .enforce_retention(SystemTime::now() + Duration::from_secs(100 * (round + 1)))
            .unwrap();
        assert!(!outcome.rolled, "an empty active segment is never rolled");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (50, 50));
        if round == 1 {
            log.close().unwrap();
        }
    }
    bc_04_check_after_restart(dir.path());
}

fn bc_05_config() -> LogConfig {
    LogConfig::default()
        .with_segment_age(Some(Duration::from_secs(2)))
        .with_retention_age(Some(Duration::from_secs(10)))
}

/// What a client sees of a partition: start, end, and the outcome of reads at 0 and at the start.
#[derive(Debug, PartialEq, Eq)]
struct Metadata {
    log_start: u64,
    log_end: u64,
    read_at_zero: String,
    read_at_start_is_empty: bool,
}

fn metadata(log: &PartitionLog) -> Metadata {
    Metadata {
        log_start: log.log_start_offset(),
        log_end: log.log_end_offset(),
        read_at_zero: format!("{:?}", log.read(0, 1 << 20).map(|r| r.byte_len())),
        read_at_start_is_empty: log
            .read(log.log_start_offset(), 1 << 20)
            .unwrap()
            .is_empty(),
    }
}

/// How the scenario gets past its wait: with or without a restart, clean or not, and whether
/// retention ran before the restart or only after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    None,
    Clean,
    Crash,
    CrashBeforeRetention,
}

fn bc_05_run(restart: Restart) -> Metadata {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), bc_05_config()).unwrap();
    // 20 records over "5 s": the timestamps say so; the files are written at once.
    for i in 0..5 {
        log.append(&mut batch(4, 1_700_000_000_000 + i * 1_250, 50))
            .unwrap();
    }
    let later = SystemTime::now() + Duration::from_secs(30);
    if restart != Restart::CrashBeforeRetention {
        log.enforce_retention(later).unwrap();
    }
    match restart {
        Restart::None => {}
        Restart::Clean => {
            log.close().unwrap();
            log = PartitionLog::open(dir.path(), bc_05_config()).unwrap().0;
        }
        Restart::Crash => {
            drop(log);
            log = PartitionLog::open(dir.path(), bc_05_config()).unwrap().0;
        }
        Restart::CrashBeforeRetention => {
            drop(log);
            log = PartitionLog::open(dir.path(), bc_05_config()).unwrap().0;
            log.enforce_retention(later).unwrap();
        }
    }

    let seen = metadata(&log);
    assert_eq!((seen.log_start, seen.log_end), (20, 20), "{restart:?}");
    assert_out_of_range(&log, 0, 20, 20);
    assert_out_of_range(&log, 19, 20, 20);
    assert_out_of_range(&log, 21, 20, 20);

    // The long poll at the log start is answered by the next produce, at offset 20.
    assert_eq!(log.append(&mut batch(1, 1, 10)).unwrap().base_offset, 20);
    let read = log.read(seen.log_start, 1 << 20).unwrap();
    assert_eq!(offsets(&read.records().unwrap()), vec![20], "{restart:?}");
    seen
}

#[test]
fn bc_05_reading_from_the_beginning_after_retention_is_the_same_with_and_without_restart() {
    let without = bc_05_run(Restart::None);
    for restart in [
        Restart::Clean,
        Restart::Crash,
        Restart::CrashBeforeRetention,
    ] {
        assert_eq!(bc_05_run(restart), without, "{restart:?}");
    }
}

fn bc_07_log(dir: &Path) -> PartitionLog {
    let config = LogConfig::default()
        .with_segment_bytes(2048)
        .with_index_interval_bytes(4096);
    let (log, _) = PartitionLog::open(dir, config).unwrap();
    for i in 0..3 {
        let info = log.append(&mut batch(16, 1_000 + i * 100, 40)).unwrap();
        assert_eq!(info.base_offset, 16 * i as u64);
    }
    assert_eq!(log.log_end_offset(), 48);
    log
}

#[test]
fn bc_07_a_read_from_inside_a_stored_batch_starts_exactly_at_the_requested_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = bc_07_log(dir.path());
    let bases = segment_bases(dir.path());
    assert!(bases.len() >= 2, "{bases:?}");

    let mut targets = vec![45, 33, 16, 0, 47];
    for &base in &bases {
        targets.push(base);
        targets.extend(base.checked_sub(1));
    }
    for offset in targets {
        for max_bytes in [1, 500, 2048, 1 << 20] {
            let read = log.read(offset, max_bytes).unwrap();
            let records = read.records().unwrap();
            assert_eq!(records[0].offset as u64, offset, "read at {offset}");
            assert!(records.iter().all(|r| r.offset as u64 >= offset));
            let got = offsets(&records);
            assert_eq!(got, (offset..offset + got.len() as u64).collect::<Vec<_>>());
            // The stored batch may start below the offset; records() is what filters.
            let first = read.batches().next().unwrap();
            let header = rivulet_format::BatchHeader::read(&first).unwrap();
            assert!(header.base_offset as u64 <= offset);
            assert!(header.last_offset() as u64 >= offset);
        }
    }

    // At the log end: an empty result, not a record from the last batch.
    let read = log.read(48, 1 << 20).unwrap();
    assert!(read.is_empty());
    assert!(read.records().unwrap().is_empty());
    assert_eq!((read.next_offset(), read.log_end_offset()), (48, 48));
}

#[test]
fn bc_07_a_consumer_committed_at_45_first_sees_offset_45_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    drop(bc_07_log(dir.path()));
    let config = LogConfig::default()
        .with_segment_bytes(2048)
        .with_index_interval_bytes(4096);
    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    let records = log.read(45, 1).unwrap().records().unwrap();
    assert_eq!(offsets(&records), vec![45, 46, 47]);
}
