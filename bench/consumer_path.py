"""Throughput of the scorer's consumer path without the model: poll, validate, enrich, store, produce, commit.

    .venv/bin/python bench/consumer_path.py                         # 20,000 posts, SQLite in a temp dir
    .venv/bin/python bench/consumer_path.py --processes 2           # two group members, one per core
    .venv/bin/python bench/consumer_path.py --posts 50000 --batch-size 1000
    .venv/bin/python bench/consumer_path.py --url postgresql://postgres@127.0.0.1:5432/bench

Scorer processes (``--processes``, forked) join one consumer group on an embedded broker, each with a
constant scorer (defined here: the model is what this bench leaves out); once the group is settled,
posts from the synthetic multilingual feed are produced, and the members drain them into the store
and onto ``posts.scored``. Two runs: every post declaring its language, and the feed's default mix
(half the posts declare one, the others go through language detection), since detection is the
costliest part of enrichment. Throughput is counted from the first batch to the last commit (the
group join and the final idle wait are not the path); the
per-stage split comes from the loop's own ``monitor_scorer_stage_seconds`` metric. CPU time per post
(the scorer process, and the broker process beside it) is reported too: on a machine shared with
other work, wall-clock rates say more about the neighbours than about the path. ``--url`` must
name an empty database. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("preprocess", "score", "store", "produce", "commit")


@dataclass(frozen=True)
class ConstantPrediction:
    label: str
    scores: dict[str, float]
    score: float


NEUTRAL = ConstantPrediction("neutral", {"negative": 0.2, "neutral": 0.6, "positive": 0.2}, 0.0)


class ConstantScorer:
    """Every post neutral: no model time, so the bench measures the path around it."""

    version = "constant-bench"

    def predict(self, texts, langs=None):
        return [NEUTRAL] * len(texts)


def feed(n: int, declared_share: float) -> list[bytes]:
    from ingest.synthetic import FeedConfig, generate

    config = FeedConfig(seed=3, start=datetime(2026, 3, 2, tzinfo=timezone.utc), rate=200.0,
                        declared_lang_share=declared_share)
    out = []
    for post in generate(config):
        out.append(post.model_dump_json(exclude_none=True).encode())
        if len(out) == n:
            return out
    return out


def stage_seconds() -> dict[str, float]:
    from prometheus_client import REGISTRY

    return {s: REGISTRY.get_sample_value("monitor_scorer_stage_seconds_sum", {"stage": s}) or 0.0 for s in STAGES}


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (the broker), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Assignments(logging.Handler):
    """Tells the parent how many partitions this member holds after each rebalance."""

    def __init__(self, index: int, queue) -> None:
        super().__init__()
        self.index, self.queue = index, queue

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("assigned partitions:"):
            held = message.split("[", 1)[1].count(",") + 1 if "[" in message else 0
            self.queue.put(("assigned", self.index, held))


def member(index: int, kafka, url: str, options, queue) -> None:
    """One scorer process of the group (forked), reporting its stats and CPU time."""
    from ingest.scorer import run_scorer
    from monitor.langid import detect
    from monitor.store.db import open_store

    # Load the detector's models before joining (a scorer does it on its first batch). Not in the
    # parent: its worker threads would not survive the fork.
    detect(["Acme shares rise"])
    log = logging.getLogger("ingest.scorer")
    log.addHandler(_Assignments(index, queue))
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        engine = open_store(url)
        stages0, cpu0 = stage_seconds(), time.process_time()
        stats = run_scorer(kafka, engine, ConstantScorer(), options)
        cpu = time.process_time() - cpu0
        stages = {s: v - stages0[s] for s, v in stage_seconds().items()}
        engine.dispose()
    except BaseException:
        queue.put(("failed", index, traceback.format_exc()))
        raise
    queue.put(("done", index, {"consumed": stats.consumed, "batches": stats.batches, "first": stats.first_batch_at,
                               "last": stats.last_batch_at, "cpu_s": cpu, "stages": stages}))


def _next(queue) -> tuple:
    kind, index, value = queue.get(timeout=600)
    if kind == "failed":
        raise SystemExit(f"scorer process {index} failed:\n{value}")
    return kind, index, value


def run(bootstrap: str, broker_pid: int, url: str, messages: list[bytes], batch_size: int, partitions: int,
        processes: int) -> dict:
    """Members join first (so no rebalance interrupts the measured span), then the posts are produced."""
    from kafka.admin import KafkaAdminClient

    from ingest.kafka_clients import make_producer
    from ingest.produce import Message, post_key, produce
    from ingest.scorer import ScorerOptions
    from ingest.topics import create_missing_topics
    from monitor.config import KafkaSettings, Settings, TopicSettings
    from monitor.store.db import open_store
    from monitor.store.posts import count_posts

    tag = uuid.uuid4().hex[:8]
    topics = TopicSettings(raw=f"raw.{tag}", scored=f"scored.{tag}", deadletter=f"dead.{tag}", alerts=f"alerts.{tag}")
    kafka = KafkaSettings(bootstrap=bootstrap, topics=topics, partitions=partitions)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    create_missing_topics(admin, {t: partitions for t in topics.model_dump().values()})
    admin.close()
    open_store(url).dispose()  # migrate once, before the members race to
    options = ScorerOptions.from_settings(Settings(kafka=kafka), group_id=f"bench.{tag}", batch_size=batch_size,
                                          max_idle_s=3.0)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=member, args=(i, kafka, url, options, queue)) for i in range(processes)]
    for proc in procs:
        proc.start()
    held = [0] * processes
    while sum(held) != partitions or min(held) == 0:
        kind, index, value = _next(queue)
        if kind == "assigned":
            held[index] = value

    broker0 = process_cpu_s(broker_pid)
    producer = make_producer(kafka)
    t0 = time.perf_counter()
    produce(producer, topics.raw, (Message(post_key(m), m) for m in messages), progress=False)
    produce_s = time.perf_counter() - t0
    producer.close()
    done = []
    while len(done) < processes:
        kind, _index, value = _next(queue)
        if kind == "done":
            done.append(value)
    for proc in procs:
        proc.join()
    broker_cpu = process_cpu_s(broker_pid) - broker0
    engine = open_store(url)
    stored = count_posts(engine)
    engine.dispose()
    consumed = sum(d["consumed"] for d in done)
    seconds = max(d["last"] for d in done) - min(d["first"] for d in done)
    cpu = sum(d["cpu_s"] for d in done)
    stages = {s: round(sum(d["stages"][s] for d in done), 3) for s in STAGES}
    return {"posts": len(messages), "processes": processes, "consumed": consumed, "stored_rows": stored,
            "batches": sum(d["batches"] for d in done), "seconds": round(seconds, 3),
            "posts_per_s": round(consumed / seconds), "stage_s": stages,
            "scorer_cpu_us_per_post": round(cpu / consumed * 1e6),
            "broker_cpu_us_per_post": round(broker_cpu / consumed * 1e6),
            "produce_to_raw_per_s": round(len(messages) / produce_s)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=256, help="records per batch (the scorer's default)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--processes", type=int, default=1, help="scorer processes in the group (one per core)")
    parser.add_argument("--url", help="empty database (default: SQLite in a temporary folder, new per run)")
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    from ingest.broker import EmbeddedBroker

    results = {}
    with tempfile.TemporaryDirectory(prefix="consumer-bench-") as tmp, EmbeddedBroker() as broker:
        for name, share in (("declared", 1.0), ("mixed", 0.5)):
            url = args.url or f"sqlite:///{Path(tmp) / f'{name}.db'}"
            results[name] = run(broker.bootstrap, broker.pid, url, feed(args.posts, share), args.batch_size,
                                args.partitions, args.processes)
            if args.url:
                break  # one empty database, one run
    print(f"{'run':<10}{'posts/s':>9}{'seconds':>9}{'cpu us/post':>13}{'broker us':>11}  "
          + "".join(f"{s:>11}" for s in STAGES))
    for name, r in results.items():
        print(f"{name:<10}{r['posts_per_s']:>9}{r['seconds']:>9.2f}{r['scorer_cpu_us_per_post']:>13}"
              f"{r['broker_cpu_us_per_post']:>11}  " + "".join(f"{r['stage_s'][s]:>11.2f}" for s in STAGES))
    print(json.dumps({"batch_size": args.batch_size, "processes": args.processes, "backend": (args.url or "sqlite").split(":", 1)[0], **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
