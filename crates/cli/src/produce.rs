//! `rivulet produce TOPIC`: reads records from standard input or a file and sends them with
//! the client library's batching [`Producer`].
//!
//! Input formats: plain lines (each line is one record's value, byte for byte), JSON lines
//! (each line is checked to be JSON and stored as written, byte for byte) and CSV with a header
//! row (each row becomes a JSON object of its columns, in column order). JSON lines and CSV
//! can name a field holding the record's key and one holding its timestamp. The line break
//! ending each line (`\n`) is not part of the record; anything else, `\r` included, is.
//!
//! A reader thread parses the input and hands records to the async side over a bounded
//! channel, so a slow server slows the reader instead of filling memory. At most
//! [`MAX_PENDING`] deliveries are awaited at once; the first failed delivery stops the command.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rivulet_client::{Compression, DeliveryFuture, Durability, ProducerRecord};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::arg_values::parse_time_ms;
use crate::connect::ServerArgs;
use crate::exit::{not_found, usage_error};
use crate::output::{print, print_json};

/// Deliveries in flight before `produce` waits for the oldest.
const MAX_PENDING: usize = 50_000;
/// Largest batch the command sends.
const CLI_BATCH_BYTES: usize = 256 << 10;
/// Room left below a topic's `max_batch_bytes` for the framing of the record that closes a
/// batch.
const BATCH_FRAMING: usize = 128;

/// Parsed records queued between the reader thread and the producer.
const CHANNEL_RECORDS: usize = 4_096;

/// `rivulet produce`.
#[derive(Debug, Args)]
#[command(after_help = "\
EXAMPLES:
    echo hello | rivulet produce greetings
    rivulet produce orders --file orders.jsonl --key-field customer --timestamp-field ts
    rivulet produce trips --file trips.csv --key-field vendor_id

Timestamps in a field may be milliseconds since the epoch (a number or a string of digits) or
RFC 3339 text such as 2026-01-31T12:00:00Z. Records without the key field have a null key;
records without the timestamp field get the time they are sent.")]
pub(crate) struct ProduceArgs {
    /// The topic.
    topic: String,
    /// Read records from this file instead of standard input.
    #[arg(long, short = 'f', value_name = "PATH")]
    file: Option<PathBuf>,
    /// Input format. Default: csv for *.csv files, jsonl for *.json, *.jsonl and *.ndjson,
    /// lines otherwise (and for standard input).
    #[arg(long, value_enum)]
    format: Option<InputFormat>,
    /// JSON field or CSV column whose value is each record's key (JSON lines and CSV only).
    #[arg(long, value_name = "FIELD")]
    key_field: Option<String>,
    /// JSON field or CSV column holding each record's timestamp (JSON lines and CSV only).
    #[arg(long, value_name = "FIELD")]
    timestamp_field: Option<String>,
    /// Send every record to this partition instead of partitioning by key.
    #[arg(long, value_name = "N")]
    partition: Option<u32>,
    /// Compression of each batch.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
    /// Acknowledge records once fsynced (durable) or once written to the server's page
    /// cache (written).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Durable)]
    durability: DurabilityArg,
    /// Format of the summary line.
    #[arg(long, short = 'o', value_enum, default_value_t = SummaryFormat::Text)]
    output: SummaryFormat,
    #[command(flatten)]
    server: ServerArgs,
}

/// How the input is split into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InputFormat {
    /// One record per line; the line is the value.
    Lines,
    /// One JSON document per line, stored as written.
    Jsonl,
    /// CSV with a header row; each row is stored as a JSON object.
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CompressionArg {
    None,
    Lz4,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DurabilityArg {
    Durable,
    Written,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SummaryFormat {
    Text,
    Json,
}

/// One record read from the input.
#[derive(Debug)]
struct InputRecord {
    key: Option<Bytes>,
    value: Bytes,
    timestamp_ms: Option<i64>,
    /// Input bytes consumed so far, for the progress bar.
    input_position: u64,
    /// The input line it came from (for CSV, the line its row starts on), for error messages.
    line: u64,
}

/// Which fields to pull out of structured input.
#[derive(Debug, Clone)]
struct Fields {
    key: Option<String>,
    timestamp: Option<String>,
}

/// Runs `rivulet produce`.
pub(crate) async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let format = args
        .format
        .unwrap_or_else(|| format_for(args.file.as_deref()));
    if format == InputFormat::Lines && (args.key_field.is_some() || args.timestamp_field.is_some())
    {
        return Err(usage_error(
            "--key-field and --timestamp-field need structured input: --format jsonl or csv",
        ));
    }
    let (input, input_len): (Box<dyn Read + Send>, Option<u64>) = match &args.file {
        Some(path) => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let len = file.metadata().ok().map(|m| m.len());
            (Box::new(file), len)
        }
        None => (Box::new(std::io::stdin()), None),
    };

    let client = args.server.connect().await?;
    let topic = client
        .admin()
        .describe_topic(&args.topic)
        .await
        .with_context(|| format!("cannot produce to topic {:?}", args.topic))?;
    let count = topic.partitions().len();
    if let Some(partition) = args.partition
        && usize::try_from(partition).is_ok_and(|p| p >= count)
    {
        return Err(not_found(format!(
            "topic {:?} has {count} partitions; partition {partition} does not exist",
            args.topic
        )));
    }
    let producer = client
        .producer()
        .compression(match args.compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        })
        .durability(match args.durability {
            DurabilityArg::Durable => Durability::Durable,
            DurabilityArg::Written => Durability::Written,
        })
        // Batches of up to 256 KiB, or less when the topic's batch limit is smaller: the
        // producer may pass its batch size by one record's framing, so that is left free.
        .batch_bytes(topic.max_batch_bytes().map_or(CLI_BATCH_BYTES, |max| {
            CLI_BATCH_BYTES.min((max as usize).saturating_sub(BATCH_FRAMING))
        }))
        .build();

    let fields = Fields {
        key: args.key_field.clone(),
        timestamp: args.timestamp_field.clone(),
    };
    let (tx, mut rx) = mpsc::channel(CHANNEL_RECORDS);
    let reader = std::thread::spawn(move || read_input(input, format, &fields, &tx));
    let progress = progress_bar(input_len);

    let max_record_bytes = topic.max_record_bytes().map_or(u64::MAX, u64::from);
    let started = Instant::now();
    let mut records = 0u64;
    let mut bytes = 0u64;
    // Each record's delivery, with its input line.
    let mut pending: VecDeque<(u64, DeliveryFuture)> = VecDeque::new();
    while let Some(next) = rx.recv().await {
        let input = match next {
            Ok(input) => input,
            Err(err) => {
                // A line that does not parse: what came before it is stored, then the error.
                finish(&producer, pending).await?;
                return Err(err);
            }
        };
        let size = input.value.len() as u64 + input.key.as_ref().map_or(0, |k| k.len() as u64);
        if size > max_record_bytes {
            // Refused before it is sent, so nothing after it is sent either; what was sent
            // before it is waited for, so the error is the whole story.
            finish(&producer, pending).await?;
            return Err(anyhow!(
                "line {}: the record is {size} bytes (key and value), larger than the \
                 max_record_bytes of topic {:?} ({max_record_bytes}); the lines before it were \
                 stored, it and the lines after it were not sent",
                input.line,
                args.topic
            ));
        }
        records += 1;
        bytes += size;
        let mut record = ProducerRecord::new(&args.topic).value(input.value);
        if let Some(key) = input.key {
            record = record.key(key);
        }
        if let Some(ms) = input.timestamp_ms {
            record = record.timestamp_ms(ms);
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        let delivery = producer.send(record).await.with_context(|| {
            format!(
                "line {}: cannot send the record to {:?}",
                input.line, args.topic
            )
        })?;
        pending.push_back((input.line, delivery));
        if pending.len() >= MAX_PENDING
            && let Some((line, oldest)) = pending.pop_front()
        {
            oldest
                .await
                .with_context(|| format!("line {line}: the record was not stored"))?;
        }
        if let Some(bar) = &progress {
            match input_len {
                Some(_) => bar.set_position(input.input_position),
                None => bar.inc(1),
            }
        }
    }
    // The channel closes when the reader is done; its errors came through the channel.
    let _ = reader.join();
    finish(&producer, pending).await?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    summary(args.output, &args.topic, records, bytes, started.elapsed())
}

/// Sends what the producer holds and waits for every pending delivery; the first failure
/// names its input line. Records sent after a failed one may be stored: the producer sends
/// ahead of the acknowledgements.
async fn finish(
    producer: &rivulet_client::Producer,
    pending: VecDeque<(u64, DeliveryFuture)>,
) -> anyhow::Result<()> {
    producer
        .flush()
        .await
        .context("cannot flush the producer")?;
    for (line, delivery) in pending {
        delivery
            .await
            .with_context(|| format!("line {line}: the record was not stored"))?;
    }
    Ok(())
}

/// The format implied by a file's extension.
fn format_for(file: Option<&Path>) -> InputFormat {
    let extension = file
        .and_then(Path::extension)
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => InputFormat::Csv,
        Some("json" | "jsonl" | "ndjson") => InputFormat::Jsonl,
        _ => InputFormat::Lines,
    }
}

/// A progress bar on standard error when it is a terminal: bytes of a file, or a record count
/// for standard input, with the rate.
fn progress_bar(input_len: Option<u64>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match input_len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {human_pos} records {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn summary(
    format: SummaryFormat,
    topic: &str,
    records: u64,
    bytes: u64,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let seconds = elapsed.as_secs_f64();
    let per_second = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    match format {
        SummaryFormat::Json => print_json(&json!({
            "topic": topic,
            "records": records,
            "bytes": bytes,
            "seconds": seconds,
            "records_per_second": per_second(records),
            "bytes_per_second": per_second(bytes),
        })),
        SummaryFormat::Text => print(&format!(
            "produced {records} records ({bytes} bytes) to {topic} in {seconds:.2} s: \
             {:.0} records/s, {:.2} MiB/s\n",
            per_second(records),
            per_second(bytes) / f64::from(1 << 20),
        )),
    }
}

/// Reads every record of `input` and sends it to `tx`; the first error is sent too and ends
/// the reading. Runs on its own thread.
fn read_input(
    input: Box<dyn Read + Send>,
    format: InputFormat,
    fields: &Fields,
    tx: &mpsc::Sender<anyhow::Result<InputRecord>>,
) {
    let result = match format {
        InputFormat::Lines | InputFormat::Jsonl => read_lines(input, format, fields, tx),
        InputFormat::Csv => read_csv(input, fields, tx),
    };
    if let Err(err) = result {
        let _ = tx.blocking_send(Err(err));
    }
}

/// Plain lines or JSON lines. Returns early, without error, when the receiver has gone.
fn read_lines(
    input: Box<dyn Read + Send>,
    format: InputFormat,
    fields: &Fields,
    tx: &mpsc::Sender<anyhow::Result<InputRecord>>,
) -> anyhow::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut position = 0u64;
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read line {number} of the input"))?;
        if read == 0 {
            return Ok(());
        }
        position += read as u64;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let record = match format {
            InputFormat::Jsonl if line.iter().all(u8::is_ascii_whitespace) => continue,
            InputFormat::Jsonl => {
                json_record(&line, fields).with_context(|| format!("line {number} of the input"))?
            }
            _ => InputRecord {
                key: None,
                value: Bytes::copy_from_slice(&line),
                timestamp_ms: None,
                input_position: 0,
                line: 0,
            },
        };
        let record = InputRecord {
            input_position: position,
            line: number,
            ..record
        };
        if tx.blocking_send(Ok(record)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// A JSON line: checked to be JSON, stored as written, with key and timestamp fields pulled
/// out.
fn json_record(line: &[u8], fields: &Fields) -> anyhow::Result<InputRecord> {
    let document: Value = serde_json::from_slice(line).context("invalid JSON")?;
    let field = |name: &Option<String>| name.as_ref().and_then(|n| document.get(n.as_str()));
    let key = field(&fields.key).and_then(|value| match value {
        Value::Null => None,
        Value::String(text) => Some(Bytes::from(text.clone())),
        other => Some(Bytes::from(other.to_string())),
    });
    let timestamp_ms = match field(&fields.timestamp) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(checked_timestamp(json_millis(n)?)?),
        Some(Value::String(text)) => Some(text_timestamp(text)?),
        Some(other) => return Err(anyhow!("timestamp field holds {other}, not a time")),
    };
    Ok(InputRecord {
        key,
        value: Bytes::copy_from_slice(line),
        timestamp_ms,
        input_position: 0,
        line: 0,
    })
}

/// A JSON number as whole milliseconds: `1700000000000` and `1.7e12` are, `1.5` and `1e20` are
/// not (a fraction of a millisecond, or beyond a 64-bit timestamp), and are refused rather
/// than rounded or clamped.
fn json_millis(n: &serde_json::Number) -> anyhow::Result<i64> {
    if let Some(ms) = n.as_i64() {
        return Ok(ms);
    }
    let not_millis =
        || anyhow!("timestamp {n} is not a whole number of milliseconds that fits 64 bits");
    let f = n
        .as_f64()
        .filter(|f| f.fract() == 0.0)
        .ok_or_else(not_millis)?;
    // 2^63 is the first f64 past i64::MAX; every whole f64 from -2^63 up to it converts
    // exactly.
    let two_to_63 = 2f64.powi(63);
    if (-two_to_63..two_to_63).contains(&f) {
        Ok(f as i64)
    } else {
        Err(not_millis())
    }
}

/// A timestamp written as text (milliseconds or a time, as `parse_time_ms` reads them). Only
/// the number -1 means "no timestamp": a time just before 1970 also comes out as -1, and is
/// refused like every other time before 1970 rather than stored as no timestamp.
fn text_timestamp(text: &str) -> anyhow::Result<i64> {
    let ms = parse_time_ms(text).map_err(|e| anyhow!(e))?;
    if ms == rivulet_format::NO_TIMESTAMP && text.trim() != "-1" {
        return Err(anyhow!(
            "time {text:?} is before 1970-01-01T00:00:00Z: a timestamp must be {}",
            rivulet_format::TIMESTAMP_RULE
        ));
    }
    checked_timestamp(ms)
}

/// `ms` if a record may carry it as its timestamp ([`rivulet_format::TIMESTAMP_RULE`]).
fn checked_timestamp(ms: i64) -> anyhow::Result<i64> {
    if rivulet_format::is_valid_timestamp(ms) {
        Ok(ms)
    } else {
        Err(anyhow!(
            "timestamp {ms} is out of range: a timestamp must be {}",
            rivulet_format::TIMESTAMP_RULE
        ))
    }
}

/// CSV with a header row; each row becomes a JSON object of its columns in column order.
fn read_csv(
    input: Box<dyn Read + Send>,
    fields: &Fields,
    tx: &mpsc::Sender<anyhow::Result<InputRecord>>,
) -> anyhow::Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(BufReader::with_capacity(1 << 20, input));
    let header = reader
        .headers()
        .context("cannot read the CSV header row")?
        .clone();
    let column = |name: &Option<String>| -> anyhow::Result<Option<usize>> {
        let Some(name) = name else {
            return Ok(None);
        };
        header
            .iter()
            .position(|h| h == name)
            .map(Some)
            .ok_or_else(|| {
                let known: Vec<&str> = header.iter().collect();
                usage_error(format!(
                    "no CSV column {name:?}; the header has {}",
                    known.join(", ")
                ))
            })
    };
    let key_column = column(&fields.key)?;
    let timestamp_column = column(&fields.timestamp)?;
    let names: Vec<String> = header
        .iter()
        .map(|h| Value::String(h.to_owned()).to_string())
        .collect();

    let mut row = csv::StringRecord::new();
    loop {
        let more = reader.read_record(&mut row).with_context(|| {
            let line = row.position().map_or(0, csv::Position::line);
            format!("invalid CSV after line {line}")
        })?;
        if !more {
            return Ok(());
        }
        let line = row.position().map_or(0, csv::Position::line);
        let mut value = String::from("{");
        for (i, (name, cell)) in names.iter().zip(row.iter()).enumerate() {
            if i > 0 {
                value.push(',');
            }
            value.push_str(name);
            value.push(':');
            value.push_str(&Value::String(cell.to_owned()).to_string());
        }
        value.push('}');
        let key = key_column
            .and_then(|i| row.get(i))
            .map(|k| Bytes::copy_from_slice(k.as_bytes()));
        let timestamp_ms = match timestamp_column.and_then(|i| row.get(i)) {
            None | Some("") => None,
            Some(text) => {
                Some(text_timestamp(text).map_err(|e| anyhow!("CSV line {line}: timestamp: {e}"))?)
            }
        };
        let record = InputRecord {
            key,
            value: Bytes::from(value),
            timestamp_ms,
            input_position: row.position().map_or(0, csv::Position::byte),
            line,
        };
        if tx.blocking_send(Ok(record)).is_err() {
            return Ok(());
        }
    }
}
