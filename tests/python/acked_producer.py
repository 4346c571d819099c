#!/usr/bin/env python3
"""kafka-python's idempotent producer writing unique values with acks=all
for a while, through whatever happens to the cluster meanwhile (the
failover tests kill a broker under it).

Usage: acked_producer.py --bootstrap H:P[,H:P...] --topic T --partition N
                         --prefix P --seconds S
Sends "<prefix>-<i>" for i = 0, 1, ... to the partition for S seconds,
about 100 a second, then waits for every answer. Prints one line per
acknowledged record, "ACK <partition> <offset> <value>", one per refused
one, "FAILED <value> <error>" (a refusal is allowed: the value was never
acknowledged), and "OK" last. Run by tests/tests/cluster.rs; needs
`python3 -m pip install kafka-python`.
"""

import argparse
import sys
import time

from kafka import KafkaProducer

WAIT_S = 90


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partition", type=int, required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--seconds", type=float, required=True)
    args = ap.parse_args()

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap.split(","),
        acks="all",
        enable_idempotence=True,
        retries=1_000_000,
        retry_backoff_ms=100,
        delivery_timeout_ms=WAIT_S * 1000,
        request_timeout_ms=5_000,
        metadata_max_age_ms=1_000,
        linger_ms=5,
    )
    sent = []
    end = time.monotonic() + args.seconds
    i = 0
    while time.monotonic() < end:
        value = f"{args.prefix}-{i}"
        sent.append((value, producer.send(args.topic, value=value.encode(), partition=args.partition)))
        i += 1
        time.sleep(0.01)
    producer.flush(timeout=WAIT_S)
    for value, future in sent:
        try:
            md = future.get(timeout=1)
            print(f"ACK {md.partition} {md.offset} {value}")
        except Exception as e:  # an unacknowledged value: allowed
            print(f"FAILED {value} {type(e).__name__}")
    producer.close(timeout=10)
    print("OK")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
