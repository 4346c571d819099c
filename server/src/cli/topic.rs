//! `conveyor topic create|list|describe|delete|alter-config`: topics through
//! the admin API (CreateTopics, Metadata, DescribeConfigs, DeleteTopics,
//! AlterConfigs).

use std::collections::BTreeMap;
use std::process::ExitCode;

use rdkafka::admin::{
    AdminClient, AlterConfig, ConfigEntry, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use serde_json::json;

use super::output::{Table, emit, ids};
use super::{Conn, Failure, Format, Quiet, Result, block_on, finish, parse_key_value};

#[derive(Debug, clap::Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List the cluster's topics with their partition counts.
    List(ListArgs),
    /// Show a topic's partitions (leader, replicas, in-sync replicas) and
    /// its configuration.
    Describe(DescribeArgs),
    /// Delete topics and every record in them.
    Delete(DeleteArgs),
    /// Set or remove a topic's configuration overrides; the others are
    /// kept.
    AlterConfig(AlterArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The topic's name.
    pub topic: String,
    /// How many partitions it has.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// How many copies of each partition the cluster keeps.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: i32,
    /// A topic setting, e.g. --config cleanup.policy=compact (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub configs: Vec<(String, String)>,
    #[command(flatten)]
    pub conn: Conn,
    /// Print a table or JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Print a table or JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// The topic's name.
    pub topic: String,
    /// List every setting with where its value comes from, not only the
    /// topic's own overrides.
    #[arg(long)]
    pub all_configs: bool,
    #[command(flatten)]
    pub conn: Conn,
    /// Print a table or JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The topics to delete.
    #[arg(required = true)]
    pub topics: Vec<String>,
    #[command(flatten)]
    pub conn: Conn,
    /// Print a table or JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["set", "delete"]))]
pub struct AlterArgs {
    /// The topic's name.
    pub topic: String,
    /// Set an override, e.g. --set retention.ms=3600000 (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Remove an override, so the broker's default applies (repeatable).
    #[arg(long, value_name = "KEY")]
    pub delete: Vec<String>,
    #[command(flatten)]
    pub conn: Conn,
    /// Print a table or JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(cmd: TopicCommand) -> ExitCode {
    finish(match cmd {
        TopicCommand::Create(a) => create(&a),
        TopicCommand::List(a) => list(&a),
        TopicCommand::Describe(a) => describe(&a),
        TopicCommand::Delete(a) => delete(&a),
        TopicCommand::AlterConfig(a) => alter(&a),
    })
}

fn create(a: &CreateArgs) -> Result<()> {
    let client = a.conn.admin()?;
    a.conn.metadata(client.inner(), None)?;
    let mut topic = NewTopic::new(
        &a.topic,
        a.partitions,
        TopicReplication::Fixed(a.replication_factor),
    );
    for (k, v) in &a.configs {
        topic = topic.set(k, v);
    }
    let results = block_on(client.create_topics([&topic], &a.conn.admin_options()))
        .map_err(|e| Failure::op(format!("create topic {}: {e}", a.topic)))?;
    for r in results {
        r.map_err(|(name, code)| Failure::op(format!("create topic {name}: {code}")))?;
    }
    let text = format!(
        "created topic {} with {} partitions, replication factor {}\n",
        a.topic, a.partitions, a.replication_factor
    );
    let configs: BTreeMap<_, _> = a.configs.iter().cloned().collect();
    let doc = json!({
        "topic": a.topic,
        "partitions": a.partitions,
        "replication_factor": a.replication_factor,
        "configs": configs,
    });
    emit(a.format, &text, &doc)
}

fn list(a: &ListArgs) -> Result<()> {
    let client = a.conn.admin()?;
    let md = a.conn.metadata(client.inner(), None)?;
    let mut topics: Vec<_> = md.topics().iter().collect();
    topics.sort_by_key(|t| t.name());
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]);
    let mut docs = Vec::new();
    for t in topics {
        let rf = t.partitions().first().map_or(0, |p| p.replicas().len());
        table.row(vec![
            t.name().to_owned(),
            t.partitions().len().to_string(),
            rf.to_string(),
        ]);
        docs.push(json!({
            "topic": t.name(),
            "partitions": t.partitions().len(),
            "replication_factor": rf,
        }));
    }
    emit(a.format, &table.render(), &json!(docs))
}

/// The topic's settings as the broker describes them.
fn configs(conn: &Conn, client: &AdminClient<Quiet>, topic: &str) -> Result<Vec<ConfigEntry>> {
    let results = block_on(
        client.describe_configs([&ResourceSpecifier::Topic(topic)], &conn.admin_options()),
    )
    .map_err(|e| Failure::op(format!("describe configs of {topic}: {e}")))?;
    let resource = results
        .into_iter()
        .next()
        .ok_or_else(|| Failure::op(format!("describe configs of {topic}: no answer")))?
        .map_err(|code| Failure::op(format!("describe configs of {topic}: {code}")))?;
    Ok(resource.entries)
}

fn source_name(s: &ConfigSource) -> &'static str {
    match s {
        ConfigSource::DynamicTopic => "topic",
        ConfigSource::DynamicBroker => "broker (dynamic)",
        ConfigSource::DynamicDefaultBroker => "cluster default (dynamic)",
        ConfigSource::StaticBroker => "broker",
        ConfigSource::Default => "default",
        _ => "unknown",
    }
}

fn shown_value(e: &ConfigEntry) -> String {
    if e.is_sensitive {
        "(sensitive)".to_owned()
    } else {
        e.value.clone().unwrap_or_default()
    }
}

fn config_table(entries: &[&ConfigEntry]) -> (String, serde_json::Value) {
    let mut table = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
    let mut docs = Vec::new();
    for e in entries {
        table.row(vec![
            e.name.clone(),
            shown_value(e),
            source_name(&e.source).to_owned(),
        ]);
        docs.push(json!({
            "name": e.name,
            "value": if e.is_sensitive { None } else { e.value.clone() },
            "source": source_name(&e.source),
            "read_only": e.is_read_only,
        }));
    }
    (table.render(), json!(docs))
}

fn describe(a: &DescribeArgs) -> Result<()> {
    let client = a.conn.admin()?;
    let md = a.conn.metadata(client.inner(), Some(&a.topic))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == a.topic)
        .ok_or_else(|| Failure::op(format!("topic {} is not in the metadata", a.topic)))?;
    if let Some(e) = t.error() {
        let code = rdkafka::types::RDKafkaErrorCode::from(e);
        return Err(Failure::op(format!("topic {}: {code}", a.topic)));
    }
    let mut partitions: Vec<_> = t.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());
    let rf = partitions.first().map_or(0, |p| p.replicas().len());
    let mut table = Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR"]);
    let mut pdocs = Vec::new();
    for p in &partitions {
        table.row(vec![
            p.id().to_string(),
            p.leader().to_string(),
            ids(p.replicas()),
            ids(p.isr()),
        ]);
        pdocs.push(json!({
            "partition": p.id(),
            "leader": p.leader(),
            "replicas": p.replicas(),
            "isr": p.isr(),
        }));
    }
    let entries = configs(&a.conn, &client, &a.topic)?;
    let shown: Vec<&ConfigEntry> = entries
        .iter()
        .filter(|e| a.all_configs || matches!(e.source, ConfigSource::DynamicTopic))
        .collect();
    let (config_text, config_doc) = config_table(&shown);
    let mut text = format!(
        "topic {}: {} partitions, replication factor {}\n\n{}",
        a.topic,
        partitions.len(),
        rf,
        table.render()
    );
    if shown.is_empty() {
        text.push_str("\nno configuration overrides\n");
    } else {
        text.push('\n');
        text.push_str(&config_text);
    }
    let doc = json!({
        "topic": a.topic,
        "partitions": pdocs,
        "replication_factor": rf,
        "configs": config_doc,
    });
    emit(a.format, &text, &doc)
}

fn delete(a: &DeleteArgs) -> Result<()> {
    let client = a.conn.admin()?;
    a.conn.metadata(client.inner(), None)?;
    let names: Vec<&str> = a.topics.iter().map(String::as_str).collect();
    let results = block_on(client.delete_topics(&names, &a.conn.admin_options()))
        .map_err(|e| Failure::op(format!("delete topics: {e}")))?;
    super::deleted("topic", &a.topics, results, a.format)
}

/// AlterConfigs replaces a topic's whole set of overrides, so the current
/// ones are read first and sent back with the changes applied.
fn alter(a: &AlterArgs) -> Result<()> {
    let client = a.conn.admin()?;
    a.conn.metadata(client.inner(), None)?;
    let mut overrides: BTreeMap<String, String> = configs(&a.conn, &client, &a.topic)?
        .into_iter()
        .filter(|e| matches!(e.source, ConfigSource::DynamicTopic) && !e.is_sensitive)
        .filter_map(|e| Some((e.name, e.value?)))
        .collect();
    for k in &a.delete {
        if overrides.remove(k).is_none() {
            return Err(Failure::op(format!(
                "topic {} has no override of {k} to delete",
                a.topic
            )));
        }
    }
    for (k, v) in &a.set {
        overrides.insert(k.clone(), v.clone());
    }
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(&a.topic));
    for (k, v) in &overrides {
        change = change.set(k, v);
    }
    let results = block_on(client.alter_configs([&change], &a.conn.admin_options()))
        .map_err(|e| Failure::op(format!("alter configs of {}: {e}", a.topic)))?;
    for r in results {
        r.map_err(|(_, code)| Failure::op(format!("alter configs of {}: {code}", a.topic)))?;
    }
    let entries = configs(&a.conn, &client, &a.topic)?;
    let now: Vec<&ConfigEntry> = entries
        .iter()
        .filter(|e| matches!(e.source, ConfigSource::DynamicTopic))
        .collect();
    let (config_text, config_doc) = config_table(&now);
    let text = format!("altered topic {}\n\n{config_text}", a.topic);
    emit(
        a.format,
        &text,
        &json!({ "topic": a.topic, "configs": config_doc }),
    )
}
