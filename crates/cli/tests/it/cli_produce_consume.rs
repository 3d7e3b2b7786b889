//! `rivulet produce` and `rivulet consume` end to end, and `rivulet group` on what they leave.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde_json::Value;

use crate::cli_command::rivulet;
use crate::harness::Server;

/// 2024-01-01T00:00:00Z.
const BASE_MS: i64 = 1_704_067_200_000;

fn json_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn start() -> (tempfile::TempDir, Server, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path().join("server.log"));
    let addr = server.addr;
    (dir, server, addr)
}

#[test]
fn a_json_lines_file_comes_back_byte_for_byte() {
    let (dir, _server, addr) = start();
    rivulet(addr, &["topic", "create", "events"], b"").ok();

    // Varied JSON: escapes, non-ASCII, nesting, odd spacing, a trailing carriage return.
    let mut input = String::new();
    for i in 0..3_000 {
        match i % 4 {
            0 => writeln!(
                input,
                r#"{{"id":{i},"user":"u{}","text":"caf\u00e9 \"quoted\""}}"#,
                i % 7
            ),
            1 => writeln!(
                input,
                r#"{{ "id" : {i}, "nested": {{"a": [1, 2.5, null, true]}}, "s": "日本語" }}"#
            ),
            2 => writeln!(input, "{{\"id\":{i},\"crlf\":true}}\r"),
            _ => writeln!(input, "[{i}, \"array\", {{}}]"),
        }
        .unwrap();
    }
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, &input).unwrap();

    let summary = rivulet(
        addr,
        &["produce", "events", "--file", file.to_str().unwrap()],
        b"",
    )
    .ok();
    assert!(
        summary.starts_with(&format!(
            "produced 3000 records ({} bytes) to events in ",
            input.len() - 3_000
        )),
        "{summary}"
    );
    assert!(summary.contains("records/s"), "{summary}");

    let consumed = rivulet(addr, &["consume", "events", "--from-beginning"], b"");
    assert_eq!(consumed.code, 0, "{}", consumed.stderr);
    assert!(
        consumed.stdout == input.as_bytes(),
        "consumed output differs from the input"
    );
}

#[test]
fn stdin_lines_and_partition_and_offset_selection() {
    let (_dir, _server, addr) = start();
    rivulet(addr, &["topic", "create", "lines", "-p", "2"], b"").ok();
    let summary = rivulet(
        addr,
        &["produce", "lines", "--partition", "1", "--output", "json"],
        b"zero\none\n\ntwo\nthree\n",
    )
    .ok();
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["records"], 5);

    let out = rivulet(
        addr,
        &[
            "consume",
            "lines",
            "--partition",
            "1",
            "--offset",
            "3",
            "-o",
            "json",
        ],
        b"",
    )
    .ok();
    let records = json_lines(&out);
    let values: Vec<_> = records
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, vec!["two", "three"]);
    assert_eq!(records[0]["offset"], 3);
    assert_eq!(records[0]["partition"], 1);
    assert_eq!(records[0]["key"], Value::Null);
    assert_eq!(records[0]["headers"], serde_json::json!([]));

    let out = rivulet(
        addr,
        &["consume", "lines", "--from-beginning", "-n", "2"],
        b"",
    )
    .ok();
    assert_eq!(out, "zero\none\n");
    // Partition 0 is empty; reading it alone ends at once.
    let out = rivulet(
        addr,
        &["consume", "lines", "--partition", "0", "--from-beginning"],
        b"",
    )
    .ok();
    assert_eq!(out, "");
}

#[test]
fn csv_rows_carry_keys_and_timestamps_from_their_columns() {
    let (dir, _server, addr) = start();
    rivulet(addr, &["topic", "create", "trips", "-p", "3"], b"").ok();
    let file = dir.path().join("trips.csv");
    std::fs::write(
        &file,
        "trip,vendor,at,note\n\
         1,acme,2024-01-01T00:00:00Z,plain\n\
         2,zephyr,1704067260000,\"with, comma\"\n\
         3,acme,2024-01-01T00:02:00.500+00:00,\"quote \"\"q\"\"\"\n",
    )
    .unwrap();
    rivulet(
        addr,
        &[
            "produce",
            "trips",
            "--file",
            file.to_str().unwrap(),
            "--key-field",
            "vendor",
            "--timestamp-field",
            "at",
        ],
        b"",
    )
    .ok();

    let out = rivulet(
        addr,
        &["consume", "trips", "--from-beginning", "-o", "json"],
        b"",
    )
    .ok();
    let mut records = json_lines(&out);
    records.sort_by_key(|r| r["timestamp"].as_i64());
    assert_eq!(records.len(), 3);
    let keys: Vec<_> = records.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, vec!["acme", "zephyr", "acme"]);
    let times: Vec<_> = records
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(times, vec![BASE_MS, BASE_MS + 60_000, BASE_MS + 120_500]);
    // Same key, same partition, as the broker's partitioner places them.
    assert_eq!(records[0]["partition"], records[2]["partition"]);
    assert_eq!(
        records[1]["value"],
        r#"{"trip":"2","vendor":"zephyr","at":"1704067260000","note":"with, comma"}"#
    );
    assert_eq!(
        records[2]["value"],
        r#"{"trip":"3","vendor":"acme","at":"2024-01-01T00:02:00.500+00:00","note":"quote \"q\""}"#
    );
}

#[test]
fn consume_from_time_starts_at_the_first_record_at_or_after_it() {
    let (_dir, _server, addr) = start();
    rivulet(addr, &["topic", "create", "clock", "-p", "2"], b"").ok();
    let mut input = String::new();
    for minute in 0..10 {
        let ts = BASE_MS + minute * 60_000;
        writeln!(input, r#"{{"minute":{minute},"ts":{ts},"k":"k{minute}"}}"#).unwrap();
    }
    rivulet(
        addr,
        &[
            "produce",
            "clock",
            "--format",
            "jsonl",
            "--timestamp-field",
            "ts",
            "--key-field",
            "k",
        ],
        input.as_bytes(),
    )
    .ok();

    // 00:06:30 falls between records; the first at or after it is minute 7.
    let out = rivulet(
        addr,
        &[
            "consume",
            "clock",
            "--from-time",
            "2024-01-01T00:06:30Z",
            "-o",
            "json",
        ],
        b"",
    )
    .ok();
    let mut minutes: Vec<i64> = json_lines(&out)
        .iter()
        .map(|r| {
            let value: Value = serde_json::from_str(r["value"].as_str().unwrap()).unwrap();
            value["minute"].as_i64().unwrap()
        })
        .collect();
    minutes.sort_unstable();
    assert_eq!(minutes, vec![7, 8, 9]);

    let millis = (BASE_MS + 9 * 60_000).to_string();
    let out = rivulet(addr, &["consume", "clock", "--from-time", &millis], b"").ok();
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = rivulet(addr, &["consume", "clock", "--from-time", "now"], b"");
    assert_eq!(out.code, 2, "'now' alone is not a time: {}", out.stderr);
}

#[test]
fn group_describe_shows_lag_and_reset_offsets_moves_it() {
    let (_dir, _server, addr) = start();
    rivulet(addr, &["topic", "create", "work"], b"").ok();
    let input: String = (0..10).map(|i| format!("job-{i}\n")).collect();
    rivulet(addr, &["produce", "work"], input.as_bytes()).ok();

    let out = rivulet(
        addr,
        &[
            "consume",
            "work",
            "--group",
            "workers",
            "--from-beginning",
            "--max-records",
            "4",
        ],
        b"",
    )
    .ok();
    assert_eq!(out, "job-0\njob-1\njob-2\njob-3\n");

    let table = rivulet(addr, &["group", "describe", "workers"], b"").ok();
    assert_eq!(
        table,
        "group workers: total lag 6, 0 live members\n\n\
         TOPIC  PARTITION  COMMITTED  LOG-END  LAG  MEMBER\n\
         work           0          4       10    6       -\n"
    );
    let list = rivulet(addr, &["group", "list"], b"").ok();
    assert_eq!(
        list,
        "GROUP    PARTITIONS  MEMBERS  LAG\nworkers           1        0    6\n"
    );

    // The group resumes where it committed.
    let out = rivulet(
        addr,
        &["consume", "work", "--group", "workers", "-n", "2"],
        b"",
    )
    .ok();
    assert_eq!(out, "job-4\njob-5\n");

    let dry = rivulet(
        addr,
        &[
            "group",
            "reset-offsets",
            "workers",
            "--to-earliest",
            "--dry-run",
            "-o",
            "json",
        ],
        b"",
    )
    .ok();
    let dry = json_lines(&dry);
    assert_eq!(
        (
            dry[0]["previous_offset"].as_u64(),
            dry[0]["new_offset"].as_u64()
        ),
        (Some(6), Some(0))
    );
    let lag = |addr| {
        let out = rivulet(addr, &["group", "describe", "workers", "-o", "json"], b"").ok();
        json_lines(&out)[0]["lag"].as_u64().unwrap()
    };
    assert_eq!(lag(addr), 4, "a dry run commits nothing");

    rivulet(
        addr,
        &["group", "reset-offsets", "workers", "--to-earliest"],
        b"",
    )
    .ok();
    assert_eq!(lag(addr), 10);
    rivulet(
        addr,
        &[
            "group",
            "reset-offsets",
            "workers",
            "--topic",
            "work",
            "--to-offset",
            "7",
        ],
        b"",
    )
    .ok();
    assert_eq!(lag(addr), 3);
    rivulet(
        addr,
        &["group", "reset-offsets", "workers", "--to-latest"],
        b"",
    )
    .ok();
    assert_eq!(lag(addr), 0);
    rivulet(
        addr,
        &[
            "group",
            "reset-offsets",
            "workers",
            "--to-time",
            "2000-01-01",
        ],
        b"",
    )
    .ok();
    assert_eq!(lag(addr), 10);
    let out = rivulet(
        addr,
        &["consume", "work", "--group", "workers", "-n", "1"],
        b"",
    )
    .ok();
    assert_eq!(out, "job-0\n");
}

#[test]
fn produce_sends_batches_within_a_small_topic_batch_limit() {
    let (_dir, _server, addr) = start();
    rivulet(
        addr,
        &["topic", "create", "narrow", "-c", "max_batch_bytes=100KiB"],
        b"",
    )
    .ok();
    let mut input = String::new();
    for i in 0..5_000 {
        writeln!(input, "{i:0100}").unwrap();
    }
    let out = rivulet(addr, &["produce", "narrow"], input.as_bytes()).ok();
    assert!(out.starts_with("produced 5000 records"), "{out}");
    let read = rivulet(addr, &["consume", "narrow", "--from-beginning"], b"").ok();
    assert_eq!(read, input);
}
