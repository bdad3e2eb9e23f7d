#!/usr/bin/env python3
"""Produces records given as JSON lines with a real Kafka client.

Usage: produce_records.py BOOTSTRAP TOPIC < records.jsonl

Each input line is one record:

    {"partition": 0, "key": "k" | null, "value": "v" | null,
     "headers": [["tag", "red"], ["tag", "blue"]]}

Headers are a list, so a name may repeat (Kafka allows it; a map could not
say it). Records are produced in input order, one at a time (each waits for
its delivery), so their offsets follow the input. Prints one JSON line per
record, in input order: {"partition": 0, "offset": 12}.

Like produce_keys.py, this never auto-creates TOPIC (exits 2 when it does
not exist) and exits 1 when a record fails. Needs `confluent-kafka`
(examples/test.sh installs it; run it with "$SSE_KAFKA_PYTHON").
"""

import json
import sys

from confluent_kafka import KafkaException, Producer

# Generous: CI machines are shared and slow (like DEADLINE in tests/common).
TIMEOUT_S = 30.0


def text(v):
    return None if v is None else v.encode()


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    bootstrap, topic = argv[1], argv[2]
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "allow.auto.create.topics": False,
            "acks": "all",
            "message.timeout.ms": int(TIMEOUT_S * 1000),
        }
    )
    try:
        metadata = producer.list_topics(timeout=TIMEOUT_S)
    except KafkaException as e:
        print(f"produce_records: metadata from {bootstrap}: {e}", file=sys.stderr)
        return 1
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        print(f"produce_records: topic {topic!r} does not exist; create it first", file=sys.stderr)
        return 2

    for n, line in enumerate(sys.stdin):
        rec = json.loads(line)
        delivered = []

        def on_delivery(err, msg):
            delivered.append((err, msg))

        producer.produce(
            topic,
            partition=rec["partition"],
            key=text(rec.get("key")),
            value=text(rec.get("value")),
            headers=[(name, text(value)) for name, value in rec.get("headers", [])],
            on_delivery=on_delivery,
        )
        remaining = producer.flush(TIMEOUT_S)
        if remaining or len(delivered) != 1 or delivered[0][0] is not None:
            why = delivered[0][0] if delivered else "not delivered"
            print(f"produce_records: record {n}: {why}", file=sys.stderr)
            return 1
        msg = delivered[0][1]
        print(json.dumps({"partition": msg.partition(), "offset": msg.offset()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
