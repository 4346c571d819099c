#!/usr/bin/env python3
"""A kafka-python group member for tests/tests/groups.rs.

Usage: group.py --bootstrap 127.0.0.1:PORT --topic T --group G
                --client-id ID --stop-file PATH [--timeout SECONDS]

Subscribes to T in group G with the range assignor and no auto-commit,
and prints one JSON object per line on stdout (flushed at once):
  {"event":"assigned","partitions":[0,1,2]}   after each assignment change
  {"event":"record","partition":P,"offset":O,"key":"K"}   each record
  {"event":"commit","ok":1} or {"event":"commit","ok":0,"error":"..."}
                                               after each poll batch
  {"event":"done"}                             after a clean close
It commits synchronously after processing each poll batch, and runs until
PATH exists (then closes the consumer, leaving the group) or the timeout
passes (then exits 2). Any exception exits non-zero with a traceback.
"""

import argparse
import json
import os
import sys
import time

from kafka import KafkaConsumer
from kafka.coordinator.assignors.range import RangePartitionAssignor


def emit(**fields):
    # No spaces, one line: parsed by a small reader on the Rust side.
    print(json.dumps(fields, separators=(",", ":")), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--timeout", type=float, default=90.0)
    args = ap.parse_args()

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id=args.client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=[RangePartitionAssignor],
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        max_poll_records=200,
        fetch_max_wait_ms=100,
    )
    consumer.subscribe([args.topic])
    deadline = time.monotonic() + args.timeout
    assigned = None
    while not os.path.exists(args.stop_file):
        if time.monotonic() > deadline:
            print(f"FAIL: no stop file within {args.timeout}s", file=sys.stderr)
            sys.exit(2)
        batch = consumer.poll(timeout_ms=200)
        now = sorted(tp.partition for tp in consumer.assignment() if tp.topic == args.topic)
        if now != assigned:
            assigned = now
            emit(event="assigned", partitions=now)
        taken = 0
        for tp, msgs in sorted(batch.items()):
            for m in msgs:
                emit(event="record", partition=m.partition, offset=m.offset,
                     key=m.key.decode() if m.key is not None else "")
                taken += 1
        if taken:
            try:
                consumer.commit()
                emit(event="commit", ok=1)
            except Exception as e:  # reported, and judged by the test
                emit(event="commit", ok=0, error=type(e).__name__)
    consumer.close()
    emit(event="done")


if __name__ == "__main__":
    main()
