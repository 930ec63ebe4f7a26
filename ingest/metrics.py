"""Prometheus metrics of the scorer, on the process-wide default registry.

Created once at import (Prometheus refuses a second metric of the same name), so several scorer
loops in one process (threads in ``monitor demo``) add to the same series. :func:`status` reads them
back for the scorer's heartbeat (``monitor status``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from monitor.health import metric_total, serve_metrics  # noqa: F401  (serve_metrics: the scorer's endpoint is the process-wide one)

CONSUMED = Counter("monitor_scorer_consumed", "Messages read from the raw topic")
SCORED = Counter("monitor_scorer_scored", "Posts scored, stored and produced to the scored topic")
DEADLETTERED = Counter("monitor_scorer_deadlettered", "Messages sent to the dead-letter topic", ["stage"])
BATCH_SECONDS = Histogram("monitor_scorer_batch_seconds", "Time from poll to commit of one batch",
                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
STAGE_SECONDS = Histogram("monitor_scorer_stage_seconds", "Time per batch in each stage of the loop", ["stage"],
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
LAG = Gauge("monitor_scorer_lag", "Messages behind the high watermark (highwater - position)", ["topic", "partition"])
STORE_RETRIES = Counter("monitor_scorer_store_retries", "Store writes retried after the store was unavailable")
PRODUCE_RETRIES = Counter("monitor_scorer_produce_retries", "Batches re-produced after Kafka refused them")
COMMIT_FAILURES = Counter("monitor_scorer_commit_failures",
                          "Commits refused after a rebalance (the batch is re-delivered to the new owner)")
BACKING_OFF = Gauge("monitor_scorer_backing_off", "1 while the current batch waits for the store or for Kafka to "
                    "take the produced batch (nothing is committed meanwhile)", ["waiting_for"])
LAST_COMMIT = Gauge("monitor_scorer_last_commit_timestamp_seconds", "Unix time of the last committed batch")

_WAITING = {"store": "store unavailable: the batch is retried with back-off, nothing committed",
            "kafka": "Kafka refuses the produced batch: re-producing with back-off, nothing committed"}


def status() -> dict[str, Any]:
    """The scorer's counters and current problem, for its heartbeat."""
    waiting = [why for key, why in _WAITING.items()
               if REGISTRY.get_sample_value("monitor_scorer_backing_off", {"waiting_for": key})]
    counts = {"consumed": CONSUMED, "scored": SCORED, "deadlettered": DEADLETTERED, "lag": LAG,
              "store_retries": STORE_RETRIES}
    return {**{k: int(metric_total(m)) for k, m in counts.items()},
            "last_commit_unix": metric_total(LAST_COMMIT) or None, "problem": "; ".join(waiting) or None}
