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


def round_trip(bootstrap, partitions, compression, idempotent):
    """Produce N records, then consume them back and check each one.

    idempotent=False turns kafka-python 3.x's default idempotence off, so
    the plain produce path (no producer id) is exercised; idempotent=True
    keeps the default (InitProducerId, producer ids and sequences)."""
    label = f"{'idempotent ' if idempotent else ''}{compression}"
    topic = f"py-{'idem-' if idempotent else ''}{compression or 'none'}-{uuid.uuid4().hex[:10]}"
    has_setting = "enable_idempotence" in KafkaProducer.DEFAULT_CONFIG
    if idempotent:
        check(has_setting, "this kafka-python has no idempotent producer (needs 2.1+)")
        settings = {}
    else:
        # kafka-python 2.x has no such setting and rejects unknown ones.
        settings = {"enable_idempotence": False, "acks": "all", "retries": 0} if has_setting \
            else {"acks": "all", "retries": 0}
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=compression,
        linger_ms=5,
        request_timeout_ms=10000,
        max_block_ms=20000,
        **settings,
    )
    if idempotent:
        check(producer.config["enable_idempotence"], "idempotence is not on by default")
    print(f"[{label}] producer detected broker api_version {producer.config['api_version']}")
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
    check(len(set(placed.values())) == N, f"[{label}] two records got the same offset")

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=20000,
    )
    # Metadata: the topic exists with the broker's num.partitions.
    check(topic in consumer.topics(), f"[{label}] {topic} missing from metadata")
    parts = consumer.partitions_for_topic(topic)
    check(parts == set(range(partitions)), f"[{label}] partitions {parts}, expected 0..{partitions}")

    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    begin = consumer.beginning_offsets(tps)
    end = consumer.end_offsets(tps)
    check(all(begin[tp] == 0 for tp in tps), f"[{label}] beginning offsets {begin}")
    check(sum(end[tp] for tp in tps) == N, f"[{label}] end offsets {end} do not add up to {N}")

    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = {}
    last_offset = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < N:
        if time.monotonic() > deadline:
            fail(f"[{label}] consumed only {len(got)} of {N} records")
        for tp, msgs in consumer.poll(timeout_ms=500).items():
            for m in msgs:
                i = int(m.key)
                check(i not in got, f"[{label}] record {i} twice")
                check(m.value == value(i), f"[{label}] value of record {i} differs")
                check(list(m.headers) == headers(i), f"[{label}] headers of {i}: {m.headers}")
                check((m.partition, m.offset) == placed[i],
                      f"[{label}] record {i} at {(m.partition, m.offset)}, acked at {placed[i]}")
                check(m.offset == last_offset.get(m.partition, -1) + 1,
                      f"[{label}] offset gap in partition {m.partition} at {m.offset}")
                last_offset[m.partition] = m.offset
                got[i] = True
    extra = consumer.poll(timeout_ms=300)
    check(not any(extra.values()), f"[{label}] records beyond the end: {extra}")
    consumer.close()
    print(f"[{label}] {N} records round-tripped exactly once through {len(parts)} partitions")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    args = ap.parse_args()
    for idempotent in (False, True):
        for compression in (None, "gzip"):
            round_trip(args.bootstrap, args.partitions, compression, idempotent)
    print("OK")


if __name__ == "__main__":
    main()
