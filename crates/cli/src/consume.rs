//! `rivulet consume TOPIC`: reads a topic with the client library's [`Consumer`] and prints
//! each record, as its value alone or as a JSON line.
//!
//! Where reading starts, per partition: `--offset`, `--from-time` or `--from-beginning` when
//! given; else the group's committed offset with `--group`; else the log end. Without
//! `--follow` the command stops at the log end offsets the topic had when it started; with it,
//! it waits for new records until interrupted. With `--group`, the position after the last
//! printed record is committed every few seconds and at the end, never past a record that was
//! not printed.
//!
//! TODO(cli): `--group` reads the partitions itself instead of joining the group as a member
//! (sharing partitions with the group's other consumers), because start flags, `--partition`
//! and the stop-at-log-end rule need a fixed assignment; meanwhile its commits carry no member
//! id, so the server refuses them while the group has live members and the command fails.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::{ArgGroup, Args, ValueEnum};
use rivulet_client::{Consumer, OffsetReset, Record, TopicPartition};
use serde_json::{Map, Value, json};

use crate::arg_values::parse_time_ms;
use crate::connect::ServerArgs;
use crate::exit::not_found;

/// How long one poll waits before the loop checks whether it is done.
const POLL_WAIT: Duration = Duration::from_millis(500);

/// How often a group's position is committed while consuming.
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// `rivulet consume`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("start").args(["from_beginning", "offset", "from_time"])))]
#[command(after_help = "\
EXAMPLES:
    rivulet consume orders --from-beginning
    rivulet consume orders --group billing --follow --output json
    rivulet consume orders --partition 2 --offset 1000 --max-records 10
    rivulet consume orders --from-time 2026-01-31T12:00:00Z
    rivulet consume orders --from-time now-15m

Without --follow, consume stops at the end of the log as it was when the command started.
Records of one partition are printed in offset order; partitions are interleaved.")]
pub(crate) struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Start at the first record still stored.
    #[arg(long)]
    from_beginning: bool,
    /// Start at this offset (in every partition read, unless --partition picks one).
    #[arg(long, value_name = "OFFSET")]
    offset: Option<u64>,
    /// Start at the first record at or after this time: milliseconds since the epoch, RFC 3339
    /// (2026-01-31T12:00:00Z), a date (2026-01-31) or now-DURATION (now-15m).
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    from_time: Option<i64>,
    /// Read as this consumer group: start from its committed offsets (unless a start flag is
    /// given) and commit the position after what was printed.
    #[arg(long, short = 'g', value_name = "GROUP")]
    group: Option<String>,
    /// Keep waiting for new records until interrupted (Ctrl-C).
    #[arg(long)]
    follow: bool,
    /// Stop after printing this many records.
    #[arg(long, short = 'n', value_name = "N")]
    max_records: Option<u64>,
    /// Read only this partition.
    #[arg(long, short = 'p', value_name = "N")]
    partition: Option<u32>,
    /// Print each record's value on its own line (plain), or one JSON object per record with
    /// topic, partition, offset, timestamp, key, value and headers (json).
    #[arg(long, short = 'o', value_enum, default_value_t = RecordFormat::Plain)]
    output: RecordFormat,
    #[command(flatten)]
    server: ServerArgs,
}

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RecordFormat {
    /// The value, byte for byte, then a newline; a null value prints an empty line.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Runs `rivulet consume`.
pub(crate) async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let topic = client
        .admin()
        .describe_topic(&args.topic)
        .await
        .with_context(|| format!("cannot consume topic {:?}", args.topic))?;
    let count = topic.partitions().len();
    let ends: BTreeMap<TopicPartition, u64> = topic
        .partitions()
        .iter()
        .filter(|p| args.partition.is_none_or(|wanted| wanted == p.partition()))
        .map(|p| {
            (
                TopicPartition::new(&args.topic, p.partition()),
                p.high_watermark(),
            )
        })
        .collect();
    if let Some(partition) = args.partition
        && ends.is_empty()
    {
        return Err(not_found(format!(
            "topic {:?} has {count} partitions; partition {partition} does not exist",
            args.topic
        )));
    }

    if let Some(offset) = args.offset {
        for p in topic.partitions() {
            let selected = args.partition.is_none_or(|wanted| wanted == p.partition());
            if selected && !(p.log_start_offset()..=p.high_watermark()).contains(&offset) {
                return Err(anyhow::anyhow!(
                    "offset {offset} is out of range for {}/{}: it holds offsets {} to {}",
                    args.topic,
                    p.partition(),
                    p.log_start_offset(),
                    p.high_watermark()
                ));
            }
        }
    }

    let mut builder = client
        .consumer()
        .offset_reset(if args.offset.is_some() {
            OffsetReset::Fail
        } else {
            OffsetReset::Latest
        })
        .auto_commit(None);
    if let Some(group) = &args.group {
        builder = builder.group(group);
    }
    let mut consumer = builder.build();
    let partitions: Vec<TopicPartition> = ends.keys().cloned().collect();
    consumer.assign(partitions.clone());
    position(&mut consumer, &args, &partitions).await?;

    let result = consume(&mut consumer, &args, &ends).await;
    if args.group.is_some() {
        let commit = consumer
            .commit()
            .await
            .context("cannot commit the group's offsets");
        result?;
        return commit;
    }
    result
}

/// Moves every partition to the start the flags ask for; without one, the consumer starts from
/// the group's committed offset or the log end on its first poll.
async fn position(
    consumer: &mut Consumer,
    args: &ConsumeArgs,
    partitions: &[TopicPartition],
) -> anyhow::Result<()> {
    if args.from_beginning {
        consumer
            .seek_to_beginning(partitions)
            .await
            .context("cannot find the first offsets")?;
    } else if let Some(offset) = args.offset {
        for tp in partitions {
            consumer.seek(tp, offset)?;
        }
    } else if let Some(ms) = args.from_time {
        for tp in partitions {
            consumer
                .seek_to_timestamp(tp, ms)
                .await
                .with_context(|| format!("cannot find the offset of time {ms} in {tp}"))?;
        }
    }
    Ok(())
}

/// Polls and prints until done: the log ends of `ends` reached (without `--follow`), the
/// record limit reached, Ctrl-C, or standard output closed.
async fn consume(
    consumer: &mut Consumer,
    args: &ConsumeArgs,
    ends: &BTreeMap<TopicPartition, u64>,
) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::io::stdout());
    let mut printed = 0u64;
    let mut last_commit = tokio::time::Instant::now();
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        if args.max_records.is_some_and(|max| printed >= max) {
            return Ok(());
        }
        if !args.follow && reached(consumer, ends) {
            return Ok(());
        }
        let records = tokio::select! {
            records = consumer.poll(POLL_WAIT) => records.context("cannot read records")?,
            _ = &mut interrupt => return Ok(()),
        };

        let mut unprinted: BTreeMap<TopicPartition, u64> = BTreeMap::new();
        for record in records {
            let tp = TopicPartition::new(record.topic(), record.partition());
            let past_end = !args.follow && ends.get(&tp).is_some_and(|end| record.offset() >= *end);
            if past_end || args.max_records.is_some_and(|max| printed >= max) {
                unprinted.entry(tp).or_insert(record.offset());
                continue;
            }
            match write_record(&mut out, &record, args.output) {
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                result => result.context("cannot write to standard output")?,
            }
            printed += 1;
        }
        // Records returned by the poll but not printed (past the limit, or produced after the
        // command started) go back, so a commit never covers them.
        for (tp, offset) in unprinted {
            consumer.seek(&tp, offset)?;
        }
        match out.flush() {
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            result => result.context("cannot write to standard output")?,
        }
        if args.group.is_some() && last_commit.elapsed() >= COMMIT_INTERVAL {
            consumer
                .commit()
                .await
                .context("cannot commit the group's offsets")?;
            last_commit = tokio::time::Instant::now();
        }
    }
}

/// Whether every partition's position is at or past the log end it had at the start.
fn reached(consumer: &Consumer, ends: &BTreeMap<TopicPartition, u64>) -> bool {
    ends.iter()
        .all(|(tp, end)| consumer.position(tp).is_some_and(|p| p >= *end))
}

fn write_record(
    out: &mut impl Write,
    record: &Record,
    format: RecordFormat,
) -> std::io::Result<()> {
    match format {
        RecordFormat::Plain => {
            if let Some(value) = record.value() {
                out.write_all(value)?;
            }
            out.write_all(b"\n")
        }
        RecordFormat::Json => {
            let json = record_json(record);
            writeln!(out, "{json}")
        }
    }
}

/// A record as a JSON object. Keys, values and header values that are UTF-8 are strings;
/// others are given base64-encoded under `key_base64`, `value_base64` or `value_base64`.
fn record_json(record: &Record) -> Value {
    let mut object = Map::new();
    object.insert("topic".into(), json!(record.topic()));
    object.insert("partition".into(), json!(record.partition()));
    object.insert("offset".into(), json!(record.offset()));
    object.insert("timestamp".into(), json!(record.timestamp_ms()));
    insert_bytes(&mut object, "key", record.key());
    insert_bytes(&mut object, "value", record.value());
    let headers: Vec<Value> = record
        .headers()
        .iter()
        .map(|h| {
            let mut header = Map::new();
            header.insert("key".into(), json!(h.key()));
            insert_bytes(&mut header, "value", h.value());
            Value::Object(header)
        })
        .collect();
    object.insert("headers".into(), Value::Array(headers));
    Value::Object(object)
}

/// Inserts `bytes` under `name` as a string (or null), or under `name_base64` when it is not
/// UTF-8.
fn insert_bytes(object: &mut Map<String, Value>, name: &str, bytes: Option<&Bytes>) {
    let Some(bytes) = bytes else {
        object.insert(name.into(), Value::Null);
        return;
    };
    match std::str::from_utf8(bytes) {
        Ok(text) => object.insert(name.into(), json!(text)),
        Err(_) => object.insert(format!("{name}_base64"), json!(base64(bytes))),
    };
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x80]), "//4AgA==");
    }
}
