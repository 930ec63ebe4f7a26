"""Prometheus metrics of the scorer, on the process-wide default registry.

Created once at import (Prometheus refuses a second metric of the same name), so several scorer
loops in one process (threads in ``monitor demo``) add to the same series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Serve ``/metrics`` over HTTP in a daemon thread; ``port=0`` picks a free port. Returns the port."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)
