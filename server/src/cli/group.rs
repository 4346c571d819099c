//! `conveyor group list|describe|delete|reset-offsets`: consumer groups
//! through ListGroups, DescribeGroups, OffsetFetch, ListOffsets,
//! DeleteGroups and OffsetCommit.

use std::process::ExitCode;

use rdkafka::client::Client;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use super::output::{Table, emit};
use super::{Conn, Failure, Format, Quiet, Result, block_on, finish};

#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// List consumer groups with their state and member count.
    List(ListArgs),
    /// Show a group's members, and per partition its committed offset, the
    /// log end offset and the lag between them.
    Describe(GroupArgs),
    /// Delete groups that have no active members, and their offsets.
    Delete(DeleteArgs),
    /// Move a group's committed offsets; the group must have no active
    /// members.
    ResetOffsets(ResetArgs),
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
pub struct GroupArgs {
    /// The group's id.
    pub group: String,
    #[command(flatten)]
    pub conn: Conn,
    /// Print a table or JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The groups to delete.
    #[arg(required = true)]
    pub groups: Vec<String>,
    #[command(flatten)]
    pub conn: Conn,
    /// Print a table or JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset"]))]
pub struct ResetArgs {
    /// The group's id.
    pub group: String,
    /// Reset every partition of this topic; by default the partitions the
    /// group has committed offsets for.
    #[arg(long)]
    pub topic: Option<String>,
    /// To each partition's log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// To each partition's log end offset, skipping everything unread.
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset, kept within each partition's start and end.
    #[arg(long, value_name = "N")]
    pub to_offset: Option<i64>,
    #[command(flatten)]
    pub conn: Conn,
    /// Print a table or JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(cmd: GroupCommand) -> ExitCode {
    finish(match cmd {
        GroupCommand::List(a) => list(&a),
        GroupCommand::Describe(a) => describe(&a),
        GroupCommand::Delete(a) => delete(&a),
        GroupCommand::ResetOffsets(a) => reset(&a),
    })
}

/// A consumer that joins nothing: it only fetches and commits the group's
/// offsets.
fn group_client(conn: &Conn, group: &str) -> Result<BaseConsumer<Quiet>> {
    let consumer: BaseConsumer<Quiet> = conn
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create_with_context(Quiet)
        .map_err(|e| Failure::op(format!("cannot start a client: {e}")))?;
    Ok(consumer)
}

fn list(a: &ListArgs) -> Result<()> {
    let client = group_client(&a.conn, "conveyor-cli")?;
    a.conn.metadata(client.client(), None)?;
    let groups = client
        .client()
        .fetch_group_list(None, a.conn.timeout)
        .map_err(|e| Failure::op(format!("list groups: {e}")))?;
    let mut groups: Vec<&GroupInfo> = groups.groups().iter().collect();
    groups.sort_by_key(|g| g.name());
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "MEMBERS"]);
    let mut docs = Vec::new();
    for g in groups {
        table.row(vec![
            g.name().to_owned(),
            g.state().to_owned(),
            g.protocol_type().to_owned(),
            g.members().len().to_string(),
        ]);
        docs.push(json!({
            "group": g.name(),
            "state": g.state(),
            "protocol_type": g.protocol_type(),
            "members": g.members().len(),
        }));
    }
    emit(a.format, &table.render(), &json!(docs))
}

/// The group as DescribeGroups answers; `None` if the broker does not
/// know it.
fn group_info(conn: &Conn, client: &Client<Quiet>, group: &str) -> Result<Option<GroupState>> {
    let list = client
        .fetch_group_list(Some(group), conn.timeout)
        .map_err(|e| Failure::op(format!("describe group {group}: {e}")))?;
    let Some(g) = list.groups().iter().find(|g| g.name() == group) else {
        return Ok(None);
    };
    Ok(Some(GroupState {
        state: g.state().to_owned(),
        protocol: g.protocol().to_owned(),
        members: g
            .members()
            .iter()
            .map(|m| Member {
                id: m.id().to_owned(),
                client_id: m.client_id().to_owned(),
                host: m.client_host().to_owned(),
                assignment: m.assignment().map(decode_assignment).unwrap_or_default(),
            })
            .collect(),
    }))
}

#[derive(Debug)]
struct GroupState {
    state: String,
    protocol: String,
    members: Vec<Member>,
}

#[derive(Debug)]
struct Member {
    id: String,
    client_id: String,
    host: String,
    /// `topic-partition`s from the consumer protocol's assignment.
    assignment: Vec<String>,
}

/// One partition's committed offset and log end.
#[derive(Debug)]
struct Position {
    topic: String,
    partition: i32,
    committed: i64,
    start: i64,
    end: i64,
}

/// The group's committed offsets (only partitions with one, or every
/// partition of `only_topic`) with each partition's log start and end.
fn positions(
    conn: &Conn,
    consumer: &BaseConsumer<Quiet>,
    only_topic: Option<&str>,
) -> Result<Vec<Position>> {
    let md = conn.metadata(consumer.client(), only_topic)?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        if t.error().is_some() {
            if only_topic.is_some() {
                return Err(Failure::op(format!("topic {} does not exist", t.name())));
            }
            continue;
        }
        if only_topic.is_none() && t.name().starts_with("__") {
            continue;
        }
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    let committed = consumer
        .committed_offsets(tpl, conn.timeout)
        .map_err(|e| Failure::op(format!("fetch committed offsets: {e}")))?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let offset = match e.offset() {
            Offset::Offset(o) => o,
            _ if only_topic.is_some() => -1,
            _ => continue,
        };
        let (start, end) = consumer
            .fetch_watermarks(e.topic(), e.partition(), conn.timeout)
            .map_err(|err| {
                Failure::op(format!(
                    "log offsets of {}-{}: {err}",
                    e.topic(),
                    e.partition()
                ))
            })?;
        out.push(Position {
            topic: e.topic().to_owned(),
            partition: e.partition(),
            committed: offset,
            start,
            end,
        });
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

fn describe(a: &GroupArgs) -> Result<()> {
    let consumer = group_client(&a.conn, &a.group)?;
    a.conn.metadata(consumer.client(), None)?;
    let info = group_info(&a.conn, consumer.client(), &a.group)?;
    let positions = positions(&a.conn, &consumer, None)?;
    let info = match info {
        Some(i) if i.state != "Dead" || !positions.is_empty() => i,
        _ if !positions.is_empty() => GroupState {
            state: "Empty".to_owned(),
            protocol: String::new(),
            members: Vec::new(),
        },
        _ => return Err(Failure::op(format!("group {} does not exist", a.group))),
    };
    let mut text = format!(
        "group {}: state {}, protocol {}, {} members\n\n",
        a.group,
        info.state,
        if info.protocol.is_empty() {
            "-"
        } else {
            &info.protocol
        },
        info.members.len()
    );
    let mut offsets = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG"]);
    let mut pdocs = Vec::new();
    for p in &positions {
        let lag = (p.end - p.committed).max(0);
        offsets.row(vec![
            p.topic.clone(),
            p.partition.to_string(),
            p.committed.to_string(),
            p.end.to_string(),
            lag.to_string(),
        ]);
        pdocs.push(json!({
            "topic": p.topic,
            "partition": p.partition,
            "committed": p.committed,
            "log_end": p.end,
            "lag": lag,
        }));
    }
    text.push_str(&offsets.render());
    let mut members = Table::new(&["MEMBER", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
    let mut mdocs = Vec::new();
    for m in &info.members {
        members.row(vec![
            m.id.clone(),
            m.client_id.clone(),
            m.host.clone(),
            m.assignment.join(","),
        ]);
        mdocs.push(json!({
            "member": m.id,
            "client_id": m.client_id,
            "host": m.host,
            "assignment": m.assignment,
        }));
    }
    if !info.members.is_empty() {
        text.push('\n');
        text.push_str(&members.render());
    }
    let doc = json!({
        "group": a.group,
        "state": info.state,
        "protocol": info.protocol,
        "members": mdocs,
        "offsets": pdocs,
        "total_lag": positions.iter().map(|p| (p.end - p.committed).max(0)).sum::<i64>(),
    });
    emit(a.format, &text, &doc)
}

fn delete(a: &DeleteArgs) -> Result<()> {
    let client = a.conn.admin()?;
    a.conn.metadata(client.inner(), None)?;
    let names: Vec<&str> = a.groups.iter().map(String::as_str).collect();
    let results = block_on(client.delete_groups(&names, &a.conn.admin_options()))
        .map_err(|e| Failure::op(format!("delete groups: {e}")))?;
    super::deleted("group", &a.groups, results, a.format)
}

fn reset(a: &ResetArgs) -> Result<()> {
    let consumer = group_client(&a.conn, &a.group)?;
    a.conn.metadata(consumer.client(), None)?;
    // A group the broker does not know has no members; committing
    // creates it, as kafka-consumer-groups does.
    let members = group_info(&a.conn, consumer.client(), &a.group)?.map_or(0, |i| i.members.len());
    if members > 0 {
        return Err(Failure::op(format!(
            "group {} has {members} active members; stop them before resetting its offsets",
            a.group
        )));
    }
    let positions = positions(&a.conn, &consumer, a.topic.as_deref())?;
    if positions.is_empty() {
        return Err(Failure::op(format!(
            "group {} has no committed offsets; name a --topic to reset",
            a.group
        )));
    }
    let mut tpl = TopicPartitionList::new();
    let mut table = Table::new(&["TOPIC", "PARTITION", "OLD", "NEW"]);
    let mut docs = Vec::new();
    for p in &positions {
        let new = if a.to_earliest {
            p.start
        } else if a.to_latest {
            p.end
        } else {
            // The ArgGroup makes one of the three present.
            a.to_offset.unwrap_or(0).clamp(p.start, p.end)
        };
        tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(new))
            .expect("a new partition takes an offset");
        let old = if p.committed < 0 {
            "-".to_owned()
        } else {
            p.committed.to_string()
        };
        table.row(vec![
            p.topic.clone(),
            p.partition.to_string(),
            old,
            new.to_string(),
        ]);
        docs.push(json!({
            "topic": p.topic,
            "partition": p.partition,
            "old": (p.committed >= 0).then_some(p.committed),
            "new": new,
        }));
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .map_err(|e| Failure::op(format!("commit offsets of group {}: {e}", a.group)))?;
    emit(
        a.format,
        &table.render(),
        &json!({ "group": a.group, "offsets": docs }),
    )
}

/// `topic-partition` names from a consumer protocol assignment (version,
/// then topics each with partitions); empty if it does not parse.
fn decode_assignment(bytes: &[u8]) -> Vec<String> {
    fn take<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
        let (head, rest) = b.split_first_chunk::<N>()?;
        *b = rest;
        Some(*head)
    }
    fn parse(mut b: &[u8]) -> Option<Vec<String>> {
        let b = &mut b;
        take::<2>(b)?;
        let topics = i32::from_be_bytes(take::<4>(b)?);
        let mut out = Vec::new();
        for _ in 0..topics.max(0) {
            let len = usize::from(u16::from_be_bytes(take::<2>(b)?));
            let name = String::from_utf8_lossy(b.get(..len)?).into_owned();
            *b = &b[len..];
            let partitions = i32::from_be_bytes(take::<4>(b)?);
            for _ in 0..partitions.max(0) {
                let p = i32::from_be_bytes(take::<4>(b)?);
                out.push(format!("{name}-{p}"));
            }
        }
        Some(out)
    }
    parse(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::decode_assignment;

    #[test]
    fn assignments_decode() {
        let mut b = vec![0, 0, 0, 0, 0, 1, 0, 1, b'o'];
        b.extend([0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(decode_assignment(&b), vec!["o-0", "o-3"]);
        assert!(decode_assignment(&[0, 0, 0]).is_empty());
    }
}
