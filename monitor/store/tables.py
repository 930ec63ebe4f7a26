"""Tables for posts (the scorer's output). Other concerns keep their tables in their own modules
(``aggregate_tables``, ``alert_tables``) on the same ``metadata``."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table, Text

from monitor.store.types import UtcDateTime

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UtcDateTime, nullable=False),
)

posts = Table(
    "posts",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("text", Text, nullable=False),
    Column("source", String(2048), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("scored_at", UtcDateTime, nullable=False),
    Column("lang", String(8), nullable=False),
    Column("lang_declared", String(64)),
    Column("lang_confidence", Float),
    Column("author", String(2048)),
    Column("url", String(2048)),
    Column("tickers", JSON, nullable=False),
    Column("label", String(8), nullable=False),
    Column("p_negative", Float, nullable=False),
    Column("p_neutral", Float, nullable=False),
    Column("p_positive", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("dedup_key", String(64), nullable=False),
    Column("notes", JSON, nullable=False),
    Column("meta", JSON, nullable=False),
)
Index("ix_posts_created_at", posts.c.created_at)
Index("ix_posts_lang_created_at", posts.c.lang, posts.c.created_at)
Index("ix_posts_source_created_at", posts.c.source, posts.c.created_at)
Index("ix_posts_dedup_key", posts.c.dedup_key)

# One row per (post, ticker): per-ticker drill-down and aggregation use an index, not a JSON scan.
post_tickers = Table(
    "post_tickers",
    metadata,
    Column("post_id", String(256), primary_key=True),
    Column("ticker", String(32), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("lang", String(8), nullable=False),
)
Index("ix_post_tickers_ticker_created_at", post_tickers.c.ticker, post_tickers.c.created_at)
