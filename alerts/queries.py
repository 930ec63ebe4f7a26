"""What the alert rules read from the store: trailing-window stats, anomalies, risk scores, evidence.

The only module of this concern that knows the aggregator's tables, so that a change there is
absorbed here. Trailing windows are sums of the finest aggregate windows (``resolution_s``), so a
"15 minutes" rule evaluated every minute sees a sliding 15 minutes, not a tumbling one. Shares are
taken over labelled posts (``n_negative + n_neutral + n_positive``), which keeps them in 0..1
whatever count the aggregator de-duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, func, select

from alerts.model import series_labels
from monitor.schemas import ScoredPost
from monitor.store.aggregate_tables import aggregates, anomalies, risk_scores
from monitor.store.posts import get_posts
from monitor.store.tables import post_tickers, posts


@dataclass(frozen=True)
class WindowStats:
    series_kind: str
    series_key: str
    start: datetime
    end: datetime
    n: int
    n_negative: int
    n_positive: int
    sum_score: float

    def metric(self, name: str) -> float:
        if name == "volume":
            return float(self.n)
        if self.n == 0:
            return 0.0
        if name == "share_negative":
            return self.n_negative / self.n
        if name == "share_positive":
            return self.n_positive / self.n
        if name == "mean_score":
            return self.sum_score / self.n
        raise ValueError(f"unknown metric {name!r}")


@dataclass(frozen=True)
class AnomalyRow:
    series_kind: str
    series_key: str
    window_s: int
    window_start: datetime
    window_end: datetime
    metric: str
    detector: str
    direction: str
    observed: float
    baseline: float
    score: float
    volume: int
    post_ids: tuple[str, ...]


@dataclass(frozen=True)
class RiskRow:
    ticker: str
    window_s: int
    window_start: datetime
    risk: float
    languages_negative: int
    languages: tuple[str, ...]


class StoreQueries:
    def __init__(self, engine: Engine, resolution_s: int = 60) -> None:
        self.engine = engine
        self.resolution_s = resolution_s

    def trailing(self, series_kind: str, window: timedelta, now: datetime) -> list[WindowStats]:
        """Each series of a kind over ``[now - window, now)``, from windows that started in that span."""
        start = now - window
        labelled = aggregates.c.n_negative + aggregates.c.n_neutral + aggregates.c.n_positive
        stmt = (select(aggregates.c.series_key, func.sum(labelled), func.sum(aggregates.c.n_negative),
                       func.sum(aggregates.c.n_positive), func.sum(aggregates.c.sum_score))
                .where(aggregates.c.window_s == self.resolution_s, aggregates.c.series_kind == series_kind,
                       aggregates.c.window_start >= start, aggregates.c.window_start < now)
                .group_by(aggregates.c.series_key))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [WindowStats(series_kind, key, start, now, int(n or 0), int(neg or 0), int(pos or 0), float(s or 0.0))
                for key, n, neg, pos, s in rows]

    def trailing_points(self, series_kind: str, series_key: str, metric: str, window: timedelta,
                        start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """The trailing-window metric at every resolution step in ``[start, end]``: what a rule saw, for a chart."""
        step = timedelta(seconds=self.resolution_s)
        with self.engine.connect() as conn:
            rows = conn.execute(select(aggregates).where(
                aggregates.c.window_s == self.resolution_s, aggregates.c.series_kind == series_kind,
                aggregates.c.series_key == series_key, aggregates.c.window_start >= start - window,
                aggregates.c.window_start < end).order_by(aggregates.c.window_start)).all()
        cells = [(r.window_start, r.n_negative + r.n_neutral + r.n_positive, r.n_negative, r.n_positive, r.sum_score)
                 for r in rows]
        points = []
        t = start
        while t <= end:
            inside = [c for c in cells if t - window <= c[0] < t]
            stats = WindowStats(series_kind, series_key, t - window, t, sum(c[1] for c in inside),
                                sum(c[2] for c in inside), sum(c[3] for c in inside), sum(c[4] for c in inside))
            if stats.n or metric == "volume":
                points.append((t, stats.metric(metric)))
            t += step
        return points

    def window_points(self, series_kind: str, series_key: str, metric: str, window_s: int,
                      start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """One metric of one series per aggregate window (an anomaly's own windows), by window end."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(aggregates).where(
                aggregates.c.window_s == window_s, aggregates.c.series_kind == series_kind,
                aggregates.c.series_key == series_key, aggregates.c.window_start >= start,
                aggregates.c.window_start < end).order_by(aggregates.c.window_start)).all()
        out = []
        for r in rows:
            n = r.n_negative + r.n_neutral + r.n_positive
            stats = WindowStats(series_kind, series_key, r.window_start, r.window_start, n, r.n_negative,
                                r.n_positive, r.sum_score)
            out.append((r.window_start + timedelta(seconds=window_s), stats.metric(metric)))
        return out

    def anomalies_active(self, series_kinds: Sequence[str], within: timedelta, now: datetime) -> list[AnomalyRow]:
        """Anomalies of windows that ended by ``now``, less than ``within`` before it.

        Only ended windows: the aggregator scores a window when it ends, so a replay of stored data
        (the dry run) sees an anomaly no earlier than a live run did.
        """
        stmt = select(anomalies).where(anomalies.c.series_kind.in_(list(series_kinds)),
                                       anomalies.c.window_end <= now, anomalies.c.window_end > now - within)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(anomalies.c.window_start)).all()
        return [AnomalyRow(r.series_kind, r.series_key, r.window_s, r.window_start, r.window_end, r.metric, r.detector,
                           r.direction, r.observed, r.baseline, r.score, r.volume, tuple(r.post_ids or ()))
                for r in rows]

    def risk_latest(self, window: timedelta, now: datetime) -> list[RiskRow]:
        """Each ticker's risk of the last window that ended by ``now``, if it ended less than a window ago."""
        window_s = int(window.total_seconds())
        latest = (select(risk_scores.c.ticker, func.max(risk_scores.c.window_start).label("ws"))
                  .where(risk_scores.c.window_s == window_s, risk_scores.c.window_start <= now - window,
                         risk_scores.c.window_start > now - 2 * window)
                  .group_by(risk_scores.c.ticker).subquery())
        stmt = select(risk_scores).join(latest, and_(risk_scores.c.ticker == latest.c.ticker,
                                                     risk_scores.c.window_start == latest.c.ws)) \
            .where(risk_scores.c.window_s == window_s)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [RiskRow(r.ticker, r.window_s, r.window_start, r.risk, r.languages_negative, tuple(r.languages or ()))
                for r in rows]

    def risk_points(self, ticker: str, window: timedelta, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        window_s = int(window.total_seconds())
        with self.engine.connect() as conn:
            rows = conn.execute(select(risk_scores.c.window_start, risk_scores.c.risk).where(
                risk_scores.c.ticker == ticker, risk_scores.c.window_s == window_s,
                risk_scores.c.window_start >= start, risk_scores.c.window_start < end)
                .order_by(risk_scores.c.window_start)).all()
        return [(ws + window, risk) for ws, risk in rows]

    def top_post_ids(self, series_kind: str, series_key: str, start: datetime, end: datetime,
                     negative: bool = True, limit: int = 5) -> list[str]:
        """The most negative (or positive) posts of a series in a span: the evidence an analyst reads first."""
        prob = posts.c.p_negative if negative else posts.c.p_positive
        stmt = select(posts.c.id).where(posts.c.created_at >= start, posts.c.created_at < end)
        labels = series_labels(series_kind, series_key)
        if "ticker" in labels:
            stmt = stmt.join(post_tickers, post_tickers.c.post_id == posts.c.id).where(
                post_tickers.c.ticker == labels["ticker"])
        if "lang" in labels:
            stmt = stmt.where(posts.c.lang == labels["lang"])
        if "source" in labels:  # series keys keep a source's first 300 characters
            source = labels["source"]
            stmt = stmt.where(posts.c.source.startswith(source, autoescape=True) if len(source) >= 300
                              else posts.c.source == source)
        with self.engine.connect() as conn:
            return list(conn.execute(stmt.order_by(prob.desc(), posts.c.id).limit(limit)).scalars())

    def posts(self, ids: Sequence[str]) -> list[ScoredPost]:
        """Posts by id, in the order given (ids no longer stored are skipped)."""
        found = {p.id: p for p in get_posts(self.engine, list(ids))} if ids else {}
        return [found[i] for i in ids if i in found]

    def data_span(self) -> tuple[datetime, datetime] | None:
        """First and last aggregate window start at the resolution (the range a dry run replays)."""
        with self.engine.connect() as conn:
            lo, hi = conn.execute(select(func.min(aggregates.c.window_start), func.max(aggregates.c.window_start))
                                  .where(aggregates.c.window_s == self.resolution_s)).one()
            alo, ahi = conn.execute(select(func.min(anomalies.c.window_start), func.max(anomalies.c.window_end))).one()
        starts = [t for t in (lo, alo) if t is not None]
        ends = [t for t in (hi and hi + timedelta(seconds=self.resolution_s), ahi) if t is not None]
        if not starts:
            return None
        return min(starts), max(ends)
