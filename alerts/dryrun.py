"""``monitor alerts test-rule``: replay stored data through a rules file without touching alert state.

The same conditions and state machine as the live service, stepped at each rule's interval over
the stored span, with the state kept in memory: it answers "which alerts would have fired, when,
and for how long" before a rule goes live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from alerts import conditions
from alerts.model import FIRING, RESOLVED, Alert
from alerts.queries import StoreQueries
from alerts.rules import Rule, RuleSet
from alerts.state import advance


@dataclass
class Firing:
    """One episode of an alert in the replay: from firing to resolved (or still firing at the end)."""

    rule: str
    severity: str
    series_kind: str
    series_key: str
    fired_at: datetime
    resolved_at: datetime | None
    peak: float
    summary: str

    def as_dict(self) -> dict:
        return {**self.__dict__, "fired_at": self.fired_at.isoformat(),
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None}


def replay_rule(rule: Rule, queries: StoreQueries, start: datetime, end: datetime,
                on_step: Callable[[], None] | None = None) -> list[Firing]:
    states: dict[str, Alert] = {}
    open_: dict[str, Firing] = {}
    done: list[Firing] = []
    now = start
    while now <= end:
        found = {i.fingerprint: i for i in conditions.instances(rule, queries, now)}
        for fp in {**states, **found}:
            step = advance(states.get(fp), found.get(fp), rule, now)
            if step.alert is None:
                states.pop(fp, None)
                continue
            states[fp] = step.alert
            a = step.alert
            if step.entered == FIRING:
                open_[fp] = Firing(rule.name, rule.severity, a.series_kind, a.series_key, now, None, a.value, a.summary)
            elif fp in open_ and a.state == FIRING and abs(a.value) > abs(open_[fp].peak):
                open_[fp].peak, open_[fp].summary = a.value, a.summary
            elif step.entered == RESOLVED and fp in open_:
                episode = open_.pop(fp)
                episode.resolved_at = now
                done.append(episode)
        if on_step:
            on_step()
        now += rule.interval
    return sorted(done + list(open_.values()), key=lambda f: (f.fired_at, f.series_key))


def replay(ruleset: RuleSet, queries: StoreQueries, start: datetime, end: datetime,
           progress: Callable[[int], Callable[[], None]] | None = None) -> list[Firing]:
    """Every rule over ``[start, end]``; ``progress(total_steps)`` may return a per-step callback (a bar)."""
    total = sum(int((end - start) / r.interval) + 1 for r in ruleset.rules)
    tick = progress(total) if progress else None
    out: list[Firing] = []
    for rule in ruleset.rules:
        out += replay_rule(rule, queries, start, end, tick)
    return sorted(out, key=lambda f: (f.fired_at, f.rule, f.series_key))
