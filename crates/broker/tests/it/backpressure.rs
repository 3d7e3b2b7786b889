//! The bound on produce bytes in flight: past it, produce is refused, not buffered.

use std::sync::Arc;
use std::time::Duration;

use rivulet_broker::{
    Broker, BrokerConfig, BrokerError, ProduceRecord, ProduceRequest, TopicConfig,
};

// A current-thread runtime: every task below reaches admission before any admitted request
// can finish, so the outcome does not depend on timing.
#[tokio::test]
async fn produce_past_the_in_flight_bound_is_refused_with_busy() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::new(dir.path())
        .with_max_in_flight_bytes(10_000)
        .with_busy_retry_after(Duration::from_millis(15));
    let broker = Arc::new(Broker::open(config).await.unwrap());
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let broker = Arc::clone(&broker);
            tokio::spawn(async move {
                let records = vec![ProduceRecord::value(vec![0u8; 4000])];
                broker
                    .produce(ProduceRequest::records("t", records).to_partition(0))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    let mut busy = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(BrokerError::Busy {
                retry_after_ms,
                limit,
                ..
            }) => {
                assert_eq!((retry_after_ms, limit), (15, 10_000));
                busy += 1;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    // Two 4 000-byte requests fit under 10 000 bytes; the rest were refused at once.
    assert_eq!((ok, busy), (2, 14));
    let metrics = broker.metrics();
    assert_eq!(metrics.busy_rejections, 14);
    assert_eq!(metrics.in_flight_bytes, 0);
    // Refused requests stored nothing, and once the load is gone produce works again.
    assert_eq!(
        broker.describe_topic("t").unwrap().partitions[0].log_end_offset,
        2
    );
    let err = BrokerError::Busy {
        retry_after_ms: 1,
        in_flight_bytes: 1,
        limit: 1,
    };
    assert!(err.is_retryable());
    broker
        .produce(ProduceRequest::records("t", vec![ProduceRecord::value("after")]).to_partition(0))
        .await
        .unwrap();
    broker.shutdown().await.unwrap();
}
