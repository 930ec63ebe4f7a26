"""Faults that hit processes: kill -9 of a scorer and of the embedded broker under the demo's supervisor,
kill -9 of an aggregator mid-stream. Real processes, real broker, real store; each ends with the ledger."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from fault_helpers import (BAD_MESSAGES, Account, MonitorProcess, account, assert_nothing_lost, dead_letters,
                           monitor_env, raw_posts, record, topic_copies, wait_for)
from ingest.broker import EmbeddedBroker, free_port
from ingest.kafka_clients import make_producer
from ingest.synthetic import FeedConfig, generate, scored_stand_in
from kafka_helpers import committed, fresh_topics, produce
from monitor.aggregate import backfill
from monitor.cli.supervisor import ChildSpec, Supervisor
from monitor.config import AggregatorSettings, KafkaSettings, TopicSettings
from monitor.store.aggregate_tables import aggregates
from monitor.store.db import open_store
from monitor.store.posts import count_posts, upsert_posts

pytestmark = pytest.mark.faults


def _committed_total(kafka: KafkaSettings, group: str, topic: str) -> int:
    return sum(v or 0 for v in committed(kafka.bootstrap, group, topic, kafka.partitions).values())


class _Watch:
    """Runs ``Supervisor.check`` as ``monitor demo`` does, keeping the events it reports."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup, self.events, self.stop = sup, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            self.events.extend(self.sup.check())

    def saw(self, text: str) -> bool:
        return any(text in e for e in self.events)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def test_supervisor_restarts_a_killed_scorer_and_a_killed_broker_and_nothing_is_lost(tmp_path, tiny_model_dir):
    tag = uuid.uuid4().hex[:8]
    # 4 partitions: the partition count Tansu gives a topic a client names before it is re-created
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}", partitions=4, session_timeout_ms=3000,
                          heartbeat_interval_ms=500,
                          topics=TopicSettings(raw=f"raw.{tag}", scored=f"scored.{tag}", deadletter=f"dead.{tag}",
                                               alerts=f"alerts.{tag}"))
    group = f"g.{tag}"
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(db_url)
    env = monitor_env(kafka, db_url, tmp_path / "data", MONITOR_SCORER_MODEL_PATH=str(tiny_model_dir),
                      MONITOR_SCORER_GROUP_ID=group, MONITOR_SCORER_STORE_RETRY_MAX_S="2")
    sup = Supervisor(tmp_path / "logs", env)
    port = kafka.bootstrap.split(":")[1]
    sup.start(ChildSpec("broker", ["broker", "--port", port], ready_text="embedded broker ready"))
    sup.start(ChildSpec("scorer", ["score", "--device", "cpu", "--batch-size", "20"], ready_text="as group"))
    watch = _Watch(sup)
    log = lambda: (tmp_path / "logs" / "scorer.log").read_text(errors="replace")[-3000:]  # noqa: E731
    try:
        first = raw_posts(0, 600)
        produce(kafka.bootstrap, kafka.topics.raw, first + BAD_MESSAGES, key_by_id=True)
        wait_for(lambda: count_posts(engine) >= 100, "the scorer to store its first batches", context=log)
        os.kill(sup.children["scorer"].process.pid, signal.SIGKILL)
        wait_for(lambda: watch.saw("scorer restarted"), "the supervisor to restart the scorer", context=lambda: str(watch.events))
        wait_for(lambda: _committed_total(kafka, group, kafka.topics.raw) == len(first) + len(BAD_MESSAGES),
                 "the restarted scorer to commit everything", context=log)
        scored_1, dead_1 = topic_copies(kafka)  # the broker keeps them in memory: read them before it dies

        os.kill(sup.children["broker"].process.pid, signal.SIGKILL)  # Tansu follows its parent (PR_SET_PDEATHSIG)
        wait_for(lambda: watch.saw("broker restarted"), "the supervisor to restart the broker", context=lambda: str(watch.events))
        second = raw_posts(600, 400)
        wait_for(lambda: sup.children["broker"].log_path.read_text().count("embedded broker ready") == 2,
                 "the restarted broker to be ready", context=lambda: str(watch.events))
        produce(kafka.bootstrap, kafka.topics.raw, second + BAD_MESSAGES, key_by_id=True)
        wait_for(lambda: _committed_total(kafka, group, kafka.topics.raw) == len(second) + len(BAD_MESSAGES),
                 "the scorer to score and commit what was sent to the restarted broker", context=log)
        scored_2, dead_2 = topic_copies(kafka)
    finally:
        watch.close()
        sup.stop(order=["scorer", "broker"])
    row = account("kill -9 scorer, then kill -9 broker (supervised)",
                  "supervisor restarted each (1 s back-off); scorer resumed from its commits, reconnected to the "
                  "new broker with a new producer; the broker's in-memory topics and offsets were lost with it",
                  engine, [p["id"] for p in first + second], 2 * len(BAD_MESSAGES), scored_1 + scored_2, dead_1 + dead_2)
    assert_nothing_lost(row)
    assert set(scored_1 + scored_2) == {p["id"] for p in first + second}
    engine.dispose()


T0 = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)


def _aggregate_rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(select(aggregates).order_by(*aggregates.primary_key.columns)).all()
    return [tuple(v for k, v in r._mapping.items() if k != "updated_at") for r in rows]


def _counted(engine, window_s: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(aggregates.c.count), 0)).where(
            aggregates.c.window_s == window_s, aggregates.c.series_kind == "all")).scalar_one())


def test_kill_9_of_the_aggregator_mid_stream_neither_loses_nor_double_counts(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(db_url)
    with EmbeddedBroker() as broker:
        kafka = fresh_topics(broker.bootstrap, partitions=2)
        group = f"aggregators.{kafka.topics.scored}"
        scored = list(scored_stand_in(generate(FeedConfig(seed=11, start=T0, duration_s=900, rate=8)), seed=11))
        upsert_posts(engine, scored)  # what the scorer does before it produces
        producer = make_producer(kafka)
        for p in scored:
            producer.send(kafka.topics.scored, key=p.lang.encode(), value=p.model_dump_json().encode())
        producer.flush()
        producer.close()
        produce(kafka.bootstrap, kafka.topics.scored, [b"not a scored post"])
        env = monitor_env(kafka, db_url, tmp_path / "data", MONITOR_AGGREGATOR_GROUP_ID=group,
                          MONITOR_AGGREGATOR_WINDOWS_S="[60, 900]", MONITOR_AGGREGATOR_BATCH_SIZE="100",
                          MONITOR_AGGREGATOR_FLUSH_INTERVAL_S="0.05", MONITOR_AGGREGATOR_POLL_TIMEOUT_MS="100")
        first = MonitorProcess(["aggregate"], env)
        try:
            wait_for(lambda: 0 < _committed_total(kafka, group, kafka.topics.scored) < len(scored) // 2,
                     "the aggregator to commit part of the stream", every_s=0.02, context=first.tail)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait()
        finally:
            first.kill()
        at_kill = _committed_total(kafka, group, kafka.topics.scored)
        assert 0 < at_kill < len(scored), "the aggregator was not killed mid-stream"
        stats = MonitorProcess(["aggregate", "--max-idle-s", "2"], env).finish()
        assert _committed_total(kafka, group, kafka.topics.scored) == len(scored) + 1
        dead = dead_letters(kafka)
    assert stats["consumed"] >= len(scored) + 1 - at_kill  # resumed from the last commit
    counted = _counted(engine, 60)  # every post of the stream, once, in the 1-minute windows
    live = _aggregate_rows(engine)
    backfill(engine, AggregatorSettings(windows_s=[60, 900]), since=T0)
    assert _aggregate_rows(engine) == live, "the live aggregates after kill -9 differ from a backfill of the store"
    dead_offsets = {(d.partition, d.offset) for d in dead}
    row = record(Account(
        "kill -9 aggregator mid-stream",
        f"killed after {at_kill} of {len(scored) + 1} records were committed; the restart re-read from the commit; "
        "windows are recomputed from the store, so the re-read changes no count (equal to a backfill)",
        produced=len(scored) + 1, stored=counted, dead_lettered=len(dead_offsets),
        lost=max(0, len(scored) - counted) + (1 - len(dead_offsets)), duplicated=max(0, counted - len(scored)),
        resent_on_topics=len(dead) - len(dead_offsets)))
    assert_nothing_lost(row)
    engine.dispose()
