//! `rivulet topic create|list|describe|delete`, over the client library's [`Admin`].

use anyhow::Context;
use clap::{Args, Subcommand};
use rivulet_client::{ClientError, NewTopic, TopicDescription};
use serde_json::json;

use crate::arg_values::format_time_ms;
use crate::connect::ServerArgs;
use crate::exit::usage_error;
use crate::output::{OutputFormat, Table, opt_cell, print, print_json};
use crate::topic_config::{
    SETTINGS_HELP, TopicSetting, apply, check_no_repeats, parse_setting, policy_name,
};

/// `rivulet topic ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a topic.
    #[command(after_help = SETTINGS_HELP)]
    Create(CreateArgs),
    /// List topics with their partition counts.
    List(ListArgs),
    /// Show a topic's settings and each partition's offsets and size.
    Describe(DescribeArgs),
    /// Delete a topic, its data and every group's committed offsets on it.
    Delete(DeleteArgs),
}

/// `rivulet topic create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The topic's name: 1 to 249 ASCII letters, digits, '.', '_' and '-'.
    topic: String,
    /// Number of partitions.
    #[arg(long, short = 'p', value_name = "N", default_value_t = 1)]
    partitions: u32,
    /// A per-topic setting as KEY=VALUE (repeatable); the keys are listed below.
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = parse_setting)]
    config: Vec<TopicSetting>,
    /// Succeed without changes when the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// `rivulet topic list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    server: ServerArgs,
}

/// `rivulet topic describe`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// The topic.
    topic: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    server: ServerArgs,
}

/// `rivulet topic delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The topic.
    topic: String,
    /// Succeed without changes when the topic does not exist.
    #[arg(long)]
    if_exists: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs a topic command.
pub(crate) async fn run(command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create(args) => create(args).await,
        TopicCommand::List(args) => list(args).await,
        TopicCommand::Describe(args) => describe(args).await,
        TopicCommand::Delete(args) => delete(args).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    check_no_repeats(&args.config).map_err(usage_error)?;
    let admin = args.server.connect().await?.admin();
    let topic = args
        .config
        .iter()
        .fold(NewTopic::new(&args.topic, args.partitions), apply);
    let created = admin.create_topic(topic).await;
    // Only the very name counts as existing: a topic that merely collides with it (other case,
    // '.' for '_') is a different topic, and creating this one failed.
    let exists = match &created {
        Err(ClientError::AlreadyExists { .. }) if args.if_not_exists => {
            admin.describe_topic(&args.topic).await.is_ok()
        }
        _ => false,
    };
    match created {
        Ok(()) => print(&format!(
            "created topic {} with {} partition{}\n",
            args.topic,
            args.partitions,
            if args.partitions == 1 { "" } else { "s" }
        )),
        Err(_) if exists => print(&format!("topic {} already exists\n", args.topic)),
        Err(err) => Err(err).with_context(|| format!("cannot create topic {:?}", args.topic)),
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let admin = args.server.connect().await?.admin();
    let topics = admin.list_topics().await.context("cannot list topics")?;
    if args.output == OutputFormat::Json {
        for topic in &topics {
            print_json(&json!({
                "topic": topic.name(),
                "partitions": topic.partitions(),
                "damage": topic.damage(),
            }))?;
        }
        return Ok(());
    }
    let mut table = Table::new(vec!["TOPIC", "PARTITIONS"]);
    for topic in &topics {
        let partitions = match topic.damage() {
            Some(_) => "damaged".to_owned(),
            None => topic.partitions().to_string(),
        };
        table.row(vec![topic.name().to_owned(), partitions]);
    }
    let mut text = table.render();
    for (topic, damage) in topics.iter().filter_map(|t| Some((t, t.damage()?))) {
        text.push_str(&format!("\ntopic {} is damaged: {damage}\n", topic.name()));
    }
    print(&text)
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let admin = args.server.connect().await?.admin();
    let topic = admin
        .describe_topic(&args.topic)
        .await
        .with_context(|| format!("cannot describe topic {:?}", args.topic))?;
    match args.output {
        OutputFormat::Json => print_json(&description_json(&topic)),
        OutputFormat::Table => print(&description_text(&topic)),
    }
}

fn description_json(topic: &TopicDescription) -> serde_json::Value {
    let partitions: Vec<_> = topic
        .partitions()
        .iter()
        .map(|p| {
            json!({
                "partition": p.partition(),
                "log_start_offset": p.log_start_offset(),
                "log_end_offset": p.high_watermark(),
                "durable_offset": p.durable_offset(),
                "size_bytes": p.size_bytes(),
            })
        })
        .collect();
    json!({
        "topic": topic.name(),
        "created_at_ms": topic.created_at_ms(),
        "config": {
            "retention_ms": topic.retention_ms(),
            "retention_bytes": topic.retention_bytes(),
            "segment_bytes": topic.segment_bytes(),
            "max_record_bytes": topic.max_record_bytes(),
            "max_batch_bytes": topic.max_batch_bytes(),
            "durability_policy": policy_name(topic.durability_policy()),
            "sync_interval_ms": topic.sync_interval_ms(),
        },
        "partitions": partitions,
    })
}

fn description_text(topic: &TopicDescription) -> String {
    let created = i64::try_from(topic.created_at_ms()).map_or_else(|_| "-".into(), format_time_ms);
    let mut settings = Table::new(vec!["SETTING", "VALUE"]);
    let rows = [
        ("created", created),
        ("retention_ms", opt_cell(topic.retention_ms())),
        ("retention_bytes", opt_cell(topic.retention_bytes())),
        ("segment_bytes", opt_cell(topic.segment_bytes())),
        ("max_record_bytes", opt_cell(topic.max_record_bytes())),
        ("max_batch_bytes", opt_cell(topic.max_batch_bytes())),
        (
            "durability_policy",
            policy_name(topic.durability_policy()).to_owned(),
        ),
        ("sync_interval_ms", opt_cell(topic.sync_interval_ms())),
    ];
    for (name, value) in rows {
        settings.row(vec![name.to_owned(), value]);
    }

    let mut partitions = Table::new(vec![
        "PARTITION",
        "LOG-START",
        "LOG-END",
        "DURABLE",
        "RECORDS",
        "SIZE-BYTES",
    ]);
    for p in topic.partitions() {
        partitions.row(vec![
            p.partition().to_string(),
            p.log_start_offset().to_string(),
            p.high_watermark().to_string(),
            p.durable_offset().to_string(),
            p.high_watermark()
                .saturating_sub(p.log_start_offset())
                .to_string(),
            p.size_bytes().to_string(),
        ]);
    }
    format!(
        "topic {}\n\n{}\n{}",
        topic.name(),
        settings.render(),
        partitions.render()
    )
}

async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let admin = args.server.connect().await?.admin();
    match admin.delete_topic(&args.topic).await {
        Ok(()) => print(&format!("deleted topic {}\n", args.topic)),
        Err(ClientError::NotFound { .. }) if args.if_exists => {
            print(&format!("topic {} does not exist\n", args.topic))
        }
        Err(err) => Err(err).with_context(|| format!("cannot delete topic {:?}", args.topic)),
    }
}
