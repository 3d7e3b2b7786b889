//! `rivulet topic`: create with every per-topic setting, list, describe, delete.

use serde_json::Value;

use crate::cli_command::rivulet;
use crate::harness::Server;

#[test]
fn topic_commands_round_trip_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path().join("server.log"));
    let addr = server.addr;

    let created = rivulet(
        addr,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=7d",
            "--config",
            "retention_bytes=1GiB",
            "--config",
            "segment-bytes=1MiB",
            "--config",
            "max_record_bytes=2048",
            "--config",
            "max_batch_bytes=64KiB",
            "--config",
            "durability_policy=sync-interval",
            "--config",
            "sync_interval_ms=250",
        ],
        b"",
    )
    .ok();
    assert_eq!(created, "created topic orders with 3 partitions\n");
    let single = rivulet(addr, &["topic", "create", "audit"], b"").ok();
    assert_eq!(single, "created topic audit with 1 partition\n");
    rivulet(addr, &["topic", "create", "audit", "--if-not-exists"], b"").ok();
    // Another spelling of an existing name is a different topic that cannot be created.
    let collision = rivulet(addr, &["topic", "create", "AUDIT", "--if-not-exists"], b"").failed(1);
    assert!(
        collision.contains("collides with existing topic \"audit\""),
        "{collision}"
    );
    let duplicate = rivulet(addr, &["topic", "create", "audit"], b"").failed(1);
    assert!(
        duplicate.contains("topic \"audit\" already exists") && !duplicate.contains("case"),
        "{duplicate}"
    );

    let table = rivulet(addr, &["topic", "list"], b"").ok();
    assert_eq!(
        table,
        "TOPIC   PARTITIONS\naudit            1\norders           3\n"
    );
    let json = rivulet(addr, &["topic", "list", "--output", "json"], b"").ok();
    let lines: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[1]["topic"], "orders");
    assert_eq!(lines[1]["partitions"], 3);

    let described = rivulet(addr, &["topic", "describe", "orders", "-o", "json"], b"").ok();
    let described: Value = serde_json::from_str(&described).unwrap();
    let config = &described["config"];
    assert_eq!(config["retention_ms"], 7 * 86_400_000u64);
    assert_eq!(config["retention_bytes"], 1u64 << 30);
    assert_eq!(config["segment_bytes"], 1u64 << 20);
    assert_eq!(config["max_record_bytes"], 2048);
    assert_eq!(config["max_batch_bytes"], 64 << 10);
    assert_eq!(config["durability_policy"], "sync-interval");
    assert_eq!(config["sync_interval_ms"], 250);
    assert_eq!(described["partitions"].as_array().unwrap().len(), 3);

    let text = rivulet(addr, &["topic", "describe", "orders"], b"").ok();
    assert!(text.contains("segment_bytes      1048576"), "{text}");
    assert!(text.contains("PARTITION  LOG-START  LOG-END"), "{text}");

    rivulet(addr, &["topic", "delete", "orders"], b"").ok();
    rivulet(addr, &["topic", "delete", "orders", "--if-exists"], b"").ok();
    let table = rivulet(addr, &["topic", "list"], b"").ok();
    assert_eq!(table, "TOPIC  PARTITIONS\naudit           1\n");
}
