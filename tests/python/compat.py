#!/usr/bin/env python3
"""kafka-python against a Conveyor broker: metadata, and a produce/consume
round trip of 1,000 keyed records with headers, uncompressed and with gzip;
then the same round trip again with kafka-python's default idempotent
producer (InitProducerId, producer ids and sequences in every batch).

Usage: compat.py --bootstrap 127.0.0.1:PORT --partitions 3
Exits 0 when every check passes; anything else is a failure. Run by
tests/tests/kafka_python.rs; needs `python3 -m pip install kafka-python`.
"""

import argparse
import sys
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

N = 1000
TIMEOUT_S = 60


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def value(i):
    # Deterministic, varied length, partly compressible.
    return (b"value-%06d|" % i) * (1 + i % 7) + bytes((i * 31 + k) % 256 for k in range(i % 50))


def headers(i):
    hs = [("idx", str(i).encode())]
    if i % 2 == 0:
        hs.append(("even", b"yes"))
    return hs


def round_trip(bootstrap, partitions, compression):
    topic = f"py-{compression or 'none'}-{uuid.uuid4().hex[:10]}"
    extra = {}
    if "enable_idempotence" in KafkaProducer.DEFAULT_CONFIG:
        # kafka-python 3.x turns idempotence on by default, which needs
        # InitProducerId; Conveyor's first milestone does not have it yet.
        # (2.x has no such setting and rejects unknown ones.)
        extra["enable_idempotence"] = False
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=compression,
        linger_ms=5,
        request_timeout_ms=10000,
        max_block_ms=20000,
        retries=0,
        **extra,
    )
    print(f"[{compression}] producer detected broker api_version {producer.config['api_version']}")
    futures = [
        producer.send(topic, key=str(i).encode(), value=value(i), headers=headers(i))
        for i in range(N)
    ]
    producer.flush(timeout=TIMEOUT_S)
    placed = {}
    for i, fut in enumerate(futures):
        md = fut.get(timeout=TIMEOUT_S)
        placed[i] = (md.partition, md.offset)
    producer.close(timeout=10)
    check(len(set(placed.values())) == N, f"[{compression}] two records got the same offset")

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=20000,
    )
    # Metadata: the topic exists with the broker's num.partitions.
    check(topic in consumer.topics(), f"[{compression}] {topic} missing from metadata")
    parts = consumer.partitions_for_topic(topic)
    check(parts == set(range(partitions)), f"[{compression}] partitions {parts}, expected 0..{partitions}")

    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    begin = consumer.beginning_offsets(tps)
    end = consumer.end_offsets(tps)
    check(all(begin[tp] == 0 for tp in tps), f"[{compression}] beginning offsets {begin}")
    check(sum(end[tp] for tp in tps) == N, f"[{compression}] end offsets {end} do not add up to {N}")

    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = {}
    last_offset = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < N:
        if time.monotonic() > deadline:
            fail(f"[{compression}] consumed only {len(got)} of {N} records")
        for tp, msgs in consumer.poll(timeout_ms=500).items():
            for m in msgs:
                i = int(m.key)
                check(i not in got, f"[{compression}] record {i} twice")
                check(m.value == value(i), f"[{compression}] value of record {i} differs")
                check(list(m.headers) == headers(i), f"[{compression}] headers of {i}: {m.headers}")
                check((m.partition, m.offset) == placed[i],
                      f"[{compression}] record {i} at {(m.partition, m.offset)}, acked at {placed[i]}")
                check(m.offset == last_offset.get(m.partition, -1) + 1,
                      f"[{compression}] offset gap in partition {m.partition} at {m.offset}")
                last_offset[m.partition] = m.offset
                got[i] = True
    extra = consumer.poll(timeout_ms=300)
    check(not any(extra.values()), f"[{compression}] records beyond the end: {extra}")
    consumer.close()
    print(f"[{compression}] {N} records round-tripped through {len(parts)} partitions")


def idempotent_round_trip(bootstrap, partitions, compression):
    """The round trip with the producer's defaults, which in kafka-python 3.x
    mean enable_idempotence=True (retries, acks=all, at most 5 in flight)."""
    check("enable_idempotence" in KafkaProducer.DEFAULT_CONFIG,
          "this kafka-python has no idempotent producer (needs 2.1+)")
    topic = f"py-idem-{compression or 'none'}-{uuid.uuid4().hex[:10]}"
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=compression,
        linger_ms=5,
        request_timeout_ms=10000,
        max_block_ms=20000,
    )
    check(producer.config["enable_idempotence"], "idempotence is not on by default")
    futures = [
        producer.send(topic, key=str(i).encode(), value=value(i), headers=headers(i))
        for i in range(N)
    ]
    producer.flush(timeout=TIMEOUT_S)
    placed = {}
    for i, fut in enumerate(futures):
        md = fut.get(timeout=TIMEOUT_S)
        placed[i] = (md.partition, md.offset)
    producer.close(timeout=10)
    check(len(set(placed.values())) == N, f"[idempotent {compression}] two records got the same offset")

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=20000,
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    end = consumer.end_offsets(tps)
    check(sum(end[tp] for tp in tps) == N, f"[idempotent {compression}] end offsets {end} do not add up to {N}")
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < N:
        if time.monotonic() > deadline:
            fail(f"[idempotent {compression}] consumed only {len(got)} of {N} records")
        for tp, msgs in consumer.poll(timeout_ms=500).items():
            for m in msgs:
                i = int(m.key)
                check(i not in got, f"[idempotent {compression}] record {i} twice")
                check(m.value == value(i), f"[idempotent {compression}] value of record {i} differs")
                check((m.partition, m.offset) == placed[i],
                      f"[idempotent {compression}] record {i} at {(m.partition, m.offset)}, acked at {placed[i]}")
                got[i] = True
    consumer.close()
    print(f"[idempotent {compression}] {N} records round-tripped exactly once")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    args = ap.parse_args()
    for compression in (None, "gzip"):
        round_trip(args.bootstrap, args.partitions, compression)
    # The second run: kafka-python's default, idempotent producer.
    for compression in (None, "gzip"):
        idempotent_round_trip(args.bootstrap, args.partitions, compression)
    print("OK")


if __name__ == "__main__":
    main()
