"""The aggregator loop: posts.scored -> windows -> store (aggregates, anomalies, risk) -> commit.

Consumer group ``aggregators`` (``MONITOR_AGGREGATOR_GROUP_ID``); ``posts.scored`` is keyed by
language, so each member owns the languages of its partitions. Records are polled in batches and
counted into the :class:`~monitor.aggregate.Aggregator` at once; every ``flush_interval_s`` the
windows are written and scored in one transaction, and only then are the offsets committed
(at-least-once; the aggregates are a function of each window's set of posts, so re-delivery
changes nothing).

Failure modes, and what happens:

* a message that is not a scored post (not JSON, missing ``created_at``...): dead-lettered with the
  reason (stage ``validate``, on ``posts.deadletter``); the batch goes on.
* the store is down (writing, or reading a window to rebuild): retried with capped back-off,
  nothing committed, no new records taken (the consumer stays in its group, polling with every
  partition paused); the changes stay pending in memory and are written once it is back.
* a rebalance: the pending (uncommitted) batch is dropped, for the new owner re-reads it, and so
  are the in-memory windows, since the new assignment may carry other languages: they are rebuilt
  from the store as needed.
* SIGINT/SIGTERM (``stop`` set): the pending batch is written and committed, then the loop returns;
  a stop during a store outage returns without committing (the batch is re-delivered later).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, IllegalGenerationError, RebalanceInProgressError
from pydantic import ValidationError
from sqlalchemy import Engine

from ingest.kafka_clients import make_consumer, make_producer
from ingest import aggregate_metrics as metrics
from ingest.consuming import AckedProducer, StopRequested, back_off, dead_letter, offsets_to_commit, poll_batch
from monitor.aggregate import Aggregator, FlushReport
from monitor.aggregate.records import Contribution, from_message
from monitor.config import KafkaSettings, Settings
from monitor.store.db import StoreUnavailable

log = logging.getLogger(__name__)
RETRY_INITIAL_S = 0.5
T = TypeVar("T")


@dataclass
class AggregateStats:
    consumed: int = 0
    aggregated: int = 0
    deadlettered: int = 0
    flushes: int = 0
    late: int = 0
    windows_scored: int = 0
    anomalies: int = 0  # rows in the windows scored (a window scored twice counts twice)


class _Rebalances(ConsumerRebalanceListener):
    def __init__(self, loop: "AggregateLoop") -> None:
        self.loop = loop

    def on_partitions_revoked(self, revoked) -> None:
        # No commit here: kafka-python runs this on its IO thread, where blocking calls are refused.
        if self.loop.pending:
            log.info("partitions revoked before %d records were committed: their new owner re-reads them",
                     len(self.loop.pending))
            self.loop.pending.clear()
        self.loop.aggregator.reset()

    def on_partitions_assigned(self, assigned) -> None:
        log.info("aggregating partitions %s", sorted((tp.topic, tp.partition) for tp in assigned) or "none")
        self.loop.aggregator.reset()
        self.loop.joined = True
        self.loop.last_activity = time.monotonic()


class AggregateLoop:
    def __init__(self, consumer: KafkaConsumer, producer: KafkaProducer, engine: Engine, settings: Settings,
                 stop: threading.Event | None = None, max_idle_s: float | None = None,
                 new_producer: Callable[[], KafkaProducer] | None = None) -> None:
        self.consumer = consumer
        self.out = AckedProducer(producer, new_producer)
        self.settings = settings
        self.options = settings.aggregator
        self.aggregator = Aggregator(engine, self.options, group_id=self.options.group_id)
        self.stop = stop or threading.Event()
        self.max_idle_s = max_idle_s
        self.pending: list[ConsumerRecord] = []  # consumed, counted, not yet written and committed
        self.stats = AggregateStats()
        self.joined = False
        self.last_activity = time.monotonic()
        consumer.subscribe([settings.kafka.topics.scored], listener=_Rebalances(self))

    def run(self) -> AggregateStats:
        log.info("aggregating %s as group %r, windows %s s", self.settings.kafka.topics.scored,
                 self.options.group_id, self.options.windows_s)
        last_flush = time.monotonic()
        try:
            while not self.stop.is_set():
                records = self.poll_batch()
                if records:
                    self.add(records)
                if self.pending and time.monotonic() - last_flush >= self.options.flush_interval_s:
                    self.flush_and_commit()
                    last_flush = time.monotonic()
                if not records and self._idle_too_long():
                    log.info("no records for %.1f s: stopping", self.max_idle_s)
                    break
            if self.pending:
                self.flush_and_commit()
        except StopRequested:
            log.info("stopped during a store outage: the pending batch will be re-delivered")
        log.info("aggregator done: %d consumed, %d aggregated, %d dead-lettered, %d anomaly rows in %d windows scored",
                 self.stats.consumed, self.stats.aggregated, self.stats.deadlettered, self.stats.anomalies,
                 self.stats.windows_scored)
        return self.stats

    def poll_batch(self) -> list[ConsumerRecord]:
        records = poll_batch(self.consumer, self.options.batch_size, self.options.poll_timeout_ms, self.stop)
        if records:
            self.last_activity = time.monotonic()
        return records

    def add(self, records: list[ConsumerRecord]) -> None:
        """Decode and count a batch, per partition (event time is kept per partition); refuse bad messages."""
        by_partition: dict[tuple[str, int], list[Contribution]] = {}
        dead = []
        for r in records:
            try:
                if r.value is None:
                    raise ValueError("the message has no value")
                c = from_message(r.value)
            except (ValidationError, ValueError) as exc:
                reason = str(exc).strip().splitlines()
                dead.append(dead_letter(r, "validate", "not a scored post: " + " ".join(reason[:3])[:500],
                                        self.settings.kafka.max_request_bytes))
                continue
            by_partition.setdefault((r.topic, r.partition), []).append(c)
        for partition, batch in by_partition.items():
            self._waiting_out_outages(lambda: self.aggregator.add(batch, partition))  # adding again is harmless
        if dead:
            self._produce_dead(dead)
        self.pending.extend(records)
        self.stats.consumed += len(records)
        self.stats.aggregated += len(records) - len(dead)
        self.stats.deadlettered += len(dead)
        metrics.CONSUMED.inc(len(records))
        metrics.AGGREGATED.inc(len(records) - len(dead))
        metrics.DEADLETTERED.inc(len(dead))

    def flush_and_commit(self) -> None:
        with metrics.FLUSH_SECONDS.time():
            report = self._waiting_out_outages(self.aggregator.flush)
        self._count(report)
        if not self.pending:  # revoked during a back-off: nothing of ours left to commit
            return
        try:
            self.consumer.commit(offsets_to_commit(self.pending))
        except (CommitFailedError, IllegalGenerationError, RebalanceInProgressError) as exc:
            log.warning("commit refused after a rebalance (%s): the new owner re-reads the batch", exc)
        self.pending.clear()

    def _waiting_out_outages(self, step: Callable[[], T]) -> T:
        """``step()``, retried with capped back-off while the store is unavailable (nothing committed)."""
        delay = RETRY_INITIAL_S
        while True:
            try:
                result = step()
                metrics.WAITING_FOR_STORE.set(0)
                return result
            except StoreUnavailable as exc:
                metrics.STORE_RETRIES.inc()
                metrics.WAITING_FOR_STORE.set(1)
                log.warning("store unavailable (%s); retrying in %.1f s, nothing committed", exc, delay)
                self._back_off(delay)
                delay = min(delay * 2, self.settings.scorer.store_retry_max_s)

    def _produce_dead(self, dead) -> None:
        """Acknowledged before the batch can be committed (a Kafka outage waits, loses nothing)."""
        messages = [(self.settings.kafka.topics.deadletter, None, d.model_dump_json().encode()) for d in dead]
        self.out.send_all(messages, self._back_off, RETRY_INITIAL_S, self.settings.scorer.store_retry_max_s)

    def _count(self, report: FlushReport) -> None:
        self.stats.flushes += 1
        self.stats.late += report.late
        self.stats.windows_scored += report.windows_scored
        self.stats.anomalies += report.anomalies
        metrics.LATE.inc(report.late)
        metrics.WINDOWS_SCORED.inc(report.windows_scored)
        metrics.ANOMALIES.inc(report.anomalies)
        if report.late:
            log.info("%d posts arrived after their window's allowed lateness: their windows were rebuilt", report.late)

    def _back_off(self, seconds: float) -> None:
        back_off(self.consumer, seconds, self.stop)

    def _idle_too_long(self) -> bool:
        return (self.max_idle_s is not None and self.joined
                and time.monotonic() - self.last_activity >= self.max_idle_s)


def run_aggregator(kafka: KafkaSettings, engine: Engine, settings: Settings, stop: threading.Event | None = None,
                   max_idle_s: float | None = None) -> AggregateStats:
    """Join the group and aggregate until ``stop`` is set (or idle): for a thread, a subprocess or the CLI.

    ``kafka.bootstrap`` must be resolved (:func:`ingest.kafka_clients.kafka_for`) and the topics exist.
    """
    producer = make_producer(kafka)
    loop: AggregateLoop | None = None
    try:
        consumer = make_consumer(kafka, settings.aggregator.group_id, (),
                                 max_poll_records=settings.aggregator.batch_size)
        try:
            loop = AggregateLoop(consumer, producer, engine, settings, stop, max_idle_s,
                                 new_producer=lambda: make_producer(kafka))
            return loop.run()
        finally:
            consumer.close(autocommit=False)  # everything processed is committed already
    finally:
        (loop.out.producer if loop is not None else producer).close()
