"""Faults that hit the store or the model: PostgreSQL unreachable for 30 s (a real TCP proxy cut and
restored), the store's disk full (a real 2 MB tmpfs), a read-only store path, posts that crash the model.
Each ends with the ledger: produced against stored and dead-lettered."""

from __future__ import annotations

import errno
import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from fault_helpers import (BAD_MESSAGES, MONITOR, MonitorProcess, TcpProxy, account, assert_nothing_lost, metric,
                           monitor_env, raw_posts, topic_copies, wait_for)
from ingest.broker import free_port
from ingest.scorer import ScorerOptions, run_scorer
from kafka_helpers import committed, fresh_topics, produce
from monitor.config import Settings
from monitor.store.db import open_store
from monitor.store.posts import count_posts

pytestmark = pytest.mark.faults
OUTAGE_S = 30.0


def _committed_total(kafka, group: str) -> int:
    return sum(v or 0 for v in committed(kafka.bootstrap, group, kafka.topics.raw, kafka.partitions).values())


@pytest.mark.postgres
def test_postgres_unreachable_for_30_s_pauses_the_scorer_uncommitted_then_it_resumes(broker, pg_url, tmp_path,
                                                                                      tiny_model_dir):
    kafka = fresh_topics(broker.bootstrap)
    group = f"g.{kafka.topics.raw}"
    proxy = TcpProxy(("127.0.0.1", 5432))
    engine = open_store(pg_url)  # the test's own view, not through the proxy
    metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
    env = monitor_env(kafka, pg_url.replace(":5432/", f":{proxy.port}/"), tmp_path / "data",
                      MONITOR_SCORER_MODEL_PATH=str(tiny_model_dir), MONITOR_SCORER_GROUP_ID=group,
                      MONITOR_SCORER_STORE_RETRY_MAX_S="4", MONITOR_METRICS_PORT=metrics_url.split(":")[2].split("/")[0])
    scorer = MonitorProcess(["score", "--device", "cpu", "--batch-size", "20"], env)
    before, during = raw_posts(0, 200), raw_posts(200, 300)
    try:
        produce(kafka.bootstrap, kafka.topics.raw, before + BAD_MESSAGES, key_by_id=True)
        wait_for(lambda: _committed_total(kafka, group) == len(before) + len(BAD_MESSAGES),
                 "the scorer to store and commit the first posts", context=scorer.tail)
        consumed_at_cut = metric(metrics_url, "monitor_scorer_consumed_total")
        retries_at_cut = metric(metrics_url, "monitor_scorer_store_retries_total") or 0.0
        proxy.cut()
        cut_at = time.monotonic()
        produce(kafka.bootstrap, kafka.topics.raw, during, key_by_id=True)
        while time.monotonic() - cut_at < OUTAGE_S:
            # backpressure: nothing stored, consumed or committed past the cut while the database is away
            assert _committed_total(kafka, group) == len(before) + len(BAD_MESSAGES)
            assert metric(metrics_url, "monitor_scorer_consumed_total") == consumed_at_cut
            assert scorer.alive(), scorer.tail()
            time.sleep(1.0)
        retries = (metric(metrics_url, "monitor_scorer_store_retries_total") or 0.0) - retries_at_cut
        lag = metric(metrics_url, "monitor_scorer_lag")
        assert retries >= 3, f"the scorer retried the store {retries} times in {OUTAGE_S:.0f} s"
        assert lag and lag > 0, "the scorer's lag did not grow while it was paused"
        assert any("store unavailable" in line and "nothing committed" in line for line in scorer.lines), scorer.tail()
        health = subprocess.run([MONITOR, "status", "--json"], capture_output=True, text=True, env=env, timeout=60)
        scorer_check = next(c for c in json.loads(health.stdout)["checks"] if c["what"].startswith("scorer pid"))
        assert health.returncode == 1 and scorer_check["level"] == "fail" and "store unavailable" in scorer_check["detail"]
        proxy.restore()
        wait_for(lambda: _committed_total(kafka, group) == len(before) + len(during) + len(BAD_MESSAGES),
                 "the scorer to resume after the database came back", context=scorer.tail)
        scorer.proc.send_signal(signal.SIGTERM)
        scorer.finish()
    finally:
        scorer.kill()
        proxy.close()
    scored, dead = topic_copies(kafka)
    row = account(f"PostgreSQL unreachable for {OUTAGE_S:.0f} s (TCP proxy cut)",
                  f"scorer retried the store {retries:.0f} times with back-off (max 4 s), consumed and committed "
                  "nothing new, lag grew; resumed when the proxy came back", engine,
                  [p["id"] for p in before + during], len(BAD_MESSAGES), scored, dead)
    assert_nothing_lost(row)
    engine.dispose()


@pytest.fixture
def tmpfs(tmp_path):
    """A real 2 MB filesystem for the store, so that the disk can really be full (or read-only)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s filesystem."""
    filler = folder / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _store_retries() -> float:
    return REGISTRY.get_sample_value("monitor_scorer_store_retries_total") or 0.0


def test_a_full_disk_keeps_the_batch_uncommitted_until_space_returns(broker, tmpfs, tiny_scorer, caplog):
    kafka = fresh_topics(broker.bootstrap)
    engine = open_store(f"sqlite:///{tmpfs / 'store.db'}")
    filler = _fill(tmpfs)
    options = ScorerOptions.from_settings(Settings(kafka=kafka), group_id=f"g.{kafka.topics.raw}", batch_size=50,
                                          poll_timeout_ms=200, retry_initial_s=0.1, store_retry_max_s=0.5)
    posts = raw_posts(0, 150, prefix="full")
    produce(kafka.bootstrap, kafka.topics.raw, posts + BAD_MESSAGES)
    stop = threading.Event()
    retries_before = _store_retries()
    worker = threading.Thread(target=run_scorer, args=(kafka, engine, tiny_scorer, options, stop), daemon=True)
    worker.start()
    try:
        wait_for(lambda: _store_retries() >= retries_before + 3, "the scorer to retry the full store")
        assert _committed_total(kafka, options.group_id) == 0 and count_posts(engine) == 0
        assert any("database or disk is full" in r.getMessage() and "nothing committed" in r.getMessage()
                   for r in caplog.records), "the retries do not say the disk is full"
        filler.unlink()  # space comes back
        wait_for(lambda: _committed_total(kafka, options.group_id) == len(posts) + len(BAD_MESSAGES),
                 "the scorer to store and commit once the disk had room")
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()
    scored, dead = topic_copies(kafka)
    row = account("store disk full (2 MB tmpfs filled)",
                  f"'database or disk is full': retried {_store_retries() - retries_before:.0f} times, nothing "
                  "committed; stored everything once the filler file was removed",
                  engine, [p["id"] for p in posts], len(BAD_MESSAGES), scored, dead)
    assert_nothing_lost(row)
    engine.dispose()


def test_a_read_only_store_is_one_clear_error_and_nothing_is_consumed(broker, tmpfs, tmp_path, tiny_model_dir):
    kafka = fresh_topics(broker.bootstrap)
    db_url = f"sqlite:///{tmpfs / 'store.db'}"
    open_store(db_url).dispose()  # an existing store ...
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)  # ... on a disk now read-only
    produce(kafka.bootstrap, kafka.topics.raw, raw_posts(0, 20, prefix="ro"))
    env = monitor_env(kafka, db_url, tmp_path / "data", MONITOR_SCORER_MODEL_PATH=str(tiny_model_dir),
                      MONITOR_SCORER_GROUP_ID=f"g.{kafka.topics.raw}")
    scorer = MonitorProcess(["score", "--device", "cpu"], env)
    scorer.proc.wait(timeout=120)
    scorer._reader.join(timeout=5)
    errors = [line for line in scorer.lines if line.startswith("monitor score: error:")]
    assert scorer.proc.returncode == 2 and len(errors) == 1, scorer.tail()
    assert f"{tmpfs} is read-only" in errors[0] and "MONITOR_DATABASE_URL" in errors[0], errors[0]
    assert "Traceback" not in "\n".join(scorer.lines)
    assert _committed_total(kafka, f"g.{kafka.topics.raw}") == 0


class Crashing:
    """The tiny model, except that any batch holding a POISON post raises (as a CUDA device-side assert does)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.alone: dict[str, int] = {}

    @property
    def version(self) -> str:
        return self.inner.version

    def predict(self, texts, langs=None):
        poison = [t for t in texts if "POISON" in t]
        if len(texts) == 1 and poison:
            self.alone[poison[0]] = self.alone.get(poison[0], 0) + 1
        if poison:
            raise RuntimeError("CUDA error: device-side assert triggered")
        return self.inner.predict(texts, langs)


def test_posts_that_crash_the_model_are_dead_lettered_after_bounded_retries_and_the_batch_goes_on(broker, tmp_path,
                                                                                                  tiny_scorer):
    kafka = fresh_topics(broker.bootstrap)
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    posts = raw_posts(0, 300, prefix="ok")
    poison = [{"id": f"poison{i}", "text": f"POISON pill {i}"} for i in range(6)]
    for i, p in enumerate(poison):
        posts.insert(17 + 49 * i, p)  # one in each batch of 50
    produce(kafka.bootstrap, kafka.topics.raw, posts + BAD_MESSAGES)
    model = Crashing(tiny_scorer)
    options = ScorerOptions.from_settings(Settings(kafka=kafka), group_id=f"g.{kafka.topics.raw}", batch_size=50,
                                          poll_timeout_ms=200, max_idle_s=1.5, model_retries=2)
    stats = run_scorer(kafka, engine, model, options)
    assert model.alone == {p["text"]: 2 for p in poison}  # bounded: tried alone model_retries times, then given up
    scored, dead = topic_copies(kafka)
    assert sorted(d.error for d in dead if d.stage == "score") == ["RuntimeError: CUDA error: device-side assert triggered"] * 6
    row = account("posts that crash the model (6 in 306)",
                  "each batch with a poison post split in halves down to the post, tried alone twice, then "
                  f"dead-lettered (stage score); the rest of every batch stored ({stats.batches} batches)",
                  engine, [p["id"] for p in posts if p not in poison], len(poison) + len(BAD_MESSAGES), scored, dead)
    assert_nothing_lost(row)
    engine.dispose()
