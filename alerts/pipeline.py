"""The notification pipeline of one group at one flush: small stages behind one interface.

Like Alertmanager's: ``inhibit -> silence -> dedup -> notify``. Each stage takes the group's alerts
and returns those that go on; an empty list ends the flush with nothing sent. Routing and grouping
happen before (``alerts.dispatch``), retries after (``alerts.outbox``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from alerts.evidence import EvidenceFinder
from alerts.model import FIRING, RESOLVED, Alert
from alerts.notification import Message, Notification
from alerts.payloads import alertmanager_body, slack_body
from alerts.render import render_alert_email, subject_for
from alerts.rules import Grouping, Inhibit, Receiver
from alerts.silences import Silence


@dataclass
class FlushContext:
    now: datetime
    receiver_name: str
    receiver: Receiver
    grouping: Grouping
    group_key: str
    group_labels: dict[str, str]
    notified_firing: frozenset[str]  # what the receiver was last told is firing
    last_notified_at: datetime | None
    messages: list[Message] = field(default_factory=list)


class Stage(Protocol):
    def process(self, ctx: FlushContext, alerts: list[Alert]) -> list[Alert]: ...


class Pipeline:
    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    def run(self, ctx: FlushContext, alerts: list[Alert]) -> list[Alert]:
        for stage in self.stages:
            alerts = stage.process(ctx, alerts)
            if not alerts:
                break
        return alerts


def _subset(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


class InhibitStage:
    """Mute alerts that a firing, more important alert already covers (e.g. a critical on the same ticker)."""

    def __init__(self, rules: Sequence[Inhibit], firing: Sequence[Alert]) -> None:
        self.rules = rules
        self.firing = firing

    def inhibited(self, alert: Alert) -> bool:
        for rule in self.rules:
            if not _subset(alert.labels, rule.target):
                continue
            for source in self.firing:
                if (source.fingerprint != alert.fingerprint and _subset(source.labels, rule.source)
                        and all(source.labels.get(k) == alert.labels.get(k) for k in rule.equal)):
                    return True
        return False

    def process(self, ctx: FlushContext, alerts: list[Alert]) -> list[Alert]:
        return [a for a in alerts if a.state != FIRING or not self.inhibited(a)]


class SilenceStage:
    def __init__(self, silences: Sequence[Silence]) -> None:
        self.silences = silences

    def process(self, ctx: FlushContext, alerts: list[Alert]) -> list[Alert]:
        active = [s for s in self.silences if s.active(ctx.now)]
        return [a for a in alerts if not any(s.mutes(a.labels) for s in active)]


class DedupStage:
    """Send only what the receiver does not know yet (Alertmanager's notification log).

    A new firing alert in the group: send. Everything the receiver was told about resolved and
    nothing fires: send the resolved notice (if the receiver wants it). Nothing new: send again
    only when ``repeat_interval`` has passed. Alerts that fired and resolved between two flushes
    were never announced, so their resolution is not announced either.
    """

    def process(self, ctx: FlushContext, alerts: list[Alert]) -> list[Alert]:
        firing = [a for a in alerts if a.state == FIRING]
        told_resolved = [a for a in alerts if a.state == RESOLVED and a.fingerprint in ctx.notified_firing]
        if ctx.last_notified_at is None:
            return firing
        if not {a.fingerprint for a in firing} <= ctx.notified_firing:
            return firing + told_resolved
        if not firing:
            return told_resolved if ctx.receiver.send_resolved else []
        if ctx.now - ctx.last_notified_at >= ctx.grouping.repeat_interval:
            return firing + told_resolved
        return []


class NotifyStage:
    """Render the notification once per channel and target; the dispatcher stores them in the outbox."""

    def __init__(self, evidence: EvidenceFinder, *, sender: str, dashboard_url: str, kafka_topic: str) -> None:
        self.evidence = evidence
        self.sender = sender
        self.dashboard_url = dashboard_url
        self.kafka_topic = kafka_topic

    def process(self, ctx: FlushContext, alerts: list[Alert]) -> list[Alert]:
        n = Notification(ctx.receiver_name, ctx.group_key, ctx.group_labels, tuple(alerts), ctx.now)
        evidence = [self.evidence.gather(a, with_chart=bool(ctx.receiver.email) and a.state == FIRING)
                    for a in alerts]
        base = {"kind": n.kind, "receiver": n.receiver, "group_key": n.group_key, "fingerprints": n.fingerprints}
        title = subject_for(n)
        for address in ctx.receiver.email:
            subject, body = render_alert_email(n, evidence, sender=self.sender, to=address)
            ctx.messages.append(Message(channel="email", target=address, subject=subject, body=body, **base))
        for hook in ctx.receiver.webhooks:
            body = slack_body(n, evidence) if hook.format == "slack" else alertmanager_body(n, evidence, self.dashboard_url)
            ctx.messages.append(Message(channel="webhook", target=hook.target, subject=title, body=body, **base))
        if ctx.receiver.kafka:
            ctx.messages.append(Message(channel="kafka", target=self.kafka_topic, subject=title,
                                        body=alertmanager_body(n, evidence, self.dashboard_url), **base))
        ctx.messages[:] = [m.keyed(ctx.group_key, ctx.receiver_name, ctx.now.isoformat()) for m in ctx.messages]
        return alerts
