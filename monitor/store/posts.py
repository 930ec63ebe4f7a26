"""Writing and reading scored posts.

``upsert_posts`` is idempotent by post id: a batch re-delivered after a crash overwrites the same
rows instead of adding new ones (last write wins for a re-used id, whose tickers are replaced).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from monitor.schemas import ScoredPost, Scores
from monitor.store.db import StoreUnavailable
from monitor.store.tables import post_tickers, posts

# SQLite allows 32766 bound parameters per statement; 21 columns per row keeps us well inside.
_CHUNK = 1000


def post_row(p: ScoredPost) -> dict:
    return {
        "id": p.id, "text": p.text, "source": p.source, "created_at": p.created_at, "received_at": p.received_at,
        "scored_at": p.scored_at, "lang": p.lang, "lang_declared": p.lang_declared,
        "lang_confidence": p.lang_confidence, "author": p.author, "url": p.url, "tickers": p.tickers,
        "label": p.label, "p_negative": p.scores.negative, "p_neutral": p.scores.neutral,
        "p_positive": p.scores.positive, "score": p.score, "model_version": p.model_version,
        "dedup_key": p.dedup_key, "notes": p.notes, "meta": p.meta,
    }


def row_to_post(row) -> ScoredPost:
    m = row._mapping
    return ScoredPost(
        id=m["id"], text=m["text"], source=m["source"], created_at=m["created_at"], received_at=m["received_at"],
        scored_at=m["scored_at"], lang=m["lang"], lang_declared=m["lang_declared"],
        lang_confidence=m["lang_confidence"], author=m["author"], url=m["url"], tickers=m["tickers"],
        label=m["label"], scores=Scores(negative=m["p_negative"], neutral=m["p_neutral"], positive=m["p_positive"]),
        score=m["score"], model_version=m["model_version"], dedup_key=m["dedup_key"], notes=m["notes"],
        meta=m["meta"],
    )


def _insert(engine: Engine, table):
    return (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)


def upsert_posts(engine: Engine, batch: Sequence[ScoredPost]) -> int:
    """Store a batch in one transaction; raises ``StoreUnavailable`` if the database cannot take it."""
    if not batch:
        return 0
    unique = {p.id: p for p in batch}  # the last occurrence of an id inside one batch wins
    rows = [post_row(p) for p in unique.values()]
    ticker_rows = [{"post_id": p.id, "ticker": t, "created_at": p.created_at, "lang": p.lang}
                   for p in unique.values() for t in dict.fromkeys(p.tickers)]
    stmt = _insert(engine, posts)
    stmt = stmt.on_conflict_do_update(index_elements=[posts.c.id],
                                      set_={c.name: stmt.excluded[c.name] for c in posts.columns if c.name != "id"})
    try:
        with engine.begin() as conn:
            ids = list(unique)
            for i in range(0, len(rows), _CHUNK):
                conn.execute(stmt, rows[i : i + _CHUNK])
                conn.execute(delete(post_tickers).where(post_tickers.c.post_id.in_(ids[i : i + _CHUNK])))
            for i in range(0, len(ticker_rows), _CHUNK):
                conn.execute(post_tickers.insert(), ticker_rows[i : i + _CHUNK])
    except (OperationalError, DBAPIError) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(getattr(exc, "orig", exc)).strip() else type(exc).__name__
        raise StoreUnavailable(f"could not store {len(rows)} posts: {reason}") from exc
    return len(rows)


def count_posts(engine: Engine) -> int:
    from sqlalchemy import func

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(posts)).scalar_one())


def get_posts(engine: Engine, ids: Sequence[str]) -> list[ScoredPost]:
    with engine.connect() as conn:
        rows = conn.execute(select(posts).where(posts.c.id.in_(list(ids)))).all()
    return [row_to_post(r) for r in rows]


def posts_between(engine: Engine, start: datetime, end: datetime) -> list[ScoredPost]:
    """Posts with ``start <= created_at < end``, oldest first (backfill and drill-down)."""
    with engine.connect() as conn:
        rows = conn.execute(select(posts).where(posts.c.created_at >= start, posts.c.created_at < end)
                            .order_by(posts.c.created_at, posts.c.id)).all()
    return [row_to_post(r) for r in rows]
