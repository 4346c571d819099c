//! 200 connections producing and fetching at once, on every runtime: every
//! produce is acknowledged at its own offset and every fetch at that offset
//! returns the very batch that connection sent.
//!
//! Raw Kafka requests (no client library), so 200 connections cost 200 test
//! threads and nothing more. Bounded: each read and write by
//! `raw::IO_TIMEOUT`, the whole test by [`ROUNDS`] round trips per
//! connection.
//!
//! Run: `cargo test -p conveyor-tests --test concurrency`.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use conveyor_tests::raw::{self, RawConn, RawRecord, Reader, Writer, api, error, request};
use conveyor_tests::{TestBroker, batches_in, each_runtime, unique_topic};

/// Connections open at once.
const CONNECTIONS: usize = 200;
/// Produce-then-fetch round trips per connection.
const ROUNDS: usize = 5;
/// Partitions of the topic; connections share them.
const PARTITIONS: i32 = 4;
/// How long the topic may take to become writable.
const CREATE_ATTEMPTS: i32 = 50;

/// A Fetch v4 request body for one partition from `offset`.
fn fetch_v4_body(topic: &str, partition: i32, offset: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(-1) // replica id
        .i32(500) // max wait ms
        .i32(1) // min bytes
        .i32(1 << 20) // max bytes
        .i8(0) // isolation: read uncommitted
        .i32(1)
        .string(topic)
        .i32(1)
        .i32(partition)
        .i64(offset)
        .i32(1 << 20); // partition max bytes
    w.buf
}

/// The error code and record bytes of a Fetch v4 response for one partition.
fn parse_fetch_v4(body: &[u8]) -> Option<(i16, Vec<u8>)> {
    let mut r = Reader::new(body);
    let _throttle = r.i32()?;
    if r.i32()? != 1 {
        return None;
    }
    let _topic = r.string()?;
    if r.i32()? != 1 {
        return None;
    }
    let _partition = r.i32()?;
    let error_code = r.i16()?;
    let _high_watermark = r.i64()?;
    let _last_stable = r.i64()?;
    let aborted = r.i32()?;
    for _ in 0..aborted.max(0) {
        r.i64()?;
        r.i64()?;
    }
    let len = usize::try_from(r.i32()?).unwrap_or(0);
    let start = body.len() - r.remaining();
    Some((error_code, body.get(start..start + len)?.to_vec()))
}

fn produce(
    conn: &mut RawConn,
    topic: &str,
    partition: i32,
    batch: &[u8],
    id: i32,
) -> raw::ProducePartition {
    let body = raw::produce_v3_body(topic, partition, -1, batch);
    let frame = request(api::PRODUCE, 3, id, Some("concurrency"), &body);
    let resp = conn.round_trip(&frame, id).expect("Produce response");
    raw::parse_produce_v3(&resp).unwrap_or_else(|| panic!("unparseable Produce v3: {resp:02x?}"))
}

/// Make the topic (auto-create through Metadata) and wait until every
/// partition takes a produce.
fn create(broker: &TestBroker, topic: &str) {
    let mut conn = RawConn::connect(broker.addr());
    let batch = raw::record_batch(
        &[RawRecord {
            key: None,
            value: Some(b"warm-up"),
        }],
        1_700_000_000_000,
    );
    for p in 0..PARTITIONS {
        let mut ok = false;
        for attempt in 0..CREATE_ATTEMPTS {
            let id = 1000 * (p + 1) + attempt;
            let meta = request(api::METADATA, 4, id, None, &raw::metadata_v4_body(&[topic]));
            conn.round_trip(&meta, id).expect("Metadata v4 response");
            let r = produce(&mut conn, topic, p, &batch, id + 500);
            if r.error_code == 0 {
                ok = true;
                break;
            }
            assert!(
                r.error_code == error::UNKNOWN_TOPIC_OR_PARTITION
                    || r.error_code == error::LEADER_NOT_AVAILABLE,
                "{r:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
        assert!(ok, "partition {p} of {topic} never became writable");
    }
}

/// One connection's work: produce a batch, fetch it back at its offset.
fn client(addr: std::net::SocketAddr, topic: &str, c: usize, start: &Barrier) {
    let mut conn = RawConn::connect(addr);
    let partition = (c % PARTITIONS as usize) as i32;
    start.wait();
    for round in 0..ROUNDS {
        let value = format!("conn {c} round {round}");
        let key = c.to_string();
        let batch = raw::record_batch(
            &[RawRecord {
                key: Some(key.as_bytes()),
                value: Some(value.as_bytes()),
            }],
            1_700_000_000_000,
        );
        let id = (round * 2) as i32;
        let p = produce(&mut conn, topic, partition, &batch, id);
        assert_eq!(p.error_code, 0, "conn {c} round {round}: {p:?}");
        assert!(p.base_offset >= 0, "conn {c} round {round}: {p:?}");

        let frame = request(
            api::FETCH,
            4,
            id + 1,
            Some("concurrency"),
            &fetch_v4_body(topic, partition, p.base_offset),
        );
        let resp = conn.round_trip(&frame, id + 1).expect("Fetch response");
        let (error_code, records) =
            parse_fetch_v4(&resp).unwrap_or_else(|| panic!("unparseable Fetch v4: {resp:02x?}"));
        assert_eq!(error_code, 0, "conn {c} round {round}: fetch error");
        // One record per batch: the batch holding the offset starts there.
        let first = batches_in(&records)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("conn {c} round {round}: no batch at {}", p.base_offset));
        assert_eq!(first.base_offset, p.base_offset, "conn {c} round {round}");
        // From the attributes on (what the CRC covers), the bytes are the
        // ones this connection sent.
        let got = &records[first.pos..first.pos + first.len];
        assert!(
            got.len() == batch.len()
                && got[raw::batch::ATTRIBUTES..] == batch[raw::batch::ATTRIBUTES..],
            "conn {c} round {round}: fetched another batch than the one produced"
        );
    }
}

each_runtime! {
    fn two_hundred_connections_produce_and_fetch_at_once(rt) {
        let broker = TestBroker::start_with(rt, &[("num.partitions", &PARTITIONS.to_string())]);
        let topic = unique_topic("concurrency");
        create(&broker, &topic);

        let start = Arc::new(Barrier::new(CONNECTIONS));
        let addr = broker.addr();
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let (topic, start) = (topic.clone(), Arc::clone(&start));
                thread::Builder::new()
                    .name(format!("client-{c}"))
                    .spawn(move || client(addr, &topic, c, &start))
                    .expect("spawn a client thread")
            })
            .collect();
        let failed = clients.into_iter().map(|t| t.join()).filter(Result::is_err).count();
        assert_eq!(failed, 0, "{failed} of {CONNECTIONS} connections failed (see their panics)");
        assert!(
            broker.stats().connections.load(std::sync::atomic::Ordering::Relaxed) > CONNECTIONS as u64,
            "every client had its own connection"
        );
    }
}
