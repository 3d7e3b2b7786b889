//! `rivulet-demo archive`: a member of the consumer group `archive` reads `flights`
//! independently of `analytics` (fan-out) and writes every record to a local archive, one file
//! per partition, one `OFFSET<TAB>JSON` line per record.
//!
//! Owns the archive directory and the order that makes it exact across a SIGKILL: each poll's
//! records are written to the files (and handed to the OS) before the next poll and before any
//! commit, and offsets are committed only every `--commit-every` records. So the group's
//! committed offsets never pass the archive, and the records in between are the only ones read
//! twice. The consumer also commits inside `poll` when the group revokes a partition, which is
//! safe for the same reason: `poll` commits only what earlier polls returned, all archived.
//!
//! The process joins the group with `subscribe` and a static instance id (`--instance-id`), so
//! a restarted process takes over its dead predecessor's membership and partitions at once
//! instead of waiting for the group to time the dead member out. It starts each partition it
//! is assigned from the group's committed offset, recognises the records it already archived
//! by their offsets (the duplicates: exactly the archive's lead over the committed offset at
//! assignment) and skips them; the archive is idempotent by offset. A gap (an offset past the
//! archive's next) is an error, and so is a record from a partition the group has not assigned
//! it. A line torn by the kill is cut off at start. The files are not fsynced: they survive a
//! killed process, not a crashed machine.
//!
//! One archive process per directory: it counts every partition's file towards `--expect`, so
//! it is meant to be its group's only member, and two members would each wait for the whole
//! topic.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rivulet_client::{
    Client, ClientError, Consumer, OffsetReset, RebalanceEvent, Record, TopicPartition,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::analytics::SOURCE;
use crate::data::FlightView;
use crate::report_line;
use crate::stats::thousands;

/// The group's name.
pub(crate) const GROUP: &str = "archive";
/// Most records one poll returns. A kill lands at most this far past the last progress line,
/// so the orchestrator's kill rule and the bound on duplicates use it.
pub(crate) const MAX_POLL_RECORDS: u64 = 1_000;

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
    /// Static membership id: a restarted process with the same id gets its predecessor's
    /// partitions back at once, without waiting out the group's session timeout.
    #[arg(long, default_value = "archive-1")]
    instance_id: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// Where one partition stood when it was assigned to this process.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Resume {
    /// The group's committed offset (0 if none: the log start of the demo's fresh topic).
    pub(crate) committed: u64,
    /// The archive's next offset.
    pub(crate) archived: u64,
}

/// The process's group membership after a change of its partitions (`@member` line).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Membership {
    pub(crate) member_id: String,
    pub(crate) instance_id: String,
    pub(crate) generation: u64,
    /// The partitions of `flights` it holds now.
    pub(crate) partitions: Vec<u32>,
    /// Milliseconds from the process's start to the change.
    pub(crate) after_ms: u64,
    /// Milliseconds from the call that joined the group to the change.
    pub(crate) since_join_ms: u64,
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
    /// Where each partition stood when this process was (last) assigned it.
    pub(crate) resumed: BTreeMap<u32, Resume>,
    /// The archive's lead over the committed offsets, summed over every assignment this
    /// process received: the number of duplicates to expect.
    pub(crate) lead_at_assignment: u64,
    /// Partitions taken away by a rebalance (revoked) or by removal from the group (lost).
    pub(crate) revoked: u64,
    pub(crate) lost: u64,
    /// Records read by this process, duplicates included.
    pub(crate) read: u64,
    pub(crate) elapsed_ms: u64,
}

/// One partition's archive file.
struct PartitionFile {
    writer: BufWriter<File>,
    /// The next offset to archive: every offset below it is in the file.
    next: u64,
    /// The group's committed offset, while the group assigns the partition to this process.
    committed: Option<u64>,
}

/// Rebalance events, with when they happened, queued by the consumer's callback.
type Changes = Arc<Mutex<Vec<(Instant, RebalanceEvent)>>>;

/// The archive files of every partition and the tally of this process.
struct Archive {
    files: Vec<PartitionFile>,
    result: ArchiveResult,
    instance_id: String,
    started: Instant,
    /// When this process asked to join the group.
    joined: Instant,
}

/// Runs the archive consumer until `--expect` distinct flights are archived.
pub(crate) async fn run(args: ArchiveArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let client = Client::connect(&args.addr).await?;
    let partitions = client
        .admin()
        .describe_topic(SOURCE)
        .await?
        .partitions()
        .len();
    let mut archive = Archive::open(&args.dir, u32::try_from(partitions)?, &args, started)?;
    if archive.result.archived > 0 {
        println!(
            "found {} flights already archived in {}",
            thousands(archive.result.archived),
            args.dir.display()
        );
    }

    // Rebalance events arrive inside `subscribe` and `poll`, before the records `poll` returns;
    // they are handled right after the call, before any of those records.
    let changes: Changes = Arc::default();
    let mut consumer = client
        .consumer()
        .group(GROUP)
        .instance_id(args.instance_id.clone())
        .offset_reset(OffsetReset::Earliest)
        .auto_commit(None)
        .max_poll_records(usize::try_from(MAX_POLL_RECORDS)?)
        .on_rebalance({
            let changes = changes.clone();
            move |event| {
                changes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((Instant::now(), event));
            }
        })
        .build();
    archive.joined = Instant::now();
    consumer.subscribe([SOURCE]).await?;
    archive.apply(&consumer, &changes).await?;

    let mut since_commit = 0;
    // Every flight archived is not enough after a restart: a partition whose records were all
    // archived before the kill still has its lead over the committed offset to read again, and
    // the duplicates count is only whole once each assigned partition is past it.
    while archive.result.archived < args.expect || !archive.read_past_archive(&consumer) {
        if Instant::now() > deadline {
            bail!(
                "archive timed out after {} s with {} of {} flights",
                args.timeout,
                archive.result.archived,
                args.expect
            );
        }
        let records = consumer.poll(Duration::from_millis(500)).await?;
        archive.apply(&consumer, &changes).await?;
        for record in &records {
            if archive.write(record)? {
                since_commit += 1;
            }
        }
        // Archive first, commit after: a commit (here, or inside the next poll when a
        // partition is revoked) never covers a record not yet in the files.
        archive.flush()?;
        if since_commit >= args.commit_every && archive.commit(&mut consumer).await? {
            since_commit = 0;
        }
        report_line::progress(archive.result.archived, Some(archive.uncommitted()));
    }
    archive.commit(&mut consumer).await?;
    consumer.close().await?;

    let mut result = archive.result;
    println!(
        "archived {} flights; {} records read again after the restart and skipped",
        thousands(result.archived),
        thousands(result.duplicates)
    );
    result.elapsed_ms = millis(started.elapsed());
    report_line::result(&result)
}

impl Archive {
    /// Opens every partition's file and counts what is archived already.
    fn open(
        dir: &Path,
        partitions: u32,
        args: &ArchiveArgs,
        started: Instant,
    ) -> anyhow::Result<Archive> {
        let mut result = ArchiveResult::default();
        let mut files = Vec::new();
        for partition in 0..partitions {
            let (file, origins) = open_partition(dir, partition)?;
            for (origin, n) in origins {
                *result.by_origin.entry(origin).or_default() += n;
            }
            result.archived += file.next;
            files.push(file);
        }
        Ok(Archive {
            files,
            result,
            instance_id: args.instance_id.clone(),
            started,
            joined: started,
        })
    }

    fn file_mut(&mut self, tp: &TopicPartition) -> anyhow::Result<&mut PartitionFile> {
        if tp.topic() != SOURCE {
            bail!("{tp}: not a partition of {SOURCE}");
        }
        usize::try_from(tp.partition())
            .ok()
            .and_then(|p| self.files.get_mut(p))
            .with_context(|| format!("{tp}: the archive has no file for this partition"))
    }

    /// Applies the queued changes of the group's assignment and reports the membership after
    /// them.
    async fn apply(&mut self, consumer: &Consumer, changes: &Changes) -> anyhow::Result<()> {
        let queued = std::mem::take(&mut *changes.lock().unwrap_or_else(PoisonError::into_inner));
        let Some(&(last, _)) = queued.last() else {
            return Ok(());
        };
        for (_, change) in queued {
            self.rebalanced(consumer, change).await?;
        }
        self.report_membership(consumer, last)
    }

    /// Applies one change of the group's assignment. A partition assigned starts from the
    /// group's committed offset: the consumer looked it up in the same poll, and no one else
    /// can commit on a partition this member holds.
    async fn rebalanced(
        &mut self,
        consumer: &Consumer,
        event: RebalanceEvent,
    ) -> anyhow::Result<()> {
        match event {
            RebalanceEvent::Assigned(tps) => {
                for tp in tps {
                    let committed = consumer.committed(&tp).await?.unwrap_or(0);
                    let file = self.file_mut(&tp)?;
                    if committed > file.next {
                        bail!(
                            "{tp}: committed offset {committed} is past the archive's {}; \
                             records would be missing",
                            file.next
                        );
                    }
                    file.committed = Some(committed);
                    let resume = Resume {
                        committed,
                        archived: file.next,
                    };
                    self.result.lead_at_assignment += resume.archived - resume.committed;
                    self.result.resumed.insert(tp.partition(), resume);
                }
            }
            RebalanceEvent::Revoked(tps) => {
                println!("the group moved {} partitions to another member", tps.len());
                self.result.revoked += self.release(&tps)?;
            }
            RebalanceEvent::Lost(tps) => {
                println!(
                    "removed from the group: lost {} partitions without committing; joining again",
                    tps.len()
                );
                self.result.lost += self.release(&tps)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn release(&mut self, tps: &[TopicPartition]) -> anyhow::Result<u64> {
        for tp in tps {
            self.file_mut(tp)?.committed = None;
        }
        Ok(tps.len() as u64)
    }

    /// Prints the membership after a change at `at`: a `@member` line and one for people.
    fn report_membership(&self, consumer: &Consumer, at: Instant) -> anyhow::Result<()> {
        let membership = Membership {
            member_id: consumer.member_id().unwrap_or_default().to_owned(),
            instance_id: self.instance_id.clone(),
            generation: consumer.generation().unwrap_or(0),
            partitions: consumer
                .assignment()
                .iter()
                .map(TopicPartition::partition)
                .collect(),
            after_ms: millis(at.saturating_duration_since(self.started)),
            since_join_ms: millis(at.saturating_duration_since(self.joined)),
        };
        let lead: u64 = membership
            .partitions
            .iter()
            .filter_map(|p| self.result.resumed.get(p))
            .map(|r| r.archived - r.committed)
            .sum();
        let behind = if lead == 0 {
            "nothing archived past the committed offsets".to_owned()
        } else {
            format!(
                "the archive is {} records past the committed offsets; they will be read again \
                 and skipped",
                thousands(lead)
            )
        };
        println!(
            "member {} (instance {}) of group {GROUP}, generation {}: partitions {:?}, {} ms \
             after start ({} ms after joining); {behind}",
            membership.member_id,
            membership.instance_id,
            membership.generation,
            membership.partitions,
            membership.after_ms,
            membership.since_join_ms,
        );
        report_line::member(&membership)
    }

    /// Archives one record, or counts it as a duplicate when the archive has its offset.
    /// Returns whether it was new.
    fn write(&mut self, record: &Record) -> anyhow::Result<bool> {
        self.result.read += 1;
        let tp = TopicPartition::new(record.topic(), record.partition());
        let file = self.file_mut(&tp)?;
        if file.committed.is_none() {
            bail!(
                "{tp}@{}: a record from a partition the group has not assigned to this member",
                record.offset()
            );
        }
        if record.offset() < file.next {
            self.result.duplicates += 1;
            return Ok(false);
        }
        if record.offset() > file.next {
            bail!(
                "{tp}: expected offset {}, got {}: records are missing",
                file.next,
                record.offset()
            );
        }
        let value = record.value().map(|v| v.as_ref()).unwrap_or_default();
        if value.contains(&b'\n') {
            bail!("{tp}@{}: value spans lines", record.offset());
        }
        let origin = serde_json::from_slice::<FlightView>(value)
            .map(|f| f.origin)
            .unwrap_or_else(|_| "?".to_owned());
        write!(file.writer, "{}\t", record.offset())?;
        file.writer.write_all(value)?;
        file.writer.write_all(b"\n")?;
        file.next += 1;
        *self.result.by_origin.entry(origin).or_default() += 1;
        self.result.archived += 1;
        Ok(true)
    }

    /// Hands everything written to the OS, so it survives a SIGKILL.
    fn flush(&mut self) -> anyhow::Result<()> {
        for file in &mut self.files {
            file.writer.flush().context("writing the archive")?;
        }
        Ok(())
    }

    /// Commits the position of every assigned partition (everything `poll` returned, all
    /// archived: call [`Archive::flush`] first). Returns false when the group refused the
    /// commit because a partition moved; the next poll learns the new assignment.
    async fn commit(&mut self, consumer: &mut Consumer) -> anyhow::Result<bool> {
        match consumer.commit().await {
            Ok(()) => {}
            Err(ClientError::NotMember { message, .. }) => {
                println!("the group refused a commit ({message}); a partition moved");
                return Ok(false);
            }
            Err(err) => return Err(err.into()),
        }
        for tp in consumer.assignment() {
            let Some(position) = consumer.position(&tp) else {
                continue;
            };
            let file = self.file_mut(&tp)?;
            if file.committed.is_some() {
                file.committed = Some(position);
            }
        }
        Ok(true)
    }

    /// Records archived past the committed offsets, on the partitions this process holds:
    /// what a restart would read again.
    /// Whether the consumer's position on every assigned partition has reached the end of its
    /// archive file, so every record of the lead was read again.
    fn read_past_archive(&self, consumer: &Consumer) -> bool {
        consumer.assignment().iter().all(|tp| {
            let next = usize::try_from(tp.partition())
                .ok()
                .and_then(|p| self.files.get(p))
                .map_or(0, |f| f.next);
            consumer
                .position(tp)
                .is_some_and(|position| position >= next)
        })
    }

    fn uncommitted(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| Some(f.next.saturating_sub(f.committed?)))
            .sum()
    }
}

fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
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
            committed: None,
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
