//! Shared pieces of the integration tests: building batches, reading a whole log back, and
//! looking at (and tampering with) the files of a partition directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use rivulet_format::{BatchBuilder, BatchHeader, Compression, Record};
use rivulet_storage::{FlushPolicy, LogConfig, PartitionLog};

/// One record to append: timestamp, key, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl Spec {
    pub fn new(timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        Spec {
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
        }
    }
}

/// Builds an uncompressed batch of `specs`.
pub fn build(specs: &[Spec]) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    for spec in specs {
        builder.push(
            spec.timestamp,
            spec.key.as_deref(),
            spec.value.as_deref(),
            &[],
        );
    }
    builder.build().unwrap()
}

/// `n` records with timestamps `ts, ts + 1, ...`, keys `k0, k1, ...` and `value_len`-byte values.
pub fn specs(n: usize, ts: i64, value_len: usize) -> Vec<Spec> {
    (0..n)
        .map(|i| Spec {
            timestamp: ts + i as i64,
            key: Some(format!("k{i}").into_bytes()),
            value: Some(vec![b'v'; value_len]),
        })
        .collect()
}

/// A batch of [`specs`].
pub fn batch(n: usize, ts: i64, value_len: usize) -> BytesMut {
    build(&specs(n, ts, value_len))
}

/// A small-segment config that never fsyncs on its own, so tests run at page-cache speed.
pub fn small_config() -> LogConfig {
    LogConfig::default()
        .with_segment_bytes(4096)
        .with_index_interval_bytes(256)
        .with_flush(FlushPolicy::Os)
}

/// Reads every record from `from` to the log end, a few KiB per read.
pub fn read_all(log: &PartitionLog, from: u64) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.log_end_offset() {
        let read = log.read(at, 3000).unwrap();
        let records = read.records().unwrap();
        assert!(
            !records.is_empty(),
            "read at {at} below the log end returned nothing"
        );
        assert_eq!(
            records[0].offset as u64, at,
            "read at {at} started elsewhere"
        );
        at = records.last().unwrap().offset as u64 + 1;
        out.extend(records);
    }
    out
}

/// Offsets of `records`.
pub fn offsets(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.offset as u64).collect()
}

/// `dir/<base, 20 digits>.<ext>`.
pub fn segment_file(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// Base offsets of the segment log files in `dir`, in order.
pub fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// Every file in `dir` with its contents, to show that an operation changed nothing on disk.
pub fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().into_string().unwrap(),
                fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

/// `(position, header)` of every batch in a segment log file.
pub fn batches_in(path: &Path) -> Vec<(u64, BatchHeader)> {
    let bytes = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut position = 0usize;
    while position < bytes.len() {
        let header = BatchHeader::read(&bytes[position..]).unwrap();
        out.push((position as u64, header));
        position += header.total_len();
    }
    out
}

/// Flips one bit of the file at `position`.
pub fn flip_bit(path: &Path, position: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

/// Cuts the file to `len` bytes.
pub fn truncate_file(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}
