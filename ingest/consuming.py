"""Consumer-loop plumbing shared by the scorer and the aggregator: batched polls, waiting without
losing the group, acknowledged sends, commits, dead letters."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from ingest.kafka_clients import KafkaUnavailable
from monitor.schemas import DeadLetter

log = logging.getLogger(__name__)
Message = tuple[str, bytes | None, bytes]  # topic, key, value


class StopRequested(Exception):
    """``stop`` was set while waiting out an outage: leave the batch uncommitted (it is re-delivered)."""


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


def back_off(consumer: KafkaConsumer, seconds: float, stop: threading.Event) -> None:
    """Wait without taking records and without leaving the group (poll with every partition paused).

    Raises :class:`StopRequested` when ``stop`` is set meanwhile.
    """
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if stop.is_set():
            raise StopRequested()
        consumer.pause(*consumer.assignment())
        for tp, part in consumer.poll(timeout_ms=int(min(remaining, 1.0) * 1000)).items():
            # Partitions assigned during this poll were not paused yet: put their records back.
            consumer.seek(tp, part[0].offset)
    consumer.resume(*consumer.paused())


class AckedProducer:
    """Sends a batch and returns only once every message is acknowledged, retrying with back-off.

    A batch's offsets are committed after this returns, so a Kafka outage delays output, never loses
    it. After a failure the batch is re-sent from a fresh producer (``factory``): kafka-python's
    idempotent producer stays failed after a broker restart.
    """

    def __init__(self, producer: KafkaProducer, factory: Callable[[], KafkaProducer] | None = None, *,
                 on_retry: Callable[[], None] = lambda: None, on_ok: Callable[[], None] = lambda: None) -> None:
        self.producer = producer
        self.factory = factory
        self.on_retry, self.on_ok = on_retry, on_ok

    def send_all(self, messages: Sequence[Message], wait: Callable[[float], None], initial_s: float,
                 max_s: float) -> None:
        delay = initial_s
        while True:
            try:
                futures = [self.producer.send(topic, key=key, value=value) for topic, key, value in messages]
                self.producer.flush()
                for f in futures:
                    f.get(timeout=0)
                self.on_ok()
                return
            except KafkaError as exc:
                self.on_retry()
                log.warning("producing %d messages failed (%s); re-sending in %.1f s, nothing committed",
                            len(messages), str(exc).splitlines()[0] if str(exc) else type(exc).__name__, delay)
                wait(delay)
                self._renew()
                delay = min(delay * 2, max_s)

    def _renew(self) -> None:
        if self.factory is None:
            return
        try:
            fresh = self.factory()
        except KafkaUnavailable as exc:  # still down: the next retry tries again
            log.warning("cannot reconnect the producer yet: %s", exc)
            return
        self.producer.close(timeout=0)
        self.producer = fresh

    def close(self) -> None:
        self.producer.close()


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
