//! `conveyor cluster info`: the brokers, the controller, the cluster id and
//! how many topics there are, from Metadata.

use std::process::ExitCode;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;

use super::output::{Table, emit};
use super::{Conn, Failure, Format, Quiet, Result, finish, millis};

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Show the cluster id, the controller, every broker and the number of
    /// topics.
    Info(InfoArgs),
}

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Print a table or JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(cmd: ClusterCommand) -> ExitCode {
    match cmd {
        ClusterCommand::Info(a) => finish(info(&a)),
    }
}

fn info(a: &InfoArgs) -> Result<()> {
    let consumer: BaseConsumer<Quiet> = a
        .conn
        .client_config()
        .create_with_context(Quiet)
        .map_err(|e| Failure::op(format!("cannot start a client: {e}")))?;
    let client = consumer.client();
    let md = a.conn.metadata(client, None)?;
    let cluster_id = client.fetch_cluster_id(a.conn.timeout);
    let timeout_ms = i32::try_from(millis(a.conn.timeout)).unwrap_or(i32::MAX);
    // SAFETY: the handle is valid while `consumer` lives, and
    // rd_kafka_controllerid only reads the metadata cache it fetched
    // above (waiting at most the timeout), returning -1 if unknown.
    let controller =
        unsafe { rdkafka::bindings::rd_kafka_controllerid(client.native_ptr(), timeout_ms) };
    let mut brokers: Vec<_> = md.brokers().iter().collect();
    brokers.sort_by_key(|b| b.id());
    let mut table = Table::new(&["BROKER", "HOST", "PORT", "CONTROLLER"]);
    let mut docs = Vec::new();
    for b in &brokers {
        let is_controller = b.id() == controller;
        table.row(vec![
            b.id().to_string(),
            b.host().to_owned(),
            b.port().to_string(),
            if is_controller { "yes" } else { "" }.to_owned(),
        ]);
        docs.push(json!({ "id": b.id(), "host": b.host(), "port": b.port() }));
    }
    let topics = md.topics().len();
    let text = format!(
        "cluster id: {}\ncontroller: {}\ntopics: {topics}\n\n{}",
        cluster_id.as_deref().unwrap_or("-"),
        if controller < 0 {
            "unknown".to_owned()
        } else {
            controller.to_string()
        },
        table.render()
    );
    let doc = json!({
        "cluster_id": cluster_id,
        "controller": (controller >= 0).then_some(controller),
        "brokers": docs,
        "topics": topics,
    });
    emit(a.format, &text, &doc)
}
