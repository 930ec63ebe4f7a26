"""Evaluation speed on a synthetic store: ``python -m alerts.bench [--series N] [--hours H] [--url URL]``.

Seeds ``N`` ticker/language series of 60 s windows over ``H`` hours (a temporary SQLite file unless
``--url`` is given), then times one evaluation of every rule of ``configs/rules.example.yaml`` at
the end of the span, and a dry run of the whole span. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

from alerts import conditions
from alerts.dryrun import replay
from alerts.queries import StoreQueries
from alerts.rules import load_rules
from monitor.store.aggregate_tables import aggregates
from monitor.store.db import open_store

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=300)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--url", help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    engine = open_store(url)
    rng = random.Random(7)
    start = datetime(2026, 3, 2, tzinfo=timezone.utc)
    minutes = args.hours * 60
    langs = ["en", "de", "fr", "es", "ja", "pt", "it", "zh", "ar", "hi"]
    keys = [f"T{i:03d}|{langs[i % len(langs)]}" for i in range(args.series)]
    t = time.perf_counter()
    with engine.begin() as conn:
        for key in keys:
            rows = []
            for m in range(minutes):
                neg, neu, pos = rng.randint(0, 3), rng.randint(0, 4), rng.randint(0, 3)
                n = neg + neu + pos
                rows.append({"window_s": 60, "series_kind": "ticker_lang", "series_key": key,
                             "window_start": start + timedelta(minutes=m), "count": n, "unique_count": n,
                             "n_negative": neg, "n_neutral": neu, "n_positive": pos, "sum_score": 0.8 * (pos - neg),
                             "mean_score": 0.0, "share_negative": neg / n if n else 0.0,
                             "share_positive": pos / n if n else 0.0, "updated_at": start})
            conn.execute(insert(aggregates), rows)
    seeded_s = time.perf_counter() - t
    ruleset = load_rules(ROOT / "configs" / "rules.example.yaml")
    queries = StoreQueries(engine, 60)
    end = start + timedelta(minutes=minutes)
    t = time.perf_counter()
    found = sum(len(conditions.instances(rule, queries, end)) for rule in ruleset.rules)
    eval_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    episodes = replay(ruleset, queries, start, end)
    replay_s = time.perf_counter() - t
    steps = sum(int((end - start) / r.interval) + 1 for r in ruleset.rules)
    print(json.dumps({"backend": engine.dialect.name, "series": args.series, "hours": args.hours,
                      "aggregate_rows": args.series * minutes, "seed_s": round(seeded_s, 1),
                      "evaluate_all_rules_ms": round(eval_ms, 1), "instances": found,
                      "dry_run_s": round(replay_s, 1), "dry_run_evaluations": steps,
                      "dry_run_ms_per_evaluation": round(replay_s * 1000 / steps, 2), "episodes": len(episodes)}))


if __name__ == "__main__":
    main()
