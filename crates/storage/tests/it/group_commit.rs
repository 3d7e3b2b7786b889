//! Concurrent appenders under `FlushPolicy::EveryBatch`: offsets stay dense and unique, every
//! append is durable when it returns, and readers running alongside see only whole batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use rivulet_storage::{FlushPolicy, LogConfig, PartitionLog};

use crate::fixture::{Spec, build, read_all};

const THREADS: usize = 8;
const APPENDS: usize = 40;

#[test]
fn eight_appenders_with_every_batch_flush_get_dense_unique_durable_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default()
        .with_segment_bytes(16 * 1024)
        .with_index_interval_bytes(512)
        .with_flush(FlushPolicy::EveryBatch);
    let (log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let log = Arc::new(log);
    let done = Arc::new(AtomicBool::new(false));

    // A reader that keeps reading everything while the appends run.
    let reader = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        thread::spawn(move || {
            let mut rounds = 0;
            while !done.load(Ordering::Acquire) {
                let records = read_all(&log, 0);
                for (i, record) in records.iter().enumerate() {
                    assert_eq!(record.offset as usize, i);
                }
                rounds += 1;
            }
            rounds
        })
    };

    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let mut appended = Vec::new();
                for i in 0..APPENDS {
                    let n = 1 + (t + i) % 4;
                    let specs: Vec<Spec> = (0..n)
                        .map(|r| {
                            let key = format!("{t}/{i}/{r}");
                            Spec::new(i as i64, Some(key.as_bytes()), Some(&[t as u8; 64]))
                        })
                        .collect();
                    let info = log.append(&mut build(&specs)).unwrap();
                    assert_eq!(info.last_offset - info.base_offset + 1, n as u64);
                    assert!(
                        log.durable_offset() > info.last_offset,
                        "append of {}..={} returned before it was durable ({})",
                        info.base_offset,
                        info.last_offset,
                        log.durable_offset()
                    );
                    appended.push((info.base_offset, info.last_offset, t, i));
                }
                appended
            })
        })
        .collect();
    let mut all: Vec<(u64, u64, usize, usize)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    done.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);

    // Dense and unique: sorted by base, each batch starts where the previous one ended.
    all.sort_unstable();
    let mut next = 0;
    for &(base, last, _, _) in &all {
        assert_eq!(base, next, "gap or overlap at {base}");
        next = last + 1;
    }
    assert_eq!(log.log_end_offset(), next);
    assert_eq!(log.durable_offset(), log.log_end_offset());
    assert!(log.segment_count() > 1);

    // Each offset holds what the thread that got it wrote.
    let records = read_all(&log, 0);
    for &(base, last, t, i) in &all {
        for offset in base..=last {
            let key = format!("{t}/{i}/{}", offset - base);
            assert_eq!(
                records[offset as usize].key.as_deref(),
                Some(key.as_bytes())
            );
        }
    }

    let log = Arc::into_inner(log).unwrap();
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert!(report.torn_tail.is_none());
    assert_eq!(log.log_end_offset(), next);
}
