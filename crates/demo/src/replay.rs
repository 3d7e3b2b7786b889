//! Reading stored records back after the live run: a day found by timestamp, a partition
//! from offset 0, and a whole topic. Consumers here have no group and commit nothing.
//!
//! Owns one bounded read loop, [`read`], which stops each partition at its high watermark
//! as it was when the read began, or earlier when the caller says so.

use std::time::Duration;

use anyhow::bail;
use rivulet_client::{Client, OffsetReset, Record, TopicPartition};
use tokio::time::Instant;

/// Where a read of one partition starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start {
    Offset(u64),
    Timestamp(i64),
}

/// What the caller wants after seeing a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// Stop reading this record's partition.
    StopPartition,
}

/// Reads each partition from its start to its current high watermark, or until `on_record`
/// stops it, within `timeout`. Returns each partition's starting offset.
pub(crate) async fn read(
    client: &Client,
    topic: &str,
    starts: &[(u32, Start)],
    timeout: Duration,
    mut on_record: impl FnMut(&Record) -> Flow,
) -> anyhow::Result<Vec<u64>> {
    let deadline = Instant::now() + timeout;
    let description = client.admin().describe_topic(topic).await?;
    let mut consumer = client
        .consumer()
        .offset_reset(OffsetReset::Earliest)
        .auto_commit(None)
        .max_poll_records(5_000)
        .build();
    consumer.assign(starts.iter().map(|(p, _)| TopicPartition::new(topic, *p)));

    let mut open = Vec::new();
    let mut first_offsets = Vec::new();
    for &(partition, start) in starts {
        let tp = TopicPartition::new(topic, partition);
        let end = description
            .partitions()
            .iter()
            .find(|p| p.partition() == partition)
            .map_or(0, |p| p.high_watermark());
        let offset = match start {
            Start::Offset(offset) => {
                consumer.seek(&tp, offset)?;
                offset
            }
            Start::Timestamp(ms) => consumer.seek_to_timestamp(&tp, ms).await?,
        };
        first_offsets.push(offset);
        if offset < end {
            open.push((tp, end));
        } else {
            consumer.pause(std::slice::from_ref(&tp))?;
        }
    }

    while !open.is_empty() {
        if Instant::now() > deadline {
            bail!(
                "reading {topic} timed out with {} partitions unfinished",
                open.len()
            );
        }
        for record in consumer.poll(Duration::from_millis(500)).await? {
            let Some(index) = open
                .iter()
                .position(|(tp, _)| tp.partition() == record.partition())
            else {
                continue;
            };
            let flow = on_record(&record);
            let Some((tp, end)) = open.get(index) else {
                continue;
            };
            if flow == Flow::StopPartition || record.offset() + 1 >= *end {
                consumer.pause(std::slice::from_ref(tp))?;
                open.swap_remove(index);
            }
        }
    }
    Ok(first_offsets)
}
