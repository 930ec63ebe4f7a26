"""Alert state and its history in the store: what is pending, firing and resolved survives restarts.

Every evaluation writes its changes in one transaction (the alerts and their history rows
together), so a crash leaves either the old state or the new one, never half of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from alerts.model import RESOLVED, Alert
from alerts.state import Step
from monitor.store.alert_tables import alert_events, alerts

RESOLVED_RETENTION = timedelta(days=7)  # resolved alerts stay listable this long; history stays for good


def load_alerts(engine: Engine, *, rules: Sequence[str] | None = None, states: Sequence[str] | None = None) -> list[Alert]:
    stmt = select(alerts)
    if rules is not None:
        stmt = stmt.where(alerts.c.rule.in_(list(rules)))
    if states is not None:
        stmt = stmt.where(alerts.c.state.in_(list(states)))
    with engine.connect() as conn:
        return [Alert.from_row(r) for r in conn.execute(stmt.order_by(alerts.c.active_since, alerts.c.fingerprint))]


def save_steps(engine: Engine, changes: Iterable[tuple[Alert | None, Step]], now: datetime) -> None:
    """Persist each ``(previous, step)`` of one evaluation, and a history row per state entered."""
    with engine.begin() as conn:
        for prev, step in changes:
            if step.alert is None:
                if prev is not None:
                    conn.execute(delete(alerts).where(alerts.c.fingerprint == prev.fingerprint))
            elif prev is None:
                conn.execute(insert(alerts).values(step.alert.to_row()))
            elif step.alert != prev:
                conn.execute(update(alerts).where(alerts.c.fingerprint == prev.fingerprint).values(step.alert.to_row()))
            if step.entered is not None:
                subject = step.alert or prev
                assert subject is not None
                conn.execute(insert(alert_events).values(
                    fingerprint=subject.fingerprint, rule=subject.rule, severity=subject.severity, at=now,
                    state=step.entered, value=subject.value, labels=subject.labels, series_kind=subject.series_kind,
                    series_key=subject.series_key))
        conn.execute(delete(alerts).where(alerts.c.state == RESOLVED, alerts.c.resolved_at < now - RESOLVED_RETENTION))


def history(engine: Engine, since: datetime, until: datetime, states: Sequence[str] | None = None) -> list[dict]:
    stmt = select(alert_events).where(alert_events.c.at >= since, alert_events.c.at < until)
    if states is not None:
        stmt = stmt.where(alert_events.c.state.in_(list(states)))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt.order_by(alert_events.c.at, alert_events.c.id))]
