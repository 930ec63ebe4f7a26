"""Sustained load above the scorer's capacity: memory stays bounded, lag grows then recovers, nothing is lost.

    .venv/bin/python bench/load.py                                  # 40 s at 600 posts/s, a ~250 posts/s scorer
    .venv/bin/python bench/load.py --rate 1000 --seconds 60 --per-post-ms 2 --text-bytes 4000
    .venv/bin/python bench/load.py --json                           # one JSON line, no table

A scorer process (forked) joins the group with a deliberately slow stand-in model (``--per-post-ms`` of
sleep per post, on top of the real path: validate, enrich, store, produce, commit), and posts are
produced at a fixed ``--rate`` above its capacity for ``--seconds``, then the producer stops and the
backlog drains. Sampled every ``--sample-s``: the scorer's RSS (psutil), the broker's RSS, and the lag
(posts produced minus offsets committed by the group). Backpressure means the scorer takes a batch only
when the last one is committed, so its memory is set by the batch and the fetch buffers, not by the
backlog, which stays on the broker (Tansu keeps it in memory: its RSS grows with the backlog).

Reports capacity (posts/s while saturated), peak lag, drain time, RSS at start / peak / growth, and
produced / stored / lost / duplicated.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class LoadConfig:
    rate: float = 600.0  # posts per second offered
    seconds: float = 40.0  # how long they are offered
    per_post_ms: float = 4.0  # the stand-in model's time per post
    text_bytes: int = 2000  # size of each post's text
    batch_size: int = 256
    partitions: int = 4
    sample_s: float = 0.5
    drain_timeout_s: float = 600.0


@dataclass
class Sample:
    t: float  # seconds since the producer started
    produced: int
    committed: int
    scorer_rss_mb: float
    broker_rss_mb: float

    @property
    def lag(self) -> int:
        return self.produced - self.committed


@dataclass
class LoadResult:
    config: LoadConfig
    produced: int
    stored: int
    lost: int
    duplicated: int
    capacity_per_s: float  # committed per second while the backlog was there
    peak_lag: int
    lag_when_producer_stopped: int
    drain_s: float  # producer stop to lag 0
    scorer_rss_start_mb: float
    scorer_rss_peak_mb: float
    broker_rss_peak_mb: float
    backlog_peak_mb: float  # the peak lag in message bytes: what an unbounded queue would have had to hold
    samples: list[Sample] = field(default_factory=list)

    @property
    def scorer_rss_growth_mb(self) -> float:
        return self.scorer_rss_peak_mb - self.scorer_rss_start_mb


class SlowScorer:
    """A stand-in model that costs ``per_post_ms`` per post (time.sleep: no CPU taken from the path around it)."""

    version = "slow-stand-in"

    def __init__(self, per_post_ms: float) -> None:
        self.per_post_s = per_post_ms / 1000

    def predict(self, texts, langs=None):
        from models.classifier import Prediction

        time.sleep(self.per_post_s * len(texts))
        return [Prediction("neutral", {"negative": 0.2, "neutral": 0.6, "positive": 0.2}, 0.0) for _ in texts]


def _scorer(kafka, url: str, options, per_post_ms: float, queue) -> None:
    """The group member (forked): the real loop around the slow stand-in, until the topic stays idle."""
    import logging as _logging

    from ingest.scorer import run_scorer
    from monitor.langid import detect
    from monitor.store.db import open_store

    detect(["Acme shares rise"])  # load the language detector before joining, as a scorer's first batch would

    class _Joined(_logging.Handler):
        def emit(self, record: _logging.LogRecord) -> None:
            if record.getMessage().startswith("assigned partitions:"):
                queue.put("joined")

    log = _logging.getLogger("ingest.scorer")
    log.addHandler(_Joined())
    log.setLevel(_logging.INFO)
    log.propagate = False
    engine = open_store(url)
    run_scorer(kafka, engine, SlowScorer(per_post_ms), options)
    engine.dispose()


def _posts(n: int, text_bytes: int, tag: str):
    filler = ("Acme ($ACME) guidance cut; shares slide as suppliers warn. " * (text_bytes // 60 + 1))[:text_bytes]
    for i in range(n):
        yield json.dumps({"id": f"{tag}-{i}", "text": f"{i} {filler}", "lang": "en",
                          "created_at": "2026-03-02T10:00:00Z", "source": "load"}).encode()


def _rss_mb(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def run_load(config: LoadConfig, bootstrap: str | None = None, broker_pid: int | None = None,
             work_dir: Path | None = None) -> LoadResult:
    """One run on ``bootstrap`` (default: an embedded broker of its own) with a SQLite store in ``work_dir``."""
    from ingest.broker import EmbeddedBroker

    if bootstrap is None:
        with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="load-") as tmp:
            return run_load(config, broker.bootstrap, broker.pid, Path(work_dir or tmp))
    assert work_dir is not None
    from kafka.admin import KafkaAdminClient

    from ingest.kafka_clients import make_producer
    from ingest.produce import Message, produce
    from ingest.scorer import ScorerOptions
    from ingest.topics import create_missing_topics
    from monitor.config import KafkaSettings, Settings, TopicSettings
    from monitor.store.db import open_store
    from monitor.store.posts import count_posts

    tag = uuid.uuid4().hex[:8]
    topics = TopicSettings(raw=f"raw.{tag}", scored=f"scored.{tag}", deadletter=f"dead.{tag}", alerts=f"alerts.{tag}")
    kafka = KafkaSettings(bootstrap=bootstrap, topics=topics, partitions=config.partitions)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    create_missing_topics(admin, {t: config.partitions for t in topics.model_dump().values()})
    url = f"sqlite:///{work_dir / f'load-{tag}.db'}"
    open_store(url).dispose()
    group = f"load.{tag}"
    options = ScorerOptions.from_settings(Settings(kafka=kafka), group_id=group, batch_size=config.batch_size,
                                          max_idle_s=5.0)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_scorer, args=(kafka, url, options, config.per_post_ms, queue), daemon=True)
    proc.start()
    queue.get(timeout=120)  # joined the group
    assert proc.pid is not None

    def committed_total() -> int:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        return sum(o.offset for tp, o in offsets.items() if tp.topic == topics.raw and o.offset >= 0)

    # Warm-up: the first batches load what a scorer loads once (language detector models, store
    # connections); the baseline is taken after them, so that growth measures the backlog's effect.
    warmup = 2 * config.batch_size
    producer = make_producer(kafka)
    produce(producer, topics.raw, (Message(None, v) for v in _posts(warmup, config.text_bytes, f"warm-{tag}")),
            progress=False)
    deadline = time.monotonic() + 120
    while committed_total() < warmup and time.monotonic() < deadline:
        time.sleep(0.2)
    rss_start = _rss_mb(proc.pid)

    offered = int(config.rate * config.seconds)
    n = warmup + offered
    sent = [warmup]
    message_bytes = len(next(_posts(1, config.text_bytes, tag)))

    def counted():
        for value in _posts(offered, config.text_bytes, tag):
            sent[0] += 1
            yield Message(value.split(b'"', 4)[3], value)

    feeder = threading.Thread(target=produce, args=(producer, topics.raw, counted()),
                              kwargs={"rate": config.rate, "progress": False}, daemon=True)

    samples: list[Sample] = []
    began = time.monotonic()
    feeder.start()
    stopped_at = lag_at_stop = None
    while True:
        time.sleep(config.sample_s)
        s = Sample(round(time.monotonic() - began, 2), sent[0], committed_total(), round(_rss_mb(proc.pid), 1),
                   round(_rss_mb(broker_pid), 1) if broker_pid else 0.0)
        samples.append(s)
        if stopped_at is None and not feeder.is_alive():
            stopped_at, lag_at_stop = s.t, s.lag
        if stopped_at is not None and s.committed >= n:
            break
        if s.t > config.seconds + config.drain_timeout_s:
            raise SystemExit(f"the backlog did not drain within {config.drain_timeout_s:.0f} s (lag {s.lag})")
    producer.close()
    proc.join(timeout=60)
    admin.close()
    engine = open_store(url)
    stored = count_posts(engine)
    engine.dispose()
    saturated = [s for s in samples if s.lag > config.batch_size * 2]
    capacity = ((saturated[-1].committed - saturated[0].committed) / (saturated[-1].t - saturated[0].t)
                if len(saturated) > 1 and saturated[-1].t > saturated[0].t else float("nan"))
    peak_lag = max(s.lag for s in samples)
    return LoadResult(config=config, produced=n, stored=stored, lost=n - stored, duplicated=max(0, stored - n),
                      capacity_per_s=round(capacity, 1), peak_lag=peak_lag, lag_when_producer_stopped=lag_at_stop or 0,
                      drain_s=round(samples[-1].t - (stopped_at or samples[-1].t), 1),
                      scorer_rss_start_mb=round(rss_start, 1),
                      scorer_rss_peak_mb=max(s.scorer_rss_mb for s in samples),
                      broker_rss_peak_mb=max(s.broker_rss_mb for s in samples),
                      backlog_peak_mb=round(peak_lag * message_bytes / 2**20, 1), samples=samples)


def main() -> int:
    defaults = LoadConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=defaults.rate, help="posts per second offered")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="how long the load lasts")
    parser.add_argument("--per-post-ms", type=float, default=defaults.per_post_ms, help="stand-in model time per post")
    parser.add_argument("--text-bytes", type=int, default=defaults.text_bytes, help="bytes of text per post")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--sample-s", type=float, default=defaults.sample_s)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = LoadConfig(rate=args.rate, seconds=args.seconds, per_post_ms=args.per_post_ms, text_bytes=args.text_bytes,
                        batch_size=args.batch_size, sample_s=args.sample_s)
    r = run_load(config)
    if not args.json:
        print(f"{'t s':>7}{'produced':>10}{'committed':>11}{'lag':>8}{'scorer MB':>11}{'broker MB':>11}")
        step = max(1, len(r.samples) // 30)
        for s in r.samples[::step] + ([r.samples[-1]] if (len(r.samples) - 1) % step else []):
            print(f"{s.t:>7.1f}{s.produced:>10}{s.committed:>11}{s.lag:>8}{s.scorer_rss_mb:>11.1f}{s.broker_rss_mb:>11.1f}")
        print(f"offered {config.rate:.0f}/s for {config.seconds:.0f} s; capacity {r.capacity_per_s:.0f}/s; peak lag "
              f"{r.peak_lag} ({r.backlog_peak_mb} MB of messages); drained {r.drain_s} s after the producer stopped")
        print(f"scorer RSS {r.scorer_rss_start_mb} -> peak {r.scorer_rss_peak_mb} MB (+{r.scorer_rss_growth_mb:.1f}); "
              f"broker RSS peak {r.broker_rss_peak_mb} MB; produced {r.produced}, stored {r.stored}, lost {r.lost}, "
              f"duplicated {r.duplicated}")
    summary = {k: v for k, v in asdict(r).items() if k != "samples"}
    summary["scorer_rss_growth_mb"] = round(r.scorer_rss_growth_mb, 1)
    print(json.dumps(summary))
    return 0 if r.lost == 0 and r.duplicated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
