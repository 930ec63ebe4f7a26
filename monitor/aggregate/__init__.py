"""Windowed aggregates per series (all, language, ticker, ticker x language, source) in event time.

:class:`~monitor.aggregate.aggregator.Aggregator` keeps the windows and writes aggregates, anomalies
and risk scores to the store; :func:`~monitor.aggregate.backfill.backfill` recomputes them from the
stored posts. The Kafka consumer loop that feeds the aggregator lives in ``ingest.aggregate_consumer``.
"""

from monitor.aggregate.aggregator import Aggregator, FlushReport
from monitor.aggregate.backfill import BackfillReport, backfill
from monitor.aggregate.records import Contribution, from_row, from_scored

__all__ = ["Aggregator", "BackfillReport", "Contribution", "FlushReport", "backfill", "from_row", "from_scored"]
