"""Labelled detection benchmark: hours of steady multilingual traffic with injected episodes.

The synthetic feed (``ingest.synthetic``) carries four episodes after a steady warm-up: a negative
burst in one language for one ticker, a volume spike without any sentiment change, a slow drift of
one ticker in one language, and a cross-language crisis. Posts are scored by the documented
stand-in (``scored_stand_in``: the intended label kept with probability ``--accuracy``, noisy
probabilities), so the benchmark measures the detector, not the classifier. They go through the
same :class:`~monitor.aggregate.Aggregator` as live traffic, in event-time order, into a SQLite
store; the stored anomalies are then scored against the episodes (``monitor.anomaly.scoring``):
recall and delay per episode, precision, and false alarms during the steady hours.

    .venv/bin/python bench/detection.py                 # 8 simulated hours at 20 posts/s
    .venv/bin/python bench/detection.py --hours 5 --rate 10 --seed 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from ingest.synthetic import Episode, FeedConfig, generate, scored_stand_in  # noqa: E402
from monitor.aggregate import Aggregator, from_scored  # noqa: E402
from monitor.anomaly.scoring import Scorecard, TrueEpisode, score  # noqa: E402
from monitor.config import AggregatorSettings  # noqa: E402
from monitor.store.aggregate_tables import anomalies, risk_scores  # noqa: E402
from monitor.store.db import open_store  # noqa: E402

START = datetime(2026, 1, 5, 0, 0, tzinfo=timezone.utc)


def scenario(seed: int = 1, hours: float = 8.0, rate: float = 20.0, **feed: object) -> FeedConfig:
    """Steady traffic for the first 3/8 of the time, then one episode of each kind (starts scale with
    ``hours``, durations do not: 15 min burst, 15 min spike, 60 min drift, 20 min crisis)."""
    h = hours * 3600 / 8  # starts laid out on an 8-hour day, scaled
    episodes = [
        Episode(name="burst-de-siemens", kind="negative_burst", offset_s=3.0 * h, duration_s=900,
                tickers=["SIE.DE"], langs=["de"], negative_share=0.8, volume_factor=3),
        Episode(name="spike-ja-toyota", kind="volume_spike", offset_s=3.8 * h, duration_s=900,
                tickers=["7203.T"], langs=["ja"], volume_factor=5),
        Episode(name="drift-zh-moutai", kind="drift", offset_s=4.6 * h, duration_s=3600,
                tickers=["600519.SS"], langs=["zh"], negative_share=0.7),
        Episode(name="crisis-tesla", kind="crisis", offset_s=6.4 * h, duration_s=1200, tickers=["TSLA"],
                langs=["en", "de", "zh", "es", "fr"], negative_share=0.8, volume_factor=3),
    ]
    return FeedConfig(seed=seed, start=START, duration_s=hours * 3600, rate=rate, episodes=episodes, **feed)


def truth(config: FeedConfig) -> list[TrueEpisode]:
    assert config.start is not None
    return [TrueEpisode(e.name, e.kind, *e.window(config.start), e.tickers, e.langs, e.volume_factor)
            for e in config.episodes]


@dataclass
class Run:
    config: FeedConfig
    settings: AggregatorSettings
    card: Scorecard
    posts: int
    steady_false_alarms: int  # false alarms outside every episode (and its grace period)
    max_risk: dict[str, float]  # per episode: the highest risk of its tickers during it
    max_steady_risk: float  # the highest risk of any ticker in the steady hours
    seconds: float


def run(config: FeedConfig, settings: AggregatorSettings | None = None, *, accuracy: float = 0.9,
        store_url: str | None = None, batch: int = 2000) -> Run:
    settings = settings or AggregatorSettings()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_store(store_url or f"sqlite:///{tmp}/detection.db")
        # Fed in event-time order, owning every language: a backfill's view, with nothing stored to reload.
        aggregator = Aggregator(engine, settings, loader=lambda start, end: [], mark_loaded=True)
        pending, n = [], 0
        for post in scored_stand_in(generate(config), seed=config.seed, accuracy=accuracy):
            pending.append(from_scored(post))
            if len(pending) >= batch:
                aggregator.add(pending)
                aggregator.flush()
                n += len(pending)
                pending = []
        aggregator.add(pending)
        aggregator.flush()
        n += len(pending)
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(anomalies)).all()]
            risks = conn.execute(select(risk_scores.c.ticker, risk_scores.c.window_start, risk_scores.c.window_s,
                                        risk_scores.c.risk)).all()
        engine.dispose()
    episodes = truth(config)
    card = score(rows, episodes, evaluation_delay_s=settings.evaluation_delay_s)
    max_risk = {e.name: max((r.risk for r in risks if r.ticker in e.tickers
                             and e.start <= r.window_start < e.end), default=0.0) for e in episodes}
    steady = [r.risk for r in risks if not any(
        e.start - timedelta(seconds=r.window_s) <= r.window_start < e.end + timedelta(seconds=4 * r.window_s)
        for e in episodes)]
    return Run(config, settings, card, n, len(card.false_alarms), max_risk, max(steady, default=0.0),
               time.perf_counter() - began)


def report(r: Run) -> str:
    hours = (r.config.duration_s or 0) / 3600
    lines = [f"{r.posts:,} posts over {hours:g} simulated hours at {r.config.rate:g}/s (seed {r.config.seed}); "
             f"windows {r.settings.windows_s} s, z >= {r.settings.z_threshold}, min volume {r.settings.min_volume}; "
             f"{r.seconds:.0f} s to run",
             "",
             f"{'episode':<20}{'kind':<16}{'detected':<10}{'delay (min)':>12}{'first seen in':>15}{'anomalies':>11}"
             f"{'max risk':>10}"]
    for e in r.card.episodes:
        delay = f"{e.delay_s / 60:.1f}" if e.delay_s is not None else "-"
        first = f"{e.first_window_s} s window" if e.first_window_s else "-"
        lines.append(f"{e.episode.name:<20}{e.episode.kind:<16}{'yes' if e.detected else 'NO':<10}{delay:>12}"
                     f"{first:>15}{e.anomalies:>11}{r.max_risk[e.episode.name]:>10.1f}")
    by_kind = Counter((a["window_s"], a["series_kind"], a["metric"], a["detector"]) for a in r.card.false_alarms)
    lines += ["",
              f"recall {r.card.recall:.2f}; precision {r.card.precision:.3f} ({r.card.explained} of {r.card.total} "
              f"anomalies explained by an episode); false alarms {r.steady_false_alarms}; "
              f"highest steady-state risk {r.max_steady_risk:.1f}"]
    lines += [f"  false alarm: {n} x window {w} s, {kind}, {metric}, {det}" for (w, kind, metric, det), n
              in sorted(by_kind.items())]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=20.0, help="steady posts per simulated second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--accuracy", type=float, default=0.9, help="stand-in classifier accuracy")
    parser.add_argument("--z", type=float, help="z threshold (default: MONITOR_AGGREGATOR_Z_THRESHOLD)")
    args = parser.parse_args()
    settings = AggregatorSettings(**({"z_threshold": args.z} if args.z else {}))
    print(report(run(scenario(args.seed, args.hours, args.rate), settings, accuracy=args.accuracy)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
