"""Recompute aggregates, anomalies and risk scores from the stored posts (``monitor aggregate --from-store``).

The derived rows of every window from the one containing ``since`` (up to ``until``) are deleted
first, then rebuilt by the same :class:`~monitor.aggregate.aggregator.Aggregator` the live consumer
uses, fed with the stored posts in event-time order. Posts before ``since`` that share a window with
it are loaded too, so that window is complete. Because aggregates are a pure function of each
window's posts, the result is what the live aggregator would have written.

Safe next to a running live aggregator: both compute every window from the same stored posts, and
whichever writes last writes the same values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from monitor.aggregate.aggregator import Aggregator, FlushReport
from monitor.aggregate.persist import delete_windows, iter_posts, load_window, serialise_writers
from monitor.aggregate.windows import to_datetime, window_of
from monitor.config import AggregatorSettings


@dataclass(frozen=True)
class BackfillReport:
    posts: int
    windows_scored: int
    anomalies: int


def backfill(engine: Engine, settings: AggregatorSettings, since: datetime, until: datetime | None = None,
             *, chunk: int = 5000, flush_every: int = 50_000,
             progress: Callable[[int], None] | None = None) -> BackfillReport:
    """Rebuild ``[since, until)``; ``progress(n)`` is called with the posts done so far."""
    with engine.begin() as conn:
        serialise_writers(conn)
        for size in settings.windows_s:
            first = to_datetime(window_of(since.timestamp(), size)[1])
            last = to_datetime(math.ceil(until.timestamp() / size) * size) if until is not None else None
            delete_windows(conn, size, first, last)

    def before_since(start: datetime, end: datetime):
        return load_window(engine, start, min(end, since))  # later posts arrive through iter_posts

    aggregator = Aggregator(engine, settings, loader=before_since, mark_loaded=True)
    done = pending = scored = found = 0
    reports: list[FlushReport] = []
    for batch in iter_posts(engine, since, until, chunk):
        aggregator.add(batch)
        done += len(batch)
        pending += len(batch)
        if pending >= flush_every:
            reports.append(aggregator.flush())
            pending = 0
        if progress is not None:
            progress(done)
    reports.append(aggregator.finish())
    for r in reports:
        scored += r.windows_scored
        found += r.anomalies
    return BackfillReport(done, scored, found)
