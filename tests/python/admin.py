#!/usr/bin/env python3
"""kafka-python's admin client against a Conveyor broker: DescribeConfigs
for a topic (its own settings, the broker's defaults, Kafka's defaults, each
with its source) and for the broker, and nothing for an unknown topic;
AlterConfigs and IncrementalAlterConfigs of the topic, and a bad value
refused; CreatePartitions growing it, and a shrink refused.

Usage: admin.py --bootstrap 127.0.0.1:PORT --node-id 0
Exits 0 and prints OK when every check passes. Run by
tests/tests/kafka_python.rs; needs `python3 -m pip install kafka-python`.
"""

import argparse
import sys
import uuid

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import KafkaError


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
    admin.close()
    print("OK")


if __name__ == "__main__":
    main()
