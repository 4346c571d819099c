//! The metrics endpoint on every runtime, scraped over HTTP and parsed
//! with a Prometheus text-format parser (`prometheus-parse`): before any
//! record, then after librdkafka produced, consumed and committed, the
//! figures move by exactly what the clients did.
//!
//! - requests per API and version, and the Produce latency histogram;
//! - records and bytes produced and bytes fetched per topic;
//! - per partition log end offset, high watermark, size and segments;
//! - a group's lag on a partition (high watermark minus its commit);
//! - bytes moved by `sendfile`, fsyncs (`flush.messages=1`), connections;
//! - anything but `GET /metrics` answered 404.
//!
//! Run: `cargo test -p conveyor-tests --test metrics`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use conveyor_tests::client::{
    self, consume_all, create_topic, produce_test_records, producer, producer_config,
};
use conveyor_tests::{TestBroker, each_runtime};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "measured";
const RECORDS: usize = 300;
const TIMEOUT: Duration = Duration::from_secs(30);

/// `GET path`: the status code and body. Asked as HTTP/1.0, so the body
/// comes whole and ends at the close: to an HTTP/1.1 request the server
/// sends a large body (a full scrape is) in chunks, which this reader
/// would otherwise have to reassemble.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to the metrics port");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("an HTTP response");
    let (head, body) = out.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    (status, body.to_owned())
}

/// Every sample of a scrape: metric name and sorted labels → value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

fn scrape(addr: SocketAddr) -> Samples {
    parse(&scrape_text(addr))
}

fn scrape_text(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

fn parse(body: &str) -> Samples {
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("the text format parses");
    let mut out = Samples::new();
    for s in parsed.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert((s.metric, labels), value);
    }
    out
}

/// The sum of `name` over the series whose labels include `with`.
fn sum(samples: &Samples, name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|((n, labels), _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Scrape until `ok` holds (state gauges trail by up to a second); on
/// failure, show the last scrape's lines that name `TOPIC`.
fn scrape_until(addr: SocketAddr, what: &str, ok: impl Fn(&Samples) -> bool) -> Samples {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = scrape_text(addr);
        let s = parse(&body);
        if ok(&s) {
            return s;
        }
        if Instant::now() >= deadline {
            let lines: Vec<&str> = body.lines().filter(|l| l.contains(TOPIC)).collect();
            panic!("{what} never showed:\n{}", lines.join("\n"));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

each_runtime! {
    fn metrics_move_with_what_clients_do(rt) {
        let broker = TestBroker::start_with(rt, &[("log.flush.interval.messages", "1")]);
        let addr = broker.metrics_addr();
        assert!(addr.ip().is_loopback());
        assert_eq!(get(addr, "/").0, 404);

        let before = scrape(addr);
        assert_eq!(sum(&before, "conveyor_produced_records_total", &[("topic", TOPIC)]), 0.0);

        create_topic(&broker.bootstrap(), TOPIC, 2, TIMEOUT);
        let p = producer(&producer_config(&broker.bootstrap(), "lz4"));
        let acked = produce_test_records(&p, TOPIC, None, 0..RECORDS, TIMEOUT);
        let per_partition = |part: i32| acked.values().filter(|d| d.partition == part).count();
        let got = consume_all(&broker.bootstrap(), TOPIC, 2, TIMEOUT);
        assert_eq!(got.len(), RECORDS);

        // A group commits offset 1 on partition 0.
        let mut config = client::consumer_config(&broker.bootstrap());
        config.set("group.id", "lagging");
        let c = client::consumer(&config);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Offset(1)).unwrap();
        c.commit(&tpl, CommitMode::Sync).expect("commit");

        let p0 = per_partition(0) as f64;
        let part0 = [("topic", TOPIC), ("partition", "0")];
        let s = scrape_until(addr, "the log end offsets and the lag", |s| {
            sum(s, "conveyor_log_end_offset", &[("topic", TOPIC)]) == RECORDS as f64
                && sum(s, "conveyor_group_lag", &[("group", "lagging")]) == p0 - 1.0
        });
        assert_eq!(sum(&s, "conveyor_log_end_offset", &part0), p0);
        assert_eq!(sum(&s, "conveyor_high_watermark", &part0), p0);
        assert_eq!(sum(&s, "conveyor_log_start_offset", &part0), 0.0);
        assert!(sum(&s, "conveyor_log_size_bytes", &[("topic", TOPIC)]) > 0.0);
        assert_eq!(sum(&s, "conveyor_log_segments", &part0), 1.0);

        assert_eq!(
            sum(&s, "conveyor_produced_records_total", &[("topic", TOPIC)]),
            RECORDS as f64,
            "every record produced, counted once"
        );
        let produced = sum(&s, "conveyor_produced_bytes_total", &[("topic", TOPIC)]);
        let size = sum(&s, "conveyor_log_size_bytes", &[("topic", TOPIC)]);
        assert_eq!(produced, size, "the bytes produced are the bytes in the log");
        assert!(
            sum(&s, "conveyor_fetched_bytes_total", &[("topic", TOPIC)]) >= size,
            "the consumer read the whole log"
        );
        assert!(sum(&s, "conveyor_sendfile_bytes_total", &[]) >= size, "fetched by sendfile");
        assert!(sum(&s, "conveyor_fsync_seconds_count", &[]) >= 1.0, "flush.messages=1 syncs");
        assert!(sum(&s, "conveyor_requests_total", &[("api", "Produce")]) >= 1.0);
        assert!(sum(&s, "conveyor_requests_total", &[("api", "Fetch")]) >= 1.0);
        assert!(sum(&s, "conveyor_requests_total", &[("api", "OffsetCommit")]) >= 1.0);
        assert!(
            sum(&s, "conveyor_request_latency_seconds_count", &[("api", "Produce")]) >= 1.0,
            "Produce latency observed"
        );
        assert!(sum(&s, "conveyor_connections", &[]) >= 1.0, "the clients are connected");
        assert!(sum(&s, "conveyor_connections_accepted_total", &[]) >= 3.0);
        drop(c);
    }
}
