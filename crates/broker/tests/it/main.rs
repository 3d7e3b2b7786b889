//! Integration tests of the broker, one binary for the crate. Modules follow the features;
//! tests named `bcNN_*` reproduce the acceptance scenarios of the same ID at broker level.

mod backpressure;
mod crash;
mod disk_full;
mod fetch;
mod membership;
mod offsets;
mod partitioning;
mod power_loss;
mod produce;
mod topics;

use std::path::Path;

use rivulet_broker::{
    Broker, BrokerConfig, Durability, FetchRequest, ProduceRecord, ProduceRequest,
};

/// Opens a broker with default settings on `dir`.
pub async fn open(dir: &Path) -> Broker {
    open_with(BrokerConfig::new(dir)).await
}

/// Opens a broker, waiting (up to 10 s) for one dropped without shutdown to let go of the
/// directory: in a test its background task ends, and releases the data directory's lock, a
/// moment after the drop, where a killed process would release it at once.
pub async fn open_with(config: BrokerConfig) -> Broker {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Broker::open(config.clone()).await {
            Ok(broker) => return broker,
            Err(rivulet_broker::BrokerError::DataDirectoryInUse { .. })
                if std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(err) => panic!("broker does not open: {err}"),
        }
    }
}

/// Produces `n` keyless records with values `"<prefix>-<i>"` to `partition`, durably.
pub async fn produce_n(broker: &Broker, topic: &str, partition: u32, n: usize, prefix: &str) {
    let records = (0..n)
        .map(|i| ProduceRecord::value(format!("{prefix}-{i}")))
        .collect();
    broker
        .produce(ProduceRequest::records(topic, records).to_partition(partition))
        .await
        .expect("produce succeeds");
}

/// Produces one record to `partition` with the given durability; returns its offset.
pub async fn produce_one(
    broker: &Broker,
    topic: &str,
    partition: u32,
    value: &str,
    durability: Durability,
) -> u64 {
    broker
        .produce(
            ProduceRequest::records(topic, vec![ProduceRecord::value(value.to_owned())])
                .to_partition(partition)
                .with_durability(durability),
        )
        .await
        .expect("produce succeeds")
        .base_offset()
}

/// Every record value from `offset` to the log end, in order, with its offset.
pub async fn read_all(
    broker: &Broker,
    topic: &str,
    partition: u32,
    mut offset: u64,
) -> Vec<(u64, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    loop {
        let reply = broker
            .fetch(FetchRequest::new(topic, partition, offset).with_max_bytes(64 << 10))
            .await
            .expect("fetch succeeds");
        let records = reply.read.records().expect("records decode");
        if records.is_empty() {
            assert_eq!(offset, reply.log_end_offset, "empty read below the log end");
            return out;
        }
        for record in records {
            assert_eq!(record.offset as u64, offset, "offsets must be dense");
            out.push((offset, record.value.map(|v| v.to_vec())));
            offset += 1;
        }
    }
}
