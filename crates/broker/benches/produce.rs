//! Durable produce throughput from 1, 8 and 64 concurrent producers to one partition.
//!
//! Criterion reports records/s (one record per request); after each case the bench prints how
//! many fsyncs per second the broker did, from [`rivulet_broker::BrokerMetrics::fsyncs`], so
//! group commit shows up as fsyncs/s staying flat while records/s grows with concurrency.
//!
//! Run with `cargo bench -p rivulet-broker --bench produce`.

#![expect(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rivulet_broker::{
    Broker, BrokerConfig, Durability, ProduceRecord, ProduceRequest, TopicConfig,
};

fn produce_durable(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let broker = Arc::new(
        runtime
            .block_on(Broker::open(BrokerConfig::new(dir.path())))
            .expect("broker opens"),
    );
    runtime
        .block_on(broker.create_topic("bench", 1, TopicConfig::default()))
        .expect("topic created");

    let mut group = c.benchmark_group("produce_durable");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    for producers in [1u64, 8, 64] {
        group.throughput(Throughput::Elements(producers));
        group.bench_with_input(
            BenchmarkId::from_parameter(producers),
            &producers,
            |b, &producers| {
                b.iter_custom(|iters| {
                    let fsyncs_before = broker.metrics().fsyncs;
                    let started = Instant::now();
                    runtime.block_on(run_producers(&broker, producers, iters));
                    let elapsed = started.elapsed();
                    let fsyncs = broker.metrics().fsyncs - fsyncs_before;
                    println!(
                        "producers={producers} records={} fsyncs={fsyncs} fsyncs/s={:.0} \
                         records/s={:.0}",
                        producers * iters,
                        fsyncs as f64 / elapsed.as_secs_f64(),
                        (producers * iters) as f64 / elapsed.as_secs_f64()
                    );
                    elapsed
                });
            },
        );
    }
    group.finish();
    runtime
        .block_on(broker.shutdown())
        .expect("broker shuts down");
}

/// `producers` tasks each send `rounds` one-record durable requests.
async fn run_producers(broker: &Arc<Broker>, producers: u64, rounds: u64) {
    let tasks: Vec<_> = (0..producers)
        .map(|_| {
            let broker = Arc::clone(broker);
            tokio::spawn(async move {
                for _ in 0..rounds {
                    let request = ProduceRequest::records(
                        "bench",
                        vec![ProduceRecord::value(vec![0u8; 100])],
                    )
                    .to_partition(0)
                    .with_durability(Durability::Durable);
                    broker.produce(request).await.expect("produce");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("producer task");
    }
}

criterion_group!(benches, produce_durable);
criterion_main!(benches);
