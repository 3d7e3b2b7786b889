//! Conversions between the generated `rivulet.v1` messages and the broker's types.
//!
//! This module is the only place that knows both shapes; handlers call these functions and
//! never build broker types by hand. Conversions into broker types check what the schema
//! cannot express (enum values out of range, fields that must be set) and name the field that
//! breaks a rule. Nothing here touches the broker itself.

use std::time::Duration;

use rivulet_broker::{
    Appended, AssignmentStrategy, BATCH_FRAMING, BATCH_HEADROOM, CommittedOffset, Durability,
    DurabilityPolicy, GroupMembership, Heartbeat, OffsetCommit, PartitionDescription, PartitionLag,
    ProduceRecord, TopicConfig, TopicDescription, TopicPartition,
};
use rivulet_format::Record;
use rivulet_proto::v1;

use crate::error::ApiError;

/// The broker's durability for a produce.
pub(crate) fn durability(value: i32) -> Result<Durability, ApiError> {
    match v1::Durability::try_from(value) {
        Ok(v1::Durability::Written) => Ok(Durability::Written),
        Ok(v1::Durability::Unspecified | v1::Durability::Durable) => Ok(Durability::Durable),
        Err(_) => Err(ApiError::invalid(
            "durability",
            format!("unknown value {value}; use DURABILITY_WRITTEN or DURABILITY_DURABLE"),
        )),
    }
}

/// Whether a fetch or subscription wants stored batches rather than decoded records.
pub(crate) fn wants_raw(value: i32) -> Result<bool, ApiError> {
    match v1::FetchFormat::try_from(value) {
        Ok(v1::FetchFormat::RawBatches) => Ok(true),
        Ok(v1::FetchFormat::Unspecified | v1::FetchFormat::Records) => Ok(false),
        Err(_) => Err(ApiError::invalid(
            "format",
            format!("unknown value {value}; use FETCH_FORMAT_RECORDS or FETCH_FORMAT_RAW_BATCHES"),
        )),
    }
}

/// A record to produce.
pub(crate) fn produce_record(record: v1::ProduceRecord) -> ProduceRecord {
    let mut out = ProduceRecord::new(record.key, record.value);
    for header in record.headers {
        out = out.with_header(header.key, header.value);
    }
    if let Some(timestamp) = record.timestamp_ms {
        out = out.with_timestamp(timestamp);
    }
    out
}

/// A stored record as sent to clients.
pub(crate) fn record(record: Record) -> v1::Record {
    v1::Record {
        // Offsets in a valid stored batch are never negative.
        offset: u64::try_from(record.offset).unwrap_or_default(),
        timestamp_ms: record.timestamp,
        key: record.key,
        value: record.value,
        headers: record
            .headers
            .into_iter()
            .map(|h| v1::RecordHeader {
                key: h.key,
                value: h.value,
            })
            .collect(),
    }
}

/// Where one batch landed.
pub(crate) fn batch_ack(appended: &Appended) -> v1::BatchAck {
    v1::BatchAck {
        partition: appended.partition,
        base_offset: appended.base_offset,
        last_offset: appended.last_offset,
        durable_offset: appended.durable_offset,
    }
}

/// An offset commit.
pub(crate) fn offset_commit(commit: v1::OffsetCommit) -> OffsetCommit {
    let out = OffsetCommit::new(commit.topic, commit.partition, commit.offset);
    match commit.metadata {
        Some(metadata) => out.with_metadata(metadata),
        None => out,
    }
}

/// A committed offset as sent to clients.
pub(crate) fn committed_offset(committed: CommittedOffset) -> v1::CommittedOffset {
    v1::CommittedOffset {
        topic: committed.topic,
        partition: committed.partition,
        offset: committed.offset,
        metadata: committed.metadata,
        commit_timestamp_ms: committed.commit_timestamp_ms,
    }
}

/// A group's lag on one partition.
pub(crate) fn partition_lag(lag: PartitionLag) -> v1::PartitionLag {
    v1::PartitionLag {
        topic: lag.topic,
        partition: lag.partition,
        committed_offset: lag.committed,
        high_watermark: lag.log_end_offset,
        lag: lag.lag,
        damage: lag.damage,
    }
}

/// A topic's settings from a CreateTopic request; unset fields keep the broker's defaults.
pub(crate) fn topic_config(config: Option<v1::TopicConfig>) -> Result<TopicConfig, ApiError> {
    let Some(config) = config else {
        return Ok(TopicConfig::default());
    };
    // Zero durations are refused here, where the request's field names are known; the
    // broker's own check names its settings, which are durations rather than milliseconds.
    if config.retention_ms == Some(0) {
        return Err(ApiError::invalid(
            "config.retention_ms",
            "0 is not allowed; set more than 0, or leave unset to keep forever",
        ));
    }
    if config.sync_interval_ms == Some(0) {
        return Err(ApiError::invalid(
            "config.sync_interval_ms",
            "0 is not allowed; set more than 0, or use DURABILITY_POLICY_ALWAYS_DURABLE to \
             sync every produce",
        ));
    }
    let mut out = TopicConfig::default()
        .with_retention_age(config.retention_ms.map(Duration::from_millis))
        .with_retention_bytes(config.retention_bytes);
    if let Some(bytes) = config.segment_bytes {
        out = out.with_segment_bytes(bytes);
    }
    // An unset record limit follows a lowered batch limit down, leaving room for a batch's
    // framing; an explicit pair that contradicts itself is left for the broker to refuse.
    let max_record = match (config.max_record_bytes, config.max_batch_bytes) {
        (Some(bytes), _) => bytes,
        (None, Some(batch)) => out
            .max_record_bytes
            .min(batch.saturating_sub(BATCH_FRAMING).max(1)),
        (None, None) => out.max_record_bytes,
    };
    out = out.with_max_record_bytes(max_record);
    let max_batch = match config.max_batch_bytes {
        Some(bytes) => bytes,
        // Capped at the largest batch, so a huge record limit is refused for itself.
        None => out
            .max_batch_bytes
            .max(out.max_record_bytes.saturating_add(BATCH_HEADROOM))
            .min(i32::MAX as u32),
    };
    out = out.with_max_batch_bytes(max_batch);

    let interval = Duration::from_millis(config.sync_interval_ms.unwrap_or(1000));
    let no_interval = |policy: &str| {
        if config.sync_interval_ms.is_some() {
            return Err(ApiError::invalid(
                "config.sync_interval_ms",
                format!(
                    "is set, but {policy} has no sync interval; set sync_interval_ms only with \
                     DURABILITY_POLICY_SYNC_INTERVAL (or no policy, which then means it), or \
                     leave it unset"
                ),
            ));
        }
        Ok(())
    };
    let policy = match v1::DurabilityPolicy::try_from(config.durability_policy) {
        Ok(v1::DurabilityPolicy::AlwaysDurable) => {
            no_interval("DURABILITY_POLICY_ALWAYS_DURABLE")?;
            DurabilityPolicy::AlwaysDurable
        }
        Ok(v1::DurabilityPolicy::OsDecides) => {
            no_interval("DURABILITY_POLICY_OS_DECIDES")?;
            DurabilityPolicy::OsDecides
        }
        Ok(v1::DurabilityPolicy::SyncInterval) => DurabilityPolicy::SyncInterval(interval),
        Ok(v1::DurabilityPolicy::Unspecified) => match config.sync_interval_ms {
            Some(_) => DurabilityPolicy::SyncInterval(interval),
            None => DurabilityPolicy::default(),
        },
        Err(_) => {
            return Err(ApiError::invalid(
                "config.durability_policy",
                format!("unknown value {}", config.durability_policy),
            ));
        }
    };
    Ok(out.with_durability(policy))
}

/// A topic's settings as reported by DescribeTopic, every field filled in.
pub(crate) fn topic_config_out(config: &TopicConfig) -> v1::TopicConfig {
    let (policy, interval) = match config.durability {
        DurabilityPolicy::AlwaysDurable => (v1::DurabilityPolicy::AlwaysDurable, None),
        DurabilityPolicy::SyncInterval(every) => (
            v1::DurabilityPolicy::SyncInterval,
            Some(every.as_millis() as u64),
        ),
        DurabilityPolicy::OsDecides => (v1::DurabilityPolicy::OsDecides, None),
        // A policy added to the broker later shows as unspecified until it gets a wire name.
        _ => (v1::DurabilityPolicy::Unspecified, None),
    };
    v1::TopicConfig {
        retention_ms: config.retention_age.map(|age| age.as_millis() as u64),
        retention_bytes: config.retention_bytes,
        segment_bytes: Some(config.segment_bytes),
        max_record_bytes: Some(config.max_record_bytes),
        max_batch_bytes: Some(config.max_batch_bytes),
        durability_policy: policy as i32,
        sync_interval_ms: interval,
    }
}

/// A topic description as sent to clients.
pub(crate) fn topic_description(topic: TopicDescription) -> v1::DescribeTopicResponse {
    v1::DescribeTopicResponse {
        config: Some(topic_config_out(&topic.config)),
        name: topic.name,
        created_at_ms: topic.created_at_ms,
        partitions: topic.partitions.iter().map(partition_info).collect(),
    }
}

fn partition_info(partition: &PartitionDescription) -> v1::PartitionInfo {
    v1::PartitionInfo {
        partition: partition.partition,
        log_start_offset: partition.log_start_offset,
        high_watermark: partition.log_end_offset,
        durable_offset: partition.durable_offset,
        size_bytes: partition.size_bytes,
    }
}

/// The assignment strategy a heartbeat asks for; unspecified means sticky.
pub(crate) fn assignment_strategy(value: i32) -> Result<AssignmentStrategy, ApiError> {
    match v1::AssignmentStrategy::try_from(value) {
        Ok(v1::AssignmentStrategy::Unspecified | v1::AssignmentStrategy::Sticky) => {
            Ok(AssignmentStrategy::Sticky)
        }
        Ok(v1::AssignmentStrategy::Range) => Ok(AssignmentStrategy::Range),
        Ok(v1::AssignmentStrategy::RoundRobin) => Ok(AssignmentStrategy::RoundRobin),
        Err(_) => Err(ApiError::invalid(
            "strategy",
            format!(
                "{value} is not an assignment strategy; use 1 (sticky), 2 (range) or 3 (round-robin)"
            ),
        )),
    }
}

/// A heartbeat request as the broker takes it.
pub(crate) fn heartbeat(request: v1::HeartbeatRequest) -> Heartbeat {
    Heartbeat {
        member_id: request.member_id,
        instance_id: request.instance_id,
        client_host: request.client_host,
        topics: request.topics.into_iter().collect(),
        owned: request
            .owned
            .into_iter()
            .map(|tp| TopicPartition::new(tp.topic, tp.partition))
            .collect(),
    }
}

/// A partition as the API names it.
pub(crate) fn topic_partition_out(tp: TopicPartition) -> v1::TopicPartition {
    v1::TopicPartition {
        topic: tp.topic,
        partition: tp.partition,
    }
}

/// The membership half of a DescribeGroup reply: generation, strategy, members.
pub(crate) fn group_membership(
    membership: Option<GroupMembership>,
) -> (u64, String, Vec<v1::GroupMember>) {
    let Some(membership) = membership else {
        return (
            0,
            AssignmentStrategy::default().name().to_owned(),
            Vec::new(),
        );
    };
    let members = membership
        .members
        .into_iter()
        .map(|m| v1::GroupMember {
            member_id: m.member_id,
            instance_id: m.instance_id,
            client_host: m.client_host,
            topics: m.topics.into_iter().collect(),
            owned: m.owned.into_iter().map(topic_partition_out).collect(),
            target: m.target.into_iter().map(topic_partition_out).collect(),
        })
        .collect();
    (
        membership.generation,
        membership.strategy.name().to_owned(),
        members,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_only_the_record_limit_makes_room_for_one_record_in_a_batch() {
        let config = topic_config(Some(v1::TopicConfig {
            max_record_bytes: Some(8 << 20),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(config.max_record_bytes, 8 << 20);
        assert!(config.max_batch_bytes > 8 << 20);
    }

    #[test]
    fn lowering_only_the_batch_limit_lowers_the_record_limit_with_it() {
        let config = topic_config(Some(v1::TopicConfig {
            max_batch_bytes: Some(64 << 10),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(
            (config.max_record_bytes, config.max_batch_bytes),
            ((64 << 10) - BATCH_FRAMING, 64 << 10)
        );
        config.validate().unwrap();
    }

    #[test]
    fn described_config_reads_back_as_the_same_config() {
        let created = topic_config(Some(v1::TopicConfig {
            retention_ms: Some(60_000),
            segment_bytes: Some(1 << 20),
            durability_policy: v1::DurabilityPolicy::OsDecides as i32,
            ..Default::default()
        }))
        .unwrap();
        let again = topic_config(Some(topic_config_out(&created))).unwrap();
        assert_eq!(created, again);
    }

    #[test]
    fn a_sync_interval_with_a_policy_that_has_none_is_refused() {
        for policy in [
            v1::DurabilityPolicy::AlwaysDurable,
            v1::DurabilityPolicy::OsDecides,
        ] {
            let err = topic_config(Some(v1::TopicConfig {
                durability_policy: policy as i32,
                sync_interval_ms: Some(500),
                ..Default::default()
            }))
            .unwrap_err()
            .to_string();
            assert!(err.contains("config.sync_interval_ms"), "{err}");
            assert!(err.contains(policy.as_str_name()), "{err}");
            assert!(err.contains("DURABILITY_POLICY_SYNC_INTERVAL"), "{err}");
        }
        for policy in [
            v1::DurabilityPolicy::SyncInterval,
            v1::DurabilityPolicy::Unspecified,
        ] {
            let config = topic_config(Some(v1::TopicConfig {
                durability_policy: policy as i32,
                sync_interval_ms: Some(500),
                ..Default::default()
            }))
            .unwrap();
            assert_eq!(
                config.durability,
                DurabilityPolicy::SyncInterval(Duration::from_millis(500))
            );
        }
    }

    #[test]
    fn unknown_enum_values_name_the_field() {
        let err = durability(9).unwrap_err().to_string();
        assert!(err.contains("durability"), "{err}");
        let err = wants_raw(-1).unwrap_err().to_string();
        assert!(err.contains("format"), "{err}");
    }
}
