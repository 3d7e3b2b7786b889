//! rivulet-bench against a real server started in process: tiny runs of every workload, with
//! the report checked for sane counts. Nothing here asserts a speed.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on any error")]

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use rivulet_bench::{BenchOptions, Report};
use rivulet_broker::{Broker, BrokerConfig};
use tokio::sync::oneshot;

/// An in-process server on a free 127.0.0.1 port over a temporary directory.
struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(BrokerConfig::new(dir.path())).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(rivulet_server::serve(listener, broker, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        _stop: stop,
        _dir: dir,
    }
}

async fn bench(server: &Server, args: &[&str]) -> Report {
    let addr = server.addr.to_string();
    let pid = std::process::id().to_string();
    let mut argv = vec![
        "rivulet-bench",
        "--server",
        &addr,
        "--server-pid",
        &pid,
        "--progress",
        "0",
        "--duration",
        "60",
    ];
    argv.extend_from_slice(args);
    let options = BenchOptions::try_parse_from(argv).unwrap();
    rivulet_bench::run(&options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_run_counts_every_record_it_sent() {
    let server = start_server().await;
    let report = bench(
        &server,
        &[
            "--workload",
            "produce",
            "--records",
            "300",
            "--record-size",
            "100",
            "--partitions",
            "2",
        ],
    )
    .await;

    assert_eq!(report.produce.records, 300);
    assert_eq!(report.produce.bytes, 300 * 100);
    assert_eq!(report.errors, 0);
    assert_eq!(report.produce_latency.as_ref().unwrap().count, 300);
    assert!(report.topic_bytes_on_disk.unwrap() >= 300 * 100);
    assert!(report.server_peak_rss_bytes.unwrap() > 0);
    assert!(report.machine.cores >= 1);
    assert!(report.markdown_row().contains("| written |"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_durable_produce_from_two_producers_counts_every_record() {
    let server = start_server().await;
    let report = bench(
        &server,
        &[
            "--workload",
            "produce",
            "--produce-client",
            "raw",
            "--durability",
            "durable",
            "--producers",
            "2",
            "--records",
            "301",
            "--batch-bytes",
            "4096",
        ],
    )
    .await;

    assert_eq!(report.produce.records, 301);
    assert_eq!(report.errors, 0);
    assert!(report.markdown_row().contains("| durable |"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_run_reads_everything_the_fill_wrote() {
    let server = start_server().await;
    for client in ["raw", "consumer"] {
        let report = bench(
            &server,
            &[
                "--workload",
                "consume",
                "--fetch-client",
                client,
                "--records",
                "500",
                "--partitions",
                "3",
                "--consumers",
                "2",
                "--fetch-bytes",
                "8192",
            ],
        )
        .await;

        assert_eq!(report.produce.records, 500, "{client}");
        let consume = report.consume.unwrap();
        assert_eq!(consume.records, 500, "{client}");
        assert_eq!(report.errors, 0, "{client}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_run_sees_every_produced_record_once() {
    let server = start_server().await;
    let report = bench(
        &server,
        &[
            "--workload",
            "end-to-end",
            "--records",
            "200",
            "--rate",
            "2000",
            "--partitions",
            "2",
            "--consumers",
            "2",
            "--linger-ms",
            "1",
        ],
    )
    .await;

    assert_eq!(report.produce.records, 200);
    assert_eq!(report.consume.as_ref().unwrap().records, 200);
    assert_eq!(report.end_to_end_latency.as_ref().unwrap().count, 200);
    assert_eq!(report.errors, 0);
}
