//! [`Client`]: one connection to a Rivulet server, shared by the producers, consumers and admin
//! handles built from it, and the topic metadata cache they share.
//!
//! Owns the gRPC channel (which reconnects on its own after a failure) and the partition count
//! of each topic seen so far. The cache is only ever refreshed by asking the server; an entry
//! is dropped when the server says a topic or partition does not exist, is refreshed when a
//! caller names a partition past it, and expires after five minutes, so a deleted or
//! re-created topic is looked up again. The cache lock is a plain mutex held for a
//! map lookup or insert, never across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rivulet_proto::v1;
use rivulet_proto::v1::admin_client::AdminClient;
use rivulet_proto::v1::log_client::LogClient;
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

use crate::admin::Admin;
use crate::consumer::ConsumerBuilder;
use crate::error::ClientError;
use crate::producer::ProducerBuilder;

/// How long the first connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a cached partition count is trusted before it is looked up again, so a producer
/// notices a topic re-created with more partitions even when nothing fails.
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

/// Largest message the client accepts: the server's 64 MiB fetch bound plus framing.
const MAX_DECODING_MESSAGE_SIZE: usize = 80 << 20;

/// A connection to one Rivulet server. Cheap to clone; clones share the connection and the
/// metadata cache.
///
/// ```no_run
/// # async fn run() -> Result<(), rivulet_client::ClientError> {
/// use rivulet_client::Client;
///
/// let client = Client::connect("127.0.0.1:7070").await?;
/// for topic in client.admin().list_topics().await? {
///     println!("{} has {} partitions", topic.name(), topic.partitions());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    address: String,
    channel: Channel,
    /// Partition count per topic, as last reported by the server, and when it was.
    partitions: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Client {
    /// Connects to the server at `address`, given as `host:port` or `http://host:port`.
    ///
    /// The connection is made now, so a wrong address fails here. Later failures are
    /// reported by the calls they break, and the client reconnects on the next call.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidAddress`] if `address` cannot be parsed; [`ClientError::Connect`]
    /// if no connection could be made.
    pub async fn connect(address: impl AsRef<str>) -> Result<Client, ClientError> {
        let address = address.as_ref().trim();
        let uri = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|err| ClientError::InvalidAddress {
                address: address.to_owned(),
                reason: err.to_string(),
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|err| ClientError::Connect {
                address: uri.clone(),
                reason: error_chain(&err),
            })?;
        debug!(address = %uri, "connected");
        Ok(Client {
            inner: Arc::new(Inner {
                address: uri,
                channel,
                partitions: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The server's address, as connected to.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// Starts building a [`Producer`](crate::Producer).
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder::new(self.clone())
    }

    /// Starts building a [`Consumer`](crate::Consumer).
    pub fn consumer(&self) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone())
    }

    /// An [`Admin`] handle for topics and groups.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    pub(crate) fn log(&self) -> LogClient<Channel> {
        LogClient::new(self.inner.channel.clone())
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE)
    }

    pub(crate) fn admin_rpc(&self) -> AdminClient<Channel> {
        AdminClient::new(self.inner.channel.clone())
    }

    /// The partition count of `topic`, from the cache if it is fresh, else from DescribeTopic.
    pub(crate) async fn partition_count(&self, topic: &str) -> Result<u32, ClientError> {
        if let Some(&(count, at)) = self.cache().get(topic)
            && at.elapsed() < METADATA_MAX_AGE
        {
            return Ok(count);
        }
        self.refresh_partition_count(topic).await
    }

    /// Asks the server for `topic`'s partition count and caches it.
    pub(crate) async fn refresh_partition_count(&self, topic: &str) -> Result<u32, ClientError> {
        let request = v1::DescribeTopicRequest {
            name: topic.to_owned(),
        };
        let reply = match self.admin_rpc().describe_topic(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                let err = ClientError::from_status("DescribeTopic", &status);
                if matches!(err, ClientError::NotFound { .. }) {
                    self.forget_topic(topic);
                }
                return Err(err);
            }
        };
        let count = u32::try_from(reply.partitions.len()).unwrap_or(u32::MAX);
        self.cache()
            .insert(topic.to_owned(), (count, Instant::now()));
        debug!(topic, partitions = count, "topic metadata refreshed");
        Ok(count)
    }

    /// Drops `topic` from the metadata cache.
    pub(crate) fn forget_topic(&self, topic: &str) {
        self.cache().remove(topic);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        // A panic while holding this lock cannot leave the map half-updated, so a poisoned
        // lock is still usable.
        self.inner
            .partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An error and its sources, joined, since transport errors hide the useful part in a source.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}
