"""The life of one alert, as a pure function: pending -> firing -> resolved, with ``for``,
``keep_firing_for`` and ``cooldown``.

* A condition that starts to hold makes the alert *pending*; it *fires* once it has held for
  ``for`` (at once when ``for`` is 0). A pending alert whose condition stops is dropped (*inactive*).
* A firing alert whose condition stops stays firing until ``keep_firing_for`` has passed since the
  condition last held (hysteresis: a series hovering around its threshold does not flap), then
  *resolves*.
* A resolved alert cannot fire again before ``cooldown`` has passed; meanwhile it waits as pending.

Pure, so that live evaluation and the dry run (``monitor alerts test-rule``) share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from alerts.model import FIRING, INACTIVE, PENDING, RESOLVED, Alert, Instance
from alerts.rules import Rule


@dataclass(frozen=True)
class Step:
    """The alert after one evaluation (``None``: no longer tracked) and the state it entered, if any."""

    alert: Alert | None
    entered: str | None = None


def _from_instance(inst: Instance, rule: Rule, now: datetime, prev: Alert | None) -> Alert:
    return Alert(fingerprint=inst.fingerprint, rule=rule.name, severity=rule.severity, state=PENDING,
                 labels=inst.labels, annotations={"summary": inst.summary, "description": rule.description,
                                                  **inst.extra},
                 receivers=tuple(rule.receivers), value=inst.value, threshold=inst.threshold,
                 series_kind=inst.series_kind, series_key=inst.series_key, window_start=inst.window_start,
                 window_end=inst.window_end, post_ids=inst.post_ids, active_since=now, last_true_at=now,
                 evaluated_at=now, resolved_at=prev.resolved_at if prev else None)


def _may_fire(alert: Alert, rule: Rule, now: datetime) -> bool:
    cooled = alert.resolved_at is None or now - alert.resolved_at >= rule.cooldown
    return cooled and now - alert.active_since >= rule.for_


def advance(prev: Alert | None, inst: Instance | None, rule: Rule, now: datetime) -> Step:
    """The next state of one alert given whether its condition holds (``inst``) at ``now``."""
    if inst is not None:
        if prev is None or prev.state == RESOLVED:
            alert = _from_instance(inst, rule, now, prev)
        else:
            fresh = _from_instance(inst, rule, now, prev)
            alert = fresh.with_(state=prev.state, active_since=prev.active_since, fired_at=prev.fired_at)
        if alert.state == PENDING and _may_fire(alert, rule, now):
            return Step(alert.with_(state=FIRING, fired_at=now, resolved_at=None), FIRING)
        return Step(alert, PENDING if prev is None or prev.state == RESOLVED else None)
    if prev is None or prev.state == RESOLVED:
        return Step(prev)
    if prev.state == PENDING:
        # Back to what it was before (resolved, keeping its cool-down), or forgotten.
        kept = prev.with_(state=RESOLVED, evaluated_at=now) if prev.resolved_at is not None else None
        return Step(kept, INACTIVE)
    if now - prev.last_true_at >= rule.keep_firing_for:
        return Step(prev.with_(state=RESOLVED, resolved_at=now, evaluated_at=now), RESOLVED)
    return Step(prev.with_(evaluated_at=now))
