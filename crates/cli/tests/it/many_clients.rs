//! Many clients (promise 6): 500 connections each holding an idle long-poll, plus active
//! producers and a reader. The server keeps serving, memory stays bounded and descriptors stay
//! at about one per connection; the peak RSS and descriptor count are printed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rivulet_proto::v1;
use rivulet_proto::v1::log_client::LogClient;
use tonic::transport::Endpoint;

use crate::harness::Server;

const CONNECTIONS: usize = 500;
const RUN: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_connections_with_idle_long_polls_and_active_producers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path().join("server.log"));
    let (mut log, mut admin) = server.clients().await;
    for (name, partitions) in [("idle", 4), ("busy", 4)] {
        admin
            .create_topic(v1::CreateTopicRequest {
                name: name.into(),
                partitions,
                config: None,
            })
            .await
            .unwrap();
    }
    let baseline_fds = server.open_fds();
    let baseline_rss = server.status_kib("VmRSS");

    // One connection each, every one parked in a long-poll on a topic nobody writes to.
    let deadline = Instant::now() + RUN;
    let mut waiters = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let channel = Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = LogClient::new(channel);
        waiters.push(tokio::spawn(async move {
            let mut polls = 0;
            while Instant::now() < deadline {
                let reply = client
                    .fetch(v1::FetchRequest {
                        topic: "idle".into(),
                        partition: (i % 4) as u32,
                        offset: 0,
                        max_wait_ms: 1000,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert!(reply.records.is_empty());
                polls += 1;
            }
            polls
        }));
    }

    // Producers and a reader on the busy topic meanwhile.
    let mut producers = Vec::new();
    for partition in 0..4u32 {
        let mut log = log.clone();
        producers.push(tokio::spawn(async move {
            let mut acked = 0u64;
            while Instant::now() < deadline {
                let request = v1::ProduceRequest {
                    topic: "busy".into(),
                    partition: Some(partition),
                    durability: v1::Durability::Durable as i32,
                    payload: Some(v1::produce_request::Payload::Records(v1::ProduceRecords {
                        records: (0..50)
                            .map(|_| v1::ProduceRecord {
                                value: Some(Bytes::from_static(&[b'v'; 200])),
                                ..Default::default()
                            })
                            .collect(),
                    })),
                };
                let reply = log.produce(request).await.unwrap().into_inner();
                acked = reply.batches[0].last_offset + 1;
            }
            acked
        }));
    }
    tokio::time::sleep(RUN / 2).await;
    let fds = server.open_fds();
    let started = Instant::now();
    let reply = log
        .fetch(v1::FetchRequest {
            topic: "busy".into(),
            partition: 0,
            offset: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let fetch_latency = started.elapsed();
    assert!(!reply.records.is_empty());

    let mut polls = 0;
    for waiter in waiters {
        polls += waiter.await.unwrap();
    }
    let mut acked = 0;
    for producer in producers {
        acked += producer.await.unwrap();
    }
    let peak = server.status_kib("VmHWM");
    println!(
        "many clients: {CONNECTIONS} connections, {polls} idle long-polls answered, {acked} \
         records produced meanwhile; server fds {baseline_fds} -> {fds}; RSS {baseline_rss} KiB \
         at rest, peak {peak} KiB; a fetch under load took {fetch_latency:?}"
    );
    assert!(fds < baseline_fds + CONNECTIONS + 64, "descriptors: {fds}");
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    assert!(fetch_latency < Duration::from_secs(2));
    drop((log, admin));
    server.kill();
}
