"""The live schedule (APScheduler): each rule at its interval, groups and outbox every tick, the digest daily.

Evaluation and dispatch share one worker thread, so they never race on alert state; delivery has
its own, so a slow or unreachable mail server never delays evaluation. A job that fails (the store
is down) logs one line and runs again at its next time; nothing is lost, because state and outbox
are in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from alerts import metrics
from alerts.service import AlertService
from monitor.errors import UserError

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def _guarded(name: str, job: Callable[[datetime], object], clock: Clock) -> Callable[[], None]:
    def run() -> None:
        try:
            job(clock())
        except UserError as exc:  # StoreUnavailable and friends: say it, try again next time
            log.error("%s: %s", name, exc)
        except Exception:
            log.exception("%s failed; it runs again at its next time", name)
        else:
            metrics.job_done(name, ok=True)
            return
        metrics.job_done(name, ok=False)

    return run


def quiet_libraries() -> None:
    """APScheduler logs every job run and aiosmtpd every connection at INFO: keep the log for alerts."""
    for name in ("apscheduler", "mail.log"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_scheduler(service: AlertService, clock: Clock, *, tick_s: float, digest_at: str | None) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=timezone.utc, executors={
        "default": ThreadPoolExecutor(1), "delivery": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
    start = datetime.now(timezone.utc)  # APScheduler runs on the wall clock; jobs see ``clock()``
    for rule in service.ruleset.rules:
        scheduler.add_job(_guarded(f"rule {rule.name}", lambda now, r=rule: service.evaluate(r, now), clock),
                          IntervalTrigger(seconds=rule.interval.total_seconds(), timezone=timezone.utc),
                          id=f"rule:{rule.name}", name=f"rule {rule.name}", next_run_time=start)
    scheduler.add_job(_guarded("dispatch", service.dispatcher.flush, clock), IntervalTrigger(seconds=tick_s),
                      id="dispatch", name="dispatch", next_run_time=start)
    scheduler.add_job(_guarded("delivery", service.outbox.deliver_due, clock), IntervalTrigger(seconds=tick_s),
                      id="delivery", name="delivery", executor="delivery", next_run_time=start)
    if digest_at:
        hour, minute = (int(x) for x in digest_at.split(":"))
        scheduler.add_job(_guarded("digest", service.digests.enqueue, clock),
                          CronTrigger(hour=hour, minute=minute, timezone=timezone.utc), id="digest", name="digest")
    return scheduler
