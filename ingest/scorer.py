"""The scorer loop: posts.raw -> validate -> enrich -> score -> store -> produce -> commit.

One batch at a time, at-least-once: offsets are committed only after the batch is in the store and
on the scored / dead-letter topics. A crash before the commit re-delivers the batch; the store
upserts by post id, so re-delivery creates no duplicate rows (``posts.scored`` may carry a post twice).

Failure modes, and what happens:

* bad message (not UTF-8, not JSON, wrong fields...): dead-lettered with the reason (stage
  ``decode``/``validate``); the batch goes on.
* the model raises on some post (a poison post): the batch is scored again in halves, down to single
  posts tried ``model_retries`` times; only the failing posts are dead-lettered (stage ``score``).
  Halving also gets a batch through a transient out-of-memory error.
* the model returns nonsense (wrong count, NaN, unknown label): treated as the model raising.
* the store is down (:class:`StoreUnavailable`): retried with capped exponential back-off, without
  committing and without taking more records (backpressure); the consumer stays in its group by
  polling with every partition paused. Nothing is lost; the loop resumes when the store is back.
* the store refuses a row (a data error, not an outage): the batch is written in halves and only
  the refused posts are dead-lettered (stage ``store``).
* Kafka refuses the produced batch: re-produced with back-off, not committed until it is accepted,
  each time by a new producer: a failed one can stay failed for good (after a broker restart an
  idempotent producer's id is unknown to the new broker, and every later send is aborted).
* a rebalance took our partitions during the batch: the commit is refused, the new owner re-reads
  the batch (its posts are upserted again, harmlessly).
* SIGINT/SIGTERM (``stop`` set): the current batch is finished and committed, then the loop returns.
  A stop during a store outage returns without committing: the batch is re-delivered later.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar, get_args

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, IllegalGenerationError, RebalanceInProgressError
from kafka.structs import TopicPartition
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError

from ingest import metrics
from ingest.consuming import AckedProducer, StopRequested, back_off, dead_letter, offsets_to_commit, poll_batch
from ingest.kafka_clients import make_consumer, make_producer
from ingest.validate import Accepted, ValidationOptions, validate_message
from monitor.config import KafkaSettings, Settings
from monitor.enrich import Enrichment, enrich
from monitor.schemas import DeadLetter, RawPost, ScoredPost, Scores, utcnow
from monitor.store.db import StoreUnavailable
from monitor.store.posts import upsert_posts

log = logging.getLogger(__name__)

LABELS = get_args(ScoredPost.model_fields["label"].annotation)  # the contract's labels
T = TypeVar("T")
R = TypeVar("R")


class Prediction(Protocol):
    label: str
    scores: Mapping[str, float]
    score: float


class Scorer(Protocol):
    """What the loop needs from a model; :class:`models.SentimentClassifier` is one."""

    @property
    def version(self) -> str: ...

    def predict(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> Sequence[Prediction]: ...


class ScorerOptions(BaseModel):
    """Typed options of one loop (from :class:`~monitor.config.Settings` via :meth:`from_settings`)."""

    raw_topic: str = "posts.raw"
    scored_topic: str = "posts.scored"
    deadletter_topic: str = "posts.deadletter"
    group_id: str = "scorers"
    batch_size: int = Field(256, ge=1)
    poll_timeout_ms: int = Field(500, ge=1)
    model_retries: int = Field(2, ge=0)
    store_retry_max_s: float = Field(30.0, gt=0)
    retry_initial_s: float = Field(0.5, gt=0)
    validation: ValidationOptions = ValidationOptions()
    max_message_bytes: int = Field(1_048_576, ge=1024)
    max_idle_s: float | None = Field(None, gt=0, description="return after this long with no records (once assigned)")
    summary_every_s: float = Field(30.0, gt=0)
    max_poll_interval_ms: int = Field(300_000, ge=1000)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> "ScorerOptions":
        s, k = settings.scorer, settings.kafka
        values = dict(raw_topic=k.topics.raw, scored_topic=k.topics.scored, deadletter_topic=k.topics.deadletter,
                      group_id=s.group_id, batch_size=s.batch_size, poll_timeout_ms=s.poll_timeout_ms,
                      model_retries=s.model_retries, store_retry_max_s=s.store_retry_max_s,
                      validation=ValidationOptions.from_settings(s),
                      max_message_bytes=k.max_request_bytes)
        return cls.model_validate({**values, **overrides})


@dataclass
class Item:
    """A record that passed validation, on its way through the batch."""

    record: ConsumerRecord
    post: RawPost
    notes: list[str]
    enrichment: Enrichment | None = None
    scored: ScoredPost | None = None


@dataclass(frozen=True)
class Failed:
    error: str


@dataclass
class LoopStats:
    consumed: int = 0
    scored: int = 0
    deadlettered: int = 0
    batches: int = 0
    first_batch_at: float | None = None  # time.monotonic() when the first batch began
    last_batch_at: float | None = None  # ... and when the last one was committed

    @property
    def active_s(self) -> float:
        """First batch to last commit: the path's own time, without group join and idle waits."""
        return (self.last_batch_at or 0.0) - (self.first_batch_at or 0.0)


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def isolate(fn: Callable[[list[T]], Sequence[R]], items: list[T], tries_alone: int) -> list[R | Failed]:
    """``fn`` over ``items``; when it raises, over halves, down to single items tried ``tries_alone`` times.

    Returns one result or :class:`Failed` per item, in order, so that one bad item costs only itself.
    """
    if not items:
        return []
    try:
        out = list(fn(items))
        if len(out) != len(items):
            raise ValueError(f"got {len(out)} results for {len(items)} inputs")
        return out
    except Exception as exc:
        if len(items) > 1:
            mid = len(items) // 2
            return isolate(fn, items[:mid], tries_alone) + isolate(fn, items[mid:], tries_alone)
        error: Exception = exc
    for _ in range(tries_alone - 1):
        try:
            out = list(fn(items))
            if len(out) == 1:
                return out
        except Exception as again:
            error = again
    log.warning("giving up on one item after %d tries: %s", max(1, tries_alone), _error_line(error))
    return [Failed(_error_line(error))]


# -- stages: pure functions of a batch, composed by ScorerLoop.process ---------------------------------

def preprocess(records: Sequence[ConsumerRecord], received_at: datetime, options: ScorerOptions
               ) -> tuple[list[Item], list[DeadLetter]]:
    """Validate and enrich: the items to score, and the dead letters of what was refused."""
    items: list[Item] = []
    dead: list[DeadLetter] = []
    for record in records:
        outcome = validate_message(record.value, received_at, options.validation)
        if isinstance(outcome, Accepted):
            items.append(Item(record, outcome.post, outcome.notes))
        else:
            dead.append(dead_letter(record, outcome.stage, outcome.reason, options.max_message_bytes))
    enriched = isolate(lambda batch: enrich([i.post for i in batch]), items, 1)
    kept = []
    for item, result in zip(items, enriched):
        if isinstance(result, Failed):
            dead.append(dead_letter(item.record, "validate", f"enrichment failed: {result.error}",
                                    options.max_message_bytes))
        else:
            item.enrichment = result
            kept.append(item)
    return kept, dead


def _checked(predictions: Sequence[Prediction]) -> list[Prediction]:
    """A model that returns nonsense fails like one that raises (and a NaN would break the store)."""
    for p in predictions:
        values = [float(p.scores[k]) for k in LABELS]
        if p.label not in LABELS or not all(math.isfinite(v) for v in [*values, p.score]):
            raise ValueError(f"model returned an invalid prediction (label {p.label!r}, scores {values})")
    return list(predictions)


def score(scorer: Scorer, items: list[Item], received_at: datetime, options: ScorerOptions
          ) -> tuple[list[Item], list[DeadLetter]]:
    """Score the items (setting ``item.scored``), isolating posts that make the model fail."""
    def predict(batch: list[Item]) -> list[Prediction]:
        return _checked(scorer.predict([i.post.text for i in batch], [i.enrichment.lang for i in batch]))

    predictions = isolate(predict, items, options.model_retries)
    scored_at = utcnow()
    version = scorer.version
    kept, dead = [], []
    for item, pred in zip(items, predictions):
        if isinstance(pred, Failed):
            dead.append(dead_letter(item.record, "score", pred.error, options.max_message_bytes))
        else:
            item.scored = _scored_post(item, pred, version, received_at, scored_at)
            kept.append(item)
    return kept, dead


def _scored_post(item: Item, pred: Prediction, version: str, received_at: datetime, scored_at: datetime) -> ScoredPost:
    post, e = item.post, item.enrichment
    assert e is not None and post.created_at is not None
    scores = Scores(negative=float(pred.scores["negative"]), neutral=float(pred.scores["neutral"]),
                    positive=float(pred.scores["positive"]))
    return ScoredPost(
        id=post.id, text=post.text, source=post.source, created_at=post.created_at, received_at=received_at,
        lang=e.lang, lang_declared=e.lang_declared, lang_confidence=e.lang_confidence, author=post.author,
        url=post.url, tickers=list(e.tickers), meta=post.meta, label=pred.label, scores=scores,
        score=float(pred.score), model_version=version, scored_at=scored_at, dedup_key=e.dedup_key,
        notes=[*item.notes, *e.notes],
    )


def _is_data_error(exc: StoreUnavailable) -> bool:
    """The database refused these rows (a value too long, a constraint): retrying will not help."""
    return isinstance(exc.__cause__, (DataError, IntegrityError))


def store_isolating(engine: Engine, items: list[Item]) -> list[tuple[Item, str]]:
    """Upsert the items' posts; those the database refuses come back with the reason, the rest are stored.

    An outage (anything but a data error) propagates, for the caller to retry the whole batch; the
    halves already written are simply written again (upserts).
    """
    try:
        upsert_posts(engine, [i.scored for i in items if i.scored is not None])
        return []
    except StoreUnavailable as exc:
        if not _is_data_error(exc):
            raise
        if len(items) == 1:
            return [(items[0], _error_line(exc.__cause__ or exc))]
        mid = len(items) // 2
        return store_isolating(engine, items[:mid]) + store_isolating(engine, items[mid:])


def _producing_failed() -> None:
    metrics.PRODUCE_RETRIES.inc()
    metrics.BACKING_OFF.labels("kafka").set(1)


def _producing_ok() -> None:
    metrics.BACKING_OFF.labels("kafka").set(0)


# -- the loop ------------------------------------------------------------------------------------------

class _Rebalances(ConsumerRebalanceListener):
    def __init__(self, loop: "ScorerLoop") -> None:
        self.loop = loop

    def on_partitions_revoked(self, revoked) -> None:
        if revoked:
            log.info("partitions revoked: %s", _partitions(revoked))

    def on_partitions_assigned(self, assigned) -> None:
        log.info("assigned partitions: %s", _partitions(assigned) or "none")
        self.loop.joined = True
        self.loop.last_activity = time.monotonic()


def _partitions(tps) -> str:
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t}{sorted(p)}" for t, p in sorted(by_topic.items()))


class ScorerLoop:
    """One consumer-group member: :meth:`run` until ``stop`` is set (or idle for ``max_idle_s``).

    The loop subscribes the consumer itself, so that it sees every rebalance (idle time counts
    from the group join, not from start).
    """

    def __init__(self, consumer: KafkaConsumer, producer: KafkaProducer, engine: Engine, scorer: Scorer,
                 options: ScorerOptions, stop: threading.Event | None = None,
                 new_producer: Callable[[], KafkaProducer] | None = None) -> None:
        self.consumer = consumer
        self.out = AckedProducer(producer, new_producer, on_retry=_producing_failed, on_ok=_producing_ok)
        self.engine = engine
        self.scorer = scorer
        self.options = options
        self.stop = stop or threading.Event()
        self.stats = LoopStats()
        self.joined = False
        self.last_activity = time.monotonic()
        self.lag: dict[TopicPartition, int] = {}
        consumer.subscribe([options.raw_topic], listener=_Rebalances(self))

    def run(self) -> LoopStats:
        started = last_summary = time.monotonic()
        at_summary = LoopStats()
        log.info("scoring %s as group %r with model %s", self.options.raw_topic, self.options.group_id,
                 self.scorer.version)
        while not self.stop.is_set():
            records = self.poll_batch()
            if records:
                try:
                    self.process(records)
                except StopRequested:
                    log.info("stopped during a retry: the batch stays uncommitted and will be re-delivered")
                    break
            elif self._idle_too_long():
                log.info("no records for %.1f s: stopping", self.options.max_idle_s)
                break
            now = time.monotonic()
            if now - last_summary >= self.options.summary_every_s:
                self._summary(at_summary, now - last_summary)
                at_summary, last_summary = LoopStats(**vars(self.stats)), now
        log.info("scorer done after %.1f s: %d consumed, %d scored, %d dead-lettered in %d batches",
                 time.monotonic() - started, self.stats.consumed, self.stats.scored, self.stats.deadlettered,
                 self.stats.batches)
        return self.stats

    def poll_batch(self) -> list[ConsumerRecord]:
        records = poll_batch(self.consumer, self.options.batch_size, self.options.poll_timeout_ms, self.stop)
        if records:
            self.last_activity = time.monotonic()
        self._update_lag()
        return records

    def process(self, records: list[ConsumerRecord]) -> tuple[list[ScoredPost], list[DeadLetter]]:
        """preprocess -> score -> store -> produce -> commit, for one polled batch."""
        t0, begun = time.perf_counter(), time.monotonic()
        received_at = utcnow()
        with metrics.STAGE_SECONDS.labels("preprocess").time():
            items, dead = preprocess(records, received_at, self.options)
        with metrics.STAGE_SECONDS.labels("score").time():
            items, refused = score(self.scorer, items, received_at, self.options)
        dead += refused
        with metrics.STAGE_SECONDS.labels("store").time():
            items, refused = self.store(items)
        dead += refused
        scored = [i.scored for i in items if i.scored is not None]
        with metrics.STAGE_SECONDS.labels("produce").time():
            self.produce(scored, dead)
        with metrics.STAGE_SECONDS.labels("commit").time():
            self.commit(records)
        self._count(len(records), scored, dead, time.perf_counter() - t0)
        self.stats.first_batch_at = self.stats.first_batch_at or begun
        self.stats.last_batch_at = time.monotonic()
        return scored, dead

    def store(self, items: list[Item]) -> tuple[list[Item], list[DeadLetter]]:
        """Store the batch, waiting out outages; rows the database refuses become dead letters."""
        delay = self.options.retry_initial_s
        while True:
            try:
                refused = store_isolating(self.engine, items)
                break
            except StoreUnavailable as exc:
                metrics.STORE_RETRIES.inc()
                metrics.BACKING_OFF.labels("store").set(1)
                log.warning("store unavailable (%s); retrying in %.1f s, nothing committed", exc, delay)
                self._back_off(delay)
                delay = min(delay * 2, self.options.store_retry_max_s)
        metrics.BACKING_OFF.labels("store").set(0)
        if not refused:
            return items, []
        gone = {id(item) for item, _ in refused}
        dead = [dead_letter(item.record, "store", reason, self.options.max_message_bytes) for item, reason in refused]
        return [i for i in items if id(i) not in gone], dead

    def produce(self, scored: list[ScoredPost], dead: list[DeadLetter]) -> None:
        """Scored posts keyed by language, dead letters keyed by their original key; all acknowledged."""
        messages = [(self.options.scored_topic, p.lang.encode(), p.model_dump_json().encode()) for p in scored]
        messages += [(self.options.deadletter_topic, base64.b64decode(d.key_b64) if d.key_b64 else None,
                      d.model_dump_json().encode()) for d in dead]
        self.out.send_all(messages, self._back_off, self.options.retry_initial_s, self.options.store_retry_max_s)

    def commit(self, records: list[ConsumerRecord]) -> None:
        try:
            self.consumer.commit(offsets_to_commit(records))
            metrics.LAST_COMMIT.set_to_current_time()
        except (CommitFailedError, IllegalGenerationError, RebalanceInProgressError) as exc:
            metrics.COMMIT_FAILURES.inc()
            log.warning("commit refused after a rebalance (%s): the new owner re-reads the batch", _error_line(exc))

    # -- helpers ----------------------------------------------------------------------------------

    def _back_off(self, seconds: float) -> None:
        back_off(self.consumer, seconds, self.stop)

    def _idle_too_long(self) -> bool:
        limit = self.options.max_idle_s
        return limit is not None and self.joined and time.monotonic() - self.last_activity >= limit

    def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)  # ListOffsets(latest) is wrong on Tansu: use the fetch's
            if high is not None:
                self.lag[tp] = max(0, high - self.consumer.position(tp))
                metrics.LAG.labels(tp.topic, str(tp.partition)).set(self.lag[tp])

    def _count(self, consumed: int, scored: list[ScoredPost], dead: list[DeadLetter], seconds: float) -> None:
        self.stats.consumed += consumed
        self.stats.scored += len(scored)
        self.stats.deadlettered += len(dead)
        self.stats.batches += 1
        metrics.CONSUMED.inc(consumed)
        metrics.SCORED.inc(len(scored))
        for d in dead:
            metrics.DEADLETTERED.labels(d.stage).inc()
        metrics.BATCH_SECONDS.observe(seconds)
        log.debug("batch: %d consumed, %d scored, %d dead-lettered in %.0f ms", consumed, len(scored), len(dead),
                  seconds * 1000)

    def _summary(self, before: LoopStats, seconds: float) -> None:
        n = self.stats.consumed - before.consumed
        lag = sum(self.lag.get(tp, 0) for tp in self.consumer.assignment())
        log.info("last %.0f s: %d consumed (%.0f/s), %d scored, %d dead-lettered; lag %d", seconds, n, n / seconds,
                 self.stats.scored - before.scored, self.stats.deadlettered - before.deadlettered, lag)


def run_scorer(kafka: KafkaSettings, engine: Engine, scorer: Scorer, options: ScorerOptions,
               stop: threading.Event | None = None) -> LoopStats:
    """Join the group and score until ``stop`` is set (or idle): for a thread, a subprocess or the CLI.

    ``kafka.bootstrap`` must be resolved (:func:`ingest.kafka_clients.kafka_for`) and the topics exist.
    """
    producer = make_producer(kafka)
    loop: ScorerLoop | None = None
    try:
        consumer = make_consumer(kafka, options.group_id, (), max_poll_records=options.batch_size,
                                 max_poll_interval_ms=options.max_poll_interval_ms)
        try:
            loop = ScorerLoop(consumer, producer, engine, scorer, options, stop,
                              new_producer=lambda: make_producer(kafka))
            return loop.run()
        finally:
            consumer.close(autocommit=False)  # every processed batch is committed already
    finally:
        (loop.out.producer if loop is not None else producer).close()
