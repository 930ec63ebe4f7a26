"""Consumer-loop plumbing shared by the scorer and the aggregator: batched polls, commits, dead letters."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitor.schemas import DeadLetter


def poll_batch(consumer: KafkaConsumer, max_records: int, timeout_ms: int, stop: threading.Event) -> list[ConsumerRecord]:
    """Up to ``max_records`` records, waiting at most ``timeout_ms`` in all for the batch to fill.

    One ``poll`` returns what one fetch brought (often a few hundred records); polling again until the
    batch is full or the time is up gives the model and the store the batch sizes they are fast at.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    records: list[ConsumerRecord] = []
    while len(records) < max_records and not stop.is_set():
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            break
        for part in consumer.poll(timeout_ms=remaining_ms, max_records=max_records - len(records)).values():
            records.extend(part)
    return records


def offsets_to_commit(records: Sequence[ConsumerRecord]) -> dict[TopicPartition, OffsetAndMetadata]:
    """The next offset to read, per partition: one past the last record of the batch."""
    last: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        last[tp] = max(last.get(tp, -1), r.offset)
    return {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()}


def dead_letter(record: ConsumerRecord, stage: str, error: str, max_message_bytes: int) -> DeadLetter:
    """A dead letter that fits in a Kafka message: base64 grows the original by a third, so a large
    original is cut, and the cut noted (the full message stays on the raw topic at that offset)."""
    raw = record.value or b""
    room = max(0, (max_message_bytes - 8192) * 3 // 4)
    if len(raw) > room:
        error = (f"{error} (original cut from {len(raw)} to {room} bytes; full message at "
                 f"{record.topic}[{record.partition}]@{record.offset})")
        raw = raw[:room]
    return DeadLetter.build(raw, key=record.key, topic=record.topic, partition=record.partition,
                            offset=record.offset, stage=stage, error=error)
