"""The producer setup the test scripts share (produce_keys.py,
produce_records.py): a confluent-kafka Producer for a topic that must
already exist."""

import sys

from confluent_kafka import KafkaException, Producer

# Generous: CI machines are shared and slow (like DEADLINE in tests/common).
TIMEOUT_S = 30.0


def open_producer(script, bootstrap, topic, settings=None):
    """A Producer for TOPIC, or the script's exit code: 1 when the broker
    does not answer, 2 when TOPIC does not exist. Never creates TOPIC (a
    topic auto-created with the broker's default partition count would make
    the tests' expectations wrong)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            # The producer's default is true: a metadata request for a
            # missing topic would create it with the broker's defaults.
            "allow.auto.create.topics": False,
            "acks": "all",
            "message.timeout.ms": int(TIMEOUT_S * 1000),
            **(settings or {}),
        }
    )
    # Listing every topic never creates one.
    try:
        metadata = producer.list_topics(timeout=TIMEOUT_S)
    except KafkaException as e:
        print(f"{script}: metadata from {bootstrap}: {e}", file=sys.stderr)
        return 1
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        print(f"{script}: topic {topic!r} does not exist; create it first", file=sys.stderr)
        return 2
    return producer
