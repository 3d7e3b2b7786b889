//! An in-process Rivulet server over a broker in a temporary directory, which can be stopped
//! and started again on the same directory and port, plus helpers shared by the tests.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rivulet_broker::{Broker, BrokerConfig};
use rivulet_client::{Client, ClientError, NewTopic, Record, TopicPartition};
use rivulet_proto::v1;
use rivulet_server::ServeError;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
    dir: Arc<tempfile::TempDir>,
    configure: fn(BrokerConfig) -> BrokerConfig,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|config| config).await
    }

    /// A server whose broker settings `configure` adjusts.
    pub async fn start_with(configure: fn(BrokerConfig) -> BrokerConfig) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Self::start_on(dir, "127.0.0.1:0".parse().unwrap(), configure).await
    }

    async fn start_on(
        dir: Arc<tempfile::TempDir>,
        addr: SocketAddr,
        configure: fn(BrokerConfig) -> BrokerConfig,
    ) -> TestServer {
        let config = configure(BrokerConfig::new(dir.path()));
        let broker = Arc::new(Broker::open(config).await.unwrap());
        let listener = bind(addr).await;
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(rivulet_server::serve(
            listener,
            Arc::clone(&broker),
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            broker,
            stop: Some(stop),
            task: Some(task),
            dir,
            configure,
        }
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.address()).await.unwrap()
    }

    /// Stops the server and waits for `serve` to return.
    pub async fn stop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("server did not stop in time")
            .unwrap()
            .unwrap();
    }

    /// A new server on this one's data directory and port; call [`TestServer::stop`] first.
    pub async fn restart(&self) -> TestServer {
        Self::start_on(Arc::clone(&self.dir), self.addr, self.configure).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds `addr`, retrying while a just-closed listener still holds the port.
async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let mut last = None;
    for _ in 0..100 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(err) => last = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind {addr}: {last:?}");
}

pub async fn create_topic(client: &Client, name: &str, partitions: u32) {
    client
        .admin()
        .create_topic(NewTopic::new(name, partitions))
        .await
        .unwrap();
}

/// Polls until `count` records arrived or `limit` passed.
pub async fn poll_until(
    consumer: &mut rivulet_client::Consumer,
    count: usize,
    limit: Duration,
) -> Result<Vec<Record>, ClientError> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < count && tokio::time::Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(200)).await?);
    }
    Ok(out)
}

/// The stored batches of one partition, read with the raw API.
pub async fn raw_batches(server: &TestServer, tp: &TopicPartition) -> Vec<Bytes> {
    let mut log = v1::log_client::LogClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let mut batches = Vec::new();
    let mut offset = 0;
    loop {
        let reply = log
            .fetch(v1::FetchRequest {
                topic: tp.topic().to_owned(),
                partition: tp.partition(),
                offset,
                format: v1::FetchFormat::RawBatches as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if reply.batches.is_empty() {
            return batches;
        }
        offset = reply.next_offset;
        batches.extend(reply.batches);
    }
}

/// A `tracing` writer that keeps everything written, to check for warnings.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures WARN and above on this thread until the guard drops.
pub fn capture_warnings() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}
