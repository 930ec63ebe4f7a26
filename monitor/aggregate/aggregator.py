"""The aggregator: scored posts in, windowed aggregates, anomalies and risk scores out (to the store).

Event time and lateness. Each post counts in the windows of its ``created_at``. Event time is the
latest ``created_at`` seen per Kafka partition (persisted, see ``aggregator_progress``); a post more
than ``max_future_skew_s`` ahead of the wall clock (the scorer clamps those, but posts.scored is an
open topic) still counts in its own window but never moves event time, so one bad clock cannot end
every window at once. A window is *scored* (anomalies and risk) once event time passes its end by
``evaluation_delay_s``, and scored again whenever a later post changes it, together with the scored
windows whose baselines it is part of. It stays in memory until ``allowed_lateness_s`` after its
end; a post later than that is not lost: its window is rebuilt from the store (where the scorer put
the post before publishing it), updated, written and scored again. Late posts are counted
(``FlushReport.late``).

No double counting, across restarts too. A window's state is the *set* of its posts keyed by id
(:class:`~monitor.aggregate.state.WindowState`), first loaded from the store when the window is
touched, so it never depends on what happened to be in memory: a re-delivered post is already in
the set, a restart reloads the set, and writes are absolute values. Aggregates are therefore
identical whether computed live, after a crash, or by a backfill from the store; so are anomalies
and risk scores of every window scored both ways (scoring reads only stored aggregates), except
that an hour-of-week baseline is not re-scored a week after a late post.

Several aggregators (one consumer group) each own the languages of their partitions; each writes
its per-language parts and sums all committed parts into ``aggregates`` (one writer at a time).
Posts loaded from the store are not written back (``mark_loaded``) unless this aggregator owns the
whole range (a backfill), because another aggregator may own their language.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from monitor.aggregate.persist import (load_progress, load_window, read_points, refresh_aggregates, save_progress,
                                       serialise_writers, store_errors, write_anomalies, write_parts, write_risk)
from monitor.aggregate.records import Contribution, Series
from monitor.aggregate.state import WindowState
from monitor.aggregate.windows import WindowKey, ending_between, to_datetime
from monitor.anomaly.evaluate import Evaluator, Score
from monitor.anomaly.ewma import EwmaChart
from monitor.anomaly.metrics import SENTIMENT
from monitor.anomaly.risk import RiskModel
from monitor.anomaly.robust_z import RobustZ
from monitor.anomaly.seasonality import Baseline
from monitor.config import AggregatorSettings
from monitor.schemas import utcnow

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]  # (topic, partition)
LOCAL: PartitionKey = ("", -1)  # posts that come from no partition (backfill, tests, benchmarks)
MAX_POST_IDS = 50
Loader = Callable[[datetime, datetime], Iterable[Contribution]]


@dataclass(frozen=True)
class FlushReport:
    posts: int  # posts added since the previous flush
    parts: int  # per-language part rows written
    windows_scored: int
    anomalies: int  # anomaly rows in the scored windows
    late: int  # posts that arrived after their window's allowed lateness (counted all the same)


def evaluator_for(settings: AggregatorSettings) -> Evaluator:
    return Evaluator(
        detectors=(RobustZ(min_history=settings.warmup_windows),
                   EwmaChart(alpha=settings.ewma_alpha, min_history=settings.warmup_windows)),
        baseline=Baseline(settings.baseline_windows, settings.seasonality, settings.season_weeks),
        min_volume=settings.min_volume)


class Aggregator:
    def __init__(self, engine: Engine, settings: AggregatorSettings, *, group_id: str | None = None,
                 loader: Loader | None = None, mark_loaded: bool = False) -> None:
        """``group_id`` set: event time per partition is persisted under it (the live consumer);
        ``loader``: where a window's posts come from when it is first touched (default: the store)."""
        self.engine = engine
        self.settings = settings
        self.sizes = tuple(settings.windows_s)
        self.sizes_desc = tuple(sorted(self.sizes, reverse=True))  # larger windows open first: smaller ones derive
        self.group_id = group_id
        self._load: Loader = loader or (lambda start, end: load_window(engine, start, end))
        self._mark_loaded = mark_loaded
        self.windows: dict[WindowKey, WindowState] = {}
        self._event_time: dict[PartitionKey, float] = {}
        self._scored_until: float | None = None  # event time at the last flush: windows ending later are new
        self._first_seen: float | None = None
        self._languages: set[str] = set()  # of the posts added: the languages of our partitions
        self._added = 0
        self._late = 0
        self.evaluator = evaluator_for(settings)
        self.risk = RiskModel(language_z=settings.risk_language_z)

    @property
    def event_time(self) -> float | None:
        known = [t for t in self._event_time.values() if t > -math.inf]
        return max(known) if known else None

    def add(self, batch: Iterable[Contribution], partition: PartitionKey = LOCAL) -> int:
        """Count posts into their windows; nothing is written until :meth:`flush`.

        A window touched for the first time is read from the store: if that fails
        (:class:`~monitor.store.db.StoreUnavailable`), adding the same batch again is safe.
        """
        if partition not in self._event_time:
            self._adopt(partition)
        et = self._event_time[partition]
        clock = self.event_time
        closed_until = clock - self.settings.allowed_lateness_s if clock is not None else -math.inf
        future = time.time() + self.settings.max_future_skew_s
        windows, sizes = self.windows, self.sizes_desc
        first = self._first_seen if self._first_seen is not None else math.inf
        n = 0
        smallest = self.sizes[0]
        own = self._languages
        for c in batch:
            ts = c.ts
            own.add(c.lang)
            for size in sizes:
                key = (size, int(ts // size) * size)
                state = windows.get(key)
                if state is None:
                    state = self._open(key)
                state.add(c)
            if int(ts // smallest) * smallest + smallest <= closed_until:  # its window had closed
                self._late += 1
            if et < ts <= future:
                et = ts
            if ts < first:
                first = ts
            n += 1
        self._event_time[partition] = et
        self._first_seen = first if first < math.inf else None
        self._added += n
        return n

    def _adopt(self, partition: PartitionKey) -> None:
        stored = None
        if self.group_id is not None and partition != LOCAL:
            stored = load_progress(self.engine, self.group_id, *partition)
        self._event_time[partition] = stored if stored is not None else -math.inf
        if stored is not None:  # windows that ended before it were scored by whoever read the partition then
            self._scored_until = max(self._scored_until or -math.inf, stored)

    def _open(self, key: WindowKey) -> WindowState:
        """A window's state, from a larger window in memory that contains it, else from the store.

        A larger window loaded earlier holds every stored post of this range as of its loading,
        plus every post added since; anything stored later is still to come through :meth:`add`.
        """
        size, start = key
        end = start + size
        state = WindowState(key)
        outer = next((w for (s, st), w in self.windows.items() if s > size and st <= start and st + s >= end), None)
        if outer is not None:  # posts of languages this aggregator reads are new to this window's parts
            own = self._languages
            for c in outer.posts.values():
                if start <= c.ts < end:
                    state.add(c, mark=self._mark_loaded or c.lang in own)
        else:
            for c in self._load(to_datetime(start), to_datetime(end)):
                state.add(c, mark=self._mark_loaded)
        self.windows[key] = state
        return state

    def reset(self) -> None:
        """Forget all in-memory state (after a rebalance: other partitions, other owners); flush first."""
        self.windows.clear()
        self._event_time.clear()
        self._languages.clear()
        self._scored_until = None
        self._first_seen = None

    def flush(self) -> FlushReport:
        """Write changed windows, score the windows that ended or changed after ending, in one transaction.

        Raises :class:`~monitor.store.db.StoreUnavailable` if the store cannot take it; nothing is lost
        then: the changes stay pending, and the next flush writes them.
        """
        now = utcnow()
        clock = self.event_time
        parts_written = scored = found = 0
        written = [state for state in self.windows.values() if state.dirty]
        with store_errors("write aggregates"), self.engine.begin() as conn:
            serialise_writers(conn)
            if self.group_id is not None:
                save_progress(conn, self.group_id, {p: t for p, t in self._event_time.items()
                                                    if p != LOCAL and t > -math.inf}, now)
            touched: dict[WindowKey, set[Series]] = {}
            for state in written:
                parts = state.dirty_parts()
                parts_written += len(parts)
                series = write_parts(conn, state.key, parts, now)
                refresh_aggregates(conn, state.key, series, now)
                touched[state.key] = series
            for size, starts in self._due(clock, touched).items():
                n_windows, n_found = self._score(conn, size, starts, now)
                scored += n_windows
                found += n_found
        for state in written:  # committed: only now are the changes no longer pending
            state.written()
        if clock is not None:
            self._scored_until = clock
        self._evict(clock)
        report = FlushReport(self._added, parts_written, scored, found, self._late)
        self._added = self._late = 0
        return report

    def finish(self) -> FlushReport:
        """Score every window still in memory, as if event time had passed them all (end of a backfill)."""
        if self.windows:
            end = max(start + size for size, start in self.windows) + self.settings.evaluation_delay_s
            self._event_time[LOCAL] = max(self._event_time.get(LOCAL, -math.inf), end)
        report = self.flush()
        self.windows.clear()
        return report

    def _due(self, clock: float | None, touched: dict[WindowKey, set[Series]]) -> dict[int, list[int]]:
        if clock is None:
            return {}
        delay = self.settings.evaluation_delay_s
        prev = self._scored_until
        due: dict[int, set[int]] = defaultdict(set)
        for size in self.sizes:
            after = prev - delay if prev is not None else None
            due[size].update(start for _, start in ending_between(after, clock - delay, size, not_before=self._first_seen))
        if prev is not None:
            span = self.settings.baseline_windows
            for size, start in touched:
                if start + size + delay <= prev:  # it had been scored already: late posts changed it,
                    due[size].add(start)  # and the baselines of the scored windows after it
                    due[size].update(s for s in range(start + size, start + (span + 1) * size, size)
                                     if s + size + delay <= prev)
        return {size: sorted(starts) for size, starts in due.items() if starts}

    def _score(self, conn: Connection, size: int, starts: list[int], now: datetime) -> tuple[int, int]:
        needed = set().union(*(self.evaluator.slots_needed(start, size) for start in starts))
        points = read_points(conn, size, needed)
        scored = found = 0
        for start in starts:
            present = [s for s, by_start in points.items() if start in by_start]
            if not present:
                continue
            key = (size, start)
            state = self.windows.get(key) or self._open(key)
            scores = self.evaluator.score_window(points, start, size, present)
            threshold, min_volume = self.settings.z_threshold, self.settings.min_volume
            found_here = [s for s in scores if s.badness >= threshold and s.volume >= min_volume]
            posts = state.unique_posts({s.series for s in found_here})
            rows = [self._anomaly_row(s, key, posts[s.series], now) for s in found_here]
            write_anomalies(conn, key, set(present), rows)
            write_risk(conn, self._risk_rows(scores, present, key, now))
            scored += 1
            found += len(rows)
        return scored, found

    def _anomaly_row(self, s: Score, key: WindowKey, posts: list[Contribution], now: datetime) -> dict:
        size, start = key
        if s.metric in SENTIMENT:
            drivers = sorted((c for c in posts if c.label == 0), key=lambda c: (c.score_q, c.rank))
        else:
            drivers = sorted(posts, key=lambda c: c.rank)
        return {"series_kind": s.series[0], "series_key": s.series[1], "window_s": size,
                "window_start": to_datetime(start), "window_end": to_datetime(start + size), "metric": s.metric.name,
                "detector": s.detector, "direction": s.direction, "observed": s.observed, "baseline": s.baseline,
                "spread": s.spread, "score": round(s.finding.z, 6), "volume": s.volume,
                "post_ids": [c.id for c in drivers[:MAX_POST_IDS]], "detected_at": now}

    def _risk_rows(self, scores: list[Score], present: list[Series], key: WindowKey, now: datetime) -> list[dict]:
        by_ticker: dict[str, list[Score]] = defaultdict(list)
        for s in scores:
            kind, skey = s.series
            if kind == "ticker":
                by_ticker[skey].append(s)
            elif kind == "ticker_lang":
                by_ticker[skey.rsplit("|", 1)[0]].append(s)
        size, start = key
        rows = []
        for kind, ticker in present:
            if kind != "ticker":
                continue
            r = self.risk.score(ticker, by_ticker.get(ticker, []))
            rows.append({"ticker": ticker, "window_s": size, "window_start": to_datetime(start), "risk": r.risk,
                         "negative_shift": r.negative_shift, "volume_spike": r.volume_spike,
                         "languages_negative": r.languages_negative, "languages": r.languages, "updated_at": now})
        return rows

    def _evict(self, clock: float | None) -> None:
        if clock is None:
            return
        lateness = self.settings.allowed_lateness_s
        for key in [k for k, st in self.windows.items() if k[1] + k[0] + lateness <= clock and not st.dirty]:
            del self.windows[key]
