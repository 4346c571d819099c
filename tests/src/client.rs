//! `rdkafka` (librdkafka) clients pointed at a test broker.
//!
//! Producers record every delivery report in a [`Deliveries`] context;
//! consumers use `assign()` without a group, so only Metadata, ListOffsets
//! and Fetch are needed from the broker. The admin API's futures are driven
//! by [`block_on`], a dozen lines on `std`, rather than an async runtime:
//! rdkafka completes them from its own background thread.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::TestRecord;

/// Settings every client gets: the broker, and IPv4 only (the broker binds
/// 127.0.0.1, and "localhost" must not send librdkafka to ::1).
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("log_level", "6");
    config
}

/// A producer that waits for every replica (`acks=all`), batches for 5 ms and
/// never uses idempotence (InitProducerId is not part of the first milestone).
/// `compression` is a librdkafka `compression.type`: none, gzip, snappy, lz4,
/// zstd.
pub fn producer_config(bootstrap: &str, compression: &str) -> ClientConfig {
    let mut config = client_config(bootstrap);
    config
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("compression.type", compression)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "60000");
    config
}

/// A consumer for `assign()` use: no commits, reads from the earliest
/// offset when none is given. librdkafka refuses `assign()` without a
/// `group.id` ("Local: Unknown group"), so one is set, but nothing joins or
/// commits: every test assigns with explicit or logical offsets.
pub fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut config = client_config(bootstrap);
    config
        .set("group.id", "conveyor-tests-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    config
}

/// Where the broker put an acknowledged record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivered {
    /// Partition the record went to.
    pub partition: i32,
    /// Offset the broker gave it.
    pub offset: i64,
}

#[derive(Debug, Default)]
struct DeliveryLog {
    acked: HashMap<usize, Delivered>,
    failed: Vec<(usize, String)>,
}

/// Producer context recording delivery reports by the `usize` opaque each
/// record was sent with.
#[derive(Debug, Default, Clone)]
pub struct Deliveries {
    log: Arc<Mutex<DeliveryLog>>,
}

impl Deliveries {
    /// Reports seen so far: (acknowledged, failed).
    pub fn counts(&self) -> (usize, usize) {
        let log = self.log.lock().expect("delivery log poisoned");
        (log.acked.len(), log.failed.len())
    }

    /// Acknowledged records by opaque.
    pub fn acked(&self) -> HashMap<usize, Delivered> {
        self.log
            .lock()
            .expect("delivery log poisoned")
            .acked
            .clone()
    }

    /// Failed records by opaque, with the error.
    pub fn failed(&self) -> Vec<(usize, String)> {
        self.log
            .lock()
            .expect("delivery log poisoned")
            .failed
            .clone()
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let mut log = self.log.lock().expect("delivery log poisoned");
        match result {
            Ok(msg) => {
                let previous = log.acked.insert(
                    id,
                    Delivered {
                        partition: msg.partition(),
                        offset: msg.offset(),
                    },
                );
                if previous.is_some() {
                    log.failed.push((id, "delivered twice".into()));
                }
            }
            Err((e, _)) => log.failed.push((id, e.to_string())),
        }
    }
}

/// A producer whose delivery reports land in its context.
pub type TestProducer = BaseProducer<Deliveries>;

/// Makes a [`TestProducer`] from a configuration.
pub fn producer(config: &ClientConfig) -> TestProducer {
    config
        .create_with_context(Deliveries::default())
        .expect("create the rdkafka producer")
}

/// Makes a consumer from a configuration.
pub fn consumer(config: &ClientConfig) -> BaseConsumer {
    config.create().expect("create the rdkafka consumer")
}

/// Builds rdkafka headers from a [`TestRecord`]'s.
pub fn owned_headers(headers: &[(String, Option<Vec<u8>>)]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |h, (key, value)| {
            h.insert(Header {
                key,
                value: value.as_deref(),
            })
        },
    )
}

/// Queues one record, serving delivery reports while librdkafka's queue is
/// full. Panics on any other error or after `timeout` of a full queue.
pub fn send(
    producer: &TestProducer,
    mut record: BaseRecord<'_, [u8], [u8], usize>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                assert!(
                    Instant::now() < deadline,
                    "producer queue stayed full for {timeout:?}; is the broker acknowledging?"
                );
                record = back;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => panic!("producer.send: {e}"),
        }
    }
}

/// Flushes and waits until `expected` records are acknowledged, bounded by
/// `timeout`. Panics on any failed delivery.
pub fn wait_acked(
    producer: &TestProducer,
    expected: usize,
    timeout: Duration,
) -> HashMap<usize, Delivered> {
    let deadline = Instant::now() + timeout;
    let _ = producer.flush(timeout);
    loop {
        producer.poll(Duration::from_millis(10));
        let (acked, failed) = producer.context().counts();
        if failed > 0 {
            let failed = producer.context().failed();
            panic!(
                "{} deliveries failed, first: {:?}",
                failed.len(),
                &failed[..failed.len().min(5)]
            );
        }
        if acked >= expected {
            assert_eq!(acked, expected, "more delivery reports than records sent");
            return producer.context().acked();
        }
        assert!(
            Instant::now() < deadline,
            "only {acked} of {expected} records acknowledged within {timeout:?}"
        );
    }
}

/// Sends [`TestRecord::new`]`(i)` for every `i` in `indexes` to `topic`
/// (partition chosen by librdkafka from the key unless `partition` is
/// given), with opaque `i`, and waits for every acknowledgement.
pub fn produce_test_records(
    producer: &TestProducer,
    topic: &str,
    partition: Option<i32>,
    indexes: std::ops::Range<usize>,
    timeout: Duration,
) -> HashMap<usize, Delivered> {
    let before = producer.context().counts().0;
    let count = indexes.len();
    for i in indexes {
        let r = TestRecord::new(i);
        let mut record = BaseRecord::with_opaque_to(topic, i)
            .key(&r.key[..])
            .payload(&r.value[..])
            .headers(owned_headers(&r.headers));
        if let Some(p) = partition {
            record = record.partition(p);
        }
        send(producer, record, timeout);
        // Serve reports as we go so the queue never fills with them.
        producer.poll(Duration::ZERO);
    }
    wait_acked(producer, before + count, timeout)
}

/// A consumed record, copied out of librdkafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    /// Partition it came from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Key (None: null).
    pub key: Option<Vec<u8>>,
    /// Value (None: null).
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Timestamp in milliseconds, if any.
    pub timestamp: Option<i64>,
}

impl Consumed {
    /// The key as a [`TestRecord`] index. Panics if it is not one.
    pub fn index(&self) -> usize {
        self.key
            .as_deref()
            .and_then(TestRecord::index_of)
            .unwrap_or_else(|| {
                panic!(
                    "record at {}:{} has no test key",
                    self.partition, self.offset
                )
            })
    }
}

/// Polls until exactly `count` records arrived, bounded by `timeout`. Any
/// error the consumer reports fails the test.
pub fn consume(consumer: &BaseConsumer, count: usize, timeout: Duration) -> Vec<Consumed> {
    consume_past(consumer, count, timeout, |_| false)
}

/// [`consume`], through a broker's death: librdkafka reports that it
/// cannot reach a broker the cluster still names (until the controller
/// fences it) and goes on; those reports are passed over.
pub fn consume_through_failover(
    consumer: &BaseConsumer,
    count: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    consume_past(consumer, count, timeout, |e| {
        matches!(
            e,
            KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
            )
        )
    })
}

fn consume_past(
    consumer: &BaseConsumer,
    count: usize,
    timeout: Duration,
    passable: impl Fn(&KafkaError) -> bool,
) -> Vec<Consumed> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let now = Instant::now();
        assert!(
            now < deadline,
            "consumed only {} of {count} records within {timeout:?}",
            out.len()
        );
        match consumer.poll((deadline - now).min(Duration::from_millis(200))) {
            None => {}
            Some(Err(e)) if passable(&e) => {}
            Some(Err(e)) => panic!("consumer error after {} records: {e}", out.len()),
            Some(Ok(msg)) => out.push(Consumed {
                partition: msg.partition(),
                offset: msg.offset(),
                key: msg.key().map(<[u8]>::to_vec),
                value: msg.payload().map(<[u8]>::to_vec),
                headers: msg
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: msg.timestamp().to_millis(),
            }),
        }
    }
    out
}

/// Polls for `quiet` and fails if any record or error arrives: checks that a
/// consumer that got everything gets nothing more.
pub fn expect_nothing_more(consumer: &BaseConsumer, quiet: Duration) {
    let deadline = Instant::now() + quiet;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match consumer.poll(left.min(Duration::from_millis(100))) {
            None => {}
            Some(Err(e)) => panic!("consumer error: {e}"),
            Some(Ok(msg)) => panic!(
                "unexpected extra record at {}:{}",
                msg.partition(),
                msg.offset()
            ),
        }
    }
}

/// Assigns `topic`'s partitions to `consumer`, each from its offset.
pub fn assign(consumer: &BaseConsumer, topic: &str, starts: &[(i32, Offset)]) {
    let mut tpl = TopicPartitionList::new();
    for &(partition, offset) in starts {
        tpl.add_partition_offset(topic, partition, offset)
            .expect("add partition to assignment");
    }
    consumer.assign(&tpl).expect("assign partitions");
}

/// (low, high) watermarks of each partition `0..partitions`.
pub fn watermarks(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("fetch_watermarks({topic}, {p}): {e}"))
        })
        .collect()
}

/// Reads every record of `topic`'s partitions `0..partitions` from the
/// beginning, as many as the watermarks say there are, and checks nothing
/// more arrives. Returns them in arrival order.
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Vec<Consumed> {
    let consumer = consumer(&consumer_config(bootstrap));
    let marks = watermarks(&consumer, topic, partitions);
    let total: i64 = marks.iter().map(|(low, high)| high - low).sum();
    let starts: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Beginning)).collect();
    assign(&consumer, topic, &starts);
    let records = consume(
        &consumer,
        usize::try_from(total).expect("watermarks in order"),
        timeout,
    );
    expect_nothing_more(&consumer, Duration::from_millis(300));
    records
}

/// The number of partitions the broker reports for `topic`.
pub fn partition_count(consumer: &BaseConsumer, topic: &str) -> usize {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("metadata for {topic}: {e}"));
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .unwrap_or_else(|| panic!("metadata has no topic {topic}"));
    assert!(
        t.error().is_none(),
        "metadata error for {topic}: {:?}",
        t.error()
    );
    t.partitions().len()
}

/// Creates `topic` with `partitions` partitions through the admin API
/// (CreateTopics), waiting at most `timeout`. Panics on any failure.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, timeout: Duration) {
    if let Err(code) = try_create_topic(bootstrap, topic, partitions, timeout) {
        panic!("CreateTopics {topic}: {code}");
    }
}

/// Like [`create_topic`], but returns the topic's error code from the
/// broker. Panics if the request itself does not complete.
pub fn try_create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<(), RDKafkaErrorCode> {
    try_create_replicated_topic(bootstrap, topic, (partitions, 1), timeout)
}

/// Like [`try_create_topic`], with `replicas` replicas of each partition.
pub fn try_create_replicated_topic(
    bootstrap: &str,
    topic: &str,
    (partitions, replicas): (i32, i32),
    timeout: Duration,
) -> Result<(), RDKafkaErrorCode> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap)
        .create()
        .expect("create the rdkafka admin client");
    let opts = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas));
    let results = block_on(
        admin.create_topics([&new], &opts),
        timeout + Duration::from_secs(1),
    )
    .unwrap_or_else(|| panic!("CreateTopics for {topic} did not complete in {timeout:?}"));
    let results = match results {
        Ok(results) => results,
        // The client's own timeout, or a request it could not send: the
        // caller decides, and can print the brokers' logs.
        Err(KafkaError::AdminOp(code)) => return Err(code),
        Err(e) => panic!("CreateTopics for {topic}: {e}"),
    };
    assert_eq!(results.len(), 1, "one result per topic: {results:?}");
    match &results[0] {
        Ok(name) => {
            assert_eq!(name, topic, "CreateTopics answered for another topic");
            Ok(())
        }
        Err((_, code)) => Err(*code),
    }
}

/// Runs `future` on this thread until it completes or `timeout` passes
/// (`None`). Enough for futures completed by another thread, as rdkafka's
/// admin futures are; not a general executor.
pub fn block_on<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let deadline = Instant::now() + timeout;
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        // A spurious wake-up only costs one more poll.
        thread::park_timeout(left);
    }
}
