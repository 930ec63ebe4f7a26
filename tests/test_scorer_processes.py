"""`monitor score` as real processes: SIGKILL and restart, SIGTERM, and two members sharing one group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kafka_helpers import committed, fresh_topics, produce, read_topic
from monitor.schemas import ScoredPost
from monitor.store.db import open_store
from monitor.store.posts import count_posts, get_posts

pytestmark = pytest.mark.faults

MONITOR = str(Path(sys.executable).parent / "monitor")


class Scorer:
    """A `monitor score` subprocess, its stderr collected line by line."""

    def __init__(self, kafka, db_url: str, model_dir: Path, *, batch_size: int = 10, max_idle_s: float = 2.0) -> None:
        env = {**os.environ, "MONITOR_KAFKA_BOOTSTRAP": kafka.bootstrap, "MONITOR_DATABASE_URL": db_url,
               "MONITOR_SCORER_MODEL_PATH": str(model_dir), "MONITOR_KAFKA_TOPICS": kafka.topics.model_dump_json(),
               "MONITOR_KAFKA_PARTITIONS": str(kafka.partitions), "MONITOR_SCORER_GROUP_ID": f"g.{kafka.topics.raw}",
               "MONITOR_KAFKA_SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
               "MONITOR_KAFKA_HEARTBEAT_INTERVAL_MS": str(kafka.heartbeat_interval_ms),
               "OMP_NUM_THREADS": "1"}
        cmd = [MONITOR, "score", "--device", "cpu", "--batch-size", str(batch_size), "--max-idle-s", str(max_idle_s)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def assignments(self) -> list[str]:
        return [line.split("assigned partitions: ", 1)[1] for line in self.lines if "assigned partitions: " in line]

    def finish(self, timeout_s: float = 60.0) -> dict:
        out, _ = self.proc.communicate(timeout=timeout_s)
        self._reader.join(timeout=5)
        assert self.proc.returncode == 0, "\n".join(self.lines[-20:])
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _wait(condition, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def posts(n: int) -> list[dict]:
    return [{"id": f"k{i}", "text": f"Acme ($ACME) quarterly revenue up {i}%", "lang": "en"} for i in range(n)]


def test_sigkill_mid_stream_then_restart_loses_nothing_and_duplicates_nothing(broker, tmp_path, tiny_model_dir):
    kafka = fresh_topics(broker.bootstrap)
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(db_url)
    n = 1500
    produce(kafka.bootstrap, kafka.topics.raw, posts(n), key_by_id=True)
    first = Scorer(kafka, db_url, tiny_model_dir)
    try:
        assert _wait(lambda: count_posts(engine) > 0), "\n".join(first.lines[-20:])
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
    finally:
        first.kill()
    at_kill = count_posts(engine)
    assert at_kill < n, "the scorer finished before it could be killed mid-stream"

    stats = Scorer(kafka, db_url, tiny_model_dir, batch_size=100).finish()

    ids = [p["id"] for p in posts(n)]
    assert count_posts(engine) == n
    assert sorted(p.id for p in get_posts(engine, ids)) == sorted(ids)
    # at-least-once on the topic: every post scored, the killed member's uncommitted batch possibly twice
    on_topic = [ScoredPost.model_validate_json(r.value).id for r in read_topic(kafka.bootstrap, kafka.topics.scored)]
    assert set(on_topic) == set(ids)
    assert stats["consumed"] <= n - at_kill + 10 * kafka.partitions  # resumed from the commits, not from scratch
    engine.dispose()


def test_sigterm_finishes_the_batch_commits_and_exits_0(broker, tmp_path, tiny_model_dir):
    kafka = fresh_topics(broker.bootstrap)
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(db_url)
    produce(kafka.bootstrap, kafka.topics.raw, posts(1500), key_by_id=True)
    scorer = Scorer(kafka, db_url, tiny_model_dir, max_idle_s=30)
    try:
        assert _wait(lambda: count_posts(engine) > 0), "\n".join(scorer.lines[-20:])
        scorer.proc.send_signal(signal.SIGTERM)
        stats = scorer.finish()
    finally:
        scorer.kill()
    assert 0 < stats["consumed"] < 1500
    # every consumed record was stored and committed before the exit
    offsets = committed(kafka.bootstrap, f"g.{kafka.topics.raw}", kafka.topics.raw, kafka.partitions)
    assert sum(v or 0 for v in offsets.values()) == stats["consumed"] == count_posts(engine)
    engine.dispose()


def test_two_scorers_share_the_partitions_and_score_every_post_once(broker, tmp_path, tiny_model_dir):
    # SQLite: two processes writing one file is the harder case (PostgreSQL runs the in-process tests)
    kafka = fresh_topics(broker.bootstrap, partitions=4)
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(db_url)
    members = [Scorer(kafka, db_url, tiny_model_dir, max_idle_s=3) for _ in range(2)]
    try:
        # wait until the group has settled with two partitions each, then send the posts
        def settled() -> bool:
            last = [m.assignments()[-1] if m.assignments() else "" for m in members]
            return all(a.count(",") == 1 for a in last)

        assert _wait(settled), [m.lines[-5:] for m in members]
        n = 800
        produce(kafka.bootstrap, kafka.topics.raw, posts(n), key_by_id=True)
        stats = [m.finish() for m in members]
    finally:
        for m in members:
            m.kill()
    assert all(s["scored"] > 0 for s in stats), stats
    assert sum(s["scored"] for s in stats) == n  # no post scored by both
    assert count_posts(engine) == n
    assert len(read_topic(kafka.bootstrap, kafka.topics.scored)) == n
    engine.dispose()
