#!/usr/bin/env python3
"""confluent-kafka's AdminClient (librdkafka) against a Conveyor broker.

Each step checks the values the broker answered, not only that no error came
back: CreateTopics (the broker's partition count by default; an existing
name, 3 replicas, another broker's assignment and validate_only refused or
changing nothing) and DescribeTopics; DescribeConfigs of a topic (its own
settings, the broker's, Kafka's defaults, each with its source and synonyms)
and of the broker; IncrementalAlterConfigs (SET, DELETE, APPEND and SUBTRACT
on cleanup.policy) and AlterConfigs (the topic's settings replaced),
described back; INVALID_CONFIG for an unknown key, a bad value, and APPEND
or SUBTRACT on a setting that is not a list; validate_only changing nothing; CreatePartitions growing a topic and
INVALID_PARTITIONS for no increase; DeleteRecords below records a Producer
wrote, the low watermark and ListOffsets following it, and consumers assigned
below it reset (earliest) or told (auto.offset.reset=error); ListGroups,
DescribeGroups and DeleteGroups of a group a Consumer joined;
DescribeCluster; DeleteTopics; UNKNOWN_TOPIC_OR_PARTITION for every request
naming a topic that does not exist.

Usage: confluent_admin.py --bootstrap 127.0.0.1:PORT --node-id 0
The broker must run with num.partitions=3 and log.segment.bytes=104857600
(and a group's first rebalance not delayed). Exits 0 and prints OK when every
check passes. Run by tests/tests/confluent_admin.rs; needs
`python3 -m pip install confluent-kafka`.
"""

import argparse
import sys
import time
import uuid
import warnings

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupType,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
    libversion,
    version,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

# Every wait is bounded: a request by librdkafka's request timeout, its
# future by a little more, a polling loop by its own deadline.
REQUEST_TIMEOUT = 15.0
FUTURE_TIMEOUT = 20.0
POLL_DEADLINE = 30.0

# Kafka's defaults, as the broker answers them when nothing overrides them.
DEFAULT_RETENTION_MS = "604800000"
DEFAULT_MAX_MESSAGE_BYTES = "1048588"
# What the test broker runs with (see the usage above).
BROKER_SEGMENT_BYTES = "104857600"
BROKER_NUM_PARTITIONS = "3"


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def step(name):
    print(f"-- {name}", flush=True)


def result(future, what):
    """The future's result, failing the script with the broker's error."""
    try:
        return future.result(timeout=FUTURE_TIMEOUT)
    except KafkaException as e:
        fail(f"{what}: {e.args[0]!r}")


def error_of(future, what):
    """The KafkaError a future fails with; fails the script if it succeeds."""
    try:
        got = future.result(timeout=FUTURE_TIMEOUT)
    except KafkaException as e:
        return e.args[0]
    fail(f"{what} succeeded ({got!r}); an error was expected")


def expect_error(future, code, what):
    err = error_of(future, what)
    check(err.code() == code, f"{what}: expected {KafkaError(code).name()}, got {err!r}")
    print(f"{what}: {err.name()} ({err.str()})")
    return err


def only(futures):
    """The one future of a dict answered for one resource."""
    check(len(futures) == 1, f"expected one future, got {futures!r}")
    return next(iter(futures.values()))


def describe(admin, restype, name):
    """{config name: ConfigEntry} of one resource."""
    fut = only(admin.describe_configs([ConfigResource(restype, name)], request_timeout=REQUEST_TIMEOUT))
    return result(fut, f"describe_configs {restype.name} {name}")


def entry(configs, key):
    check(key in configs, f"`{key}` not described; got {sorted(configs)}")
    return configs[key]


def check_entry(configs, key, value, source):
    e = entry(configs, key)
    check(e.value == value, f"{key}: value {e.value!r}, expected {value!r}")
    check(ConfigSource(e.source) == source, f"{key}={e.value}: source {ConfigSource(e.source)}, expected {source}")
    check(e.is_default == (source == ConfigSource.DEFAULT_CONFIG),
          f"{key}: is_default {e.is_default} with source {ConfigSource(e.source)}")
    return e


def incremental(admin, topic, ops, validate_only=False):
    """IncrementalAlterConfigs of a topic: ops is [(key, op, value)]."""
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[ConfigEntry(k, v, incremental_operation=op) for k, op, v in ops],
    )
    return only(admin.incremental_alter_configs(
        [resource], validate_only=validate_only, request_timeout=REQUEST_TIMEOUT))


# AlterConfigs is deprecated in the client, but brokers answer it and
# clients still send it: it is tested on purpose.
warnings.filterwarnings("ignore", message="alter_configs has been deprecated", category=DeprecationWarning)


def alter(admin, topic, settings, validate_only=False):
    """AlterConfigs of a topic: its settings become exactly `settings`."""
    resource = ConfigResource(ResourceType.TOPIC, topic, set_config=settings)
    return only(admin.alter_configs([resource], validate_only=validate_only, request_timeout=REQUEST_TIMEOUT))


def topic_names(admin):
    return set(admin.list_topics(timeout=REQUEST_TIMEOUT).topics)


def partition_count(admin, topic):
    md = admin.list_topics(timeout=REQUEST_TIMEOUT).topics
    check(topic in md, f"{topic} missing from metadata: {sorted(md)}")
    check(md[topic].error is None, f"{topic} metadata error: {md[topic].error!r}")
    return len(md[topic].partitions)


def create_topics(admin, bootstrap, topic, compacted):
    step("CreateTopics")
    futures = admin.create_topics(
        [
            NewTopic(topic, num_partitions=2, replication_factor=1, config={"retention.ms": "3600000"}),
            NewTopic(compacted, num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"}),
        ],
        request_timeout=REQUEST_TIMEOUT,
        operation_timeout=REQUEST_TIMEOUT,
    )
    for name, fut in futures.items():
        check(result(fut, f"create_topics {name}") is None, f"create_topics {name}")
    check(partition_count(admin, topic) == 2, f"{topic} partitions: {partition_count(admin, topic)}")
    check(partition_count(admin, compacted) == 1, f"{compacted} partitions")
    md = admin.list_topics(topic, timeout=REQUEST_TIMEOUT)
    check(list(md.brokers) == [NODE_ID], f"brokers: {md.brokers!r}")
    port = int(bootstrap.rsplit(":", 1)[1])
    check(md.brokers[NODE_ID].port == port, f"broker port {md.brokers[NODE_ID].port}, expected {port}")
    for p in md.topics[topic].partitions.values():
        check(p.leader == NODE_ID and p.replicas == [NODE_ID] and p.isrs == [NODE_ID],
              f"{topic}:{p.id}: leader {p.leader} replicas {p.replicas} isrs {p.isrs}")

    again = admin.create_topics([NewTopic(topic, 2, 1)], request_timeout=REQUEST_TIMEOUT)
    expect_error(only(again), KafkaError.TOPIC_ALREADY_EXISTS, "create_topics of an existing topic")

    checked = f"validated-{uuid.uuid4().hex[:8]}"
    fut = only(admin.create_topics([NewTopic(checked, 4, 1)], validate_only=True,
                                   request_timeout=REQUEST_TIMEOUT))
    check(result(fut, "create_topics validate_only") is None, "create_topics validate_only")
    check(checked not in topic_names(admin), f"validate_only created {checked}")

    bad = admin.create_topics([NewTopic(checked, 1, 1, config={"no.such.config": "1"})],
                              request_timeout=REQUEST_TIMEOUT)
    expect_error(only(bad), KafkaError.INVALID_CONFIG, "create_topics with an unknown config")
    bad = admin.create_topics([NewTopic(checked, 1, 1, config={"retention.ms": "soon"})],
                              request_timeout=REQUEST_TIMEOUT)
    expect_error(only(bad), KafkaError.INVALID_CONFIG, "create_topics with a bad value")
    bad = admin.create_topics([NewTopic(checked, 1, 3)], request_timeout=REQUEST_TIMEOUT)
    expect_error(only(bad), KafkaError.INVALID_REPLICATION_FACTOR, "create_topics with 3 replicas")
    bad = admin.create_topics([NewTopic(checked, 1, replica_assignment=[[NODE_ID + 1]])],
                              request_timeout=REQUEST_TIMEOUT)
    expect_error(only(bad), KafkaError.INVALID_REPLICA_ASSIGNMENT, "create_topics on another broker")
    check(checked not in topic_names(admin), f"a refused create made {checked}")

    # No partition count: the broker's num.partitions.
    fut = only(admin.create_topics([NewTopic(checked)], request_timeout=REQUEST_TIMEOUT))
    check(result(fut, "create_topics with defaults") is None, "create_topics with defaults")
    check(partition_count(admin, checked) == int(BROKER_NUM_PARTITIONS),
          f"{checked} partitions: {partition_count(admin, checked)}")
    check(result(only(admin.delete_topics([checked], request_timeout=REQUEST_TIMEOUT)),
                 f"delete_topics {checked}") is None, f"delete_topics {checked}")

    # DescribeTopics (Metadata by name, with topic ids and operations).
    d = result(only(admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True,
                                          request_timeout=REQUEST_TIMEOUT)), "describe_topics")
    check(d.name == topic and not d.is_internal, f"describe_topics: {vars(d)}")
    check(str(d.topic_id) not in ("", "AAAAAAAAAAAAAAAAAAAAAA"), f"topic id: {d.topic_id}")
    check([p.id for p in d.partitions] == [0, 1], f"described partitions: {[p.id for p in d.partitions]}")
    check(all(p.leader.id == NODE_ID and [r.id for r in p.replicas] == [NODE_ID] for p in d.partitions),
          "described leaders and replicas")
    ops = sorted(op.name for op in d.authorized_operations or [])
    check(ops == sorted(["READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS",
                         "ALTER_CONFIGS"]), f"topic operations: {ops}")


def describe_configs(admin, topic, node_id):
    step("DescribeConfigs")
    configs = describe(admin, ResourceType.TOPIC, topic)
    print("topic configs:", sorted(configs))
    own = check_entry(configs, "retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    check(not own.is_read_only and not own.is_sensitive, f"retention.ms flags: {vars(own)}")
    # librdkafka asks for synonyms: the topic's own value first, last the
    # broker default it overrides (Kafka names one of log.retention.ms,
    # .minutes or .hours).
    syn = [(s.name, s.value, ConfigSource(s.source)) for s in own.synonyms.values()]
    print("retention.ms synonyms:", syn)
    check(syn and syn[0] == ("retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG),
          f"retention.ms synonyms: {syn}")
    check(syn[-1][0].startswith("log.retention.") and syn[-1][2] == ConfigSource.DEFAULT_CONFIG,
          f"retention.ms synonyms lack the broker default: {syn}")
    check_entry(configs, "segment.bytes", BROKER_SEGMENT_BYTES, ConfigSource.STATIC_BROKER_CONFIG)
    check_entry(configs, "max.message.bytes", DEFAULT_MAX_MESSAGE_BYTES, ConfigSource.DEFAULT_CONFIG)
    check_entry(configs, "cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG)

    broker = describe(admin, ResourceType.BROKER, str(node_id))
    print("broker configs:", len(broker))
    check_entry(broker, "log.segment.bytes", BROKER_SEGMENT_BYTES, ConfigSource.STATIC_BROKER_CONFIG)
    check_entry(broker, "num.partitions", BROKER_NUM_PARTITIONS, ConfigSource.STATIC_BROKER_CONFIG)
    check_entry(broker, "offsets.topic.num.partitions", "50", ConfigSource.DEFAULT_CONFIG)
    check_entry(broker, "node.id", str(node_id), ConfigSource.DEFAULT_CONFIG)
    check(not entry(broker, "log.segment.bytes").is_read_only,
          "log.segment.bytes can change at run time")
    check(entry(broker, "num.partitions").is_read_only, "num.partitions is read at startup only")


def incremental_alter_configs(admin, topic):
    step("IncrementalAlterConfigs")
    S, D, A, X = AlterConfigOpType.SET, AlterConfigOpType.DELETE, AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT

    check(result(incremental(admin, topic, [("retention.ms", S, "7200000")]), "SET") is None, "SET")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "retention.ms", "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG)

    # APPEND starts from the default `delete`.
    result(incremental(admin, topic, [("cleanup.policy", A, "compact")]), "APPEND")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "cleanup.policy", "delete,compact", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    # A value already in the list is not added twice.
    result(incremental(admin, topic, [("cleanup.policy", A, "delete")]), "APPEND again")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "cleanup.policy", "delete,compact", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    result(incremental(admin, topic, [("cleanup.policy", X, "compact")]), "SUBTRACT")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "cleanup.policy", "delete", ConfigSource.DYNAMIC_TOPIC_CONFIG)

    # Several operations in one request, then DELETE back to the defaults.
    result(incremental(admin, topic, [("max.message.bytes", S, "2000000"), ("cleanup.policy", A, "compact")]),
           "SET and APPEND")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "max.message.bytes", "2000000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    check_entry(configs, "cleanup.policy", "delete,compact", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    check_entry(configs, "retention.ms", "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    result(incremental(admin, topic, [("retention.ms", D, None), ("cleanup.policy", D, None)]), "DELETE")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "retention.ms", DEFAULT_RETENTION_MS, ConfigSource.DEFAULT_CONFIG)
    check_entry(configs, "cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG)
    check_entry(configs, "max.message.bytes", "2000000", ConfigSource.DYNAMIC_TOPIC_CONFIG)

    # Refusals change nothing of the resource, not even its valid changes.
    expect_error(incremental(admin, topic, [("no.such.config", S, "1")]), KafkaError.INVALID_CONFIG,
                 "SET of an unknown key")
    expect_error(incremental(admin, topic, [("retention.ms", S, "1000"), ("segment.bytes", S, "lots")]),
                 KafkaError.INVALID_CONFIG, "SET of a bad value")
    expect_error(incremental(admin, topic, [("segment.bytes", S, "1")]), KafkaError.INVALID_CONFIG,
                 "SET of a value out of range")
    expect_error(incremental(admin, topic, [("cleanup.policy", S, "sometimes")]), KafkaError.INVALID_CONFIG,
                 "SET of a policy that does not exist")
    # APPEND and SUBTRACT are for lists only: INVALID_CONFIG, as Kafka's
    # KRaft controller answers it (ZooKeeper-era brokers said INVALID_REQUEST).
    expect_error(incremental(admin, topic, [("retention.ms", A, "1000")]), KafkaError.INVALID_CONFIG,
                 "APPEND to a setting that is not a list")
    expect_error(incremental(admin, topic, [("retention.ms", X, "1000")]), KafkaError.INVALID_CONFIG,
                 "SUBTRACT from a setting that is not a list")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "retention.ms", DEFAULT_RETENTION_MS, ConfigSource.DEFAULT_CONFIG)
    check_entry(configs, "segment.bytes", BROKER_SEGMENT_BYTES, ConfigSource.STATIC_BROKER_CONFIG)

    # validate_only: answered as the real change would be, nothing changes.
    check(result(incremental(admin, topic, [("retention.ms", S, "1234")], validate_only=True),
                 "SET validate_only") is None, "SET validate_only")
    expect_error(incremental(admin, topic, [("retention.ms", S, "soon")], validate_only=True),
                 KafkaError.INVALID_CONFIG, "SET validate_only of a bad value")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "retention.ms", DEFAULT_RETENTION_MS, ConfigSource.DEFAULT_CONFIG)

    # The broker-level defaults of topic settings change at run time: the
    # topic, with no retention.ms of its own, follows this broker's.
    broker = ResourceType.BROKER
    def broker_op(name, key, op, value):
        return only(admin.incremental_alter_configs(
            [ConfigResource(broker, name,
                            incremental_configs=[ConfigEntry(key, value, incremental_operation=op)])],
            request_timeout=REQUEST_TIMEOUT))
    check(result(broker_op(str(NODE_ID), "log.retention.ms", S, "5400000"), "broker SET") is None,
          "broker SET")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "retention.ms", "5400000", ConfigSource.DYNAMIC_BROKER_CONFIG)
    check_entry(describe(admin, broker, str(NODE_ID)), "log.retention.ms", "5400000",
                ConfigSource.DYNAMIC_BROKER_CONFIG)
    expect_error(broker_op(str(NODE_ID), "log.retention.ms", S, "soon"),
                 KafkaError.INVALID_CONFIG, "broker SET of a bad value")
    check(result(broker_op(str(NODE_ID), "log.retention.ms", D, ""), "broker DELETE") is None,
          "broker DELETE")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "retention.ms", DEFAULT_RETENTION_MS, ConfigSource.DEFAULT_CONFIG)
    # Settings read only at startup are refused, naming server.properties.
    expect_error(broker_op(str(NODE_ID), "num.partitions", S, "5"),
                 KafkaError.INVALID_REQUEST, "SET of a startup-only broker setting")


def alter_configs(admin, topic):
    step("AlterConfigs")
    # The topic has max.message.bytes=2000000 of its own from above; the
    # settings given replace it.
    check(entry(describe(admin, ResourceType.TOPIC, topic), "max.message.bytes").value == "2000000",
          "max.message.bytes before AlterConfigs")
    result(alter(admin, topic, {"retention.ms": "86400000", "cleanup.policy": "compact,delete"}), "alter_configs")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "retention.ms", "86400000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    check_entry(configs, "cleanup.policy", "compact,delete", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    check_entry(configs, "max.message.bytes", DEFAULT_MAX_MESSAGE_BYTES, ConfigSource.DEFAULT_CONFIG)

    check(result(alter(admin, topic, {"retention.ms": "1000"}, validate_only=True),
                 "alter_configs validate_only") is None, "alter_configs validate_only")
    expect_error(alter(admin, topic, {"retention.ms": "soon"}), KafkaError.INVALID_CONFIG,
                 "alter_configs of a bad value")
    expect_error(alter(admin, topic, {"no.such.config": "1"}), KafkaError.INVALID_CONFIG,
                 "alter_configs of an unknown key")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "retention.ms", "86400000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    check_entry(configs, "cleanup.policy", "compact,delete", ConfigSource.DYNAMIC_TOPIC_CONFIG)

    # Back to deletion only, for DeleteRecords below.
    result(alter(admin, topic, {}), "alter_configs to no settings")
    configs = describe(admin, ResourceType.TOPIC, topic)
    check_entry(configs, "retention.ms", DEFAULT_RETENTION_MS, ConfigSource.DEFAULT_CONFIG)
    check_entry(configs, "cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG)


def create_partitions(admin, topic):
    step("CreatePartitions")
    fut = only(admin.create_partitions([NewPartitions(topic, 4)], request_timeout=REQUEST_TIMEOUT,
                                       operation_timeout=REQUEST_TIMEOUT))
    check(result(fut, "create_partitions to 4") is None, "create_partitions")
    check(partition_count(admin, topic) == 4, f"partitions after growing: {partition_count(admin, topic)}")

    fut = only(admin.create_partitions([NewPartitions(topic, 6)], validate_only=True,
                                       request_timeout=REQUEST_TIMEOUT))
    check(result(fut, "create_partitions validate_only") is None, "create_partitions validate_only")
    check(partition_count(admin, topic) == 4, "validate_only added partitions")

    for count in (3, 4):
        fut = only(admin.create_partitions([NewPartitions(topic, count)], request_timeout=REQUEST_TIMEOUT))
        expect_error(fut, KafkaError.INVALID_PARTITIONS, f"create_partitions 4 -> {count}")
    fut = only(admin.create_partitions([NewPartitions(topic, 5, replica_assignment=[[NODE_ID + 1]])],
                                       request_timeout=REQUEST_TIMEOUT))
    expect_error(fut, KafkaError.INVALID_REPLICA_ASSIGNMENT, "create_partitions on another broker")
    check(partition_count(admin, topic) == 4, "a refused change altered the partition count")


def produce(bootstrap, topic, partition, count):
    """`count` records to one partition; their offsets, as acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    offsets, errors = [], []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            offsets.append(msg.offset())

    for i in range(count):
        producer.produce(topic, value=f"record-{i}".encode(), key=str(i).encode(), partition=partition,
                         on_delivery=report)
    left = producer.flush(POLL_DEADLINE)
    check(left == 0, f"{left} records not delivered in {POLL_DEADLINE}s")
    check(not errors, f"delivery errors: {errors!r}")
    return sorted(offsets)


def first_message(consumer, what):
    """The first message or error event a consumer polls, within the deadline."""
    deadline = time.monotonic() + POLL_DEADLINE
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None:
            return msg
    fail(f"{what}: nothing polled in {POLL_DEADLINE}s")


def delete_records(admin, bootstrap, topic, compacted):
    step("DeleteRecords")
    offsets = produce(bootstrap, topic, 0, 10)
    check(offsets == list(range(10)), f"produced at offsets {offsets}")

    fut = only(admin.delete_records([TopicPartition(topic, 0, 4)], request_timeout=REQUEST_TIMEOUT,
                                    operation_timeout=REQUEST_TIMEOUT))
    deleted = result(fut, "delete_records below 4")
    check(deleted.low_watermark == 4, f"low watermark after deleting below 4: {deleted.low_watermark}")

    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex[:8]}"})
    marks = probe.get_watermark_offsets(TopicPartition(topic, 0), timeout=REQUEST_TIMEOUT)
    check(marks == (4, 10), f"watermarks after delete_records: {marks}")
    probe.close()

    listed = result(only(admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()},
                                            request_timeout=REQUEST_TIMEOUT)), "list_offsets earliest")
    check(listed.offset == 4, f"ListOffsets earliest: {listed.offset}")
    listed = result(only(admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.latest()},
                                            request_timeout=REQUEST_TIMEOUT)), "list_offsets latest")
    check(listed.offset == 10, f"ListOffsets latest: {listed.offset}")

    # A consumer assigned below the log start: reset to it with `earliest`.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"below-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 1)])
    msg = first_message(c, "a consumer assigned at 1, earliest")
    check(msg.error() is None, f"a consumer assigned at 1 (earliest) got {msg.error()!r}")
    check(msg.offset() == 4 and msg.value() == b"record-4",
          f"a consumer assigned at 1 (earliest) first read offset {msg.offset()} {msg.value()!r}")
    c.close()
    # ... and told so with `error`.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"below-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "error", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 1)])
    msg = first_message(c, "a consumer assigned at 1, error")
    err = msg.error()
    check(err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET,
          f"a consumer assigned at 1 (error) got {err!r} at offset {msg.offset()}")
    check("out of range" in err.str().lower() or "OFFSET_OUT_OF_RANGE" in err.str(),
          f"the reset error does not say out of range: {err.str()}")
    print("a consumer below the log start:", err.str())
    c.close()

    # Past the high watermark: OFFSET_OUT_OF_RANGE, nothing moves.
    fut = only(admin.delete_records([TopicPartition(topic, 0, 11)], request_timeout=REQUEST_TIMEOUT))
    expect_error(fut, KafkaError.OFFSET_OUT_OF_RANGE, "delete_records past the high watermark")
    # OFFSET_END: everything.
    fut = only(admin.delete_records([TopicPartition(topic, 0, OFFSET_END)], request_timeout=REQUEST_TIMEOUT))
    check(result(fut, "delete_records to the end").low_watermark == 10, "low watermark after deleting all")
    listed = result(only(admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()},
                                            request_timeout=REQUEST_TIMEOUT)), "list_offsets earliest")
    check(listed.offset == 10, f"ListOffsets earliest after deleting all: {listed.offset}")
    # Another partition of the same topic is untouched.
    listed = result(only(admin.list_offsets({TopicPartition(topic, 1): OffsetSpec.latest()},
                                            request_timeout=REQUEST_TIMEOUT)), "list_offsets partition 1")
    check(listed.offset == 0, f"partition 1 latest: {listed.offset}")

    fut = only(admin.delete_records([TopicPartition(compacted, 0, 0)], request_timeout=REQUEST_TIMEOUT))
    expect_error(fut, KafkaError.POLICY_VIOLATION, "delete_records on a compacted topic")


def consumer_groups(admin, bootstrap, topic):
    step("ListGroups and DescribeGroups")
    group = f"confluent-group-{uuid.uuid4().hex[:8]}"
    client_id = "confluent-admin-member"
    assigned = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": client_id,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "partition.assignment.strategy": "range"})
    c.subscribe([topic], on_assign=lambda _, parts: assigned.extend(parts))
    deadline = time.monotonic() + POLL_DEADLINE
    while not assigned and time.monotonic() < deadline:
        c.poll(0.2)
    check(assigned, f"no assignment in {POLL_DEADLINE}s")
    print("assigned:", sorted(p.partition for p in assigned))
    check(sorted(p.partition for p in assigned) == [0, 1, 2, 3], f"assignment: {assigned!r}")

    listed = admin.list_consumer_groups(request_timeout=REQUEST_TIMEOUT).result(timeout=FUTURE_TIMEOUT)
    check(not listed.errors, f"list_consumer_groups errors: {listed.errors!r}")
    ours = [g for g in listed.valid if g.group_id == group]
    check(len(ours) == 1, f"{group} not listed: {[g.group_id for g in listed.valid]}")
    print("listed:", vars(ours[0]))
    check(ours[0].state == ConsumerGroupState.STABLE, f"listed state: {ours[0].state}")
    check(not ours[0].is_simple_consumer_group, "listed as a simple group")
    check(ours[0].type == ConsumerGroupType.CLASSIC, f"listed type: {ours[0].type}")
    stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE},
                                        request_timeout=REQUEST_TIMEOUT).result(timeout=FUTURE_TIMEOUT)
    check(group in [g.group_id for g in stable.valid], "not listed with the STABLE filter")
    empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY},
                                       request_timeout=REQUEST_TIMEOUT).result(timeout=FUTURE_TIMEOUT)
    check(group not in [g.group_id for g in empty.valid], "listed with the EMPTY filter")

    fut = only(admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT))
    d = result(fut, "describe_consumer_groups")
    print("described:", d.group_id, d.state, d.partition_assignor, len(d.members))
    check(d.group_id == group and d.state == ConsumerGroupState.STABLE, f"described state: {d.state}")
    check(d.partition_assignor == "range", f"assignor: {d.partition_assignor!r}")
    check(d.type == ConsumerGroupType.CLASSIC and not d.is_simple_consumer_group, f"described type: {d.type}")
    check(d.coordinator.id == NODE_ID, f"coordinator: {d.coordinator!r}")
    check(len(d.members) == 1, f"members: {d.members!r}")
    m = d.members[0]
    check(m.client_id == client_id, f"member client id: {m.client_id!r}")
    check(m.member_id.startswith(client_id), f"member id: {m.member_id!r}")
    parts = sorted((p.topic, p.partition) for p in m.assignment.topic_partitions)
    check(parts == [(topic, p) for p in range(4)], f"member assignment: {parts}")

    c.close()
    d = result(only(admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT)),
               "describe_consumer_groups after leaving")
    check(d.state == ConsumerGroupState.EMPTY and not d.members,
          f"after the member left: {d.state}, {len(d.members)} members")

    check(result(only(admin.delete_consumer_groups([group], request_timeout=REQUEST_TIMEOUT)),
                 "delete_consumer_groups") is None, "delete_consumer_groups")
    d = result(only(admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT)),
               "describe_consumer_groups after deleting")
    check(d.state == ConsumerGroupState.DEAD, f"a deleted group: {d.state}")
    expect_error(only(admin.delete_consumer_groups([group], request_timeout=REQUEST_TIMEOUT)),
                 KafkaError.GROUP_ID_NOT_FOUND, "delete_consumer_groups of a deleted group")


def describe_cluster(admin, bootstrap):
    step("DescribeCluster")
    d = admin.describe_cluster(request_timeout=REQUEST_TIMEOUT).result(timeout=FUTURE_TIMEOUT)
    print("cluster:", d.cluster_id, "controller", d.controller.id, "nodes", [(n.id, n.host, n.port) for n in d.nodes])
    check(d.cluster_id, f"cluster id: {d.cluster_id!r}")
    check(d.controller is not None and d.controller.id == NODE_ID, f"controller: {d.controller!r}")
    check([n.id for n in d.nodes] == [NODE_ID], f"nodes: {d.nodes!r}")
    host, port = bootstrap.rsplit(":", 1)
    check(d.nodes[0].host == host and d.nodes[0].port == int(port), f"node address: {d.nodes[0]!r}")
    check(d.authorized_operations is None, f"operations not asked for: {d.authorized_operations!r}")
    d = admin.describe_cluster(include_authorized_operations=True,
                               request_timeout=REQUEST_TIMEOUT).result(timeout=FUTURE_TIMEOUT)
    ops = sorted(op.name for op in d.authorized_operations or [])
    check(ops == sorted(["ALTER", "ALTER_CONFIGS", "CLUSTER_ACTION", "CREATE", "DESCRIBE",
                         "DESCRIBE_CONFIGS", "IDEMPOTENT_WRITE"]), f"cluster operations: {ops}")


def delete_topics(admin, topic, compacted):
    step("DeleteTopics")
    futures = admin.delete_topics([topic, compacted], request_timeout=REQUEST_TIMEOUT,
                                  operation_timeout=REQUEST_TIMEOUT)
    for name, fut in futures.items():
        check(result(fut, f"delete_topics {name}") is None, f"delete_topics {name}")
    names = topic_names(admin)
    check(topic not in names and compacted not in names, f"deleted topics still listed: {sorted(names)}")


def unknown_topic(admin, topic, alongside=None):
    """Every request naming `topic`, which does not exist. librdkafka sends
    DeleteRecords only for partitions whose leader Metadata named: alone, a
    topic it never knew fails in the client (_NOENT, no leaders), so such a
    topic is asked `alongside` a live partition, and Metadata's
    UNKNOWN_TOPIC_OR_PARTITION for it is what comes back."""
    step(f"an unknown topic ({topic})")
    code = KafkaError.UNKNOWN_TOPIC_OR_PART
    fut = only(admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=REQUEST_TIMEOUT))
    expect_error(fut, code, "describe_configs")
    expect_error(incremental(admin, topic, [("retention.ms", AlterConfigOpType.SET, "1000")]), code,
                 "incremental_alter_configs")
    expect_error(alter(admin, topic, {"retention.ms": "1000"}), code, "alter_configs")
    expect_error(only(admin.create_partitions([NewPartitions(topic, 5)], request_timeout=REQUEST_TIMEOUT)),
                 code, "create_partitions")
    wanted = [TopicPartition(topic, 0, 0)] + ([alongside] if alongside else [])
    futures = admin.delete_records(wanted, request_timeout=REQUEST_TIMEOUT)
    for tp, fut in futures.items():
        if tp.topic == topic:
            expect_error(fut, code, "delete_records")
        else:
            got = result(fut, f"delete_records of {tp.topic}:{tp.partition} alongside")
            check(got.low_watermark == tp.offset, f"low watermark alongside: {got.low_watermark}")
    expect_error(only(admin.delete_topics([topic], request_timeout=REQUEST_TIMEOUT)), code, "delete_topics")
    check(topic not in topic_names(admin), f"{topic} was created by asking about it")


NODE_ID = 0


def main():
    global NODE_ID
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--node-id", type=int, default=0)
    args = p.parse_args()
    NODE_ID = args.node_id
    # version() is the package's version string, libversion() a tuple.
    print("confluent-kafka", version(), "librdkafka", libversion()[0])
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "socket.timeout.ms": int(REQUEST_TIMEOUT * 1000)})
    suffix = uuid.uuid4().hex[:8]
    topic, compacted = f"confluent-{suffix}", f"confluent-compacted-{suffix}"

    create_topics(admin, args.bootstrap, topic, compacted)
    describe_configs(admin, topic, args.node_id)
    incremental_alter_configs(admin, topic)
    alter_configs(admin, topic)
    create_partitions(admin, topic)
    delete_records(admin, args.bootstrap, topic, compacted)
    consumer_groups(admin, args.bootstrap, topic)
    describe_cluster(admin, args.bootstrap)
    # A topic that never was, and then the deleted ones.
    unknown_topic(admin, f"missing-{suffix}", alongside=TopicPartition(topic, 1, 0))
    delete_topics(admin, topic, compacted)
    unknown_topic(admin, topic)
    unknown_topic(admin, compacted)
    print("OK")


if __name__ == "__main__":
    main()
