"""Prometheus metrics of ``monitor aggregate`` (served with ``MONITOR_METRICS_PORT``) and its heartbeat status."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from monitor.health import metric_total

CONSUMED = Counter("monitor_aggregator_consumed", "Scored posts read from the scored topic")
AGGREGATED = Counter("monitor_aggregator_aggregated", "Posts counted into windows")
DEADLETTERED = Counter("monitor_aggregator_deadlettered", "Messages refused (not a scored post)")
WINDOWS_SCORED = Counter("monitor_aggregator_windows_scored", "Windows scored by the anomaly detectors")
ANOMALIES = Counter("monitor_aggregator_anomaly_rows", "Anomaly rows written (a re-scored window counts again)")
LATE = Counter("monitor_aggregator_late", "Posts later than the allowed lateness (their window rebuilt)")
STORE_RETRIES = Counter("monitor_aggregator_store_retries", "Store writes retried during an outage")
WAITING_FOR_STORE = Gauge("monitor_aggregator_waiting_for_store", "1 while a store outage is being waited out")
FLUSH_SECONDS = Histogram("monitor_aggregator_flush_seconds", "Time to write a batch's windows and anomalies",
                          buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def status() -> dict[str, Any]:
    """Counters and the current problem, for the heartbeat file ``monitor status`` reads."""
    counts = {"consumed": CONSUMED, "aggregated": AGGREGATED, "deadlettered": DEADLETTERED,
              "windows_scored": WINDOWS_SCORED, "store_retries": STORE_RETRIES}
    return {**{k: int(metric_total(m)) for k, m in counts.items()},
            "problem": "waiting for the store" if metric_total(WAITING_FOR_STORE) else None}
