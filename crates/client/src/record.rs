//! The client's own data types: records going out ([`ProducerRecord`]), records coming in
//! ([`Record`]), where a record landed ([`Offset`]) and partition names ([`TopicPartition`]).
//!
//! These stand between applications and the generated protobuf types, which never appear in
//! the client's public API, so the wire schema can change without breaking callers. A `None`
//! key, value or header value is null, which Rivulet (like Kafka) keeps distinct from empty.

use std::fmt;

use bytes::Bytes;

/// One topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    topic: String,
    partition: u32,
}

impl TopicPartition {
    /// Names partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition number.
    pub fn partition(&self) -> u32 {
        self.partition
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Where a record is: its topic, partition and offset. A produced record resolves to one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Offset {
    topic: String,
    partition: u32,
    offset: u64,
}

impl Offset {
    pub(crate) fn new(topic: impl Into<String>, partition: u32, offset: u64) -> Self {
        Offset {
            topic: topic.into(),
            partition,
            offset,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The record's offset within its partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// One application header of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    key: String,
    value: Option<Bytes>,
}

impl Header {
    /// A header; a `None` value is null.
    pub fn new(key: impl Into<String>, value: Option<Bytes>) -> Self {
        Header {
            key: key.into(),
            value,
        }
    }

    /// The header's name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The header's value; `None` is null.
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }
}

/// A record to produce. Build it with [`ProducerRecord::new`] and the setters.
///
/// ```
/// use rivulet_client::ProducerRecord;
///
/// let record = ProducerRecord::new("orders")
///     .key("customer-7")
///     .value("{\"total\": 12}")
///     .header("trace-id", Some("abc"));
/// assert_eq!(record.topic(), "orders");
/// ```
#[derive(Debug, Clone)]
pub struct ProducerRecord {
    pub(crate) topic: String,
    pub(crate) partition: Option<u32>,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<Header>,
    pub(crate) timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with a null key and a null value.
    pub fn new(topic: impl Into<String>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    /// Sets the key. Keyed records go to partition `murmur2(key) % partitions`, exactly as the
    /// server and Kafka's default partitioner place them.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sends the record to this partition, whatever its key.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Appends a header; `None` is a null value.
    pub fn header(mut self, key: impl Into<String>, value: Option<impl Into<Bytes>>) -> Self {
        self.headers.push(Header::new(key, value.map(Into::into)));
        self
    }

    /// Sets the create time in milliseconds since the Unix epoch; by default the time of
    /// [`Producer::send`](crate::Producer::send).
    pub fn timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The approximate encoded size, which is what the producer's buffer bound counts.
    pub(crate) fn approx_size(&self) -> usize {
        /// Varints, attributes and deltas of one record, at most.
        const RECORD_OVERHEAD: usize = 21;
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 10)
            .sum();
        RECORD_OVERHEAD
            + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
    }
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    topic: String,
    partition: u32,
    offset: u64,
    timestamp_ms: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<Header>,
}

impl Record {
    pub(crate) fn from_format(topic: &str, partition: u32, record: rivulet_format::Record) -> Self {
        Record {
            topic: topic.to_owned(),
            partition,
            offset: u64::try_from(record.offset).unwrap_or(0),
            timestamp_ms: record.timestamp,
            key: record.key,
            value: record.value,
            headers: record
                .headers
                .into_iter()
                .map(|h| Header::new(h.key, h.value))
                .collect(),
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The record's offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Timestamp in milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// The key; `None` is null.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The value; `None` is null.
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// Application headers, in the order produced.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Where this record is.
    pub fn position(&self) -> Offset {
        Offset::new(self.topic.clone(), self.partition, self.offset)
    }
}
