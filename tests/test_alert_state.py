"""The life of one alert: ``for``, ``keep_firing_for`` (hysteresis) and ``cooldown``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from alerts.model import FIRING, INACTIVE, PENDING, RESOLVED, Instance
from alerts.rules import parse_rules
from alerts.state import advance
from tests.alert_helpers import MIN, T0


def _rule(**fields):
    extra = "".join(f"\n    {k}: {v}" for k, v in fields.items())
    text = f"receivers:\n  d:\n    email: [d@example.com]\nrules:\n  - name: r\n    kind: risk\n    above: 50\n    receivers: [d]{extra}\n"
    return parse_rules(text, Path("r.yaml")).rules[0]


def _inst(value: float = 80.0) -> Instance:
    return Instance("r", "warning", "ticker", "AAPL", value, 50.0, T0, T0 + 15 * MIN, f"risk {value}")


def _run(rule, holds: list[bool]):
    """The state after each minute, given whether the condition holds at each."""
    alert, states, entered = None, [], []
    for i, ok in enumerate(holds):
        step = advance(alert, _inst() if ok else None, rule, T0 + i * MIN)
        alert = step.alert
        states.append(alert.state if alert else None)
        entered.append(step.entered)
    return states, entered


def test_for_makes_an_alert_wait_as_pending():
    states, entered = _run(_rule(**{"for": "3m"}), [True, True, True, True, True])
    assert states == [PENDING, PENDING, PENDING, FIRING, FIRING]
    assert entered == [PENDING, None, None, FIRING, None]


def test_a_blip_shorter_than_for_never_fires():
    states, entered = _run(_rule(**{"for": "3m"}), [True, True, False, True])
    assert states == [PENDING, PENDING, None, PENDING]
    assert entered == [PENDING, None, INACTIVE, PENDING]


def test_keep_firing_for_bridges_gaps_then_resolves():
    holds = [True, False, True, False, False, False]
    states, entered = _run(_rule(keep_firing_for="2m"), holds)
    # last held at minute 2: firing until 2 minutes after that
    assert states == [FIRING, FIRING, FIRING, FIRING, RESOLVED, RESOLVED]
    assert entered.count(FIRING) == 1 and entered.count(RESOLVED) == 1


def test_without_hysteresis_it_resolves_at_once():
    states, _ = _run(_rule(), [True, False])
    assert states == [FIRING, RESOLVED]


def test_cooldown_holds_a_refire_back_as_pending():
    holds = [True, False, True, True, True, True]
    states, entered = _run(_rule(cooldown="3m"), holds)
    # fired at 0, resolved at 1; may fire again from minute 4 (resolved 1 + 3)
    assert states == [FIRING, RESOLVED, PENDING, PENDING, FIRING, FIRING]
    assert entered == [FIRING, RESOLVED, PENDING, None, FIRING, None]


def test_pending_during_cooldown_that_stops_returns_to_resolved():
    states, _ = _run(_rule(cooldown="10m"), [True, False, True, False, True])
    assert states == [FIRING, RESOLVED, PENDING, RESOLVED, PENDING]


def test_a_firing_alert_follows_the_latest_evidence():
    rule = _rule()
    first = advance(None, _inst(80), rule, T0).alert
    later = advance(first, _inst(95), rule, T0 + MIN).alert
    assert later.value == 95 and later.fired_at == T0 and later.last_true_at == T0 + MIN
    assert later.fingerprint == first.fingerprint
    assert advance(later, None, rule, T0 + 2 * MIN).alert.resolved_at == T0 + 2 * MIN
    assert timedelta(0) == rule.for_
