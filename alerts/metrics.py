"""Prometheus metrics of the alerting service, on the process-wide default registry.

Delivery outcomes are counted by the outbox, job runs by the scheduler; :func:`status` reads them back
for the heartbeat of ``monitor alerts run`` (``monitor status``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge

from monitor.health import metric_total

DELIVERED = Counter("monitor_alerts_delivered", "Notifications a server accepted", ["channel"])
DELIVERY_FAILURES = Counter("monitor_alerts_delivery_failures",
                            "Delivery attempts that failed (retrying: tried again later; permanent: marked failed)",
                            ["channel", "outcome"])
JOB_FAILURES = Counter("monitor_alerts_job_failures", "Scheduled runs that failed (evaluation, dispatch, delivery)",
                       ["job"])
JOB_FAILING = Gauge("monitor_alerts_job_failing", "1 while the last run of the job failed", ["job"])
JOB_LAST_SUCCESS = Gauge("monitor_alerts_job_last_success_timestamp_seconds", "Unix time of the job's last good run",
                         ["job"])
CHANNEL_DOWN = Gauge("monitor_alerts_channel_down", "1 while the last delivery attempt on the channel failed",
                     ["channel"])


def job_done(job: str, ok: bool) -> None:
    JOB_FAILING.labels(job).set(0 if ok else 1)
    if ok:
        JOB_LAST_SUCCESS.labels(job).set_to_current_time()
    else:
        JOB_FAILURES.labels(job).inc()


def delivery_done(channel: str, error: Exception | None, permanent: bool = False) -> None:
    CHANNEL_DOWN.labels(channel).set(0 if error is None or permanent else 1)
    if error is None:
        DELIVERED.labels(channel).inc()
    else:
        DELIVERY_FAILURES.labels(channel, "permanent" if permanent else "retrying").inc()


def _by_label(name: str, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for m in REGISTRY.collect() for s in m.samples if s.name == name}


def status() -> dict[str, Any]:
    """Counters and the current problem (a failing job, a channel whose server refuses), for the heartbeat."""
    failing = sorted(job for job, v in _by_label("monitor_alerts_job_failing", "job").items() if v)
    down = sorted(ch for ch, v in _by_label("monitor_alerts_channel_down", "channel").items() if v)
    problems = ([f"failing: {', '.join(failing)} (see the log; state and outbox are kept in the store)"] if failing else []) + \
               ([f"delivery on {', '.join(down)} failing: messages wait in the outbox" ] if down else [])
    return {"delivered": int(metric_total(DELIVERED)), "delivery_failures": int(metric_total(DELIVERY_FAILURES)),
            "problem": "; ".join(problems) or None}
