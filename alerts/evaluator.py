"""Rule evaluation: what holds now, merged with what was already pending or firing, saved in one go."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine

from alerts import conditions
from alerts.alert_store import load_alerts, save_steps
from alerts.model import FIRING, INACTIVE, PENDING, RESOLVED, Alert
from alerts.queries import StoreQueries
from alerts.rules import Rule, RuleSet
from alerts.state import Step, advance

log = logging.getLogger(__name__)


class Evaluator:
    def __init__(self, engine: Engine, ruleset: RuleSet, queries: StoreQueries) -> None:
        self.engine = engine
        self.ruleset = ruleset
        self.queries = queries

    def evaluate(self, rule: Rule, now: datetime) -> list[Step]:
        """Evaluate one rule at ``now``; returns the alerts that changed state (``Step.entered`` set)."""
        found = {i.fingerprint: i for i in conditions.instances(rule, self.queries, now)}
        known = {a.fingerprint: a for a in load_alerts(self.engine, rules=[rule.name])}
        changes = [(known.get(fp), advance(known.get(fp), found.get(fp), rule, now)) for fp in {**known, **found}]
        save_steps(self.engine, changes, now)
        entered = [step for _, step in changes if step.entered]
        for step in entered:
            if step.alert is not None and step.entered in (FIRING, RESOLVED):
                log.info("alert %s %s: %s", rule.name, step.entered, step.alert.summary)
        return entered

    def retire_removed_rules(self, now: datetime) -> int:
        """Alerts of rules no longer in the file resolve (firing) or are dropped (pending) instead of hanging on."""
        names = {r.name for r in self.ruleset.rules}
        stale = [a for a in load_alerts(self.engine, states=[PENDING, FIRING]) if a.rule not in names]
        changes: list[tuple[Alert | None, Step]] = [
            (a, Step(a.with_(state=RESOLVED, resolved_at=now, evaluated_at=now), RESOLVED) if a.state == FIRING
             else Step(None, INACTIVE)) for a in stale]
        save_steps(self.engine, changes, now)
        return len(changes)
