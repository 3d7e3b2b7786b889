//! Cross-checks this crate against kafka-python, an independent implementation of the same
//! format, through `scripts/kafka_python_batches.py`.
//!
//! - kafka-python builds batches with every codec; we must validate and decode each to exactly
//!   the records it describes.
//! - We build batches with every codec; kafka-python must accept their CRC and read back exactly
//!   the records we describe.
//! - Our murmur2 must agree with kafka-python's on a table of keys.
//!
//! The comparisons of records happen in Python, which reads the JSON descriptions natively; this
//! side only writes JSON. Needs `python3` with the packages `scripts/install-test-deps.sh`
//! installs. Without them the tests are skipped, unless the `CI` variable is set, in which case
//! they fail.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bytes::Bytes;
use rivulet_format::header::set_base_offset;
use rivulet_format::{
    BatchBuilder, BatchHeader, BatchLimits, Compression, Record, RecordHeader, TimestampType,
    decode_batch, murmur2, record_offsets_and_timestamps, validate_batch,
};

/// Exit code of the script's `deps` command when a package is missing.
const MISSING_DEPS_EXIT: i32 = 3;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka_python_batches.py")
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn run_script(args: &[&str]) -> Output {
    Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .expect("python3 runs")
}

/// Whether kafka-python and its codecs are importable. When they are not: a failure under CI,
/// a skip (with the fix printed) elsewhere.
fn python_ready() -> bool {
    let problem = match Command::new(python()).arg(script()).arg("deps").output() {
        Ok(out) if out.status.success() => return true,
        Ok(out) if out.status.code() == Some(MISSING_DEPS_EXIT) => {
            String::from_utf8_lossy(&out.stderr).trim().to_owned()
        }
        Ok(out) => panic!(
            "the dependency check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => format!("cannot run {}: {err}", python()),
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "kafka-python cross-check cannot run under CI: {problem}; \
         run scripts/install-test-deps.sh first"
    );
    println!("skipped: {problem}; run scripts/install-test-deps.sh");
    false
}

/// A fresh, empty directory for one test's files, under cargo's scratch directory.
fn work_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kafka-python-{test}"));
    if dir.exists() {
        fs::remove_dir_all(&dir).expect("old work directory is removable");
    }
    fs::create_dir_all(&dir).expect("work directory is creatable");
    dir
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn we_decode_what_kafka_python_builds() {
    if !python_ready() {
        return;
    }
    let dir = work_dir("decode");
    let work = dir.to_str().unwrap();
    assert_success(
        &run_script(&["generate", work]),
        "kafka-python batch generation",
    );

    let mut decoded = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = name.strip_suffix(".bin") else {
            continue;
        };
        let batch = Bytes::from(fs::read(&path).unwrap());

        let validated = validate_batch(&batch, &BatchLimits::default())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let (header, records) = decode_batch(&batch).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(header, validated);
        let pairs: Vec<(i64, i64)> = records.iter().map(|r| (r.offset, r.timestamp)).collect();
        assert_eq!(
            record_offsets_and_timestamps(&batch).unwrap(),
            pairs,
            "{name}"
        );

        let json = describe(&header, &records);
        fs::write(dir.join(format!("{stem}.decoded.json")), json).unwrap();
        decoded += 1;
    }
    assert!(
        decoded >= CODECS.len(),
        "only {decoded} batches from kafka-python"
    );

    assert_success(
        &run_script(&["check", work]),
        "comparison with kafka-python's records",
    );
}

#[test]
fn kafka_python_reads_what_we_build() {
    if !python_ready() {
        return;
    }
    let dir = work_dir("build");

    let mut cases: Vec<(String, BatchBuilder, i64)> = Vec::new();
    for codec in CODECS {
        cases.push((codec.name().to_owned(), BatchBuilder::new(codec), 0));
    }
    let mut log_append = BatchBuilder::new(Compression::Gzip);
    log_append.timestamp_type(TimestampType::LogAppendTime);
    cases.push(("gzip-log-append".to_owned(), log_append, 0));
    let mut idempotent = BatchBuilder::new(Compression::Snappy);
    idempotent.producer(4242, 7, 1_000);
    cases.push(("snappy-idempotent".to_owned(), idempotent, 9_876_543_210));

    for (name, mut builder, base_offset) in cases {
        let specs = sample_records();
        for (ts, key, value, headers) in &specs {
            let headers: Vec<(&str, Option<&[u8]>)> =
                headers.iter().map(|(k, v)| (*k, v.as_deref())).collect();
            builder.push(*ts, key.as_deref(), value.as_deref(), &headers);
        }
        let mut batch = builder.build().unwrap();
        set_base_offset(&mut batch, base_offset);
        let header = validate_batch(&batch, &BatchLimits::default()).unwrap();

        let expected = expected_records(&header, &specs);
        fs::write(dir.join(format!("rs-{name}.bin")), &batch).unwrap();
        let json = describe(&header, &expected);
        fs::write(dir.join(format!("rs-{name}.expected.json")), json).unwrap();
    }

    let work = dir.to_str().unwrap();
    assert_success(
        &run_script(&["check", work]),
        "kafka-python parsing our batches",
    );
}

#[test]
fn murmur2_agrees_with_kafka_python() {
    if !python_ready() {
        return;
    }
    let mut keys: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"a".to_vec(),
        b"ab".to_vec(),
        b"abc".to_vec(),
        b"abcd".to_vec(),
        b"21".to_vec(),
        b"foobar".to_vec(),
        "cl\u{e9}-\u{20ac}".as_bytes().to_vec(),
        vec![0x00, 0xff, 0x80, 0x7f, 0x01],
    ];
    // Every length up to 40, so each tail length meets several block counts.
    keys.extend((0..40u8).map(|n| (0..n).map(|i| i.wrapping_mul(37) ^ n).collect()));

    let keys_file = work_dir("murmur2").join("keys.json");
    let hex_keys: Vec<String> = keys.iter().map(|k| format!("\"{}\"", hex(k))).collect();
    fs::write(&keys_file, format!("[{}]", hex_keys.join(","))).unwrap();

    let out = run_script(&["murmur2", keys_file.to_str().unwrap()]);
    assert_success(&out, "kafka-python murmur2");
    let theirs: Vec<i32> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    let ours: Vec<i32> = keys.iter().map(|k| murmur2(k)).collect();
    assert_eq!(ours, theirs);
}

/// What the test pushes: timestamp, key, value, headers.
type Spec = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(&'static str, Option<Vec<u8>>)>,
);

/// Null and empty keys and values, headers with null values and non-ASCII names, timestamps
/// that go backwards, and enough repetition for every codec to compress.
fn sample_records() -> Vec<Spec> {
    let base = 1_700_000_000_000;
    let mut specs: Vec<Spec> = vec![
        (
            base,
            Some(b"user-1".to_vec()),
            Some(b"signed up ".repeat(40)),
            vec![("trace-id", Some(b"abc123".to_vec()))],
        ),
        (base + 15, None, Some(Vec::new()), vec![]),
        (
            base - 250,
            Some(Vec::new()),
            None,
            vec![("empty", Some(Vec::new())), ("null", None)],
        ),
        (
            base + 7,
            Some(vec![0xff, 0x00, 0x01]),
            Some(vec![0; 300]),
            vec![("h\u{e9}ader-\u{20ac}", Some(vec![0xfe]))],
        ),
        (
            base + 3_600_000,
            Some(vec![b'k'; 200]),
            Some((0..=255u8).cycle().take(1024).collect()),
            vec![],
        ),
    ];
    // Enough bytes to span several Snappy (32 KiB) and LZ4 (64 KiB) blocks.
    for i in 0..400 {
        let value = format!("value {i} ").repeat(20).into_bytes();
        specs.push((
            base + i * 3,
            Some(format!("key-{}", i % 4).into_bytes()),
            Some(value),
            vec![],
        ));
    }
    specs
}

/// The records a reader should see in a batch built from `specs`, worked out from the specs
/// alone rather than by our decoder.
fn expected_records(header: &BatchHeader, specs: &[Spec]) -> Vec<Record> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (ts, key, value, headers))| Record {
            offset: header.base_offset + i as i64,
            timestamp: match header.timestamp_type() {
                TimestampType::CreateTime => *ts,
                TimestampType::LogAppendTime => specs.iter().map(|s| s.0).fold(i64::MIN, i64::max),
            },
            key: key.clone().map(Bytes::from),
            value: value.clone().map(Bytes::from),
            headers: headers
                .iter()
                .map(|(k, v)| RecordHeader {
                    key: (*k).to_owned(),
                    value: v.clone().map(Bytes::from),
                })
                .collect(),
        })
        .collect()
}

/// The JSON description the script compares, as documented in the script.
fn describe(header: &BatchHeader, records: &[Record]) -> String {
    let codec = header.compression().map_or("unknown", Compression::name);
    let timestamp_type = match header.timestamp_type() {
        TimestampType::CreateTime => "create",
        TimestampType::LogAppendTime => "log_append",
    };
    let mut out = format!(
        "{{\"codec\":\"{codec}\",\"timestamp_type\":\"{timestamp_type}\",\
         \"base_offset\":{},\"producer_id\":{},\"producer_epoch\":{},\"base_sequence\":{},\
         \"records\":[",
        header.base_offset, header.producer_id, header.producer_epoch, header.base_sequence
    );
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let headers: Vec<String> = record
            .headers
            .iter()
            .map(|h| format!("[{},{}]", json_string(&h.key), json_hex(h.value.as_deref())))
            .collect();
        out.push_str(&format!(
            "{{\"offset\":{},\"timestamp\":{},\"key\":{},\"value\":{},\"headers\":[{}]}}",
            record.offset,
            record.timestamp,
            json_hex(record.key.as_deref()),
            json_hex(record.value.as_deref()),
            headers.join(",")
        ));
    }
    out.push_str("]}");
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_hex(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(|| "null".to_owned(), |b| format!("\"{}\"", hex(b)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
