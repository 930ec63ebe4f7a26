"""The aggregator's reads and writes: window posts, parts, aggregates, anomalies, risk, progress.

Every write is an upsert of absolute values (never an increment), so writing the same state twice,
from two processes or after a crash, leaves the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, text, tuple_
from sqlalchemy.exc import DBAPIError, OperationalError

from monitor.aggregate.records import ROW_COLUMNS, SCORE_SCALE, Contribution, PartKey, Series, from_row
from monitor.aggregate.state import COUNT, NEGATIVE, NEUTRAL, POSITIVE, SCORE, UNIQUE
from monitor.aggregate.windows import WindowKey, to_datetime
from monitor.anomaly.metrics import Point
from monitor.store.aggregate_tables import aggregate_parts, aggregates, aggregator_progress, anomalies, risk_scores
from monitor.store.db import StoreUnavailable
from monitor.store.posts import _insert
from monitor.store.tables import posts

_CHUNK = 400  # series per IN list: well inside SQLite's bound-parameter limit
_LOCK_KEY = 0x6167_6772  # one PostgreSQL advisory lock for all aggregator writes ("aggr")


def _chunks(items: Sequence, n: int = _CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """A database that cannot be reached or written is :class:`StoreUnavailable`: retry later."""
    try:
        yield
    except (OperationalError, DBAPIError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StoreUnavailable(f"could not {what}: {reason[0] if reason else type(exc).__name__}") from exc


def serialise_writers(conn: Connection) -> None:
    """Aggregators write one at a time: each sums the parts every other one has committed.

    On PostgreSQL an advisory lock for the transaction; on SQLite the first write takes the database
    lock (callers write before they read inside the transaction).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def load_window(engine: Engine, start: datetime, end: datetime) -> list[Contribution]:
    """The stored posts of ``[start, end)``: the truth a reloaded window is rebuilt from."""
    if end <= start:
        return []
    cols = [posts.c[name] for name in ROW_COLUMNS]
    with store_errors("read a window's posts"), engine.connect() as conn:
        rows = conn.execute(select(*cols).where(posts.c.created_at >= start, posts.c.created_at < end)).all()
    return [from_row(r._mapping) for r in rows]


def iter_posts(engine: Engine, since: datetime, until: datetime | None, chunk: int = 5000) -> Iterator[list[Contribution]]:
    """Stored posts from ``since`` (to ``until``), oldest first, in chunks (keyset paging)."""
    cols = [posts.c[name] for name in ROW_COLUMNS]
    last: tuple[datetime, str] | None = None
    while True:
        stmt = select(*cols).where(posts.c.created_at >= since)
        if until is not None:
            stmt = stmt.where(posts.c.created_at < until)
        if last is not None:
            stmt = stmt.where(or_(posts.c.created_at > last[0], and_(posts.c.created_at == last[0], posts.c.id > last[1])))
        with store_errors("read stored posts"), engine.connect() as conn:
            rows = conn.execute(stmt.order_by(posts.c.created_at, posts.c.id).limit(chunk)).all()
        if not rows:
            return
        last = (rows[-1].created_at, rows[-1].id)
        yield [from_row(r._mapping) for r in rows]


def write_parts(conn: Connection, key: WindowKey, parts: Sequence[tuple[PartKey, list[int]]], now: datetime) -> set[Series]:
    """Upsert changed parts (delete emptied ones); returns the series whose sums must be refreshed."""
    size, start = key
    start_dt = to_datetime(start)
    rows, gone = [], []
    for (kind, skey, lang), sums in parts:
        if sums[COUNT] == 0:
            gone.append((kind, skey, lang))
            continue
        rows.append({"window_s": size, "series_kind": kind, "series_key": skey, "window_start": start_dt, "lang": lang,
                     "count": sums[COUNT], "unique_count": sums[UNIQUE], "n_negative": sums[NEGATIVE],
                     "n_neutral": sums[NEUTRAL], "n_positive": sums[POSITIVE], "sum_score_nano": sums[SCORE],
                     "updated_at": now})
    if rows:
        stmt = _insert(conn.engine, aggregate_parts)
        stmt = stmt.on_conflict_do_update(
            index_elements=["window_s", "series_kind", "series_key", "window_start", "lang"],
            set_={c: stmt.excluded[c] for c in ("count", "unique_count", "n_negative", "n_neutral", "n_positive",
                                                "sum_score_nano", "updated_at")})
        conn.execute(stmt, rows)
    p = aggregate_parts.c
    for batch in _chunks(gone):
        conn.execute(delete(aggregate_parts).where(p.window_s == size, p.window_start == start_dt,
                                                   tuple_(p.series_kind, p.series_key, p.lang).in_(list(batch))))
    return {(kind, skey) for (kind, skey, _lang), _ in parts}


def refresh_aggregates(conn: Connection, key: WindowKey, series: Iterable[Series], now: datetime) -> None:
    """Set each series' row of the window to the sum of its parts (or delete it: no parts left)."""
    size, start = key
    start_dt = to_datetime(start)
    p = aggregate_parts.c
    wanted = sorted(series)
    for batch in _chunks(wanted):
        sums = conn.execute(
            select(p.series_kind, p.series_key, *(func.sum(p[c]) for c in (
                "count", "unique_count", "n_negative", "n_neutral", "n_positive", "sum_score_nano")))
            .where(p.window_s == size, p.window_start == start_dt, tuple_(p.series_kind, p.series_key).in_(list(batch)))
            .group_by(p.series_kind, p.series_key)).all()
        rows = []
        for kind, skey, count, unique, neg, neu, pos, nano in sums:
            total = int(nano) / SCORE_SCALE
            rows.append({"window_s": size, "series_kind": kind, "series_key": skey, "window_start": start_dt,
                         "count": int(count), "unique_count": int(unique), "n_negative": int(neg),
                         "n_neutral": int(neu), "n_positive": int(pos), "sum_score": total,
                         "mean_score": total / unique if unique else 0.0,
                         "share_negative": neg / unique if unique else 0.0,
                         "share_positive": pos / unique if unique else 0.0, "updated_at": now})
        if rows:
            stmt = _insert(conn.engine, aggregates)
            stmt = stmt.on_conflict_do_update(
                index_elements=["window_s", "series_kind", "series_key", "window_start"],
                set_={c.name: stmt.excluded[c.name] for c in aggregates.columns
                      if c.name not in ("window_s", "series_kind", "series_key", "window_start")})
            conn.execute(stmt, rows)
        present = {(r["series_kind"], r["series_key"]) for r in rows}
        empty = [s for s in batch if s not in present]
        a = aggregates.c
        for chunk in _chunks(empty):
            conn.execute(delete(aggregates).where(a.window_s == size, a.window_start == start_dt,
                                                  tuple_(a.series_kind, a.series_key).in_(list(chunk))))


def read_points(conn: Connection, size: int, starts: Iterable[int]) -> dict[Series, dict[int, Point]]:
    """Stored aggregates of the given windows, by series and window start."""
    a = aggregates.c
    out: dict[Series, dict[int, Point]] = defaultdict(dict)
    for batch in _chunks(sorted(starts)):
        rows = conn.execute(select(a.series_kind, a.series_key, a.window_start, a.unique_count, a.n_negative, a.sum_score)
                            .where(a.window_s == size, a.window_start.in_([to_datetime(s) for s in batch]))).all()
        for kind, skey, start, unique, neg, total in rows:
            out[(kind, skey)][int(start.timestamp())] = Point(int(unique), int(neg), float(total))
    return out


def write_anomalies(conn: Connection, key: WindowKey, scored: set[Series], rows: list[dict]) -> None:
    """Make the window's anomalies of the ``scored`` series exactly ``rows`` (update, insert, withdraw)."""
    size, start = key
    start_dt = to_datetime(start)
    a = anomalies.c
    keep = {(r["series_kind"], r["series_key"], r["metric"], r["detector"]) for r in rows}
    existing = conn.execute(select(a.id, a.series_kind, a.series_key, a.metric, a.detector)
                            .where(a.window_s == size, a.window_start == start_dt)).all()
    withdrawn = [r.id for r in existing if (r.series_kind, r.series_key) in scored
                 and (r.series_kind, r.series_key, r.metric, r.detector) not in keep]
    for batch in _chunks(withdrawn):
        conn.execute(delete(anomalies).where(a.id.in_(list(batch))))
    if rows:
        stmt = _insert(conn.engine, anomalies)
        stmt = stmt.on_conflict_do_update(
            index_elements=["series_kind", "series_key", "window_s", "window_start", "metric", "detector"],
            # detected_at is left as it was: when the anomaly was first seen
            set_={c: stmt.excluded[c] for c in ("window_end", "direction", "observed", "baseline", "spread", "score",
                                                "volume", "post_ids")})
        conn.execute(stmt, rows)


def write_risk(conn: Connection, rows: list[dict]) -> None:
    if not rows:
        return
    stmt = _insert(conn.engine, risk_scores)
    stmt = stmt.on_conflict_do_update(
        index_elements=["ticker", "window_s", "window_start"],
        set_={c: stmt.excluded[c] for c in ("risk", "negative_shift", "volume_spike", "languages_negative",
                                            "languages", "updated_at")})
    conn.execute(stmt, rows)


def delete_windows(conn: Connection, size: int, start: datetime, end: datetime | None) -> None:
    """Forget every derived row of windows of ``size`` starting in ``[start, end)`` (before a backfill)."""
    for table in (aggregate_parts, aggregates, anomalies, risk_scores):
        cond = [table.c.window_s == size, table.c.window_start >= start]
        if end is not None:
            cond.append(table.c.window_start < end)
        conn.execute(delete(table).where(*cond))


def load_progress(engine: Engine, group_id: str, topic: str, partition: int) -> float | None:
    p = aggregator_progress.c
    with store_errors("read the aggregator's progress"), engine.connect() as conn:
        value = conn.execute(select(p.event_time).where(p.group_id == group_id, p.topic == topic,
                                                        p.partition == partition)).scalar()
    return value.timestamp() if value is not None else None


def save_progress(conn: Connection, group_id: str, event_times: dict[tuple[str, int], float], now: datetime) -> None:
    if not event_times:
        return
    rows = [{"group_id": group_id, "topic": topic, "partition": partition, "event_time": to_datetime(ts),
             "updated_at": now} for (topic, partition), ts in event_times.items()]
    stmt = _insert(conn.engine, aggregator_progress)
    stmt = stmt.on_conflict_do_update(index_elements=["group_id", "topic", "partition"],
                                      set_={"event_time": stmt.excluded.event_time, "updated_at": now})
    conn.execute(stmt, rows)
