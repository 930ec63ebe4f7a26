"""``monitor aggregate`` against the embedded broker and a real store: commits, dead letters, crashes, two members."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from ingest.aggregate_consumer import AggregateLoop, run_aggregator
from ingest.kafka_clients import make_consumer, make_producer
from ingest.synthetic import FeedConfig, generate, scored_stand_in
from kafka_helpers import committed, fresh_topics, produce, read_topic
from monitor.aggregate import backfill
from monitor.config import AggregatorSettings, Settings
from monitor.schemas import DeadLetter
from monitor.store.aggregate_tables import aggregates
from monitor.store.db import open_store
from monitor.store.posts import upsert_posts

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def kafka(broker):
    return fresh_topics(broker.bootstrap, partitions=2)


@pytest.fixture
def engine(store_url):
    eng = open_store(store_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def scored():
    config = FeedConfig(seed=4, start=T0, duration_s=240, rate=10, duplicate_share=0.1)
    return list(scored_stand_in(generate(config), seed=4))


def settings(kafka) -> Settings:
    return Settings(kafka=kafka, aggregator=AggregatorSettings(
        group_id=f"aggregators.{kafka.topics.scored}", windows_s=[60, 900], flush_interval_s=0.2,
        poll_timeout_ms=200, batch_size=500))


def publish(kafka, engine, posts) -> None:
    """What the scorer does: store, then produce keyed by language."""
    upsert_posts(engine, posts)
    producer = make_producer(kafka)
    for p in posts:
        producer.send(kafka.topics.scored, key=p.lang.encode(), value=p.model_dump_json().encode())
    producer.flush()
    producer.close()


def snapshot(engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(select(aggregates).order_by(aggregates.c.window_s, aggregates.c.series_kind,
                                                        aggregates.c.series_key, aggregates.c.window_start)).all()
    return [tuple(v for k, v in r._mapping.items() if k != "updated_at") for r in rows]


def committed_total(kafka, s: Settings) -> int:
    return sum(v or 0 for v in committed(kafka.bootstrap, s.aggregator.group_id, kafka.topics.scored, 2).values())


def test_aggregates_commits_and_dead_letters_bad_messages(kafka, engine, scored):
    s = settings(kafka)
    publish(kafka, engine, scored)
    bad = [b"not json", b'{"id": "x", "text": "no created_at", "source": "s", "lang": "en", "label": "neutral", '
           b'"score": 0, "dedup_key": "k"}', b'{"id": "y", "created_at": "2026-01-05T10:00:00Z", "lang": "en", '
           b'"source": "s", "label": "furious", "score": 0, "dedup_key": "k"}', None]
    produce(kafka.bootstrap, kafka.topics.scored, bad)
    stats = run_aggregator(kafka, engine, s, max_idle_s=1.5)
    assert (stats.consumed, stats.aggregated, stats.deadlettered) == (len(scored) + 4, len(scored), 4)
    assert committed_total(kafka, s) == len(scored) + 4
    dead = [DeadLetter.model_validate_json(r.value) for r in read_topic(kafka.bootstrap, kafka.topics.deadletter)]
    assert len(dead) == 4 and all(d.stage == "validate" and "not a scored post" in d.error for d in dead)
    live = snapshot(engine)
    backfill(engine, s.aggregator, since=T0)
    assert snapshot(engine) == live and live


def test_a_crash_before_the_commit_redelivers_without_double_counting(kafka, engine, scored):
    s = settings(kafka)
    publish(kafka, engine, scored)
    consumer = make_consumer(kafka, s.aggregator.group_id, (), max_poll_records=500)
    producer = make_producer(kafka)
    loop = AggregateLoop(consumer, producer, engine, s)
    taken = 0
    while taken < len(scored) // 2:  # written to the store, never committed: then the process dies
        records = loop.poll_batch()
        loop.add(records)
        loop.aggregator.flush()
        taken += len(records)
    consumer.close(autocommit=False)
    producer.close()
    assert committed_total(kafka, s) == 0
    stats = run_aggregator(kafka, engine, s, max_idle_s=1.5)
    assert stats.consumed == len(scored)  # everything again, from the last commit
    live = snapshot(engine)
    backfill(engine, s.aggregator, since=T0)
    assert snapshot(engine) == live


def test_two_members_share_the_languages_and_agree_with_a_backfill(kafka, engine, scored):
    s = settings(kafka)
    stop = threading.Event()
    results = []
    members = [threading.Thread(target=lambda: results.append(run_aggregator(kafka, engine, s, stop, max_idle_s=3.0)))
               for _ in range(2)]
    for m in members:
        m.start()
    publish(kafka, engine, scored)
    for m in members:
        m.join(timeout=120)
    assert not any(m.is_alive() for m in members)
    assert sum(r.consumed for r in results) >= len(scored)  # a rebalance may hand a batch over
    assert committed_total(kafka, s) == len(scored)
    live = snapshot(engine)
    backfill(engine, s.aggregator, since=T0)
    assert snapshot(engine) == live


def test_stop_writes_the_pending_batch_and_commits(kafka, engine, scored):
    s = settings(kafka)
    s = s.model_copy(update={"aggregator": s.aggregator.model_copy(update={"flush_interval_s": 600.0})})
    publish(kafka, engine, scored)
    stop = threading.Event()
    consumer = make_consumer(kafka, s.aggregator.group_id, (), max_poll_records=500)
    producer = make_producer(kafka)
    loop = AggregateLoop(consumer, producer, engine, s, stop)
    worker = threading.Thread(target=loop.run)
    worker.start()
    deadline = time.monotonic() + 60
    while loop.stats.aggregated < len(scored) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert snapshot(engine) == [] and committed_total(kafka, s) == 0  # counted, not yet written
    stop.set()  # what SIGINT/SIGTERM do
    worker.join(timeout=60)
    consumer.close(autocommit=False)
    producer.close()
    assert not worker.is_alive()
    assert committed_total(kafka, s) == len(scored)
    live = snapshot(engine)
    backfill(engine, s.aggregator, since=T0)
    assert snapshot(engine) == live and live
