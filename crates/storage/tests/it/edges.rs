//! Edge cases of appends and reads: empty and null fields, batch size limits, batches larger
//! than a segment, segment boundaries, timestamps out of order, many segments, refused batches
//! and the meaning of `max_bytes`.

use std::fs;
use std::path::Path;
use std::time::Instant;

use bytes::BytesMut;
use rivulet_format::header::{
    CRC_OFFSET, LAST_OFFSET_DELTA_OFFSET, RECORD_COUNT_OFFSET, compute_crc,
};
use rivulet_format::{BatchHeader, FormatError};
use rivulet_storage::{FlushPolicy, LogConfig, PartitionLog, StorageError, WRITEBACK_CHUNK};

use crate::fixture::{
    Spec, batch, batches_in, build, dir_contents, offsets, read_all, segment_bases, segment_file,
    small_config,
};

/// One record with a `value_len`-byte value, adjusted so the whole batch is exactly `total` bytes.
fn batch_of_exactly(total: usize) -> BytesMut {
    let mut value_len = total.saturating_sub(80);
    loop {
        let built = build(&[Spec::new(1, None, Some(&vec![7; value_len]))]);
        match built.len().cmp(&total) {
            std::cmp::Ordering::Equal => return built,
            std::cmp::Ordering::Less => value_len += 1,
            std::cmp::Ordering::Greater => value_len -= 1,
        }
    }
}

/// Rewrites header fields of `batch` and seals it again with a correct CRC.
fn reseal(batch: &mut [u8], edit: impl FnOnce(&mut [u8])) {
    edit(batch);
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn empty_values_and_null_keys_come_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = PartitionLog::open(dir.path(), small_config()).unwrap();
    let specs = [
        Spec::new(1, None, None),
        Spec::new(2, None, Some(&b""[..])),
        Spec::new(3, Some(&b""[..]), Some(&b""[..])),
        Spec::new(4, Some(&b"k"[..]), None),
        Spec::new(5, Some(&b""[..]), None),
        Spec::new(6, Some(&b"k"[..]), Some(&b"v"[..])),
    ];
    log.append(&mut build(&specs)).unwrap();
    log.append(&mut build(&specs[1..2])).unwrap();
    let records = read_all(&log, 0);
    let want: Vec<&Spec> = specs.iter().chain(&specs[1..2]).collect();
    assert_eq!(records.len(), want.len());
    for (record, spec) in records.iter().zip(want) {
        assert_eq!(
            record.key.as_deref(),
            spec.key.as_deref(),
            "offset {}",
            record.offset
        );
        assert_eq!(
            record.value.as_deref(),
            spec.value.as_deref(),
            "offset {}",
            record.offset
        );
        assert_eq!(record.timestamp, spec.timestamp);
    }
}

#[test]
fn a_batch_of_exactly_max_batch_bytes_is_stored_and_one_byte_more_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config().with_max_batch_bytes(3000);
    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();

    let mut tiny = build(&[Spec::new(1, None, Some(&b"x"[..]))]);
    assert_eq!(log.append(&mut tiny).unwrap().base_offset, 0);

    let mut largest = batch_of_exactly(3000);
    assert_eq!(log.append(&mut largest).unwrap().base_offset, 1);
    let read = log.read(1, 1).unwrap();
    assert_eq!(read.byte_len(), 3000);
    assert!(read.records().unwrap()[0].value.as_ref().unwrap().len() > 2900);

    let before = dir_contents(dir.path());
    let mut too_large = batch_of_exactly(3001);
    match log.append(&mut too_large) {
        Err(StorageError::InvalidBatch(FormatError::BatchTooLarge { size, max })) => {
            assert_eq!((size, max), (3001, 3000));
        }
        other => panic!("a batch over the limit gave {other:?}"),
    }
    assert_eq!(
        dir_contents(dir.path()),
        before,
        "a refused batch changed the files"
    );
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.append(&mut tiny).unwrap().base_offset, 2);
}

#[test]
fn a_batch_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config()
        .with_segment_bytes(1024)
        .with_max_batch_bytes(64 * 1024);
    let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    log.append(&mut batch(2, 1, 10)).unwrap();
    let big = log.append(&mut batch_of_exactly(5000)).unwrap();
    log.append(&mut batch(2, 3, 10)).unwrap();
    let big_again = log.append(&mut batch_of_exactly(5000)).unwrap();
    log.append(&mut batch(2, 5, 10)).unwrap();

    let bases = segment_bases(dir.path());
    assert_eq!(bases, vec![0, big.base_offset, 3, big_again.base_offset, 6]);
    for base in [big.base_offset, big_again.base_offset] {
        let stored = batches_in(&segment_file(dir.path(), base, "log"));
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].1.total_len(), 5000);
    }
    for max_bytes in [0, 1, 1000, 5000, 1 << 20] {
        for offset in 0..8 {
            let read = log.read(offset, max_bytes.max(1)).unwrap();
            assert_eq!(read.records().unwrap()[0].offset as u64, offset);
        }
    }
    log.close().unwrap();
    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert!(report.rebuilt_indexes.is_empty(), "{report:?}");
    assert_eq!(offsets(&read_all(&log, 0)), (0..8).collect::<Vec<_>>());
}

#[test]
fn reads_at_and_around_every_segment_boundary_start_at_the_requested_offset() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config().with_segment_bytes(2048);
    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    for i in 0..40 {
        log.append(&mut batch(1 + i % 7, i as i64, 60)).unwrap();
    }
    let end = log.log_end_offset();
    let bases = segment_bases(dir.path());
    assert!(bases.len() > 5);
    for &base in &bases[1..] {
        for offset in [base - 2, base - 1, base, base + 1] {
            for max_bytes in [1, 100, 700, 2048, 4096, 1 << 20] {
                let read = log.read(offset, max_bytes).unwrap();
                let records = read.records().unwrap();
                assert_eq!(
                    records[0].offset as u64, offset,
                    "read at {offset}, {max_bytes}"
                );
                let got = offsets(&records);
                let want: Vec<u64> = (offset..offset + got.len() as u64).collect();
                assert_eq!(got, want, "read at {offset}, {max_bytes}");
                assert!(got.last().unwrap() < &end);
            }
        }
    }
}

#[test]
fn offset_for_timestamp_looks_at_records_not_batch_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config()
        .with_segment_bytes(1024)
        .with_index_interval_bytes(64);
    let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    // Timestamps jump around within and across batches, from -1 (none) up; some repeat.
    let mut all = Vec::new();
    let mut state = 12345u64;
    for _ in 0..60 {
        let specs: Vec<Spec> = (0..1 + state % 6)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                Spec::new(((state >> 33) % 500) as i64 - 1, None, Some(&[1; 40]))
            })
            .collect();
        log.append(&mut build(&specs)).unwrap();
        all.extend(specs.iter().map(|s| s.timestamp));
    }
    assert!(log.segment_count() > 5);
    let expected = |start: u64, ts: i64| (start..all.len() as u64).find(|&o| all[o as usize] >= ts);
    for ts in -10..=510 {
        assert_eq!(
            log.offset_for_timestamp(ts).unwrap(),
            expected(0, ts),
            "timestamp {ts}"
        );
    }
    // With the log start inside a batch, and after reopening.
    log.delete_before(37).unwrap();
    log.close().unwrap();
    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    for ts in -10..=510 {
        assert_eq!(
            log.offset_for_timestamp(ts).unwrap(),
            expected(37, ts),
            "timestamp {ts}"
        );
    }
}

/// Descriptors this process holds open on files inside `dir`.
fn descriptors_in(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    entries
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[test]
fn thousands_of_segments_open_quickly_without_a_descriptor_each() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let config = small_config().with_segment_bytes(1024);
    let (log, _) = PartitionLog::open(&dir_path, config.clone()).unwrap();
    let started = Instant::now();
    // Each batch is over half a segment, so every append rolls.
    for i in 0..3000 {
        log.append(&mut batch(1, i, 600)).unwrap();
    }
    let write_time = started.elapsed();
    assert_eq!(log.segment_count(), 3000);
    let held_while_writing = descriptors_in(&dir_path);
    log.close().unwrap();
    assert_eq!(
        descriptors_in(&dir_path),
        0,
        "close leaves no descriptor behind"
    );

    let started = Instant::now();
    let (log, report) = PartitionLog::open(&dir_path, config.clone()).unwrap();
    let open_time = started.elapsed();
    assert!(
        report.rebuilt_indexes.is_empty(),
        "{:?}",
        report.rebuilt_indexes.len()
    );
    assert_eq!(log.log_end_offset(), 3000);
    for offset in (0..3000).step_by(97) {
        assert_eq!(
            log.read(offset, 1).unwrap().records().unwrap()[0].offset as u64,
            offset
        );
    }
    let held = descriptors_in(&dir_path);
    assert!(
        held <= 3 && held_while_writing <= 3,
        "{held} descriptors after open, {held_while_writing} while writing, for 3000 segments"
    );
    assert!(
        open_time.as_secs() < 10,
        "opening 3000 segments took {open_time:?} (writing them {write_time:?})"
    );
    drop(log);

    // An unclean shutdown scans only the active segment.
    let started = Instant::now();
    let (log, report) = PartitionLog::open(&dir_path, config).unwrap();
    let open_time = started.elapsed();
    assert_eq!(report.rebuilt_indexes, vec![2999]);
    assert_eq!(log.log_end_offset(), 3000);
    assert!(
        open_time.as_secs() < 10,
        "unclean open of 3000 segments took {open_time:?}"
    );
    assert!(descriptors_in(&dir_path) <= 3);
}

#[test]
fn an_empty_batch_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(&mut batch(3, 1, 10)).unwrap();
    // A header with no records: count 0, lastOffsetDelta 0, a correct CRC.
    let one = batch(1, 1, 0);
    let mut empty = BytesMut::from(&one[..61]);
    let length: i32 = 61 - 12;
    empty[8..12].copy_from_slice(&length.to_be_bytes());
    reseal(&mut empty, |b| {
        b[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&0i32.to_be_bytes());
        b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
            .copy_from_slice(&0i32.to_be_bytes());
    });
    assert_eq!(BatchHeader::read(&empty).unwrap().record_count, 0);

    let before = dir_contents(dir.path());
    assert!(matches!(
        log.append(&mut empty),
        Err(StorageError::EmptyBatch)
    ));
    assert_eq!(dir_contents(dir.path()), before);
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn a_batch_with_a_bad_crc_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(&mut batch(3, 1, 10)).unwrap();
    let before = dir_contents(dir.path());
    for at in [CRC_OFFSET, CRC_OFFSET + 4, 61, 70] {
        let mut bad = batch(2, 5, 10);
        bad[at] ^= 1;
        match log.append(&mut bad) {
            Err(StorageError::InvalidBatch(FormatError::CrcMismatch { .. })) => {}
            other => panic!("flipped byte {at} gave {other:?}"),
        }
        assert_eq!(dir_contents(dir.path()), before, "flipped byte {at}");
    }
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.append(&mut batch(1, 1, 1)).unwrap().base_offset, 3);
}

/// A batch whose header and CRC are fine but whose records section holds fewer records than
/// `recordCount` would take offsets that no record carries.
#[test]
fn a_batch_whose_record_count_disagrees_with_its_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = PartitionLog::open(dir.path(), small_config()).unwrap();
    let mut lying = batch(1, 1, 10);
    reseal(&mut lying, |b| {
        b[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&3i32.to_be_bytes());
        b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
            .copy_from_slice(&2i32.to_be_bytes());
    });
    let before = dir_contents(dir.path());
    let result = log.append(&mut lying);
    assert!(
        matches!(result, Err(StorageError::InvalidBatch(_))),
        "{result:?}"
    );
    assert_eq!(dir_contents(dir.path()), before);
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn max_bytes_bounds_a_read_except_for_its_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config().with_segment_bytes(4096);
    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    let size = batch(4, 1, 100).len();
    for i in 0..30 {
        log.append(&mut batch(4, i, 100)).unwrap();
    }
    assert!(log.segment_count() > 3);
    for offset in [0u64, 2, 4, 33, 60, 61, 116] {
        for k in 1..6 {
            for max_bytes in [k * size - 1, k * size, k * size + 1] {
                let read = log.read(offset, max_bytes).unwrap();
                let batches = read.byte_len() / size;
                assert_eq!(read.byte_len() % size, 0);
                assert!(batches >= 1, "read at {offset}, {max_bytes}");
                assert!(
                    batches == 1 || read.byte_len() <= max_bytes,
                    "read at {offset}, {max_bytes}: {} bytes",
                    read.byte_len()
                );
                assert_eq!(read.records().unwrap()[0].offset as u64, offset);
            }
        }
    }
    // The whole log fits a large budget only segment by segment, but each read fills it up to
    // the end of the segment it starts in.
    let read = log.read(0, 1 << 20).unwrap();
    assert!(read.byte_len() >= 4096 - size, "{} bytes", read.byte_len());
}

#[test]
fn a_read_with_max_bytes_zero_still_returns_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(&mut batch(3, 1, 10)).unwrap();
    let read = log.read(1, 0).unwrap();
    assert_eq!(offsets(&read.records().unwrap()), vec![1, 2]);
    assert_eq!(read.next_offset(), 3);
}

/// With a small `index_max_bytes` the time index (12-byte entries) fills before the offset index
/// (8-byte entries) and the segment rolls; sealing it must still leave indexes the next clean
/// open accepts.
#[test]
fn a_segment_rolled_for_a_full_index_reopens_without_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config()
        .with_segment_bytes(1 << 30)
        .with_index_interval_bytes(1)
        .with_index_max_bytes(4096);
    let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    for i in 0..800 {
        log.append(&mut batch(1, i, 1)).unwrap();
    }
    assert!(log.segment_count() >= 2, "the index never filled");
    log.close().unwrap();
    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert!(report.clean_shutdown);
    assert!(report.rebuilt_indexes.is_empty(), "{report:?}");
    assert_eq!(log.offset_for_timestamp(500).unwrap(), Some(500));
    assert_eq!(offsets(&read_all(&log, 0)), (0..800).collect::<Vec<_>>());
}

#[test]
fn starting_write_back_makes_nothing_durable_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default()
        .with_segment_bytes(4 << 20)
        .with_flush(FlushPolicy::Os);
    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    // Under one chunk, then over it, then across a roll (the new file starts from its start).
    let mut appended = 0;
    for round in 0..12u64 {
        for _ in 0..2 {
            log.append(&mut batch(256, round as i64, 1024)).unwrap();
            appended += 256;
        }
        log.start_writeback();
        // Rolls sync the segment they seal; nothing of the active segment is durable.
        let active_base = *segment_bases(dir.path()).last().unwrap();
        assert_eq!(
            log.durable_offset(),
            active_base,
            "write-back made round {round} durable"
        );
    }
    assert!(log.segment_count() >= 2, "the test needs a roll");
    const { assert!(WRITEBACK_CHUNK < 4 << 20) };
    let records = read_all(&log, 0);
    assert_eq!(offsets(&records), (0..appended).collect::<Vec<_>>());
    assert_eq!(log.flush().unwrap(), appended);
}

#[test]
fn a_checked_batch_is_appended_as_checked_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = PartitionLog::open(dir.path(), small_config()).unwrap();
    let limits = rivulet_format::BatchLimits::default();
    log.append(&mut batch(2, 1_000, 10)).unwrap();

    let mut checked =
        rivulet_format::check_produced_batch(batch(3, 1_000, 10), &limits, 1 << 20).unwrap();
    let info = log.append_checked(&mut checked).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (2, 4));
    assert_eq!(checked.header().base_offset, 2);
    assert_eq!(offsets(&read_all(&log, 0)), vec![0, 1, 2, 3, 4]);

    // Over this log's own batch limit, it is refused as `append` refuses it.
    let (small, _) = PartitionLog::open(
        dir.path().join("small"),
        small_config().with_max_batch_bytes(100),
    )
    .unwrap();
    let mut big =
        rivulet_format::check_produced_batch(batch(3, 1_000, 50), &limits, 1 << 20).unwrap();
    let err = small.append_checked(&mut big).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::InvalidBatch(FormatError::BatchTooLarge { .. })
        ),
        "{err:?}"
    );
    assert_eq!(small.log_end_offset(), 0);
}
