"""End to end through Kafka with the real default model: broker -> scorer -> store -> posts.scored.

    .venv/bin/python bench/e2e.py                       # 3,000 posts, 1 then 2 scorer processes, bf16
    .venv/bin/python bench/e2e.py --posts 5000 --scorers 1 --precision fp32

A backlog of synthetic multilingual posts is produced to ``posts.raw`` on an embedded broker, then
``monitor score`` processes (the real command, one consumer group) drain it into a fresh SQLite store.
Throughput is counted from the first stored post to the last; every second the bench samples the
stored count, the consumer lag (from each scorer's Prometheus endpoint) and each scorer's RSS.
Model loading and the group join are outside the measured span. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _lag(port: int) -> float | None:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    values = [float(line.split()[-1]) for line in body.splitlines() if line.startswith("monitor_scorer_lag")]
    return sum(values) if values else None


def produce_backlog(settings, n: int, seed: int) -> None:
    from ingest.kafka_clients import make_producer
    from ingest.synthetic import FeedConfig, generate

    feed = generate(FeedConfig.demo(start=datetime(2026, 11, 30, 9, tzinfo=timezone.utc), seed=seed))
    producer = make_producer(settings.kafka)
    for _ in range(n):
        post = next(feed)
        producer.send(settings.kafka.topics.raw, key=post.id.encode(), value=post.model_dump_json().encode())
    producer.flush()
    producer.close()


def run_once(n_scorers: int, posts: int, precision: str, seed: int, model: Path | None) -> dict:
    import psutil

    from ingest.broker import EmbeddedBroker, free_port
    from ingest.kafka_clients import topic_partitions
    from monitor.config import load_settings
    from monitor.store.db import open_store
    from monitor.store.posts import count_posts

    tmp = Path(tempfile.mkdtemp(prefix="e2e-"))
    os.environ["MONITOR_DATA_DIR"] = str(tmp)
    settings = load_settings()
    with EmbeddedBroker(topic_partitions(settings.kafka)) as broker:
        os.environ["MONITOR_KAFKA_BOOTSTRAP"] = broker.bootstrap
        settings = load_settings()
        engine = open_store(settings.database_url_value)
        produce_backlog(settings, posts, seed)
        ports = [free_port() for _ in range(n_scorers)]
        threads = max(1, len(os.sched_getaffinity(0)) // n_scorers)
        procs = []
        for port in ports:
            env = dict(os.environ, MONITOR_METRICS_PORT=str(port), MONITOR_SCORER_PRECISION=precision,
                       MONITOR_SCORER_THREADS=str(threads), PYTHONUNBUFFERED="1")
            if model:
                env["MONITOR_SCORER_MODEL_PATH"] = str(model)
            log = (tmp / f"scorer-{port}.log").open("w")
            procs.append(subprocess.Popen([sys.executable, "-m", "monitor.cli", "score", "--max-idle-s", "15"],
                                          stdout=log, stderr=subprocess.STDOUT, env=env))
        samples, first, last, stored = [], None, None, 0
        peak_rss = [0.0] * n_scorers
        deadline = time.monotonic() + 3600
        while stored < posts and time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(1.0)
            stored = count_posts(engine)
            now = time.monotonic()
            if stored and first is None:
                first = now
            if stored:
                last = now
            lags = [_lag(p) for p in ports]
            for i, p in enumerate(procs):
                try:
                    peak_rss[i] = max(peak_rss[i], psutil.Process(p.pid).memory_info().rss / 2**20)
                except psutil.NoSuchProcess:
                    pass
            samples.append({"t": round(now - (first or now), 1), "stored": stored,
                            "lag": sum(x for x in lags if x is not None) if any(x is not None for x in lags) else None})
        for p in procs:
            p.wait(timeout=120)
        engine.dispose()
    span = (last - first) if first and last and last > first else None
    return {"scorers": n_scorers, "threads_each": threads, "precision": precision, "posts": posts,
            "stored": stored, "posts_per_s": round(stored / span, 1) if span else None,
            "max_lag": max((s["lag"] for s in samples if s["lag"] is not None), default=None),
            "final_lag": next((s["lag"] for s in reversed(samples) if s["lag"] is not None), None),
            "peak_rss_mb": [round(x) for x in peak_rss], "lag_samples": samples[:: max(1, len(samples) // 20)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--scorers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "int8"])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    from models import SentimentClassifier

    SentimentClassifier.load(args.model, device="cpu", precision=args.precision)  # builds caches once, untimed
    results = [run_once(n, args.posts, args.precision, args.seed, args.model) for n in args.scorers]
    print(f"{'scorers':>8}{'threads':>9}{'posts/s':>10}{'max lag':>9}{'final lag':>10}  peak RSS MB")
    for r in results:
        print(f"{r['scorers']:>8}{r['threads_each']:>9}{r['posts_per_s'] or 0:>10.1f}{r['max_lag'] or 0:>9.0f}"
              f"{r['final_lag'] or 0:>10.0f}  {r['peak_rss_mb']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
