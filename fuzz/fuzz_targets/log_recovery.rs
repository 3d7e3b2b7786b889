//! Opens a partition log whose files hold arbitrary bytes: recovery must never panic, and the
//! log it recovers must be usable.
//!
//! The input is split into a segment file, an offset index and a time index (the first two
//! bytes of input give the split points), written into a fresh directory as segment 0, and the
//! log is opened twice: as the only (active) segment, and as a sealed segment before an empty
//! active one. After opening, the log is read from start to end (stepping over each damaged range
//! the errors report), a timestamp is looked up, and a batch is appended; errors are fine, panics
//! are not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rivulet_format::{BatchBuilder, Compression};
use rivulet_storage::{LogConfig, PartitionLog, StorageError};

/// Most reads one input makes.
const MAX_READS: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let cut_a = (*a as usize * rest.len() / 255).min(rest.len());
    let cut_b = (cut_a + *b as usize * (rest.len() - cut_a) / 255).min(rest.len());
    let (log_bytes, indexes) = rest.split_at(cut_a);
    let (offset_index, time_index) = indexes.split_at(cut_b - cut_a);

    for sealed in [false, true] {
        let Ok(dir) = tempfile::tempdir() else {
            return;
        };
        let name = |ext: &str| dir.path().join(format!("{:020}.{ext}", 0));
        let written = std::fs::write(name("log"), log_bytes)
            .and_then(|()| std::fs::write(name("index"), offset_index))
            .and_then(|()| std::fs::write(name("timeindex"), time_index));
        if written.is_err() {
            return;
        }
        if sealed {
            // An empty active segment far enough on that every offset of segment 0 fits.
            let next = dir.path().join(format!("{:020}.log", 1_000_000));
            if std::fs::write(next, b"").is_err() {
                return;
            }
        }
        exercise(dir.path());
    }
});

fn exercise(dir: &std::path::Path) {
    let config = LogConfig::default()
        .with_segment_bytes(64 * 1024)
        .with_index_interval_bytes(128);
    let Ok((log, _report)) = PartitionLog::open(dir, config) else {
        return;
    };
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    // A damaged range may span most of the million offsets below the empty active segment;
    // stepping over it as the error says keeps one input fast, and the bound keeps it finite.
    for _ in 0..MAX_READS {
        if offset >= end {
            break;
        }
        offset = match log.read(offset, 4096) {
            Ok(read) if !read.is_empty() => {
                let _ = read.records();
                read.next_offset().max(offset + 1)
            }
            Err(StorageError::CorruptBatch { end_offset, .. }) => end_offset.max(offset + 1),
            _ => offset + 1,
        };
    }
    let _ = log.offset_for_timestamp(0);
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(0, Some(b"k"), Some(b"v"), &[]);
    if let Ok(mut batch) = builder.build() {
        let _ = log.append(&mut batch);
    }
}
