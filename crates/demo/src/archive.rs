//! `rivulet-demo archive`: the consumer group `archive` reads `flights` independently of
//! `analytics` (fan-out) and writes every record to a local archive, one file per partition,
//! one `OFFSET<TAB>JSON` line per record.
//!
//! Owns the archive directory and the order that makes it exact across a SIGKILL: each poll's
//! records are written to the files (and handed to the OS) before the group's offsets are
//! committed, and offsets are committed only every `--commit-every` records. So after a kill
//! the archive is at or ahead of the committed offsets. A restarted process resumes from the
//! committed offsets, recognises the records it already archived by their offsets (the
//! duplicates, exactly the records read since the last commit) and skips them; the archive is
//! idempotent by offset. A gap (an offset past the archive's next) is an error. A line torn
//! by the kill is cut off at start. The files are not fsynced: they survive a killed process,
//! not a crashed machine.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rivulet_client::{Client, OffsetReset, TopicPartition};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::analytics::SOURCE;
use crate::data::FlightView;
use crate::report_line;
use crate::stats::thousands;

/// The group's name.
const GROUP: &str = "archive";

/// Arguments of `rivulet-demo archive`.
#[derive(Debug, Args)]
pub(crate) struct ArchiveArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    addr: String,
    /// Directory of the archive files; kept across restarts.
    #[arg(long)]
    dir: PathBuf,
    /// Stop once this many distinct flights are archived.
    #[arg(long)]
    expect: u64,
    /// Commit the group's offsets after this many records.
    #[arg(long, default_value_t = 5_000)]
    commit_every: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// Where one partition stood when this process started.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Resume {
    /// The group's committed offset (0 if none).
    pub(crate) committed: u64,
    /// The archive's next offset.
    pub(crate) archived: u64,
}

/// What the archive process reports at the end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ArchiveResult {
    /// Distinct flights in the archive.
    pub(crate) archived: u64,
    /// Archived flights per origin, counted from the archive files.
    pub(crate) by_origin: BTreeMap<String, u64>,
    /// Records this process read again that the archive already had.
    pub(crate) duplicates: u64,
    /// Where each partition stood at start; `archived - committed` summed is the number of
    /// duplicates to expect.
    pub(crate) resumed: BTreeMap<u32, Resume>,
    /// Records read by this process, duplicates included.
    pub(crate) read: u64,
    pub(crate) elapsed_ms: u64,
}

/// One partition's archive file.
struct PartitionFile {
    writer: BufWriter<File>,
    next: u64,
}

/// Runs the archive consumer until `--expect` distinct flights are archived.
pub(crate) async fn run(args: ArchiveArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let client = Client::connect(&args.addr).await?;
    let partitions = u32::try_from(
        client
            .admin()
            .describe_topic(SOURCE)
            .await?
            .partitions()
            .len(),
    )?;
    let mut consumer = client
        .consumer()
        .group(GROUP)
        .offset_reset(OffsetReset::Earliest)
        .auto_commit(None)
        .max_poll_records(2_000)
        .build();

    let mut result = ArchiveResult::default();
    let mut files = Vec::new();
    for partition in 0..partitions {
        let tp = TopicPartition::new(SOURCE, partition);
        let (file, origins) = open_partition(&args.dir, partition)?;
        let committed = consumer.committed(&tp).await?.unwrap_or(0);
        if committed > file.next {
            bail!(
                "{tp}: committed offset {committed} is past the archive's {}; records would be \
                 missing",
                file.next
            );
        }
        result.resumed.insert(
            partition,
            Resume {
                committed,
                archived: file.next,
            },
        );
        for (origin, n) in origins {
            *result.by_origin.entry(origin).or_default() += n;
        }
        result.archived += file.next;
        files.push(file);
    }
    let behind: u64 = result
        .resumed
        .values()
        .map(|r| r.archived - r.committed)
        .sum();
    if result.archived > 0 {
        println!(
            "resuming with {} flights archived; the committed offsets are {} records behind \
             the archive, so that many will be read again and skipped",
            thousands(result.archived),
            thousands(behind)
        );
    }
    // Consumer-group membership does not exist in the server yet, so this one process takes
    // every partition by hand; it starts from the group's committed offsets.
    consumer.assign((0..partitions).map(|p| TopicPartition::new(SOURCE, p)));

    let mut since_commit = 0;
    while result.archived < args.expect {
        if Instant::now() > deadline {
            bail!(
                "archive timed out after {} s with {} of {} flights",
                args.timeout,
                result.archived,
                args.expect
            );
        }
        for record in consumer.poll(Duration::from_millis(500)).await? {
            result.read += 1;
            let Some(file) = usize::try_from(record.partition())
                .ok()
                .and_then(|p| files.get_mut(p))
            else {
                bail!("record from unassigned partition {}", record.partition());
            };
            if record.offset() < file.next {
                result.duplicates += 1;
                continue;
            }
            if record.offset() > file.next {
                bail!(
                    "{SOURCE}/{}: expected offset {}, got {}: records are missing",
                    record.partition(),
                    file.next,
                    record.offset()
                );
            }
            let value = record.value().map(|v| v.as_ref()).unwrap_or_default();
            let origin = serde_json::from_slice::<FlightView>(value)
                .map(|f| f.origin)
                .unwrap_or_else(|_| "?".to_owned());
            if value.contains(&b'\n') {
                bail!(
                    "{SOURCE}/{}@{}: value spans lines",
                    record.partition(),
                    record.offset()
                );
            }
            write!(file.writer, "{}\t", record.offset())?;
            file.writer.write_all(value)?;
            file.writer.write_all(b"\n")?;
            file.next += 1;
            *result.by_origin.entry(origin).or_default() += 1;
            result.archived += 1;
            since_commit += 1;
        }
        // Archive first, commit after: the commit never covers a record not yet archived.
        for file in &mut files {
            file.writer.flush()?;
        }
        if since_commit >= args.commit_every {
            consumer.commit().await?;
            since_commit = 0;
        }
        report_line::progress(result.archived);
    }
    consumer.commit().await?;
    println!(
        "archived {} flights; {} records read again after the restart and skipped",
        thousands(result.archived),
        thousands(result.duplicates)
    );
    result.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report_line::result(&result)
}

/// Opens (or creates) a partition's archive file: cuts a torn last line, checks that the
/// offsets are dense from 0, and counts flights per origin.
fn open_partition(
    dir: &Path,
    partition: u32,
) -> anyhow::Result<(PartitionFile, BTreeMap<String, u64>)> {
    let path = dir.join(format!("{SOURCE}-{partition}.jsonl"));
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        println!(
            "{}: cutting a torn last line ({} bytes)",
            path.display(),
            text.len() - complete
        );
        file.set_len(u64::try_from(complete)?)?;
    }

    let mut origins = BTreeMap::new();
    let mut next = 0u64;
    for line in text
        .get(..complete)
        .unwrap_or_default()
        .split(|&b| b == b'\n')
    {
        if line.is_empty() {
            continue;
        }
        let Some(tab) = line.iter().position(|&b| b == b'\t') else {
            bail!("{}: line {next} has no offset", path.display());
        };
        let (offset, value) = line.split_at(tab);
        let offset: u64 = std::str::from_utf8(offset)?.parse()?;
        if offset != next {
            bail!("{}: line {next} holds offset {offset}", path.display());
        }
        let origin = serde_json::from_slice::<FlightView>(value.get(1..).unwrap_or_default())
            .map(|f| f.origin)
            .unwrap_or_else(|_| "?".to_owned());
        *origins.entry(origin).or_default() += 1;
        next += 1;
    }
    Ok((
        PartitionFile {
            writer: BufWriter::with_capacity(1 << 20, file),
            next,
        },
        origins,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_and_dense_lines_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flights-3.jsonl");
        std::fs::write(
            &path,
            "0\t{\"month\":1,\"day\":1,\"carrier\":\"UA\",\"origin\":\"EWR\"}\n\
             1\t{\"month\":1,\"day\":1,\"carrier\":\"UA\",\"origin\":\"JFK\"}\n2\t{\"mon",
        )
        .unwrap();
        let (file, origins) = open_partition(dir.path(), 3).unwrap();
        assert_eq!(file.next, 2);
        assert_eq!(origins["EWR"], 1);
        assert_eq!(origins["JFK"], 1);
        drop(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"), "{text}");
    }

    #[test]
    fn a_gap_in_the_archive_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("flights-0.jsonl"), "0\t{}\n2\t{}\n").unwrap();
        assert!(open_partition(dir.path(), 0).is_err());
    }
}
