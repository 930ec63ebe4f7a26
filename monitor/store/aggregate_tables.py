"""Tables for windowed aggregates, anomalies and risk scores (owned by the aggregation concern)."""

from __future__ import annotations
