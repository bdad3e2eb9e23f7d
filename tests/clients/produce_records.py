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

from producer import TIMEOUT_S, open_producer


def text(v):
    return None if v is None else v.encode()


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    bootstrap, topic = argv[1], argv[2]
    producer = open_producer("produce_records", bootstrap, topic)
    if isinstance(producer, int):
        return producer

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
