"""Tables for windowed aggregates, anomalies and risk scores (owned by the aggregation concern).

Series are named by ``(series_kind, series_key)``:

==============  =====================  ==========================
series_kind     series_key             example
==============  =====================  ==========================
``all``         ``*``                  every post
``lang``        language code          ``de``
``ticker``      ticker                 ``AAPL``
``ticker_lang`` ``TICKER|lang``        ``7203.T|ja``
``source``      source name            ``reuters``
==============  =====================  ==========================
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table, UniqueConstraint

from monitor.store.tables import metadata
from monitor.store.types import UtcDateTime

aggregates = Table(
    "aggregates",
    metadata,
    Column("window_s", Integer, primary_key=True),
    Column("series_kind", String(16), primary_key=True),
    Column("series_key", String(300), primary_key=True),
    Column("window_start", UtcDateTime, primary_key=True),
    Column("count", Integer, nullable=False),  # every post in the window
    Column("unique_count", Integer, nullable=False),  # after de-duplication: what trends use
    Column("n_negative", Integer, nullable=False),
    Column("n_neutral", Integer, nullable=False),
    Column("n_positive", Integer, nullable=False),
    Column("sum_score", Float, nullable=False),
    Column("mean_score", Float, nullable=False),
    Column("share_negative", Float, nullable=False),
    Column("share_positive", Float, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_aggregates_window_start", aggregates.c.window_s, aggregates.c.window_start)

anomalies = Table(
    "anomalies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("series_kind", String(16), nullable=False),
    Column("series_key", String(300), nullable=False),
    Column("window_s", Integer, nullable=False),
    Column("window_start", UtcDateTime, nullable=False),
    Column("window_end", UtcDateTime, nullable=False),
    Column("metric", String(32), nullable=False),  # mean_score | share_negative | volume
    Column("detector", String(32), nullable=False),  # robust_z | ewma
    Column("direction", String(8), nullable=False),  # down | up
    Column("observed", Float, nullable=False),
    Column("baseline", Float, nullable=False),
    Column("spread", Float, nullable=False),
    Column("score", Float, nullable=False),  # signed z-like score
    Column("volume", Integer, nullable=False),
    Column("post_ids", JSON, nullable=False),  # the posts that drove it, for drill-down
    Column("detected_at", UtcDateTime, nullable=False),
    UniqueConstraint("series_kind", "series_key", "window_s", "window_start", "metric", "detector",
                     name="uq_anomalies_series_window"),
)
Index("ix_anomalies_window_start", anomalies.c.window_start)
Index("ix_anomalies_series", anomalies.c.series_kind, anomalies.c.series_key, anomalies.c.window_start)

risk_scores = Table(
    "risk_scores",
    metadata,
    Column("ticker", String(32), primary_key=True),
    Column("window_s", Integer, primary_key=True),
    Column("window_start", UtcDateTime, primary_key=True),
    Column("risk", Float, nullable=False),  # 0..100
    Column("negative_shift", Float, nullable=False),
    Column("volume_spike", Float, nullable=False),
    Column("languages_negative", Integer, nullable=False),
    Column("languages", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_risk_scores_window_start", risk_scores.c.window_s, risk_scores.c.window_start)
