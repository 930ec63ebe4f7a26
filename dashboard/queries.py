"""Read-only queries behind the dashboard: small functions of an Engine returning pandas frames.

Charts read the pre-aggregated ``aggregates``, ``anomalies`` and ``risk_scores`` tables, never
``posts``: with a million stored posts a chart must not depend on how many posts there are. The
queries that do touch ``posts`` are bounded by an index: a time range on ``created_at`` (or a
ticker on ``post_tickers``) and a ``LIMIT``, newest first, so the database can stop early.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from pydantic import BaseModel, Field
from sqlalchemy import Engine, Select, and_, case, func, or_, select

from monitor.store.aggregate_tables import aggregates, anomalies, risk_scores
from monitor.store.alert_tables import alert_events, alerts, notifications, silences
from monitor.store.tables import post_tickers, posts

SERIES_COLUMNS = ["series_key", "window_start", "count", "unique_count", "n_negative", "n_neutral", "n_positive",
                  "mean_score", "share_negative", "share_positive"]
POST_COLUMNS = ["id", "created_at", "lang", "source", "label", "p_negative", "p_neutral", "p_positive", "score",
                "tickers", "text", "url", "author", "model_version", "lang_declared", "notes"]


def _frame(engine: Engine, stmt: Select, columns: Sequence[str] | None = None) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(columns or result.keys()))


def latest_window_start(engine: Engine, window_s: int) -> datetime | None:
    """Where the data ends: live data ends now, a replayed day ends in the past (``ix_aggregates_window_start``)."""
    with engine.connect() as conn:
        return conn.execute(select(func.max(aggregates.c.window_start)).where(aggregates.c.window_s == window_s)).scalar()


def series_keys(engine: Engine, kind: str, window_s: int, start: datetime, end: datetime) -> list[str]:
    """The keys of one series kind with data in ``[start, end)``, most posts first."""
    total = func.sum(aggregates.c.count)
    stmt = (select(aggregates.c.series_key)
            .where(aggregates.c.window_s == window_s, aggregates.c.series_kind == kind,
                   aggregates.c.window_start >= start, aggregates.c.window_start < end)
            .group_by(aggregates.c.series_key).order_by(total.desc(), aggregates.c.series_key))
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


def series(engine: Engine, kind: str, keys: Sequence[str] | None, window_s: int, start: datetime,
           end: datetime) -> pd.DataFrame:
    """Windows of the series ``(kind, key)`` for ``keys`` (all keys when None), oldest first."""
    cols = [aggregates.c[name] for name in SERIES_COLUMNS]
    stmt = select(*cols).where(aggregates.c.window_s == window_s, aggregates.c.series_kind == kind,
                               aggregates.c.window_start >= start, aggregates.c.window_start < end)
    if keys is not None:
        stmt = stmt.where(aggregates.c.series_key.in_(list(keys)))
    return _frame(engine, stmt.order_by(aggregates.c.series_key, aggregates.c.window_start), SERIES_COLUMNS)


def anomalies_between(engine: Engine, kind: str, keys: Sequence[str] | None, start: datetime,
                      end: datetime) -> pd.DataFrame:
    stmt = select(anomalies).where(anomalies.c.series_kind == kind, anomalies.c.window_start >= start,
                                   anomalies.c.window_start < end)
    if keys is not None:
        stmt = stmt.where(anomalies.c.series_key.in_(list(keys)))
    return _frame(engine, stmt.order_by(anomalies.c.window_start))


def anomaly(engine: Engine, anomaly_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(anomalies).where(anomalies.c.id == anomaly_id)).first()
    return dict(row._mapping) if row else None


def risk_ranking(engine: Engine, window_s: int, since: datetime, limit: int = 20) -> pd.DataFrame:
    """Each ticker's latest risk score since ``since``, riskiest first."""
    latest = (select(risk_scores.c.ticker, func.max(risk_scores.c.window_start).label("latest"))
              .where(risk_scores.c.window_s == window_s, risk_scores.c.window_start >= since)
              .group_by(risk_scores.c.ticker).subquery())
    stmt = (select(risk_scores.c.ticker, risk_scores.c.window_start, risk_scores.c.risk,
                   risk_scores.c.negative_shift, risk_scores.c.volume_spike, risk_scores.c.languages_negative,
                   risk_scores.c.languages)
            .join(latest, and_(risk_scores.c.ticker == latest.c.ticker, risk_scores.c.window_start == latest.c.latest))
            .where(risk_scores.c.window_s == window_s)
            .order_by(risk_scores.c.risk.desc(), risk_scores.c.ticker).limit(limit))
    return _frame(engine, stmt)


class PostFilter(BaseModel):
    """What the drill-down asks for; every field narrows the result."""

    start: datetime
    end: datetime
    langs: list[str] = Field(default_factory=list)
    ticker: str | None = None
    source: str | None = None
    labels: list[str] = Field(default_factory=list)
    text: str | None = None
    post_ids: list[str] | None = None  # the evidence of an anomaly or alert


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def find_posts(engine: Engine, f: PostFilter, limit: int = 500) -> pd.DataFrame:
    """The newest ``limit`` posts matching ``f`` (``ix_posts_created_at`` or the ticker index bounds the scan)."""
    cols = [posts.c[name] for name in POST_COLUMNS]
    if f.ticker:
        when = post_tickers.c.created_at
        stmt = (select(*cols).select_from(post_tickers.join(posts, posts.c.id == post_tickers.c.post_id))
                .where(post_tickers.c.ticker == f.ticker))
    else:
        when = posts.c.created_at
        stmt = select(*cols)
    stmt = stmt.where(when >= f.start, when < f.end)
    if f.langs:
        stmt = stmt.where(posts.c.lang.in_(f.langs))
    if f.source:
        stmt = stmt.where(posts.c.source == f.source)
    if f.labels:
        stmt = stmt.where(posts.c.label.in_(f.labels))
    if f.text:
        stmt = stmt.where(posts.c.text.ilike(_like_pattern(f.text), escape="\\"))
    if f.post_ids is not None:
        stmt = stmt.where(posts.c.id.in_(f.post_ids[:5000]))
    return _frame(engine, stmt.order_by(when.desc(), posts.c.id).limit(limit), POST_COLUMNS)


def ticker_sources(engine: Engine, ticker: str, start: datetime, end: datetime, newest: int = 5000) -> pd.DataFrame:
    """Posts, mean score and label counts per source among the ticker's ``newest`` posts in ``[start, end)``.

    There is no ticker x source aggregate, so this reads posts; the sample bound keeps a busy ticker's
    page as fast as a quiet one's (``ix_post_tickers_ticker_created_at``, then ``newest`` lookups).
    """
    recent = (select(post_tickers.c.post_id)
              .where(post_tickers.c.ticker == ticker, post_tickers.c.created_at >= start, post_tickers.c.created_at < end)
              .order_by(post_tickers.c.created_at.desc()).limit(newest).subquery())
    stmt = (select(posts.c.source, func.count().label("posts"), func.avg(posts.c.score).label("mean_score"),
                   func.sum(case((posts.c.label == "negative", 1), else_=0)).label("negative"),
                   func.sum(case((posts.c.label == "positive", 1), else_=0)).label("positive"))
            .select_from(recent.join(posts, posts.c.id == recent.c.post_id))
            .group_by(posts.c.source).order_by(func.count().desc(), posts.c.source))
    return _frame(engine, stmt)


def newest_posts_meta(engine: Engine, n: int) -> pd.DataFrame:
    """Timestamps and model version of the newest ``n`` posts: a bounded sample for throughput and versions."""
    stmt = (select(posts.c.created_at, posts.c.received_at, posts.c.scored_at, posts.c.model_version, posts.c.lang)
            .order_by(posts.c.created_at.desc()).limit(n))
    return _frame(engine, stmt)


def _alert_columns() -> list:
    return [alerts.c.fingerprint, alerts.c.rule, alerts.c.severity, alerts.c.state, alerts.c.series_kind,
            alerts.c.series_key, alerts.c.value, alerts.c.threshold, alerts.c.active_since, alerts.c.fired_at,
            alerts.c.resolved_at, alerts.c.window_start, alerts.c.window_end, alerts.c.labels,
            alerts.c.annotations, alerts.c.receivers, alerts.c.post_ids]


def count_firing(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(alerts).where(alerts.c.state == "firing")).scalar_one())


def alerts_by_state(engine: Engine, states: Sequence[str], limit: int = 500) -> pd.DataFrame:
    """Alerts in ``states`` (``ix_alerts_state``), the most recently active first."""
    stmt = (select(*_alert_columns()).where(alerts.c.state.in_(list(states)))
            .order_by(alerts.c.active_since.desc()).limit(limit))
    return _frame(engine, stmt)


def alerts_for_series(engine: Engine, ticker: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Alerts whose evidence is a series of ``ticker`` (alone or per language) and overlaps ``[start, end)``."""
    on_ticker = or_(and_(alerts.c.series_kind == "ticker", alerts.c.series_key == ticker),
                    and_(alerts.c.series_kind == "ticker_lang", alerts.c.series_key.startswith(f"{ticker}|", autoescape=True)))
    stmt = (select(*_alert_columns()).where(on_ticker, alerts.c.window_end >= start, alerts.c.window_start < end)
            .order_by(alerts.c.window_start))
    return _frame(engine, stmt)


def alert_evidence(engine: Engine, fingerprint: str) -> list[str] | None:
    """The post ids an alert recorded as its evidence; None for an unknown alert."""
    with engine.connect() as conn:
        ids = conn.execute(select(alerts.c.post_ids).where(alerts.c.fingerprint == fingerprint)).scalar()
    return None if ids is None else list(ids)


def alert_history(engine: Engine, since: datetime, limit: int = 1000) -> pd.DataFrame:
    stmt = (select(alert_events.c.at, alert_events.c.state, alert_events.c.rule, alert_events.c.severity,
                   alert_events.c.series_kind, alert_events.c.series_key, alert_events.c.value,
                   alert_events.c.fingerprint)
            .where(alert_events.c.at >= since).order_by(alert_events.c.at.desc()).limit(limit))
    return _frame(engine, stmt)


def notifications_since(engine: Engine, since: datetime, limit: int = 500) -> pd.DataFrame:
    stmt = (select(notifications.c.id, notifications.c.created_at, notifications.c.sent_at, notifications.c.status,
                   notifications.c.kind, notifications.c.channel, notifications.c.receiver, notifications.c.target,
                   notifications.c.subject, notifications.c.attempts, notifications.c.last_error)
            .where(notifications.c.created_at >= since).order_by(notifications.c.created_at.desc()).limit(limit))
    return _frame(engine, stmt)


def active_silences(engine: Engine, now: datetime) -> pd.DataFrame:
    stmt = (select(silences.c.id, silences.c.matchers, silences.c.starts_at, silences.c.ends_at,
                   silences.c.created_by, silences.c.comment)
            .where(silences.c.ends_at > now).order_by(silences.c.ends_at))
    return _frame(engine, stmt)
