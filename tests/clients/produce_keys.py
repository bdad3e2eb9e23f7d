#!/usr/bin/env python3
"""Produces keyed records with a real Kafka client and reports where they land.

Usage: produce_keys.py BOOTSTRAP TOPIC N_KEYS

Produces one record per key `key-0` .. `key-{N_KEYS-1}` (value = the key),
then a fixed set of binary keys (bytes >= 0x80, UTF-8, every length 1..15 so
every tail length after the 4-byte blocks occurs), with librdkafka's
`murmur2_random` partitioner, which is Kafka's default (Java) partitioner for
keyed records. Prints one JSON line per delivered record, in delivery order:

    {"key_hex": "6b65792d30", "partition": 3}

The partition comes from the delivery report, i.e. where the broker stored
the record. The caller creates TOPIC first with a known partition count:
this script never auto-creates it (a topic auto-created with the broker's
default partition count would make every comparison wrong), and exits 2 when
TOPIC does not exist. Exits 1 when any record fails or is not delivered.

Needs `confluent-kafka` (examples/test.sh installs it; run it with
"$SSE_KAFKA_PYTHON").
"""

import json
import sys

from producer import TIMEOUT_S, open_producer


def binary_keys():
    """Keys that a hash over ASCII text alone would not exercise."""
    keys = [
        b"\x00",
        b"\xff",
        b"\x80\x81\x82",
        "ключ".encode(),
        "clé-ü".encode(),
        "🔑".encode(),
        "鍵-7".encode(),
    ]
    # Lengths 1..15: zero to three tail bytes after zero to three blocks, all
    # bytes >= 0x80 (Java must mask its signed bytes with 0xff for these).
    for length in range(1, 16):
        keys.append(bytes((0xFF - 13 * length - 7 * i) & 0xFF | 0x80 for i in range(length)))
    return keys


def main(argv):
    if len(argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    bootstrap, topic, n_keys = argv[1], argv[2], int(argv[3])

    producer = open_producer(
        "produce_keys", bootstrap, topic, {"partitioner": "murmur2_random"}
    )
    if isinstance(producer, int):
        return producer

    failures = []
    delivered = 0

    def on_delivery(err, msg):
        nonlocal delivered
        if err is not None:
            failures.append(f"key {msg.key()!r}: {err}")
            return
        delivered += 1
        print(json.dumps({"key_hex": msg.key().hex(), "partition": msg.partition()}))

    keys = [f"key-{i}".encode() for i in range(n_keys)] + binary_keys()
    for key in keys:
        while True:
            try:
                producer.produce(topic, key=key, value=key, on_delivery=on_delivery)
                break
            except BufferError:
                # The local queue is full: serve delivery reports to drain it.
                producer.poll(0.1)
        producer.poll(0)

    remaining = producer.flush(TIMEOUT_S)
    sys.stdout.flush()
    for failure in failures:
        print(f"produce_keys: {failure}", file=sys.stderr)
    if failures or remaining or delivered != len(keys):
        print(
            f"produce_keys: {delivered} of {len(keys)} delivered, {remaining} still queued",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
