"""Tables for windowed aggregates, anomalies and risk scores (owned by the aggregation concern).

Series are named by ``(series_kind, series_key)``:

==============  =====================  ==========================
series_kind     series_key             example
==============  =====================  ==========================
``all``         ``*``                  every post
``lang``        language code          ``de`` (``und``: undetermined)
``ticker``      ticker                 ``AAPL``
``ticker_lang`` ``TICKER|lang``        ``7203.T|ja``
``source``      source name            ``reuters`` (first 300 characters)
==============  =====================  ==========================

``aggregates`` (read by the dashboard and the alert rules), one row per (window, series) with posts:

* ``window_s`` is the window size (60, 900, 3600 by default), ``window_start`` its UTC start
  (tumbling windows aligned on the epoch), on the post's event time (``created_at``);
* ``count`` is every post; ``unique_count`` is stories: a syndicated copy (same core text, see
  ``monitor.aggregate.dedup``) counts once. ``n_negative + n_neutral + n_positive == unique_count``,
  and ``sum_score``, ``mean_score``, ``share_negative`` and ``share_positive`` are over those unique
  posts too (0 when a window holds only copies), so one story repeated fifty times moves neither
  volume nor sentiment;
* a row is a pure function of the stored posts of its window: recomputed, never incremented, so
  re-delivery, restarts and backfills never double count. Posts later than the allowed lateness
  still update their window (it is reloaded from the store), and the window is scored again.

``anomalies``: one row per (series, window, metric, detector) that left its baseline in the bad
direction (``metric``: ``volume`` up, ``share_negative`` up, ``mean_score`` down; ``detector``:
``robust_z`` or ``ewma``). ``observed``, ``baseline`` and ``spread`` are on the metric's own scale
(posts, share, mean score), ``score`` is the signed z on the noise-stabilised scale
(``monitor.anomaly.metrics``), ``volume`` the window's unique posts, ``post_ids`` up to 50 posts that
drove it (the most negative for sentiment, the earliest for volume). A window is scored when it
ends and re-scored whenever late posts change it: a row is updated in place (same id), and deleted
if the window no longer qualifies.

``risk_scores``: per ticker and window, 0-100 (``monitor.anomaly.risk``); ``languages`` lists the
languages in which the ticker turned negative (``languages_negative`` of them).

``aggregate_parts`` and ``aggregator_progress`` are the aggregator's own bookkeeping (per-language
partial sums, event time per Kafka partition); other concerns should not read them.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table, UniqueConstraint

from monitor.store.tables import metadata
from monitor.store.types import UtcDateTime

Series = tuple[str, str]  # (series_kind, series_key)
ALL: Series = ("all", "*")

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

# Per-language partial sums: each aggregator writes the languages of its partitions, ``aggregates``
# is their sum. Scores are summed as integers (nano-units) so that the sum is exact in any order.
aggregate_parts = Table(
    "aggregate_parts",
    metadata,
    Column("window_s", Integer, primary_key=True),
    Column("series_kind", String(16), primary_key=True),
    Column("series_key", String(300), primary_key=True),
    Column("window_start", UtcDateTime, primary_key=True),
    Column("lang", String(8), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("unique_count", Integer, nullable=False),
    Column("n_negative", Integer, nullable=False),
    Column("n_neutral", Integer, nullable=False),
    Column("n_positive", Integer, nullable=False),
    Column("sum_score_nano", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The latest event time each aggregator group has seen per partition: which windows have ended is
# known again after a restart, so windows that end while the aggregator is down are still scored.
aggregator_progress = Table(
    "aggregator_progress",
    metadata,
    Column("group_id", String(255), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("event_time", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
