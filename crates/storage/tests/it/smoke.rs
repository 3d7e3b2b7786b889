use rivulet_format::{BatchBuilder, Compression};
use rivulet_storage::{FlushPolicy, LogConfig, PartitionLog};

fn batch(n: usize, ts: i64) -> bytes::BytesMut {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..n {
        b.push(
            ts + i as i64,
            Some(format!("k{i}").as_bytes()),
            Some(&[b'x'; 100]),
            &[],
        );
    }
    b.build().unwrap()
}

#[test]
fn append_read_roll_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default()
        .with_segment_bytes(4096)
        .with_index_interval_bytes(512)
        .with_flush(FlushPolicy::Os);
    let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    assert_eq!(report.log_end_offset, 0);
    let mut next = 0;
    for i in 0..100 {
        let mut b = batch(3, 1000 + i * 10);
        let info = log.append(&mut b).unwrap();
        assert_eq!(info.base_offset, next);
        next = info.last_offset + 1;
    }
    assert!(log.segment_count() > 5, "segments: {}", log.segment_count());
    for offset in [0u64, 1, 2, 3, 150, 298, 299] {
        let read = log.read(offset, 1000).unwrap();
        let records = read.records().unwrap();
        assert_eq!(records[0].offset as u64, offset);
    }
    assert!(log.read(300, 1000).unwrap().is_empty());
    assert!(log.read(301, 1000).is_err());
    assert_eq!(
        log.offset_for_timestamp(1000 + 50 * 10 + 1).unwrap(),
        Some(151)
    );
    log.close().unwrap();

    let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    assert!(report.clean_shutdown, "{report:?}");
    assert_eq!(log.log_end_offset(), 300);
    let all: Vec<_> = (0..300).collect();
    let mut got = Vec::new();
    let mut at = 0;
    while at < 300 {
        let read = log.read(at, 700).unwrap();
        for r in read.records().unwrap() {
            got.push(r.offset as u64);
        }
        at = read.next_offset();
    }
    assert_eq!(got, all);
    drop(log);

    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert!(!report.clean_shutdown);
    assert_eq!(log.log_end_offset(), 300);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some(0));
    assert_eq!(log.offset_for_timestamp(i64::MAX).unwrap(), None);
}
