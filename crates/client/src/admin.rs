//! [`Admin`]: topic management and consumer-group inspection, with the client's own result
//! types ([`TopicSummary`], [`TopicDescription`], [`ConsumerGroup`]).
//!
//! Stateless apart from the shared metadata cache of the [`Client`], which it keeps honest:
//! creating or deleting a topic drops the topic's cached partition count.

use rivulet_proto::v1;

use crate::client::Client;
use crate::error::ClientError;
use crate::record::TopicPartition;

/// Creates, deletes and describes topics, and describes consumer groups.
///
/// ```no_run
/// # async fn run() -> Result<(), rivulet_client::ClientError> {
/// use rivulet_client::{Client, NewTopic};
///
/// let admin = Client::connect("127.0.0.1:7070").await?.admin();
/// admin.create_topic(NewTopic::new("orders", 6).retention_ms(7 * 24 * 3600 * 1000)).await?;
/// let topic = admin.describe_topic("orders").await?;
/// assert_eq!(topic.partitions().len(), 6);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Admin { client }
    }

    /// Creates a topic; it is durable on the server when this returns.
    ///
    /// # Errors
    ///
    /// [`ClientError::AlreadyExists`] if the name collides with a topic;
    /// [`ClientError::InvalidArgument`] for a bad name, partition count or setting.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<(), ClientError> {
        let name = topic.name.clone();
        let request = v1::CreateTopicRequest {
            name: topic.name,
            partitions: topic.partitions,
            config: Some(topic.config),
        };
        self.client
            .admin_rpc()
            .create_topic(request)
            .await
            .map_err(|status| ClientError::from_status("CreateTopic", &status))?;
        self.client.forget_topic(&name);
        Ok(())
    }

    /// Deletes a topic, its data and every group's committed offsets on it.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`] for an unknown topic.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let request = v1::DeleteTopicRequest {
            name: name.to_owned(),
        };
        let result = self.client.admin_rpc().delete_topic(request).await;
        self.client.forget_topic(name);
        result.map_err(|status| ClientError::from_status("DeleteTopic", &status))?;
        Ok(())
    }

    /// Every topic with its partition count, sorted by name.
    ///
    /// # Errors
    ///
    /// Errors of the ListTopics call.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>, ClientError> {
        let reply = self
            .client
            .admin_rpc()
            .list_topics(v1::ListTopicsRequest {})
            .await
            .map_err(|status| ClientError::from_status("ListTopics", &status))?;
        Ok(reply
            .into_inner()
            .topics
            .into_iter()
            .map(|t| TopicSummary {
                name: t.name,
                partitions: t.partitions,
                damage: t.damage,
            })
            .collect())
    }

    /// A topic's settings and the offsets and size of each partition.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`] for an unknown topic.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, ClientError> {
        let request = v1::DescribeTopicRequest {
            name: name.to_owned(),
        };
        let reply = self
            .client
            .admin_rpc()
            .describe_topic(request)
            .await
            .map_err(|status| ClientError::from_status("DescribeTopic", &status))?
            .into_inner();
        let config = reply.config.unwrap_or_default();
        Ok(TopicDescription {
            name: reply.name,
            created_at_ms: reply.created_at_ms,
            retention_ms: config.retention_ms,
            retention_bytes: config.retention_bytes,
            segment_bytes: config.segment_bytes,
            max_record_bytes: config.max_record_bytes,
            max_batch_bytes: config.max_batch_bytes,
            durability_policy: DurabilityPolicy::from_wire(config.durability_policy),
            sync_interval_ms: config.sync_interval_ms,
            partitions: reply
                .partitions
                .into_iter()
                .map(|p| PartitionDescription {
                    partition: p.partition,
                    log_start_offset: p.log_start_offset,
                    high_watermark: p.high_watermark,
                    durable_offset: p.durable_offset,
                    size_bytes: p.size_bytes,
                })
                .collect(),
        })
    }

    /// Groups with at least one committed offset or a live member, sorted.
    ///
    /// # Errors
    ///
    /// Errors of the ListGroups call.
    pub async fn list_groups(&self) -> Result<Vec<String>, ClientError> {
        let reply = self
            .client
            .admin_rpc()
            .list_groups(v1::ListGroupsRequest {})
            .await
            .map_err(|status| ClientError::from_status("ListGroups", &status))?;
        Ok(reply.into_inner().groups)
    }

    /// A group's committed offsets with the lag behind each partition's log end.
    ///
    /// # Errors
    ///
    /// Errors of the DescribeGroup call.
    pub async fn describe_group(&self, group: &str) -> Result<ConsumerGroup, ClientError> {
        let request = v1::DescribeGroupRequest {
            group: group.to_owned(),
        };
        let reply = self
            .client
            .admin_rpc()
            .describe_group(request)
            .await
            .map_err(|status| ClientError::from_status("DescribeGroup", &status))?
            .into_inner();
        Ok(ConsumerGroup {
            name: reply.group,
            partitions: reply
                .partitions
                .into_iter()
                .map(|p| GroupPartition {
                    topic: p.topic,
                    partition: p.partition,
                    committed_offset: p.committed_offset,
                    high_watermark: p.high_watermark,
                    lag: p.lag,
                    damage: p.damage,
                })
                .collect(),
            members: reply
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    client_host: m.client_host,
                    partitions: m
                        .owned
                        .into_iter()
                        .map(|tp| TopicPartition::new(tp.topic, tp.partition))
                        .collect(),
                })
                .collect(),
            generation: reply.generation,
            strategy: reply.strategy,
        })
    }
}

/// A topic to create. Settings left unset take the server's defaults.
#[derive(Debug, Clone)]
pub struct NewTopic {
    name: String,
    partitions: u32,
    config: v1::TopicConfig,
}

impl NewTopic {
    /// A topic named `name` with `partitions` partitions.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            config: v1::TopicConfig::default(),
        }
    }

    /// Delete sealed segments older than this many milliseconds.
    pub fn retention_ms(mut self, ms: u64) -> Self {
        self.config.retention_ms = Some(ms);
        self
    }

    /// Delete the oldest sealed segments while a partition holds more bytes than this.
    pub fn retention_bytes(mut self, bytes: u64) -> Self {
        self.config.retention_bytes = Some(bytes);
        self
    }

    /// Size at which a partition starts a new segment file.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.config.segment_bytes = Some(bytes);
        self
    }

    /// Largest record accepted.
    pub fn max_record_bytes(mut self, bytes: u32) -> Self {
        self.config.max_record_bytes = Some(bytes);
        self
    }

    /// Largest record batch accepted.
    pub fn max_batch_bytes(mut self, bytes: u32) -> Self {
        self.config.max_batch_bytes = Some(bytes);
        self
    }

    /// When data produced with [`Durability::Written`](crate::Durability::Written) is synced.
    pub fn durability_policy(mut self, policy: DurabilityPolicy) -> Self {
        self.config.durability_policy = policy.to_wire() as i32;
        self
    }

    /// The interval of [`DurabilityPolicy::SyncInterval`], in milliseconds; ignored by the
    /// other policies.
    pub fn sync_interval_ms(mut self, ms: u64) -> Self {
        self.config.sync_interval_ms = Some(ms);
        self
    }
}

/// When a topic syncs data produced with [`Durability::Written`](crate::Durability::Written);
/// durable produces are always synced before they are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurabilityPolicy {
    /// Every produce is treated as durable, whatever it asks for.
    AlwaysDurable,
    /// Unsynced data is synced in the background once it is `sync_interval_ms` old. The
    /// server's default, with 1000 ms.
    SyncInterval,
    /// Only durable produces sync; the operating system writes the rest back when it chooses.
    OsDecides,
}

impl DurabilityPolicy {
    fn to_wire(self) -> v1::DurabilityPolicy {
        match self {
            DurabilityPolicy::AlwaysDurable => v1::DurabilityPolicy::AlwaysDurable,
            DurabilityPolicy::SyncInterval => v1::DurabilityPolicy::SyncInterval,
            DurabilityPolicy::OsDecides => v1::DurabilityPolicy::OsDecides,
        }
    }

    /// The policy a DescribeTopic reply names; `None` when unset or unknown to this client.
    fn from_wire(value: i32) -> Option<Self> {
        match v1::DurabilityPolicy::try_from(value).ok()? {
            v1::DurabilityPolicy::AlwaysDurable => Some(DurabilityPolicy::AlwaysDurable),
            v1::DurabilityPolicy::SyncInterval => Some(DurabilityPolicy::SyncInterval),
            v1::DurabilityPolicy::OsDecides => Some(DurabilityPolicy::OsDecides),
            v1::DurabilityPolicy::Unspecified => None,
        }
    }
}

/// A topic's name and partition count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    name: String,
    partitions: u32,
    damage: Option<String>,
}

impl TopicSummary {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its number of partitions; 0 for a damaged topic.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Set when the server cannot serve the topic because its files are damaged: what is
    /// wrong and what an operator can do. Every call on such a topic but delete fails with
    /// [`ClientError::DataLoss`].
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }
}

/// A topic's settings and partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    name: String,
    created_at_ms: u64,
    retention_ms: Option<u64>,
    retention_bytes: Option<u64>,
    segment_bytes: Option<u64>,
    max_record_bytes: Option<u32>,
    max_batch_bytes: Option<u32>,
    durability_policy: Option<DurabilityPolicy>,
    sync_interval_ms: Option<u64>,
    partitions: Vec<PartitionDescription>,
}

impl TopicDescription {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When it was created, in ms since the epoch.
    pub fn created_at_ms(&self) -> u64 {
        self.created_at_ms
    }

    /// Age limit of sealed segments; `None` keeps them forever.
    pub fn retention_ms(&self) -> Option<u64> {
        self.retention_ms
    }

    /// Size limit of a partition; `None` is no limit.
    pub fn retention_bytes(&self) -> Option<u64> {
        self.retention_bytes
    }

    /// Segment size.
    pub fn segment_bytes(&self) -> Option<u64> {
        self.segment_bytes
    }

    /// Largest record accepted.
    pub fn max_record_bytes(&self) -> Option<u32> {
        self.max_record_bytes
    }

    /// Largest batch accepted.
    pub fn max_batch_bytes(&self) -> Option<u32> {
        self.max_batch_bytes
    }

    /// When data produced with [`Durability::Written`](crate::Durability::Written) is synced;
    /// `None` if the server named a policy this client does not know.
    pub fn durability_policy(&self) -> Option<DurabilityPolicy> {
        self.durability_policy
    }

    /// The sync interval of [`DurabilityPolicy::SyncInterval`].
    pub fn sync_interval_ms(&self) -> Option<u64> {
        self.sync_interval_ms
    }

    /// Each partition, in order.
    pub fn partitions(&self) -> &[PartitionDescription] {
        &self.partitions
    }
}

/// One partition of a [`TopicDescription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionDescription {
    partition: u32,
    log_start_offset: u64,
    high_watermark: u64,
    durable_offset: u64,
    size_bytes: u64,
}

impl PartitionDescription {
    /// Partition number.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }

    /// The offset the next record will get.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// Every offset below this is fsynced.
    pub fn durable_offset(&self) -> u64 {
        self.durable_offset
    }

    /// Bytes of log on disk.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
}

/// A consumer group's committed offsets and lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup {
    name: String,
    partitions: Vec<GroupPartition>,
    members: Vec<GroupMember>,
    generation: u64,
    strategy: String,
}

impl ConsumerGroup {
    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One entry per partition the group has committed on, by topic and partition.
    pub fn partitions(&self) -> &[GroupPartition] {
        &self.partitions
    }

    /// The ids of the group's live members, sorted; empty when no consumer is a member now.
    /// While there are any, the server refuses commits from outside the group.
    pub fn member_ids(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.member_id.as_str()).collect()
    }

    /// The group's live members, by member id.
    pub fn members(&self) -> &[GroupMember] {
        &self.members
    }

    /// The membership generation; 0 for a group that never had members.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The assignment strategy's name: "sticky", "range" or "round-robin".
    pub fn strategy(&self) -> &str {
        &self.strategy
    }

    /// The member holding `topic`/`partition` now, if any.
    pub fn owner(&self, topic: &str, partition: u32) -> Option<&GroupMember> {
        self.members.iter().find(|m| {
            m.partitions
                .iter()
                .any(|tp| tp.topic() == topic && tp.partition() == partition)
        })
    }

    /// Records not yet consumed, summed over every partition.
    pub fn total_lag(&self) -> u64 {
        self.partitions.iter().map(|p| p.lag).sum()
    }
}

/// A live member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    member_id: String,
    instance_id: Option<String>,
    client_host: String,
    partitions: Vec<TopicPartition>,
}

impl GroupMember {
    /// The id the group gave the member.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// Its static instance id, if it has one.
    pub fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }

    /// Where it runs, as it reported.
    pub fn client_host(&self) -> &str {
        &self.client_host
    }

    /// The partitions it holds now.
    pub fn partitions(&self) -> &[TopicPartition] {
        &self.partitions
    }
}

/// A group's position on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartition {
    topic: String,
    partition: u32,
    committed_offset: u64,
    high_watermark: u64,
    lag: u64,
    damage: Option<String>,
}

impl GroupPartition {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The committed offset: the next offset the group will read.
    pub fn committed_offset(&self) -> u64 {
        self.committed_offset
    }

    /// The partition's log end offset.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// Records not yet consumed.
    pub fn lag(&self) -> u64 {
        self.lag
    }

    /// Set when damage on the server affects this entry, saying what: the committed offset
    /// may be older than the group's last commit (the newer one was in a damaged part of the
    /// offsets log), or the topic itself is damaged.
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }
}
