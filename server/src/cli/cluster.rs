//! `conveyor cluster info`: the brokers, the controller, the cluster id and
//! how many topics there are, from Metadata. `conveyor cluster quorum`: the
//! metadata quorum's leader, epoch, high watermark and voters, from
//! DescribeQuorum, as `kafka-metadata-quorum describe --status` shows them.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    ApiVersionsRequest, DescribeQuorumRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;

use super::output::{Table, emit};
use super::{Conn, Failure, Format, Quiet, Result, finish, millis};

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Show the cluster id, the controller, every broker and the number of
    /// topics.
    Info(InfoArgs),
    /// Show the metadata quorum: its leader (the active controller), epoch,
    /// high watermark and voters with their log end offsets and lag.
    Quorum(InfoArgs),
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
        ClusterCommand::Quorum(a) => finish(quorum(&a)),
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

/// The largest response `cluster quorum` reads.
const MAX_RESPONSE: usize = 16 << 20;

fn quorum(a: &InfoArgs) -> Result<()> {
    let mut call = Call::connect(&a.conn)?;
    let versions = call.send(&ApiVersionsRequest::default(), 0)?;
    let key = DescribeQuorumRequest::KEY;
    let Some(range) = versions.api_keys.iter().find(|k| k.api_key == key) else {
        return Err(Failure::op(format!(
            "{} does not answer DescribeQuorum (it runs without a metadata quorum)",
            a.conn.bootstrap_server
        )));
    };
    let version = range.max_version.min(2);
    let request = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let response = call.send(&request, version)?;
    if response.error_code != 0 {
        let why = response
            .error_message
            .as_ref()
            .map_or(String::new(), |m| format!(": {}", m.as_str()));
        return Err(Failure::op(format!(
            "DescribeQuorum failed with error {}{why}",
            response.error_code
        )));
    }
    let Some(p) = response.topics.first().and_then(|t| t.partitions.first()) else {
        return Err(Failure::op("DescribeQuorum answered no partition"));
    };
    if p.error_code != 0 {
        return Err(Failure::op(format!(
            "DescribeQuorum failed for __cluster_metadata-0 with error {}",
            p.error_code
        )));
    }
    let leader = p.leader_id.0;
    let leader_end = p
        .current_voters
        .iter()
        .find(|v| v.replica_id.0 == leader)
        .map_or(-1, |v| v.log_end_offset);
    let mut table = Table::new(&["VOTER", "STATUS", "LOG END OFFSET", "LAG"]);
    let mut docs = Vec::new();
    for v in &p.current_voters {
        let id = v.replica_id.0;
        let known = v.log_end_offset >= 0 && leader_end >= 0;
        let lag = known.then(|| (leader_end - v.log_end_offset).max(0));
        table.row(vec![
            id.to_string(),
            if id == leader { "leader" } else { "follower" }.to_owned(),
            if v.log_end_offset >= 0 {
                v.log_end_offset.to_string()
            } else {
                "-".to_owned()
            },
            lag.map_or("-".to_owned(), |l| l.to_string()),
        ]);
        docs.push(json!({
            "id": id,
            "leader": id == leader,
            "log_end_offset": (v.log_end_offset >= 0).then_some(v.log_end_offset),
            "lag": lag,
        }));
    }
    let mut text = format!(
        "leader: {}\nepoch: {}\nhigh watermark: {}\n\n{}",
        if leader < 0 {
            "none".to_owned()
        } else {
            leader.to_string()
        },
        p.leader_epoch,
        p.high_watermark,
        table.render()
    );
    if leader_end < 0 && leader >= 0 {
        text.push_str("\n(log end offsets are known to the leader only: ask it for them)\n");
    }
    let doc = json!({
        "leader": (leader >= 0).then_some(leader),
        "epoch": p.leader_epoch,
        "high_watermark": p.high_watermark,
        "voters": docs,
    });
    emit(a.format, &text, &doc)
}

/// One connection for requests librdkafka has no call for.
struct Call {
    stream: TcpStream,
    next_correlation: i32,
    addr: String,
}

impl Call {
    fn connect(conn: &Conn) -> Result<Call> {
        let addr = &conn.bootstrap_server;
        let unreachable = |e: std::io::Error| Failure::op(format!("cannot reach {addr}: {e}"));
        let target = addr
            .to_socket_addrs()
            .map_err(unreachable)?
            .next()
            .ok_or_else(|| Failure::op(format!("{addr} names no address")))?;
        let stream = TcpStream::connect_timeout(&target, conn.timeout).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(conn.timeout))
            .map_err(unreachable)?;
        stream
            .set_write_timeout(Some(conn.timeout))
            .map_err(unreachable)?;
        Ok(Call {
            stream,
            next_correlation: 1,
            addr: addr.clone(),
        })
    }

    /// Send `request` at `version` and read its response.
    fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let broken = |what: &str| Failure::op(format!("{what} ({})", self.addr));
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("conveyor-cli")));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|e| broken(&format!("cannot encode the request: {e}")))?;
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.stream
            .write_all(&frame)
            .map_err(|e| broken(&format!("cannot send: {e}")))?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| broken(&format!("no answer: {e}")))?;
        let len = usize::try_from(i32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len > MAX_RESPONSE {
            return Err(broken("the answer is too large"));
        }
        let mut body = vec![0u8; len];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| broken(&format!("answer cut short: {e}")))?;
        let mut body = bytes::Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| broken(&format!("bad answer: {e}")))?;
        if header.correlation_id != correlation {
            return Err(broken("the answer is to another request"));
        }
        let response = R::Response::decode(&mut body, version)
            .map_err(|e| broken(&format!("bad answer: {e}")))?;
        if body.has_remaining() {
            return Err(broken("bytes left after the answer"));
        }
        Ok(response)
    }
}
