//! An in-process server on 127.0.0.1 port 0 over a broker in a temporary directory, with
//! clients connected to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rivulet_broker::{Broker, BrokerConfig};
use rivulet_proto::v1;
use rivulet_proto::v1::admin_client::AdminClient;
use rivulet_proto::v1::log_client::LogClient;
use rivulet_server::{ServeError, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Client receive limit: large enough for BC-14's 5 MiB record.
const CLIENT_LIMIT: usize = 64 << 20;

pub struct TestServer {
    pub addr: SocketAddr,
    pub log: LogClient<Channel>,
    pub admin: AdminClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(Broker::open(BrokerConfig::new(dir.path())).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(rivulet_server::serve_with(
            listener,
            broker,
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        let channel = channel(addr).await;
        TestServer {
            addr,
            log: LogClient::new(channel.clone())
                .max_decoding_message_size(CLIENT_LIMIT)
                .max_encoding_message_size(CLIENT_LIMIT),
            admin: AdminClient::new(channel)
                .max_decoding_message_size(CLIENT_LIMIT)
                .max_encoding_message_size(CLIENT_LIMIT),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Triggers the shutdown future and waits for `serve` to return, at most `limit`.
    pub async fn stop_within(&mut self, limit: Duration) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(limit, task)
            .await
            .expect("server did not stop in time")
            .unwrap()
            .unwrap();
    }

    pub async fn create_topic(&mut self, name: &str, partitions: u32) {
        self.admin
            .create_topic(v1::CreateTopicRequest {
                name: name.into(),
                partitions,
                config: None,
            })
            .await
            .unwrap();
    }

    /// Produces values to one partition in one request; returns the base offset.
    pub async fn produce_values(&mut self, topic: &str, partition: u32, values: &[&[u8]]) -> u64 {
        let records = values
            .iter()
            .map(|v| v1::ProduceRecord {
                value: Some(Bytes::copy_from_slice(v)),
                ..Default::default()
            })
            .collect();
        let reply = self
            .log
            .produce(produce_request(topic, Some(partition), records))
            .await
            .unwrap()
            .into_inner();
        reply.batches[0].base_offset
    }

    pub async fn fetch(&mut self, topic: &str, partition: u32, offset: u64) -> v1::FetchResponse {
        self.log
            .fetch(v1::FetchRequest {
                topic: topic.into(),
                partition,
                offset,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub fn produce_request(
    topic: &str,
    partition: Option<u32>,
    records: Vec<v1::ProduceRecord>,
) -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: topic.into(),
        partition,
        durability: v1::Durability::Durable as i32,
        payload: Some(v1::produce_request::Payload::Records(v1::ProduceRecords {
            records,
        })),
    }
}

pub fn value(v: &[u8]) -> v1::ProduceRecord {
    v1::ProduceRecord {
        value: Some(Bytes::copy_from_slice(v)),
        ..Default::default()
    }
}
