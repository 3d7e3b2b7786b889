//! `rivulet group list|describe|reset-offsets`: consumer groups' committed offsets and lag,
//! over the client library's [`Admin`](rivulet_client::Admin), and moving a group's offsets
//! with a [`Consumer`](rivulet_client::Consumer) of the group that seeks and commits.
//!
//! A group exists once it has committed an offset or has a live member; any other group is
//! reported as not found.
//!
//! `reset-offsets` is refused while the group has live members (consumers that joined it
//! through the membership protocol): their positions live in those consumers, which would
//! overwrite the reset with their next commit. The check here gives a clear message; the server
//! enforces the same rule by refusing commits from outside the group while it has members.
//!
//! TODO(cli): a consumer that reads with a group but without joining it (`rivulet consume
//! --group` with `--partition`, `--offset` or `--from-time`, or a library consumer using
//! `assign`) is not a member, so it is not seen; meanwhile a reset while one runs is
//! overwritten by its next commit. Stop such consumers first.

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand};
use rivulet_client::{Client, ClientError, ConsumerGroup, TopicPartition};
use serde_json::json;

use crate::arg_values::parse_time_ms;
use crate::connect::ServerArgs;
use crate::exit::not_found;
use crate::output::{OutputFormat, Table, print, print_json};

/// `rivulet group ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// List consumer groups (groups with a committed offset or a live member), their live
    /// members and total lag.
    List(ListArgs),
    /// Show a group's committed offset and lag on every partition it has committed on.
    Describe(DescribeArgs),
    /// Move a group's committed offsets to an offset, the earliest or latest offset, or a
    /// time. Refused while the group has live members.
    ResetOffsets(ResetArgs),
}

/// `rivulet group list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    server: ServerArgs,
}

/// `rivulet group describe`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// The group.
    group: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    server: ServerArgs,
}

/// `rivulet group reset-offsets`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .args(["to_offset", "to_earliest", "to_latest", "to_time"])
))]
#[command(after_help = "\
EXAMPLES:
    rivulet group reset-offsets billing --topic orders --to-earliest
    rivulet group reset-offsets billing --to-time 2026-01-31T00:00:00Z --dry-run
    rivulet group reset-offsets billing --topic orders --partition 3 --to-offset 1200

Without --topic, every partition the group has committed on is reset. Refused while the
group has live members; stop its consumers first.")]
pub(crate) struct ResetArgs {
    /// The group.
    group: String,
    /// Reset this topic's partitions (all of them, or --partition). Default: every partition
    /// the group has committed on.
    #[arg(long, short = 't', value_name = "TOPIC")]
    topic: Option<String>,
    /// Reset only this partition of --topic.
    #[arg(long, short = 'p', value_name = "N", requires = "topic")]
    partition: Option<u32>,
    /// To this offset (the next offset the group reads); at most the log end offset.
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<u64>,
    /// To the first offset still stored.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset: the group skips everything stored so far.
    #[arg(long)]
    to_latest: bool,
    /// To the first record at or after this time (milliseconds since the epoch, RFC 3339, a
    /// date, or now-DURATION); the log end if every record is older.
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    to_time: Option<i64>,
    /// Show the new offsets without committing them.
    #[arg(long)]
    dry_run: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs a group command.
pub(crate) async fn run(command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::List(args) => list(args).await,
        GroupCommand::Describe(args) => describe(args).await,
        GroupCommand::ResetOffsets(args) => reset_offsets(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let admin = args.server.connect().await?.admin();
    let names = admin.list_groups().await.context("cannot list groups")?;
    let mut groups = Vec::with_capacity(names.len());
    for name in &names {
        match admin.describe_group(name).await {
            Ok(group) => groups.push((name, Some(group))),
            // Stored before group names were refused control characters: the server lists
            // the group but refuses to describe it under that name.
            Err(ClientError::InvalidArgument { .. }) => groups.push((name, None)),
            Err(err) => {
                return Err(err).with_context(|| format!("cannot describe group {name:?}"));
            }
        }
    }
    if args.output == OutputFormat::Json {
        for (name, group) in &groups {
            let group = group.as_ref();
            print_json(&json!({
                "group": name,
                "partitions": group.map(|g| g.partitions().len()),
                "members": group.map(|g| g.member_ids().len()),
                "lag": group.map(ConsumerGroup::total_lag),
            }))?;
        }
        return Ok(());
    }
    let mut table = Table::new(vec!["GROUP", "PARTITIONS", "MEMBERS", "LAG"]);
    for (name, group) in &groups {
        let cell = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let group = group.as_ref();
        table.row(vec![
            printable(name),
            cell(group.map(|g| g.partitions().len() as u64)),
            cell(group.map(|g| g.member_ids().len() as u64)),
            cell(group.map(ConsumerGroup::total_lag)),
        ]);
    }
    print(&table.render())
}

/// A group name as a table shows it: escaped, quoted, if it holds control characters, so it
/// cannot break the table or drive the terminal.
fn printable(name: &str) -> String {
    if name.chars().any(char::is_control) {
        format!("{name:?}")
    } else {
        name.to_owned()
    }
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let group = existing_group(&client, &args.group).await?;
    let owner = |topic: &str, partition: u32| {
        group
            .owner(topic, partition)
            .map(|m| m.member_id().to_owned())
    };
    if args.output == OutputFormat::Json {
        for p in group.partitions() {
            print_json(&json!({
                "group": group.name(),
                "topic": p.topic(),
                "partition": p.partition(),
                "committed_offset": p.committed_offset(),
                "log_end_offset": p.high_watermark(),
                "lag": p.lag(),
                "member": owner(p.topic(), p.partition()),
                "damage": p.damage(),
            }))?;
        }
        for m in group.members() {
            print_json(&json!({
                "group": group.name(),
                "member": m.member_id(),
                "instance_id": m.instance_id(),
                "host": m.client_host(),
                "partitions": m.partitions().iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))?;
        }
        return Ok(());
    }
    let mut table = Table::new(vec![
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "LOG-END",
        "LAG",
        "MEMBER",
    ]);
    for p in group.partitions() {
        table.row(vec![
            p.topic().to_owned(),
            p.partition().to_string(),
            p.committed_offset().to_string(),
            p.high_watermark().to_string(),
            p.lag().to_string(),
            owner(p.topic(), p.partition()).unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let mut text = format!(
        "group {}: total lag {}, {} live members\n\n{}",
        group.name(),
        group.total_lag(),
        group.members().len(),
        table.render()
    );
    for p in group.partitions() {
        if let Some(damage) = p.damage() {
            text.push_str(&format!("\n{}/{}: {damage}\n", p.topic(), p.partition()));
        }
    }
    if !group.members().is_empty() {
        let mut members = Table::new(vec!["MEMBER", "HOST", "PARTITIONS"]);
        for m in group.members() {
            let partitions: Vec<String> = m.partitions().iter().map(ToString::to_string).collect();
            members.row(vec![
                m.member_id().to_owned(),
                if m.client_host().is_empty() {
                    "-".to_owned()
                } else {
                    m.client_host().to_owned()
                },
                if partitions.is_empty() {
                    "-".to_owned()
                } else {
                    partitions.join(",")
                },
            ]);
        }
        text.push_str(&format!(
            "\ngeneration {}, strategy {}\n\n{}",
            group.generation(),
            group.strategy(),
            members.render()
        ));
    }
    print(&text)
}

/// The group's description, or a not-found error when it has neither committed offsets nor
/// live members.
async fn existing_group(client: &Client, name: &str) -> anyhow::Result<ConsumerGroup> {
    let group = client
        .admin()
        .describe_group(name)
        .await
        .with_context(|| format!("cannot describe group {name:?}"))?;
    if group.partitions().is_empty() && group.member_ids().is_empty() {
        return Err(not_found(format!(
            "group {name:?} not found: it has no committed offsets and no live members"
        )));
    }
    Ok(group)
}

async fn reset_offsets(args: ResetArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let admin = client.admin();
    let current = admin
        .describe_group(&args.group)
        .await
        .with_context(|| format!("cannot describe group {:?}", args.group))?;
    if !current.member_ids().is_empty() {
        return Err(anyhow::anyhow!(
            "group {:?} has {} live members ({}); stop its consumers before resetting offsets",
            args.group,
            current.member_ids().len(),
            current.member_ids().join(", ")
        ));
    }
    let partitions = reset_targets(&client, &args, &current).await?;

    let mut consumer = client
        .consumer()
        .group(&args.group)
        .auto_commit(None)
        .build();
    consumer.assign(partitions.clone());
    if args.to_earliest {
        consumer
            .seek_to_beginning(&partitions)
            .await
            .context("cannot find the first offsets")?;
    } else if args.to_latest {
        consumer
            .seek_to_end(&partitions)
            .await
            .context("cannot find the log end offsets")?;
    } else if let Some(ms) = args.to_time {
        for tp in &partitions {
            consumer
                .seek_to_timestamp(tp, ms)
                .await
                .with_context(|| format!("cannot find the offset of time {ms} in {tp}"))?;
        }
    } else if let Some(offset) = args.to_offset {
        for tp in &partitions {
            consumer.seek(tp, offset)?;
        }
    }
    let targets: Vec<(TopicPartition, u64)> = partitions
        .iter()
        .filter_map(|tp| consumer.position(tp).map(|offset| (tp.clone(), offset)))
        .collect();

    if !args.dry_run {
        consumer
            .commit_offsets(targets.clone())
            .await
            .with_context(|| format!("cannot commit offsets of group {:?}", args.group))?;
    }
    print_reset(&args, &current, &targets)
}

/// The partitions `reset-offsets` moves: those of `--topic` (or just `--partition`), else every
/// partition the group has committed on.
async fn reset_targets(
    client: &Client,
    args: &ResetArgs,
    current: &ConsumerGroup,
) -> anyhow::Result<Vec<TopicPartition>> {
    let Some(topic) = &args.topic else {
        if current.partitions().is_empty() {
            return Err(not_found(format!(
                "group {:?} not found: it has no committed offsets; name a --topic to reset",
                args.group
            )));
        }
        return Ok(current
            .partitions()
            .iter()
            .map(|p| TopicPartition::new(p.topic(), p.partition()))
            .collect());
    };
    let description = client
        .admin()
        .describe_topic(topic)
        .await
        .with_context(|| format!("cannot reset offsets on topic {topic:?}"))?;
    let count = description.partitions().len();
    let partitions: Vec<TopicPartition> = description
        .partitions()
        .iter()
        .map(|p| p.partition())
        .filter(|p| args.partition.is_none_or(|wanted| wanted == *p))
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    if let Some(partition) = args.partition
        && partitions.is_empty()
    {
        return Err(not_found(format!(
            "topic {topic:?} has {count} partitions; partition {partition} does not exist"
        )));
    }
    Ok(partitions)
}

fn print_reset(
    args: &ResetArgs,
    current: &ConsumerGroup,
    targets: &[(TopicPartition, u64)],
) -> anyhow::Result<()> {
    let previous = |tp: &TopicPartition| {
        current
            .partitions()
            .iter()
            .find(|p| p.topic() == tp.topic() && p.partition() == tp.partition())
            .map(|p| p.committed_offset())
    };
    if args.output == OutputFormat::Json {
        for (tp, offset) in targets {
            print_json(&json!({
                "group": args.group,
                "topic": tp.topic(),
                "partition": tp.partition(),
                "previous_offset": previous(tp),
                "new_offset": offset,
                "committed": !args.dry_run,
            }))?;
        }
        return Ok(());
    }
    let mut table = Table::new(vec!["TOPIC", "PARTITION", "PREVIOUS", "NEW"]);
    for (tp, offset) in targets {
        table.row(vec![
            tp.topic().to_owned(),
            tp.partition().to_string(),
            previous(tp).map_or_else(|| "-".to_owned(), |o| o.to_string()),
            offset.to_string(),
        ]);
    }
    let verb = if args.dry_run {
        "would reset (dry run, nothing committed)"
    } else {
        "reset"
    };
    print(&format!(
        "group {}: {verb} {} partitions\n\n{}",
        args.group,
        targets.len(),
        table.render()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_control_characters_are_shown_escaped() {
        assert_eq!(printable("billing"), "billing");
        assert_eq!(printable("Zürich east"), "Zürich east");
        assert_eq!(printable("a\nb\0"), "\"a\\nb\\0\"");
        assert_eq!(printable("\u{1b}[31mred"), "\"\\u{1b}[31mred\"");
    }
}
