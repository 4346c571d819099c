//! Flow control and admission, the whole broker under simulated time: what
//! `queued.max.request.bytes`, `queued.max.requests` and `max.connections`
//! stop, that the driver is told, and that what was held back is taken
//! once the limit passes (the harness is in `common/`).

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{Sim, batch};
use conveyor_core::Config;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

#[test]
fn held_request_bytes_stop_reading_until_answers_leave() {
    let mut config = Config::default();
    config.set("queued.max.request.bytes", "20").unwrap();
    let mut sim = Sim::new(config);
    let (a, b) = (sim.open(1), sim.open(2));
    sim.metadata(a, "t");
    assert!(sim.broker.wants_read(a) && sim.broker.wants_read(b));
    // A long-polling fetch holds its (>20 byte) request until answered:
    // the broker takes no more bytes from anyone.
    let corr = sim.send(a, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 1000));
    assert!(!sim.broker.wants_read(a));
    assert!(!sim.broker.wants_read(b));
    // The driver was told so, once per connection.
    let mut told = sim.interest.clone();
    told.sort();
    assert_eq!(told, vec![(a, false), (b, false)]);
    // A request that arrives meanwhile waits in the driver's buffer.
    let held = sim.send(b, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(sim.recv_frame(b, ApiKey::ApiVersions, 3).is_none());
    sim.advance(Duration::from_millis(1001));
    let _: FetchResponse = sim.recv(a, ApiKey::Fetch, 12, corr);
    assert!(sim.broker.wants_read(a) && sim.broker.wants_read(b));
    // Told to read again, the driver hands over what it held.
    let resumed: Vec<_> = sim.interest[2..].iter().filter(|(_, r)| *r).collect();
    assert_eq!(resumed.len(), 2, "{:?}", sim.interest);
    let _: ApiVersionsResponse = sim.recv(b, ApiKey::ApiVersions, 3, held);
}

#[test]
fn a_connection_opened_while_request_bytes_are_held_is_read_once_they_leave() {
    let mut config = Config::default();
    config.set("queued.max.request.bytes", "20").unwrap();
    let mut sim = Sim::new(config);
    let a = sim.open(1);
    sim.metadata(a, "t");
    let corr = sim.send(a, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 1000));
    // A client connects while the fetch holds the bytes and sends its
    // ApiVersions at once (every client's first request): the broker
    // cannot take it now, and must say so to the driver, so that telling
    // it to read again later hands the request over.
    let c = sim.open(2);
    let held = sim.send(c, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(sim.recv_frame(c, ApiKey::ApiVersions, 3).is_none());
    sim.advance(Duration::from_millis(1001));
    let _: FetchResponse = sim.recv(a, ApiKey::Fetch, 12, corr);
    let _: ApiVersionsResponse = sim.recv(c, ApiKey::ApiVersions, 3, held);
}

#[test]
fn requests_left_in_the_buffer_by_a_brief_limit_are_taken_once_it_passes() {
    // Two requests in one read: the first (a produce waiting for its
    // append) reaches queued.max.request.bytes, so the second stays in the
    // driver's buffer. The append finishes within the same input, the
    // limit passes before the driver hears of it, and no more bytes will
    // come from a client waiting for its answers: the broker must still
    // have the driver hand the second request over.
    let mut config = Config::default();
    config.set("queued.max.request.bytes", "100").unwrap();
    let mut sim = Sim::new(config);
    let c = sim.open(1);
    sim.metadata(c, "t");
    let mut both = BytesMut::new();
    let req = Sim::produce_req("t", 0, batch(&["x"; 8], 1, Compression::None));
    let p = sim.frame(ApiKey::Produce, 9, &req, &mut both);
    let v = sim.frame(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
        &mut both,
    );
    sim.send_raw(c, &both);
    let _: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, p);
    let _: ApiVersionsResponse = sim.recv(c, ApiKey::ApiVersions, 3, v);
}

#[test]
fn queued_max_requests_pauses_one_connection_only() {
    let mut config = Config::default();
    config.set("queued.max.requests", "2").unwrap();
    let mut sim = Sim::new(config);
    let (a, b) = (sim.open(1), sim.open(2));
    sim.metadata(a, "t");
    let f1 = sim.send(a, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 1000));
    assert!(sim.interest.is_empty());
    let f2 = sim.send(a, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 1000));
    assert_eq!(sim.interest, vec![(a, false)]);
    let _ = sim.metadata(b, "t");
    sim.advance(Duration::from_millis(1001));
    let _: FetchResponse = sim.recv(a, ApiKey::Fetch, 12, f1);
    let _: FetchResponse = sim.recv(a, ApiKey::Fetch, 12, f2);
    assert_eq!(sim.interest, vec![(a, false), (a, true)]);
}

#[test]
fn connections_past_max_connections_are_closed_at_once() {
    let mut config = Config::default();
    config.set("max.connections", "2").unwrap();
    let mut sim = Sim::new(config);
    let (a, b, c) = (sim.open(1), sim.open(2), sim.open(3));
    sim.run();
    assert_eq!(sim.closed, vec![c]);
    sim.broker.handle_close(sim.now, c);
    sim.broker.handle_close(sim.now, b);
    sim.run();
    // A slot is free again: the next one is served.
    let d = sim.open(4);
    sim.run();
    assert_eq!(sim.closed, vec![c]);
    let _ = sim.metadata(d, "t");
    let _ = sim.metadata(a, "t");
}

#[test]
fn a_produce_behind_a_long_poll_on_the_same_connection_is_answered_with_it() {
    // librdkafka sends produce and fetch on one connection per broker.
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    sim.metadata(c, "t");
    sim.metadata(c, "u");
    let f = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("u", 0, 500));
    let p = sim.produce(c, "t", 0, batch(&["x"], 1, Compression::None));
    assert!(sim.recv_frame(c, ApiKey::Fetch, 12).is_none());
    // The fetch expires with nothing; the produce, done long ago, follows
    // at once without waiting for another append.
    sim.advance(Duration::from_millis(501));
    let _: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, f);
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, p);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}
