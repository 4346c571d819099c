//! Bytes no client should send, over raw TCP. Each case checks the broker's
//! answer (an error code or a closed connection) and then that a fresh
//! connection still gets a valid ApiVersions answer.
//!
//! Run: `cargo test -p conveyor-tests --test malformed`.

use std::thread;
use std::time::Duration;

use conveyor_tests::client::{
    assign, consume, consumer, consumer_config, expect_nothing_more, watermarks,
};
use conveyor_tests::raw::{
    self, Closed, RawConn, RawRecord, Writer, api, assert_serving, error, parse_api_versions_v0,
    parse_produce_v3, request,
};
use conveyor_tests::{Runtime, TestBroker, each_runtime};
use rdkafka::Offset;

/// Small enough to exceed cheaply, large enough for every real request here.
const MAX_REQUEST: usize = 65_536;
const CLOSE_WAIT: Duration = Duration::from_secs(5);

fn broker(rt: Runtime) -> TestBroker {
    TestBroker::start_with(
        rt,
        &[
            ("socket.request.max.bytes", &MAX_REQUEST.to_string()),
            ("num.partitions", "1"),
        ],
    )
}

fn assert_closed(conn: &mut RawConn, what: &str) {
    match conn.wait_closed(CLOSE_WAIT) {
        Closed::Closed(_) => {}
        Closed::StillOpen(seen) => panic!(
            "{what}: connection still open after {CLOSE_WAIT:?} (received {} bytes: {:02x?})",
            seen.len(),
            &seen[..seen.len().min(64)]
        ),
    }
}

each_runtime! {
    fn truncated_frame_then_close(rt) {
        let broker = broker(rt);
        let mut conn = RawConn::connect(broker.addr());
        // Says 100 bytes follow, sends 10, then EOF.
        let mut w = Writer::new();
        w.i32(100).i16(api::API_VERSIONS).i16(0).i32(1).i16(-1);
        conn.send(&w.buf).expect("send");
        conn.shutdown_write().expect("shutdown write");
        assert_closed(&mut conn, "EOF inside a frame");
        assert_serving(broker.addr());
    }
}

each_runtime! {
    fn oversized_frame_closes_the_connection(rt) {
        let broker = broker(rt);
        // A frame one byte over socket.request.max.bytes, with a plausible header;
        // the broker must not wait for (or buffer) the rest.
        let mut conn = RawConn::connect(broker.addr());
        let mut w = Writer::new();
        w.i32(MAX_REQUEST as i32 + 1)
            .i16(api::PRODUCE)
            .i16(3)
            .i32(1)
            .nullable_string(Some("big"));
        conn.send(&w.buf).expect("send");
        assert_closed(&mut conn, "frame over socket.request.max.bytes");
        assert_serving(broker.addr());

        // And a frame claiming 2 GiB.
        let mut conn = RawConn::connect(broker.addr());
        conn.send(&i32::MAX.to_be_bytes()).expect("send");
        assert_closed(&mut conn, "2 GiB frame");

        // A negative length is nonsense too.
        let mut conn = RawConn::connect(broker.addr());
        conn.send(&(-5i32).to_be_bytes()).expect("send");
        assert_closed(&mut conn, "negative frame length");
        assert_serving(broker.addr());
    }
}

each_runtime! {
    fn garbage_after_a_valid_header_closes_the_connection(rt) {
        let broker = broker(rt);
        let mut conn = RawConn::connect(broker.addr());
        // A Produce v3 header, then a body whose first string claims 32767 bytes
        // in a 20-byte frame body: unparseable. Kafka closes the connection.
        let mut body = Writer::new();
        body.i16(0x7fff).raw(&[0xEE; 18]);
        conn.send(&request(api::PRODUCE, 3, 9, Some("garbage"), &body.buf))
            .expect("send");
        assert_closed(&mut conn, "unparseable Produce body");
        assert_serving(broker.addr());
    }
}

each_runtime! {
    /// An array count far beyond the frame must not be trusted for an
    /// allocation (a decoder that reserves `count` elements up front aborts
    /// the whole process on this).
    fn an_impossible_array_length_closes_the_connection(rt) {
        let broker = broker(rt);
        // A Metadata v4 with an array count of a billion topics in 8 bytes.
        let mut conn = RawConn::connect(broker.addr());
        let mut body = Writer::new();
        body.i32(1_000_000_000).i16(3).raw(b"abc");
        conn.send(&request(api::METADATA, 4, 10, None, &body.buf))
            .expect("send");
        assert_closed(&mut conn, "Metadata with an impossible array length");
        assert_serving(broker.addr());
    }
}

each_runtime! {
    fn unknown_api_key_closes_the_connection(rt) {
        let broker = broker(rt);
        let mut conn = RawConn::connect(broker.addr());
        conn.send(&request(9_999, 0, 11, Some("unknown"), &[]))
            .expect("send");
        assert_closed(&mut conn, "api key 9999");
        assert_serving(broker.addr());
    }
}

each_runtime! {
    fn unsupported_api_versions_version_gets_error_35_and_the_key_list(rt) {
        let broker = broker(rt);
        let mut conn = RawConn::connect(broker.addr());
        // Header v2 shape (what a new client sends for ApiVersions v3+): client
        // id, then an empty tagged-field buffer.
        let frame = request(api::API_VERSIONS, 99, 12, Some("future-client"), &[0]);
        let body = conn
            .round_trip(&frame, 12)
            .expect("a response to ApiVersions v99");
        let v = parse_api_versions_v0(&body)
            .unwrap_or_else(|| panic!("answer to ApiVersions v99 is not a v0 response: {body:02x?}"));
        assert_eq!(v.error_code, error::UNSUPPORTED_VERSION, "{v:?}");
        let (min, max) = v
            .range(api::API_VERSIONS)
            .expect("ApiVersions itself is listed");
        assert!(min == 0 && max >= 2, "ApiVersions range {min}..={max}");

        // The client retries with a version the broker listed, on the same
        // connection, and that works.
        let body = conn
            .round_trip(
                &request(api::API_VERSIONS, 0, 13, Some("future-client"), &[]),
                13,
            )
            .expect("ApiVersions v0 after v99 on the same connection");
        let v = parse_api_versions_v0(&body).expect("v0 response");
        assert_eq!(v.error_code, 0);
        assert_serving(broker.addr());
    }
}

each_runtime! {
    fn a_request_dribbled_byte_by_byte_and_pipelined_requests_are_answered(rt) {
        let broker = broker(rt);
        let mut conn = RawConn::connect(broker.addr());
        let frame = request(api::API_VERSIONS, 0, 21, Some("slow"), &[]);
        for b in &frame {
            conn.send(std::slice::from_ref(b)).expect("send a byte");
            thread::sleep(Duration::from_millis(2));
        }
        let (id, body) = conn
            .read_response()
            .expect("response to the dribbled request");
        assert_eq!(id, 21);
        assert_eq!(parse_api_versions_v0(&body).map(|v| v.error_code), Some(0));

        // Three requests in one write: three responses, in request order.
        let mut burst = Vec::new();
        for id in [31, 32, 33] {
            burst.extend(request(api::API_VERSIONS, 0, id, None, &[]));
        }
        conn.send(&burst).expect("send burst");
        for id in [31, 32, 33] {
            let (got, _) = conn.read_response().expect("pipelined response");
            assert_eq!(got, id, "responses must leave in request order");
        }
    }
}

/// Sends `batch` as a Produce v3 (acks=all) and returns the partition result.
fn produce(conn: &mut RawConn, topic: &str, batch: &[u8], id: i32) -> raw::ProducePartition {
    let frame = request(
        api::PRODUCE,
        3,
        id,
        Some("crc-test"),
        &raw::produce_v3_body(topic, 0, -1, batch),
    );
    let body = conn.round_trip(&frame, id).expect("Produce response");
    let p = parse_produce_v3(&body)
        .unwrap_or_else(|| panic!("unparseable Produce v3 response: {body:02x?}"));
    assert_eq!((p.topic.as_str(), p.partition), (topic, 0), "{p:?}");
    p
}

each_runtime! {
    fn produce_with_a_bad_crc_gets_corrupt_message(rt) {
        let broker = broker(rt);
        let topic = conveyor_tests::unique_topic("crc");
        let mut conn = RawConn::connect(broker.addr());
        let now = 1_700_000_000_000;

        // Control: the same hand-built batch with a correct CRC is accepted, so
        // a CORRUPT_MESSAGE below is about the CRC, not our encoding.
        let good = raw::record_batch(
            &[RawRecord {
                key: Some(b"k0"),
                value: Some(b"good"),
            }],
            now,
        );
        // The topic may need a Metadata request (auto-create) first.
        let mut first = None;
        for attempt in 0..20 {
            let meta = request(
                api::METADATA,
                4,
                100 + attempt,
                None,
                &raw::metadata_v4_body(&[&topic]),
            );
            conn.round_trip(&meta, 100 + attempt)
                .expect("Metadata v4 response");
            let p = produce(&mut conn, &topic, &good, 200 + attempt);
            if p.error_code == error::UNKNOWN_TOPIC_OR_PARTITION
                || p.error_code == error::LEADER_NOT_AVAILABLE
            {
                thread::sleep(Duration::from_millis(100));
                continue;
            }
            first = Some(p);
            break;
        }
        let first = first.expect("the topic never became available for Produce");
        assert_eq!(
            (first.error_code, first.base_offset),
            (0, 0),
            "valid batch: {first:?}"
        );

        // One flipped bit in the value, CRC left as it was.
        let mut bad = raw::record_batch(
            &[RawRecord {
                key: Some(b"k1"),
                value: Some(b"evil"),
            }],
            now,
        );
        let last = bad.len() - 2;
        bad[last] ^= 0x01;
        let p = produce(&mut conn, &topic, &bad, 300);
        assert_eq!(p.error_code, error::CORRUPT_MESSAGE, "bad CRC: {p:?}");

        // A wrong magic byte is not a valid v2 batch either; any error will do,
        // but the record must not be stored.
        let mut bad_magic = good.clone();
        bad_magic[16] = 7;
        let p = produce(&mut conn, &topic, &bad_magic, 301);
        assert_ne!(p.error_code, 0, "magic 7 accepted: {p:?}");

        // Neither was stored: the next good batch gets offset 1, and a consumer
        // sees exactly the two good records.
        let second = raw::record_batch(
            &[RawRecord {
                key: Some(b"k2"),
                value: Some(b"good again"),
            }],
            now,
        );
        let p = produce(&mut conn, &topic, &second, 302);
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, 1),
            "after rejected batches: {p:?}"
        );

        let c = consumer(&consumer_config(&broker.bootstrap()));
        assert_eq!(watermarks(&c, &topic, 1), vec![(0, 2)]);
        assign(&c, &topic, &[(0, Offset::Beginning)]);
        let got = consume(&c, 2, Duration::from_secs(20));
        let values: Vec<_> = got.iter().map(|r| r.value.clone()).collect();
        assert_eq!(
            values,
            vec![Some(b"good".to_vec()), Some(b"good again".to_vec())]
        );
        expect_nothing_more(&c, Duration::from_millis(300));
        assert_serving(broker.addr());
    }
}
