"""Throughput of the aggregator: posts.scored messages in, aggregates, anomalies and risk out.

What is timed is the aggregator's own work per message, as in ``monitor aggregate``: decoding the
JSON of a scored post, counting it into its windows (1 min, 15 min, 1 h by default) and the store
writes and anomaly scoring every ``--flush-every`` posts (the consumer flushes about once a second,
so at the 20,000 posts/s target that is every 20,000 posts). Kafka is left out (consuming is
measured by the pipeline benchmark: 24-50k msg/s on these machines); so is the scorer's store write
of the posts, which happens just before (the store is kept one batch ahead, as it is live).

The feed is the synthetic one, scored by the documented stand-in (``ingest.synthetic.scored_stand_in``).
Both wall-clock and CPU time (``time.process_time``) are reported: on a shared machine the CPU
figure is the steadier one.

    .venv/bin/python bench/aggregator.py                      # SQLite in a temporary directory
    .venv/bin/python bench/aggregator.py --posts 500000 --postgres postgresql://postgres@127.0.0.1/test

With ``--postgres URL`` a scratch database is created on that server (URL: any database to connect
to for ``CREATE DATABASE``) and dropped afterwards; nothing is written to the database named.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.synthetic import FeedConfig, generate, scored_stand_in  # noqa: E402
from monitor.aggregate import Aggregator  # noqa: E402
from monitor.aggregate.records import from_message  # noqa: E402
from monitor.config import AggregatorSettings  # noqa: E402
from monitor.store.db import open_store  # noqa: E402
from monitor.store.posts import upsert_posts  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> "Clock":
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


@contextmanager
def scratch_store(postgres: str | None, tmp: str) -> Iterator[str]:
    if postgres is None:
        yield f"sqlite:///{tmp}/bench.db"
        return
    import psycopg

    name = f"bench_aggregator_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=100.0, help="feed posts per simulated second")
    parser.add_argument("--batch", type=int, default=2000, help="posts per poll (MONITOR_AGGREGATOR_BATCH_SIZE)")
    parser.add_argument("--flush-every", type=int, default=20_000, help="posts between store writes")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server to create a scratch database on "
                        "(default: SQLite in a temporary directory)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    print(f"generating {args.posts:,} posts at {args.rate:g}/s simulated ...", file=sys.stderr)
    feed = FeedConfig(seed=args.seed, start=datetime(2026, 1, 5, 8, tzinfo=timezone.utc), rate=args.rate,
                      duration_s=args.posts / args.rate * 1.05)
    posts = list(scored_stand_in(generate(feed), seed=args.seed))[: args.posts]
    messages = [p.model_dump_json().encode() for p in posts]
    with tempfile.TemporaryDirectory() as tmp, scratch_store(args.postgres, tmp) as url:
        engine = open_store(url)
        aggregator = Aggregator(engine, AggregatorSettings(batch_size=args.batch))
        decode, add, flush = Clock(), Clock(), Clock()
        pending = windows = anomalies = 0
        for i in range(0, len(messages), args.batch):
            upsert_posts(engine, posts[i : i + args.batch])  # the scorer's write, just ahead (not timed)
            with decode:
                batch = [from_message(m) for m in messages[i : i + args.batch]]
            with add:
                aggregator.add(batch, ("posts.scored", 0))
            pending += len(batch)
            if pending >= args.flush_every:
                with flush:
                    report = aggregator.flush()
                windows += report.windows_scored
                anomalies += report.anomalies
                pending = 0
        with flush:
            report = aggregator.flush()
        windows += report.windows_scored
        anomalies += report.anomalies
        engine.dispose()
    n = len(messages)
    wall = decode.wall + add.wall + flush.wall
    cpu = decode.cpu + add.cpu + flush.cpu
    span_h = (posts[-1].created_at - posts[0].created_at).total_seconds() / 3600
    print(f"store: {url.split(':')[0]}; {n:,} posts over {span_h:.2f} simulated hours; "
          f"windows {AggregatorSettings().windows_s}; {windows} windows scored, {anomalies} anomalies")
    print(f"{'stage':<22}{'wall s':>10}{'cpu s':>10}{'us/post (cpu)':>16}")
    for name, c in (("decode JSON", decode), ("add to windows", add), ("store writes + scoring", flush)):
        print(f"{name:<22}{c.wall:>10.2f}{c.cpu:>10.2f}{c.cpu / n * 1e6:>16.1f}")
    print(f"{'total':<22}{wall:>10.2f}{cpu:>10.2f}{cpu / n * 1e6:>16.1f}")
    print(f"throughput: {n / wall:,.0f} posts/s wall, {n / cpu:,.0f} posts/s per CPU-second; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
