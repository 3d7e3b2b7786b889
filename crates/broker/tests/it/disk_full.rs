//! A full disk: produce fails with a retryable error, nothing stored is damaged, reads keep
//! working, and writes are accepted again once space returns.
//!
//! Needs root to mount a small tmpfs; otherwise the test prints why it was skipped.

use std::path::Path;
use std::process::Command;

use rivulet_broker::{
    Broker, BrokerConfig, BrokerError, ErrorKind, ProduceRecord, ProduceRequest, TopicConfig,
};

use crate::read_all;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !status.success() {
            return Err(format!(
                "mount failed ({status}); not root or no tmpfs support"
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_refuses_writes_keeps_reads_and_recovers() {
    let fs = match Tmpfs::mount("4m") {
        Ok(fs) => fs,
        Err(reason) => {
            println!("skipping disk-full test: {reason}");
            return;
        }
    };
    // Space to give back later.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![1u8; 512 << 10]).unwrap();
    let data = fs.path().join("data");
    let config = BrokerConfig::new(&data);
    let broker = Broker::open(config.clone()).await.unwrap();
    broker
        .create_topic("t18", 2, TopicConfig::default().with_segment_bytes(1 << 20))
        .await
        .unwrap();

    // Produce 1 KiB records until the disk is full.
    let mut acked = [0u64; 2];
    let err = loop {
        let p = ((acked[0] + acked[1]) % 2) as u32;
        let value = vec![b'a' + p as u8; 1024];
        match broker
            .produce(
                ProduceRequest::records("t18", vec![ProduceRecord::value(value)]).to_partition(p),
            )
            .await
        {
            Ok(reply) => {
                assert_eq!(reply.base_offset(), acked[p as usize]);
                acked[p as usize] += 1;
                assert!(acked[0] + acked[1] < 10_000, "the disk never filled");
            }
            Err(err) => break err,
        }
    };
    assert!(matches!(err, BrokerError::DiskFull { .. }), "{err}");
    assert!(err.is_retryable());
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        !err.to_string().contains(&*fs.path().to_string_lossy()),
        "{err}"
    );

    // Still full: more produces fail the same way, and store nothing.
    for p in 0..2 {
        let value = vec![b'z'; 1024];
        let err = broker
            .produce(
                ProduceRequest::records("t18", vec![ProduceRecord::value(value)]).to_partition(p),
            )
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
    // Topic creation fails cleanly or succeeds, never half-creates.
    match broker.create_topic("u18", 1, TopicConfig::default()).await {
        Ok(()) => assert!(broker.list_topics().contains(&"u18".to_owned())),
        Err(err) => {
            assert!(err.is_retryable(), "{err}");
            assert!(!broker.list_topics().contains(&"u18".to_owned()));
            assert!(!data.join("topics").join("u18").exists());
        }
    }

    // Reads keep working and return exactly what was acknowledged.
    for p in 0..2u32 {
        let records = read_all(&broker, "t18", p, 0).await;
        assert_eq!(records.len() as u64, acked[p as usize]);
        assert!(
            records
                .iter()
                .all(|(_, v)| v.as_deref() == Some(&vec![b'a' + p as u8; 1024][..]))
        );
    }

    // Space returns: writes resume at the next offset.
    std::fs::remove_file(&filler).unwrap();
    for p in 0..2u32 {
        let reply = broker
            .produce(
                ProduceRequest::records(
                    "t18",
                    vec![ProduceRecord::value(vec![b'a' + p as u8; 1024])],
                )
                .to_partition(p),
            )
            .await
            .unwrap();
        assert_eq!(reply.base_offset(), acked[p as usize]);
        acked[p as usize] += 1;
    }
    broker
        .commit_offset("g", "t18", 0, acked[0] as i64)
        .await
        .unwrap();
    broker.shutdown().await.unwrap();
    drop(broker);

    // Restart: everything acknowledged is there.
    let broker = Broker::open(config).await.unwrap();
    for p in 0..2u32 {
        assert_eq!(
            read_all(&broker, "t18", p, 0).await.len() as u64,
            acked[p as usize]
        );
    }
    assert_eq!(
        broker
            .committed_offset("g", "t18", 0)
            .unwrap()
            .unwrap()
            .offset,
        acked[0]
    );
    broker.shutdown().await.unwrap();
}
