"""Helpers for tests against the embedded broker: fresh topics, producing, and reading a topic to its end."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition

from ingest.topics import create_missing_topics
from monitor.config import KafkaSettings, TopicSettings


def fresh_topics(bootstrap: str, partitions: int = 2) -> KafkaSettings:
    """Kafka settings with topic names no other test uses, the topics created."""
    tag = uuid.uuid4().hex[:8]
    topics = TopicSettings(raw=f"raw.{tag}", scored=f"scored.{tag}", deadletter=f"dead.{tag}", alerts=f"alerts.{tag}")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        create_missing_topics(admin, {t: partitions for t in topics.model_dump().values()})
    finally:
        admin.close()
    # Tansu's group join waits session_timeout / 2: shorter sessions keep each test's join near 1.5 s.
    return KafkaSettings(bootstrap=bootstrap, topics=topics, partitions=partitions, session_timeout_ms=3000,
                         heartbeat_interval_ms=500)


def produce(bootstrap: str, topic: str, values: Iterable[bytes | dict | None], key_by_id: bool = False) -> int:
    """Send each value (dicts as JSON); ``key_by_id`` spreads posts over the partitions by their id."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=4 * 1024 * 1024)
    n = 0
    for v in values:
        key = str(v["id"]).encode() if key_by_id and isinstance(v, dict) else None
        if isinstance(v, dict):
            v = json.dumps(v, ensure_ascii=False).encode("utf-8")
        producer.send(topic, key=b"tombstone" if v is None else key, value=v)
        n += 1
    producer.flush()
    producer.close()
    return n


def read_topic(bootstrap: str, topic: str, timeout_s: float = 20.0) -> list:
    """Every record on ``topic`` from the beginning to its high watermark (no group, nothing committed)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    records = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
        highs = [consumer.highwater(tp) for tp in parts]
        if all(h is not None for h in highs) and all(consumer.position(tp) >= h for tp, h in zip(parts, highs)):
            break
    consumer.close()
    return records


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        consumer.close(autocommit=False)
