#!/usr/bin/env python3
"""kafka-python's admin client against a Conveyor broker: DescribeConfigs
for a topic (its own settings, the broker's defaults, Kafka's defaults, each
with its source) and for the broker, and nothing for an unknown topic;
AlterConfigs and IncrementalAlterConfigs of the topic, and a bad value
refused; CreatePartitions growing it, and a shrink refused; DescribeProducers
after an idempotent producer wrote; DescribeLogDirs naming the data
directory and each partition's bytes on disk; OffsetDelete of committed
offsets, refused for an unknown group and for a topic a live consumer
subscribes to.

Usage: admin.py --bootstrap 127.0.0.1:PORT --node-id 0 --data-dir DIR
Exits 0 and prints OK when every check passes. Run by
tests/tests/kafka_python.rs; needs `python3 -m pip install kafka-python`.
"""

import argparse
import glob
import os
import sys
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import (
    GroupIdNotFoundError,
    GroupSubscribedToTopicError,
    KafkaError,
    NoError,
    UnknownTopicOrPartitionError,
)
from kafka.structs import OffsetAndMetadata


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def described(admin, resource, **kw):
    """{name: {value, source, ...}} of one resource, from the response."""
    out = admin.describe_configs([resource], config_filter="all", **kw)
    by_type = out.get(resource.resource_type.name.lower()) or out.get(resource.resource_type) or {}
    if not by_type:
        # Older shapes: a list of responses.
        fail(f"unexpected describe_configs answer: {out!r}")
    return next(iter(by_type.values()))


def described_any(out):
    return any(configs for by_name in out.values() for configs in by_name.values())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--node-id", default="0")
    p.add_argument("--data-dir", required=True)
    args = p.parse_args()
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=20000)
    topic = f"admin-{uuid.uuid4().hex[:8]}"
    admin.create_topics(
        [NewTopic(topic, 2, 1, topic_configs={"retention.ms": "3600000", "cleanup.policy": "compact"})]
    )

    configs = described(admin, ConfigResource(ConfigResourceType.TOPIC, topic), include_synonyms=True)
    print("topic configs:", sorted(configs))
    check(configs["retention.ms"]["value"] == "3600000", f"retention.ms: {configs['retention.ms']}")
    check(configs["cleanup.policy"]["value"] == "compact", f"cleanup.policy: {configs['cleanup.policy']}")
    # The broker runs with log.segment.bytes from its configuration.
    check(configs["segment.bytes"]["value"] == "104857600", f"segment.bytes: {configs['segment.bytes']}")
    check(configs["max.message.bytes"]["value"] == "1048588", f"max.message.bytes: {configs['max.message.bytes']}")
    sources = {k: v.get("config_source", v.get("source")) for k, v in configs.items()}
    print("sources:", sources)
    check(str(sources["retention.ms"]) in ("1", "DYNAMIC_TOPIC_CONFIG", "ConfigSourceType.DYNAMIC_TOPIC_CONFIG"),
          f"retention.ms source: {sources['retention.ms']}")
    check(str(sources["segment.bytes"]) in ("4", "STATIC_BROKER_CONFIG", "ConfigSourceType.STATIC_BROKER_CONFIG"),
          f"segment.bytes source: {sources['segment.bytes']}")
    check(str(sources["max.message.bytes"]) in ("5", "DEFAULT_CONFIG", "ConfigSourceType.DEFAULT_CONFIG"),
          f"max.message.bytes source: {sources['max.message.bytes']}")

    broker = described(admin, ConfigResource(ConfigResourceType.BROKER, args.node_id))
    print("broker configs:", len(broker))
    check(broker["log.segment.bytes"]["value"] == "104857600", f"log.segment.bytes: {broker.get('log.segment.bytes')}")
    check(broker["num.partitions"]["value"] == "3", f"num.partitions: {broker.get('num.partitions')}")

    # IncrementalAlterConfigs: SET, APPEND on a list, then described back.
    for incremental in (True, False):
        changes = {"retention.ms": "7200000"}
        if incremental:
            changes["cleanup.policy"] = ("APPEND", "delete")
        got = admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=changes)],
            raise_on_unknown=False,
            incremental=incremental,
        )
        print("alter_configs:", got)
        check(got.get("topic", {}).get(topic) == "OK", f"alter_configs answered {got!r}")
        after = described(admin, ConfigResource(ConfigResourceType.TOPIC, topic))
        check(after["retention.ms"]["value"] == "7200000", f"retention.ms after: {after['retention.ms']}")
    bad = admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.bytes": "lots"})],
        raise_on_unknown=False,
        incremental=True,
    )
    print("a bad value:", bad)
    check("segment.bytes" in str(bad) and bad["topic"][topic] != "OK", f"a bad value was taken: {bad!r}")

    # CreatePartitions: 2 -> 4, then a shrink refused.
    admin.create_partitions({topic: NewPartitions(total_count=4)})
    meta = admin.describe_topics([topic])
    count = len(meta[0]["partitions"])
    check(count == 4, f"partitions after growing: {count} ({meta!r})")
    try:
        admin.create_partitions({topic: NewPartitions(total_count=3)})
        fail("a shrink to 3 partitions was accepted")
    except KafkaError as e:
        check("InvalidPartitions" in type(e).__name__, f"a shrink got {type(e).__name__}: {e}")
        print("a shrink:", type(e).__name__)

    # kafka-python's admin client drops a resource's error code and answers
    # an empty set for it (the codes are checked in core/tests/broker_sim.rs).
    missing = ConfigResource(ConfigResourceType.TOPIC, f"missing-{uuid.uuid4().hex[:8]}")
    try:
        got = admin.describe_configs([missing], config_filter="all")
        check(not described_any(got), f"an unknown topic was described: {got!r}")
    except KafkaError as e:
        print(f"an unknown topic: {type(e).__name__}")

    data = f"data-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(data, 2, 1)])
    tp0, tp1, tp9 = (TopicPartition(data, p) for p in (0, 1, 9))
    describe_producers(admin, args, data, tp0, tp1, tp9)
    describe_log_dirs(admin, args, data)
    delete_group_offsets(admin, args, data, tp0, tp1, tp9)
    admin.close()
    print("OK")


def describe_producers(admin, args, data, tp0, tp1, tp9):
    """An idempotent producer's ten records to partition 0, then its state."""
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, enable_idempotence=True, acks="all")
    for i in range(10):
        producer.send(data, value=b"v" * 100, partition=0)
    producer.flush()
    producer.close()
    got = admin.describe_producers([tp0, tp1])
    print("describe_producers:", got)
    active = got[tp0].active_producers
    check(len(active) == 1, f"producers of partition 0: {active!r}")
    state = active[0]
    check(state.producer_id >= 0 and state.producer_epoch == 0, f"producer: {state!r}")
    check(state.last_sequence == 9, f"last sequence after ten records: {state!r}")
    check(state.last_timestamp > 0, f"last timestamp: {state!r}")
    check((state.coordinator_epoch, state.current_transaction_start_offset) == (-1, -1),
          f"no transaction: {state!r}")
    check(got[tp1].active_producers == [], f"producers of partition 1: {got[tp1]!r}")
    try:
        got = admin.describe_producers([tp9], broker_id=int(args.node_id))
        fail(f"a partition that does not exist was described: {got!r}")
    except UnknownTopicOrPartitionError:
        print("describe_producers of a missing partition: UnknownTopicOrPartitionError")


def describe_log_dirs(admin, args, data):
    """The data directory by its absolute path, each partition's size equal
    to its .log files' bytes; what does not exist is left out."""
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    got = admin.describe_log_dirs({data: [0, 1, 9], missing: [0]})
    print("describe_log_dirs:", got)
    check(len(got) == 1 and len(got[0]["log_dirs"]) == 1, f"one broker, one directory: {got!r}")
    d = got[0]["log_dirs"][0]
    check(d["error_code"] == 0, f"directory error: {d!r}")
    check(d["log_dir"] == os.path.abspath(args.data_dir), f"log_dir {d['log_dir']!r}, data dir {args.data_dir!r}")
    sizes = {(t["name"], p["partition_index"]): p["partition_size"] for t in d["topics"] for p in t["partitions"]}

    def on_disk(p):
        return sum(os.path.getsize(f) for f in glob.glob(os.path.join(args.data_dir, f"{data}-{p}", "*.log")))

    want = {(data, 0): on_disk(0), (data, 1): on_disk(1)}
    check(want[(data, 0)] > 0, f"partition 0 on disk: {want!r}")
    check(sizes == want, f"sizes {sizes!r}, on disk {want!r}")


def delete_group_offsets(admin, args, data, tp0, tp1, tp9):
    """Offsets committed from outside a group, one deleted; a group that does
    not exist; a topic a live consumer subscribes to."""
    group = f"offsets-{uuid.uuid4().hex[:8]}"
    admin.alter_group_offsets(group, {tp0: OffsetAndMetadata(5, "", -1), tp1: OffsetAndMetadata(3, "", -1)})
    got = admin.delete_group_offsets(group, [tp0, tp9])
    print("delete_group_offsets:", got)
    check(got == {tp0: NoError, tp9: UnknownTopicOrPartitionError}, f"delete_group_offsets answered {got!r}")
    left = admin.list_group_offsets({group: [tp0, tp1]})[group]
    check((left[tp0].offset, left[tp1].offset) == (-1, 3), f"offsets after the delete: {left!r}")
    try:
        admin.delete_group_offsets(f"nobody-{uuid.uuid4().hex[:8]}", [tp0])
        fail("an unknown group's offsets were deleted")
    except GroupIdNotFoundError:
        print("delete_group_offsets of an unknown group: GroupIdNotFoundError")

    live = f"live-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(
        data,
        bootstrap_servers=args.bootstrap,
        group_id=live,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    deadline = time.monotonic() + 60
    while not consumer.assignment():
        check(time.monotonic() < deadline, "the consumer never got an assignment")
        consumer.poll(timeout_ms=200)
    consumer.commit({tp0: OffsetAndMetadata(1, "", -1)})
    got = admin.delete_group_offsets(live, [tp0])
    print("delete_group_offsets of a subscribed topic:", got)
    check(got == {tp0: GroupSubscribedToTopicError}, f"a subscribed topic's offset: {got!r}")
    consumer.close()


if __name__ == "__main__":
    main()
