//! Crashes and damage: torn tails cut at every byte, lost or damaged indexes, flipped bits in
//! sealed and active segments, zero-filled tails.

use std::fs;
use std::path::Path;

use rivulet_storage::{LogConfig, PartitionLog, StorageError};

use crate::fixture::{
    batch, batches_in, flip_bit, offsets, read_all, segment_bases, segment_file, small_config,
    truncate_file,
};

/// Ten batches of five records with rising timestamps, except that batches 3 and 7 go backwards;
/// with a 4 KiB segment, six batches fill a sealed segment and four sit in the active one.
fn write_log(dir: &Path, config: &LogConfig) -> Vec<(u64, u64)> {
    let (log, _) = PartitionLog::open(dir, config.clone()).unwrap();
    let mut batches = Vec::new();
    for i in 0..10u64 {
        let info = log.append(&mut batch(5, batch_timestamp(i), 100)).unwrap();
        batches.push((info.base_offset, info.last_offset + 1));
    }
    assert!(log.segment_count() >= 2, "test needs a sealed segment");
    drop(log);
    batches
}

fn batch_timestamp(i: u64) -> i64 {
    if i == 3 || i == 7 {
        400 + i as i64 * 10
    } else {
        1000 + i as i64 * 50
    }
}

/// Timestamps `write_log` gave each offset.
fn timestamp_of(offset: u64) -> i64 {
    batch_timestamp(offset / 5) + (offset % 5) as i64
}

fn expected_offset_for_timestamp(end: u64, ts: i64) -> Option<u64> {
    (0..end).find(|&o| timestamp_of(o) >= ts)
}

fn check_contents(log: &PartitionLog, end: u64) {
    assert_eq!(log.log_end_offset(), end);
    let all = read_all(log, 0);
    assert_eq!(offsets(&all), (0..end).collect::<Vec<_>>());
    for record in &all {
        assert_eq!(record.timestamp, timestamp_of(record.offset as u64));
    }
    for ts in [
        0, 430, 434, 435, 470, 999, 1000, 1001, 1049, 1050, 1260, 1300, 1451, 1454, 1455,
    ] {
        assert_eq!(
            log.offset_for_timestamp(ts).unwrap(),
            expected_offset_for_timestamp(end, ts),
            "timestamp {ts}"
        );
    }
}

fn active_base(dir: &Path) -> u64 {
    *segment_bases(dir).last().unwrap()
}

#[test]
fn a_tail_torn_at_any_byte_of_the_last_batch_is_cut_back_to_whole_batches() {
    let template = tempfile::tempdir().unwrap();
    let config = small_config();
    let batches = write_log(template.path(), &config);
    let active = active_base(template.path());
    let log_path = segment_file(template.path(), active, "log");
    let stored = batches_in(&log_path);
    assert!(stored.len() >= 2, "the active segment needs two batches");
    let full_len = fs::metadata(&log_path).unwrap().len();
    let (last_position, _) = stored[stored.len() - 1];

    // Every byte inside the last batch, and a few into the one before it.
    for len in (last_position - 5)..full_len {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        truncate_file(&segment_file(dir.path(), active, "log"), len);

        let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
        let whole: Vec<_> = batches
            .iter()
            .filter(|&&(base, _)| {
                stored
                    .iter()
                    .find(|(_, h)| h.base_offset as u64 == base)
                    .is_none_or(|(position, h)| position + h.total_len() as u64 <= len)
            })
            .collect();
        let end = whole.last().unwrap().1;
        assert_eq!(log.log_end_offset(), end, "cut at {len}");
        if stored.iter().any(|&(position, _)| position == len) {
            assert!(report.torn_tail.is_none(), "cut at {len}: {report:?}");
        } else {
            let torn = report.torn_tail.as_ref().expect("torn tail reported");
            assert_eq!(torn.segment_base, active);
            assert_eq!(torn.position + torn.bytes_dropped, len, "{torn:?}");
        }
        assert!(report.corrupt_ranges.is_empty(), "cut at {len}: {report:?}");
        check_contents(&log, end);

        let info = log.append(&mut batch(2, 9000, 10)).unwrap();
        assert_eq!(info.base_offset, end, "cut at {len}");
        assert_eq!(
            log.read(end, 100).unwrap().records().unwrap()[0].timestamp,
            9000
        );
        drop(log);

        let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
        assert!(report.torn_tail.is_none(), "cut at {len}: {report:?}");
        assert_eq!(log.log_end_offset(), end + 2);
    }
}

#[test]
fn a_zero_filled_tail_is_cut_off_as_torn() {
    for zeros in [1u64, 12, 60, 61, 62, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config();
        let batches = write_log(dir.path(), &config);
        let end = batches.last().unwrap().1;
        let path = segment_file(dir.path(), active_base(dir.path()), "log");
        let len = fs::metadata(&path).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len + zeros)
            .unwrap();

        let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
        let torn = report.torn_tail.expect("zeros reported as a torn tail");
        assert_eq!((torn.position, torn.bytes_dropped), (len, zeros));
        assert_eq!(fs::metadata(&path).unwrap().len(), len);
        check_contents(&log, end);
        assert_eq!(log.append(&mut batch(1, 1, 1)).unwrap().base_offset, end);
    }
}

#[test]
fn a_zero_filled_tail_after_a_clean_shutdown_is_cut_off_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let batches = write_log(dir.path(), &config);
    let end = batches.last().unwrap().1;
    let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    log.close().unwrap();
    let path = segment_file(dir.path(), active_base(dir.path()), "log");
    let len = fs::metadata(&path).unwrap().len();
    truncate_file(&path, len + 100);

    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert!(!report.clean_shutdown);
    assert!(report.torn_tail.is_some(), "{report:?}");
    check_contents(&log, end);
}

/// Ways to damage an index file.
#[derive(Debug, Clone, Copy)]
enum IndexDamage {
    Delete,
    Empty,
    CutInsideHeader,
    GarbleHeader,
    GarbleEntries,
    CutInsideEntry,
}

const DAMAGES: [IndexDamage; 6] = [
    IndexDamage::Delete,
    IndexDamage::Empty,
    IndexDamage::CutInsideHeader,
    IndexDamage::GarbleHeader,
    IndexDamage::GarbleEntries,
    IndexDamage::CutInsideEntry,
];

fn damage(path: &Path, how: IndexDamage) {
    match how {
        IndexDamage::Delete => fs::remove_file(path).unwrap(),
        IndexDamage::Empty => truncate_file(path, 0),
        IndexDamage::CutInsideHeader => truncate_file(path, 13),
        IndexDamage::GarbleHeader => flip_bit(path, 20),
        IndexDamage::GarbleEntries => {
            let mut bytes = fs::read(path).unwrap();
            // A fixed pseudo-random pattern over every entry byte.
            let mut state = 0x9e37_79b9_u32;
            for b in &mut bytes[32..] {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            fs::write(path, bytes).unwrap();
        }
        IndexDamage::CutInsideEntry => {
            let len = fs::metadata(path).unwrap().len();
            truncate_file(path, (32 + (len - 32) / 2) | 1);
        }
    }
}

/// Whether a damage leaves an index that no longer answers for the whole segment.
fn needs_rebuild(how: IndexDamage, ext: &str) -> bool {
    // A shorter offset index is still a valid sparse index; a time index without its final entry
    // no longer says what the segment's largest timestamp is.
    !matches!(how, IndexDamage::CutInsideEntry) || ext == "timeindex"
}

#[test]
fn damaged_indexes_of_a_sealed_segment_are_rebuilt_and_lookups_stay_right() {
    for how in DAMAGES {
        for ext in ["index", "timeindex"] {
            let dir = tempfile::tempdir().unwrap();
            let config = small_config().with_index_interval_bytes(128);
            let batches = write_log(dir.path(), &config);
            let end = batches.last().unwrap().1;
            let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
            log.close().unwrap();
            let sealed = segment_bases(dir.path())[0];
            damage(&segment_file(dir.path(), sealed, ext), how);

            let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
            if needs_rebuild(how, ext) {
                assert!(
                    report.rebuilt_indexes.contains(&sealed),
                    "{how:?} {ext}: {report:?}"
                );
            }
            assert!(
                report.corrupt_ranges.is_empty(),
                "{how:?} {ext}: {report:?}"
            );
            check_contents(&log, end);
            for offset in 0..end {
                let records = log.read(offset, 1).unwrap().records().unwrap();
                assert_eq!(records[0].offset as u64, offset, "{how:?} {ext}");
            }
            log.close().unwrap();

            // The rebuilt index is kept: the next clean open needs no work.
            let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
            assert!(
                report.rebuilt_indexes.is_empty(),
                "{how:?} {ext}: {report:?}"
            );
            check_contents(&log, end);
        }
    }
}

#[test]
fn damaged_indexes_of_the_active_segment_are_rebuilt_after_a_clean_shutdown() {
    for how in DAMAGES {
        for ext in ["index", "timeindex"] {
            let dir = tempfile::tempdir().unwrap();
            let config = small_config().with_index_interval_bytes(128);
            let batches = write_log(dir.path(), &config);
            let end = batches.last().unwrap().1;
            let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
            log.close().unwrap();
            let active = active_base(dir.path());
            damage(&segment_file(dir.path(), active, ext), how);

            let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
            if !matches!(how, IndexDamage::CutInsideEntry) {
                assert!(
                    report.rebuilt_indexes.contains(&active),
                    "{how:?} {ext}: {report:?}"
                );
            }
            check_contents(&log, end);
            for offset in 0..end {
                let records = log.read(offset, 1).unwrap().records().unwrap();
                assert_eq!(records[0].offset as u64, offset, "{how:?} {ext}");
            }
            // Appends keep indexing correctly after the repair.
            let info = log.append(&mut batch(5, 2000, 100)).unwrap();
            assert_eq!(info.base_offset, end);
            drop(log);
            let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
            assert_eq!(log.log_end_offset(), end + 5);
            assert_eq!(log.offset_for_timestamp(2000).unwrap(), Some(end));
            assert_eq!(
                offsets(&read_all(&log, 0)),
                (0..end + 5).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn damaged_indexes_of_the_active_segment_are_rebuilt_after_a_crash() {
    for how in DAMAGES {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config().with_index_interval_bytes(128);
        let batches = write_log(dir.path(), &config);
        let end = batches.last().unwrap().1;
        let active = active_base(dir.path());
        damage(&segment_file(dir.path(), active, "index"), how);
        damage(&segment_file(dir.path(), active, "timeindex"), how);

        let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
        assert!(
            report.rebuilt_indexes.contains(&active),
            "{how:?}: {report:?}"
        );
        check_contents(&log, end);
    }
}

/// An index whose entries are in order but point at the wrong file positions is not a valid
/// index of its log.
#[test]
fn an_index_entry_pointing_into_the_middle_of_a_batch_does_not_break_reads() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config().with_index_interval_bytes(128);
    let batches = write_log(dir.path(), &config);
    let end = batches.last().unwrap().1;
    let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    log.close().unwrap();
    let sealed = segment_bases(dir.path())[0];
    let path = segment_file(dir.path(), sealed, "index");
    let mut bytes = fs::read(&path).unwrap();
    assert!(bytes.len() >= 32 + 16, "the sealed index needs two entries");
    // Move the first entry's position 7 bytes forward, into its batch.
    let position = u32::from_le_bytes(bytes[36..40].try_into().unwrap()) + 7;
    bytes[36..40].copy_from_slice(&position.to_le_bytes());
    fs::write(&path, bytes).unwrap();

    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    check_contents(&log, end);
}

/// A log whose sealed segment has a flipped bit in the middle of its second batch; returns the
/// segment base, the damaged batch's position and offsets, and the log end.
fn log_with_damaged_sealed_batch(dir: &Path, config: &LogConfig) -> (u64, u64, u64, u64, u64) {
    let batches = write_log(dir, config);
    let end = batches.last().unwrap().1;
    let sealed = segment_bases(dir)[0];
    let path = segment_file(dir, sealed, "log");
    let stored = batches_in(&path);
    assert!(stored.len() >= 3, "the sealed segment needs three batches");
    let (position, header) = stored[1];
    flip_bit(&path, position + header.total_len() as u64 / 2);
    let (bad_base, bad_next) = (header.base_offset as u64, header.next_offset() as u64);
    (sealed, position, bad_base, bad_next, end)
}

fn assert_corrupt(
    result: Result<rivulet_storage::LogRead, StorageError>,
    at: u64,
    want: (u64, u64, u64, u64),
) {
    match result {
        Err(StorageError::CorruptBatch {
            segment_base,
            position,
            offset,
            end_offset,
            ..
        }) => assert_eq!(
            (segment_base, position, offset, end_offset),
            want,
            "read at {at}: (segment, position, first offset, end offset)"
        ),
        other => panic!("read at {at} of a damaged batch gave {other:?}"),
    }
}

#[test]
fn a_flipped_bit_in_a_sealed_segment_fails_only_reads_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let (sealed, position, bad_base, bad_next, end) =
        log_with_damaged_sealed_batch(dir.path(), &config);

    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert!(
        report.corrupt_ranges.is_empty(),
        "sealed segments are not scanned on open"
    );
    assert_corrupt(
        log.read(bad_base, 1 << 20),
        bad_base,
        (sealed, position, bad_base, bad_next),
    );
    // Before the damage: the read stops short of it.
    for offset in 0..bad_base {
        let records = log.read(offset, 1 << 20).unwrap().records().unwrap();
        assert_eq!(offsets(&records), (offset..bad_base).collect::<Vec<_>>());
    }
    // After the damage: everything reads, across the segment boundary.
    assert_eq!(
        offsets(&read_all(&log, bad_next)),
        (bad_next..end).collect::<Vec<_>>()
    );
}

#[test]
fn a_read_inside_a_damaged_batch_reports_the_whole_batch_range() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let (sealed, position, bad_base, bad_next, _) =
        log_with_damaged_sealed_batch(dir.path(), &config);

    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    for offset in bad_base..bad_next {
        assert_corrupt(
            log.read(offset, 1 << 20),
            offset,
            (sealed, position, bad_base, bad_next),
        );
    }
}

#[test]
fn a_flipped_bit_inside_the_active_segment_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let batches = write_log(dir.path(), &config);
    let end = batches.last().unwrap().1;
    let active = active_base(dir.path());
    let path = segment_file(dir.path(), active, "log");
    let stored = batches_in(&path);
    assert!(stored.len() >= 3, "the active segment needs three batches");
    let (position, header) = stored[1];
    let (bad_base, bad_next) = (header.base_offset as u64, header.next_offset() as u64);
    let len = fs::metadata(&path).unwrap().len();
    flip_bit(&path, position + header.total_len() as u64 / 2);

    let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    assert!(report.torn_tail.is_none(), "{report:?}");
    assert_eq!(report.corrupt_ranges.len(), 1, "{report:?}");
    let range = &report.corrupt_ranges[0];
    assert_eq!(
        (
            range.segment_base,
            range.position,
            range.offset,
            range.end_offset
        ),
        (active, position, bad_base, bad_next)
    );
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        len,
        "damage must not be cut off"
    );
    assert_eq!(log.log_end_offset(), end);
    assert!(matches!(
        log.read(bad_base, 1 << 20),
        Err(StorageError::CorruptBatch { .. })
    ));
    assert_eq!(
        offsets(&read_all(&log, bad_next)),
        (bad_next..end).collect::<Vec<_>>()
    );
    assert_eq!(log.append(&mut batch(1, 1, 1)).unwrap().base_offset, end);
}

#[test]
fn a_damaged_length_field_in_a_sealed_segment_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let batches = write_log(dir.path(), &config);
    let end = batches.last().unwrap().1;
    let sealed = segment_bases(dir.path())[0];
    let path = segment_file(dir.path(), sealed, "log");
    let stored = batches_in(&path);
    let (position, header) = stored[1];
    // The batch length field is big-endian at byte 8; flip a bit of its high byte.
    flip_bit(&path, position + 8);

    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    let target = header.base_offset as u64 + 1;
    match log.read(target, 1 << 20) {
        Err(StorageError::CorruptBatch { .. }) => {}
        Ok(read) => panic!(
            "read at {target} of a damaged batch returned {} records, log end {end}",
            read.records().map_or(0, |r| r.len())
        ),
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// Truncation deletes the later segments newest first before it replaces the cut one, so a crash
/// part way leaves the newest segments gone and the rest whole: a shorter log, without holes.
#[test]
fn a_truncation_interrupted_after_deleting_newer_segments_reopens_as_a_prefix() {
    let template = tempfile::tempdir().unwrap();
    let config = small_config();
    let (log, _) = PartitionLog::open(template.path(), config.clone()).unwrap();
    for i in 0..20 {
        log.append(&mut batch(5, 1000 + i * 10, 100)).unwrap();
    }
    drop(log);
    let bases = segment_bases(template.path());
    assert!(bases.len() >= 3, "test needs three segments");

    for deleted in 1..bases.len() {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        for &base in &bases[bases.len() - deleted..] {
            for ext in ["timeindex", "index", "log"] {
                fs::remove_file(segment_file(dir.path(), base, ext)).unwrap();
            }
        }
        let end = bases[bases.len() - deleted];
        let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
        assert!(report.corrupt_ranges.is_empty(), "{report:?}");
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(offsets(&read_all(&log, 0)), (0..end).collect::<Vec<_>>());
        assert_eq!(log.append(&mut batch(1, 1, 1)).unwrap().base_offset, end);
    }
}

/// A sealed segment cut at a batch boundary (say, by a tool or a file system that lost its tail)
/// no longer reaches the next segment's base: the missing offsets are damage, to be reported on
/// open like any other.
#[test]
fn a_sealed_segment_missing_its_last_batches_is_reported_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let batches = write_log(dir.path(), &config);
    let end = batches.last().unwrap().1;
    let bases = segment_bases(dir.path());
    let path = segment_file(dir.path(), bases[0], "log");
    let stored = batches_in(&path);
    let (cut, last) = stored[stored.len() - 1];
    truncate_file(&path, cut);

    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(log.log_end_offset(), end);
    let missing = (last.base_offset as u64, bases[1]);
    assert!(
        matches!(
            log.read(missing.0, 1 << 20),
            Err(StorageError::CorruptBatch { .. })
        ),
        "reads of the missing offsets fail"
    );
    assert!(
        report
            .corrupt_ranges
            .iter()
            .any(|r| (r.segment_base, r.offset, r.end_offset) == (bases[0], missing.0, missing.1)),
        "missing offsets {missing:?} not reported: {report:?}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Bytes before the first entry of an index file (see docs/format/segment.md).
const INDEX_HEADER_LEN: usize = 32;

/// Three one-record batches, every batch indexed, closed cleanly; then `edit` changes the
/// active segment's index files. Reopening must not trust entries past the log end: the next
/// append, a roll and reads of every offset work.
fn clean_reopen_after(edit: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default().with_index_interval_bytes(1);
    let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    for i in 0..3 {
        log.append(&mut batch(1, 1000 + i, 10)).unwrap();
    }
    log.close().unwrap();
    edit(dir.path());

    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert!(
        !report.rebuilt_indexes.is_empty() || !report.clean_shutdown,
        "an index naming offsets past the log end was trusted: {report:?}"
    );
    log.append(&mut batch(1, 2000, 10)).unwrap();
    log.roll().unwrap();
    log.append(&mut batch(1, 3000, 10)).unwrap();
    assert_eq!(offsets(&read_all(&log, 0)), vec![0, 1, 2, 3, 4]);
    for offset in 0..5 {
        let read = log.read(offset, 1).unwrap();
        assert_eq!(read.batches().count(), 1, "offset {offset}");
    }
    assert_eq!(log.offset_for_timestamp(1500).unwrap(), Some(3));
}

#[test]
fn a_clean_reopen_rebuilds_an_offset_index_entry_past_the_log_end() {
    clean_reopen_after(|dir| {
        let path = segment_file(dir, 0, "index");
        let mut bytes = fs::read(&path).unwrap();
        // Slots 0 and 1 hold offsets 1 and 2; slot 2 gets offset 1000 at a plausible position.
        let slot = INDEX_HEADER_LEN + 2 * 8;
        let last_position = u32::from_le_bytes(bytes[slot - 4..slot].try_into().unwrap());
        bytes[slot..slot + 4].copy_from_slice(&1000u32.to_le_bytes());
        bytes[slot + 4..slot + 8].copy_from_slice(&(last_position + 1).to_le_bytes());
        fs::write(&path, bytes).unwrap();
    });
}

#[test]
fn a_clean_reopen_rebuilds_a_time_index_entry_past_the_log_end() {
    clean_reopen_after(|dir| {
        let path = segment_file(dir, 0, "timeindex");
        let mut bytes = fs::read(&path).unwrap();
        let slot = INDEX_HEADER_LEN + 2 * 12;
        bytes[slot..slot + 8].copy_from_slice(&5000i64.to_le_bytes());
        bytes[slot + 8..slot + 12].copy_from_slice(&1000u32.to_le_bytes());
        fs::write(&path, bytes).unwrap();
    });
}

#[test]
fn a_read_with_the_largest_max_bytes_returns_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch(2, 1000, 10)).unwrap();
    log.append(&mut batch(2, 1000, 10)).unwrap();
    let read = log.read(2, usize::MAX).unwrap();
    assert_eq!(read.batches().count(), 1);
    assert_eq!(offsets(&read_all(&log, 0)), vec![0, 1, 2, 3]);
}
