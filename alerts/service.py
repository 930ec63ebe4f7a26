"""The alerting service: evaluation, dispatch, delivery and digests over one store, at a given time.

Every entry point takes ``now``: the scheduler passes the wall clock, a scenario test or a replay
passes event time, and nothing inside looks at a clock of its own. State lives in the store, so a
new service on the same store (a restart) carries on where the last one stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from alerts.digest import DigestSender
from alerts.dispatch import Dispatcher
from alerts.evaluator import Evaluator
from alerts.evidence import EvidenceFinder
from alerts.outbox import Backoff, DeliveryReport, Notifier, OutboxSender
from alerts.pipeline import NotifyStage
from alerts.queries import StoreQueries
from alerts.rules import Rule, RuleSet
from alerts.state import Step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceOptions:
    sender: str = "monitor@localhost"
    dashboard_url: str = "http://127.0.0.1:8501"
    kafka_topic: str = "alerts"
    resolution_s: int = 60
    backoff: Backoff = Backoff()


class AlertService:
    def __init__(self, engine: Engine, ruleset: RuleSet, notifiers: Mapping[str, Notifier],
                 options: ServiceOptions = ServiceOptions()) -> None:
        self.ruleset = ruleset
        queries = StoreQueries(engine, options.resolution_s)
        evidence = EvidenceFinder(queries, ruleset, options.dashboard_url)
        self.evaluator = Evaluator(engine, ruleset, queries)
        self.dispatcher = Dispatcher(engine, ruleset, NotifyStage(
            evidence, sender=options.sender, dashboard_url=options.dashboard_url, kafka_topic=options.kafka_topic))
        self.outbox = OutboxSender(engine, notifiers, options.backoff)
        self.digests = DigestSender(engine, ruleset, sender=options.sender, dashboard_url=options.dashboard_url)
        self._next_due: dict[str, datetime] = {}

    def start(self, now: datetime) -> None:
        retired = self.evaluator.retire_removed_rules(now)
        if retired:
            log.info("retired %d alerts of rules no longer in %s", retired, self.ruleset.path)

    def evaluate(self, rule: Rule, now: datetime) -> list[Step]:
        return self.evaluator.evaluate(rule, now)

    def evaluate_due(self, now: datetime) -> list[Step]:
        """Evaluate every rule whose interval has passed since its last evaluation by this service."""
        changed = []
        for rule in self.ruleset.rules:
            if now >= self._next_due.get(rule.name, now):
                changed += self.evaluate(rule, now)
                self._next_due[rule.name] = now + rule.interval
        return changed

    def flush(self, now: datetime) -> DeliveryReport:
        """Notify the groups that are due, then deliver what the outbox holds."""
        self.dispatcher.flush(now)
        return self.outbox.deliver_due(now)

    def tick(self, now: datetime) -> DeliveryReport:
        """One step of simulated or replayed time: due rules, due groups, due deliveries."""
        self.evaluate_due(now)
        return self.flush(now)

    def digest(self, now: datetime) -> DeliveryReport:
        self.digests.enqueue(now)
        return self.outbox.deliver_due(now)
