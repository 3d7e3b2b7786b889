//! Every error path of the client commands prints exactly one `error:` line on standard
//! error and exits with the code the documentation gives: 2 usage, 3 not found, 4 server
//! unreachable, 1 anything else.

use rivulet_proto::v1;

use crate::cli_command::{closed_port, rivulet};
use crate::harness::Server;

const USAGE: i32 = 2;
const NOT_FOUND: i32 = 3;
const UNREACHABLE: i32 = 4;
const OTHER: i32 = 1;

#[test]
fn each_error_is_one_line_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path().join("server.log"));
    let addr = server.addr;
    rivulet(addr, &["topic", "create", "known", "-p", "2"], b"").ok();

    let cases: &[(&[&str], i32, &str)] = &[
        // Unknown topics, partitions and groups.
        (
            &["topic", "describe", "nope"],
            NOT_FOUND,
            "unknown topic \"nope\"",
        ),
        (&["topic", "delete", "nope"], NOT_FOUND, "unknown topic"),
        (
            &["consume", "nope", "--from-beginning"],
            NOT_FOUND,
            "unknown topic",
        ),
        (&["produce", "nope"], NOT_FOUND, "unknown topic"),
        (
            &["consume", "known", "--partition", "5"],
            NOT_FOUND,
            "partition 5 does not exist",
        ),
        (
            &["produce", "known", "--partition", "5"],
            NOT_FOUND,
            "partition 5 does not exist",
        ),
        (
            &["group", "describe", "ghosts"],
            NOT_FOUND,
            "group \"ghosts\" not found",
        ),
        (
            &["group", "reset-offsets", "ghosts", "--to-earliest"],
            NOT_FOUND,
            "no committed offsets",
        ),
        // Bad flags and values, refused before anything is sent.
        (
            &["topic", "list", "--bogus"],
            USAGE,
            "unexpected argument '--bogus'",
        ),
        (&["consume"], USAGE, "<TOPIC>"),
        (
            &["topic", "create", "x", "--partitions", "many"],
            USAGE,
            "invalid value 'many'",
        ),
        (
            &["topic", "create", "x", "--config", "colour=blue"],
            USAGE,
            "unknown topic setting \"colour\"",
        ),
        (
            &["topic", "create", "x", "--config", "segment_bytes=huge"],
            USAGE,
            "invalid size \"huge\"",
        ),
        (
            &[
                "topic",
                "create",
                "x",
                "--config",
                "durability_policy=sometimes",
            ],
            USAGE,
            "unknown policy",
        ),
        (
            &["topic", "create", "x", "--config", "retention_ms"],
            USAGE,
            "KEY=VALUE",
        ),
        (
            &["consume", "known", "--from-beginning", "--offset", "3"],
            USAGE,
            "cannot be used with",
        ),
        (
            &["consume", "known", "--from-time", "yesterday"],
            USAGE,
            "invalid time",
        ),
        (
            &["consume", "known", "--output", "xml"],
            USAGE,
            "invalid value 'xml'",
        ),
        (
            &["produce", "known", "--key-field", "id"],
            USAGE,
            "--format jsonl or csv",
        ),
        (
            &["group", "reset-offsets", "g"],
            USAGE,
            "required arguments",
        ),
        (
            &[
                "group",
                "reset-offsets",
                "g",
                "--to-earliest",
                "--to-latest",
            ],
            USAGE,
            "cannot be used with",
        ),
        // Values the server refuses as invalid.
        (
            &["topic", "create", "x", "--config", "segment_bytes=5"],
            USAGE,
            "segment_bytes",
        ),
        (&["topic", "create", "bad name!"], USAGE, "invalid argument"),
        (
            &[
                "topic",
                "create",
                "x",
                "-c",
                "retention.ms=7d",
                "-c",
                "retention_ms=1s",
            ],
            USAGE,
            "topic setting retention_ms is given more than once",
        ),
        // Anything else.
        (&["topic", "create", "known"], OTHER, "already exists"),
        (
            &["consume", "known", "--partition", "0", "--offset", "99"],
            OTHER,
            "out of range",
        ),
    ];
    for (args, code, needle) in cases {
        let line = rivulet(addr, args, b"").failed(*code);
        assert!(
            line.contains(needle),
            "rivulet {args:?}: {line:?} lacks {needle:?}"
        );
    }

    // Input that is not what its format says.
    let line = rivulet(
        addr,
        &["produce", "known", "--format", "jsonl"],
        b"{\"ok\":1}\nnot json\n",
    )
    .failed(OTHER);
    assert!(line.contains("line 2 of the input: invalid JSON"), "{line}");
    // Timestamps that are no whole, allowed number of milliseconds are refused, not rounded,
    // clamped or stored.
    for (ts, says) in [
        ("1.5", "timestamp 1.5 is not a whole number of milliseconds"),
        (
            "1e20",
            "timestamp 1e+20 is not a whole number of milliseconds",
        ),
        ("-5", "timestamp -5 is out of range"),
        (
            "\"1969-12-31T23:59:59Z\"",
            "timestamp -1000 is out of range",
        ),
        (
            "\"1969-12-31T23:59:59.999Z\"",
            "is before 1970-01-01T00:00:00Z",
        ),
    ] {
        let input = format!("{{\"ts\":{ts}}}\n");
        let line = rivulet(
            addr,
            &[
                "produce",
                "known",
                "--format",
                "jsonl",
                "--timestamp-field",
                "ts",
            ],
            input.as_bytes(),
        )
        .failed(OTHER);
        assert!(line.contains("line 1 of the input"), "{line}");
        assert!(line.contains(says), "{ts}: {line}");
    }
    let csv = b"id,ts\n1,-7\n";
    let line = rivulet(
        addr,
        &[
            "produce",
            "known",
            "--format",
            "csv",
            "--timestamp-field",
            "ts",
        ],
        csv,
    )
    .failed(OTHER);
    assert!(
        line.contains("CSV line 2: timestamp: timestamp -7 is out of range"),
        "{line}"
    );
    let missing = dir.path().join("missing.jsonl");
    let line = rivulet(
        addr,
        &["produce", "known", "--file", missing.to_str().unwrap()],
        b"",
    )
    .failed(OTHER);
    assert!(line.contains("cannot open"), "{line}");

    // A record over the topic's limit is refused before it is sent, naming its line, and the
    // lines after it are not sent (the client library's own refusal of a record larger than a
    // whole request, not retried as a busy server, is tested there).
    let mut input = b"first\n".to_vec();
    input.extend(vec![b'y'; 2 << 20]);
    input.extend_from_slice(b"\nthird\n");
    let line = rivulet(addr, &["produce", "known", "--partition", "1"], &input).failed(OTHER);
    assert!(
        line.contains("line 2: the record is 2097152 bytes")
            && line.contains("max_record_bytes of topic \"known\" (1048576)")
            && line.contains("it and the lines after it were not sent"),
        "{line}"
    );
    // What the failed commands stored: the lines before each failure, nothing after.
    let stored = rivulet(addr, &["consume", "known", "--from-beginning"], b"").ok();
    let mut lines: Vec<&str> = stored.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["first", "{\"ok\":1}"], "{stored:?}");
}

#[test]
fn an_unreachable_server_exits_with_its_own_code() {
    let closed = closed_port();
    for args in [
        &["topic", "list"][..],
        &["topic", "create", "t"],
        &["produce", "t"],
        &["consume", "t"],
        &["group", "list"],
        &["group", "reset-offsets", "g", "--to-latest"],
    ] {
        let line = rivulet(closed, args, b"x\n").failed(UNREACHABLE);
        assert!(
            line.contains(&format!("server {closed} unreachable")),
            "{line}"
        );
    }
    // An explicit --server wins over RIVULET_SERVER.
    let line = rivulet(
        closed,
        &["topic", "list", "--server", "127.0.0.1:notaport"],
        b"",
    )
    .failed(USAGE);
    assert!(line.contains("127.0.0.1:notaport"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_offsets_is_refused_while_the_group_has_live_members() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path().join("server.log"));
    let addr = server.addr;
    rivulet(addr, &["topic", "create", "jobs"], b"").ok();
    rivulet(addr, &["produce", "jobs"], b"a\nb\n").ok();

    // A member joins through the membership protocol, as a subscribing consumer would.
    let (mut log, _) = server.clients().await;
    let joined = log
        .heartbeat(v1::HeartbeatRequest {
            group: "crew".to_owned(),
            topics: vec!["jobs".to_owned()],
            client_host: "test".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let described = rivulet(addr, &["group", "describe", "crew"], b"").ok();
    assert!(described.contains("1 live members"), "{described}");
    let line = rivulet(
        addr,
        &[
            "group",
            "reset-offsets",
            "crew",
            "--topic",
            "jobs",
            "--to-earliest",
        ],
        b"",
    )
    .failed(OTHER);
    assert!(line.contains("1 live members"), "{line}");
    assert!(line.contains(&joined.member_id), "{line}");

    // Reading partitions by hand with a group is not membership: the server refuses its
    // commit while members live.
    let out = rivulet(
        addr,
        &[
            "consume",
            "jobs",
            "--group",
            "crew",
            "--partition",
            "0",
            "--from-beginning",
        ],
        b"",
    );
    out.failed(OTHER);
    assert_eq!(out.stdout_text(), "a\nb\n");

    // As a member it joins, finds the only partition held by the other member, reads nothing
    // and leaves cleanly.
    let out = rivulet(
        addr,
        &["consume", "jobs", "--group", "crew", "--from-beginning"],
        b"",
    )
    .ok();
    assert_eq!(out, "");
}
