"""Routing and grouping: firing and resolved alerts -> groups per receiver -> the pipeline -> the outbox.

An alert goes to every receiver its rule names; alerts with equal ``group_by`` labels for one
receiver form a group and are notified together: first ``group_wait`` after the group appears
(so a burst across languages arrives as one message), then at most every ``group_interval``.

Group state (next flush, what was last notified) lives in ``alert_groups`` and is updated in the
transaction that enqueues the messages, guarded by the ``next_flush_at`` it was read with: of two
processes flushing one group, one wins and the other sends nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update

from alerts.alert_store import load_alerts
from alerts.model import FIRING, RESOLVED, Alert
from alerts.outbox import enqueue
from alerts.pipeline import DedupStage, FlushContext, InhibitStage, NotifyStage, Pipeline, SilenceStage
from alerts.rules import RuleSet
from alerts.silences import list_silences
from monitor.store.alert_tables import alert_groups

log = logging.getLogger(__name__)


def group_key(receiver: str, labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps([receiver, labels], sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Group:
    key: str
    receiver: str
    labels: dict[str, str]
    members: list[Alert]


class Dispatcher:
    def __init__(self, engine: Engine, ruleset: RuleSet, notify: NotifyStage) -> None:
        self.engine = engine
        self.ruleset = ruleset
        self.notify = notify

    def _groups(self, alerts: list[Alert]) -> dict[str, _Group]:
        groups: dict[str, _Group] = {}
        for alert in alerts:
            for name in alert.receivers:
                if self.ruleset.receiver(name) is None:
                    continue
                labels = {k: alert.labels.get(k, "") for k in self.ruleset.grouping(name).group_by}
                key = group_key(name, labels)
                groups.setdefault(key, _Group(key, name, labels, [])).members.append(alert)
        return groups

    def flush(self, now: datetime) -> int:
        """Flush every group that is due at ``now``; returns the number of messages put in the outbox."""
        alerts = load_alerts(self.engine, states=[FIRING, RESOLVED])
        groups = self._groups(alerts)
        with self.engine.connect() as conn:
            known = {r.group_key: r for r in conn.execute(select(alert_groups))}
        with self.engine.begin() as conn:
            for key, g in groups.items():
                if key not in known and any(a.state == FIRING for a in g.members):
                    conn.execute(insert(alert_groups).values(
                        group_key=key, receiver=g.receiver, group_labels=g.labels, created_at=now,
                        next_flush_at=now + self.ruleset.grouping(g.receiver).group_wait, last_notified_at=None,
                        notified_firing=[]))
            for key in set(known) - set(groups):
                conn.execute(delete(alert_groups).where(alert_groups.c.group_key == key))
        with self.engine.connect() as conn:
            due = [r for r in conn.execute(select(alert_groups).where(alert_groups.c.next_flush_at <= now))
                   if r.group_key in groups]
        if not due:
            return 0
        firing = [a for a in alerts if a.state == FIRING]
        stages = [InhibitStage(self.ruleset.spec.inhibit, firing), SilenceStage(list_silences(self.engine, now)),
                  DedupStage(), self.notify]
        pipeline = Pipeline(stages)
        return sum(self._flush_group(pipeline, row, groups[row.group_key], now) for row in due)

    def _flush_group(self, pipeline: Pipeline, row, g: _Group, now: datetime) -> int:
        receiver = self.ruleset.receiver(g.receiver)
        assert receiver is not None
        grouping = self.ruleset.grouping(g.receiver)
        told = frozenset(row.notified_firing)
        ctx = FlushContext(now=now, receiver_name=g.receiver, receiver=receiver, grouping=grouping,
                           group_key=g.key, group_labels=g.labels, notified_firing=told,
                           last_notified_at=row.last_notified_at)
        members = sorted(g.members, key=lambda a: (a.state != FIRING, a.series_kind, a.series_key, a.rule))
        sent = pipeline.run(ctx, members)
        firing_all = {a.fingerprint for a in g.members if a.state == FIRING}
        values: dict = {"next_flush_at": now + grouping.group_interval}
        if ctx.messages:
            sent_firing = {a.fingerprint for a in sent if a.state == FIRING}
            # Muted alerts the receiver already knew about stay "known", so an unmute does not re-announce them.
            values.update(last_notified_at=now, notified_firing=sorted(sent_firing | ((firing_all - sent_firing) & told)))
        finished = not firing_all  # nothing fires: the resolved notice (if any) went out in this flush
        guard = (alert_groups.c.group_key == g.key) & (alert_groups.c.next_flush_at == row.next_flush_at)
        with self.engine.begin() as conn:
            stmt = delete(alert_groups).where(guard) if finished else update(alert_groups).where(guard).values(**values)
            if conn.execute(stmt).rowcount != 1:
                log.info("group %s was flushed by another process", g.key)
                return 0
            added = enqueue(conn, ctx.messages, now)
        if ctx.messages:
            log.info("notified %s: %d firing, %d resolved (%s)", g.receiver, len([a for a in sent if a.state == FIRING]),
                     len([a for a in sent if a.state == RESOLVED]), ", ".join(f"{k}={v}" for k, v in g.labels.items()))
        return added
