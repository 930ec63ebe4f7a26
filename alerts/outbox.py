"""The outbox: every message stays in the store until a notifier has delivered it.

A message enters the outbox in the same transaction that records the notification as sent, so a
crash cannot lose it or send it twice from the dispatcher's side. Delivery is at least once: a
crash after the server accepted a message and before it is marked sent re-sends it on restart (the
e-mail keeps its Message-ID, so mail clients can fold the copy).

Failures: a *retryable* one (server down, timeout, 4xx from SMTP, 5xx/429 from a webhook) is
tried again after an exponential back-off, for as long as it takes; a *permanent* one (the server
refuses the recipient or the request for good) marks the message ``failed`` with the reason, to be
seen with ``monitor alerts list --outbox``. Several processes may drain one outbox: a message is
claimed (``claimed_until``) before it is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update

from alerts import metrics
from alerts.notification import Message
from monitor.store.alert_tables import notifications

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A delivery failed; ``permanent`` means retrying cannot help. The message must hold no secret."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class Delivery:
    id: int
    kind: str
    channel: str
    receiver: str
    target: str
    subject: str
    body: str
    group_key: str | None
    attempts: int


class Notifier(Protocol):
    """Delivers one message on one channel, or raises :class:`DeliveryError`."""

    channel: str

    def send(self, delivery: Delivery) -> None: ...


@dataclass(frozen=True)
class Backoff:
    first_s: float = 5.0
    max_s: float = 300.0

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.max_s, self.first_s * 2 ** max(attempts - 1, 0)))


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def enqueue(conn: Connection, messages: Iterable[Message], now: datetime) -> int:
    """Add messages inside the caller's transaction; one whose ``dedup_key`` is already there is skipped."""
    added = 0
    for m in messages:
        if conn.execute(select(notifications.c.id).where(notifications.c.dedup_key == m.dedup_key)).first():
            continue
        conn.execute(insert(notifications).values(
            dedup_key=m.dedup_key, kind=m.kind, channel=m.channel, receiver=m.receiver, target=m.target,
            group_key=m.group_key, subject=m.subject, body=m.body, fingerprints=m.fingerprints, status="pending",
            attempts=0, next_attempt_at=now, claimed_until=None, last_error=None, created_at=now, sent_at=None))
        added += 1
    return added


class OutboxSender:
    def __init__(self, engine: Engine, notifiers: Mapping[str, Notifier], backoff: Backoff = Backoff(),
                 lease: timedelta = timedelta(minutes=2)) -> None:
        self.engine = engine
        self.notifiers = dict(notifiers)
        self.backoff = backoff
        self.lease = lease

    def _claim(self, row_id: int, now: datetime) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(update(notifications).where(
                notifications.c.id == row_id, notifications.c.status == "pending",
                or_(notifications.c.claimed_until.is_(None), notifications.c.claimed_until < now),
            ).values(claimed_until=now + self.lease))
        return result.rowcount == 1

    def _finish(self, d: Delivery, now: datetime, error: DeliveryError | None) -> None:
        if error is None:
            values = {"status": "sent", "sent_at": now, "attempts": d.attempts + 1, "claimed_until": None,
                      "last_error": None}
        elif error.permanent:
            values = {"status": "failed", "attempts": d.attempts + 1, "claimed_until": None,
                      "last_error": str(error)[:2000]}
        else:
            values = {"attempts": d.attempts + 1, "claimed_until": None, "last_error": str(error)[:2000],
                      "next_attempt_at": now + self.backoff.delay(d.attempts + 1)}
        with self.engine.begin() as conn:
            conn.execute(update(notifications).where(notifications.c.id == d.id).values(**values))

    def deliver_due(self, now: datetime, limit: int = 200) -> DeliveryReport:
        """Try every message that is due; a server that fails with a retryable error is left for the next round."""
        report = DeliveryReport()
        with self.engine.connect() as conn:
            rows = conn.execute(select(notifications).where(and_(
                notifications.c.status == "pending", notifications.c.next_attempt_at <= now,
                or_(notifications.c.claimed_until.is_(None), notifications.c.claimed_until < now),
            )).order_by(notifications.c.id).limit(limit)).all()
        down: set[str] = set()
        for r in rows:
            if _server(r.channel, r.target) in down or not self._claim(r.id, now):
                continue
            d = Delivery(r.id, r.kind, r.channel, r.receiver, r.target, r.subject, r.body, r.group_key, r.attempts)
            notifier = self.notifiers.get(d.channel)
            error: DeliveryError | None = None
            if notifier is None:
                error = DeliveryError(f"no {d.channel} notifier is configured in this process")
            else:
                try:
                    notifier.send(d)
                except DeliveryError as exc:
                    error = exc
            self._finish(d, now, error)
            metrics.delivery_done(d.channel, error, permanent=error is not None and error.permanent)
            if error is None:
                report.sent += 1
                log.info("delivered %s %s to %s", d.channel, d.kind, _shown(d.target))
                continue
            report.errors.append(f"{d.channel} to {_shown(d.target)}: {error}")
            if error.permanent:
                report.failed += 1
                log.error("gave up on %s to %s: %s", d.channel, _shown(d.target), error)
            else:
                report.retrying += 1
                down.add(_server(d.channel, d.target))
                log.warning("%s to %s failed (try %d), will retry in %s: %s", d.channel, _shown(d.target),
                            d.attempts + 1, self.backoff.delay(d.attempts + 1), error)
        return report


def _server(channel: str, target: str) -> str:
    """Which server a message goes through: one SMTP server and one Kafka cluster, a host per webhook."""
    return f"webhook {_shown(target)}" if channel == "webhook" else channel


def _shown(target: str) -> str:
    """A target as logs may show it: a webhook URL without its path (which may hold a token)."""
    if target.startswith(("http://", "https://")):
        return "/".join(target.split("/", 3)[:3]) + "/..."
    return target


def outbox_rows(engine: Engine, status: str | None = None, limit: int = 50) -> list[dict]:
    stmt = select(notifications.c.id, notifications.c.kind, notifications.c.channel, notifications.c.receiver,
                  notifications.c.target, notifications.c.subject, notifications.c.status, notifications.c.attempts,
                  notifications.c.next_attempt_at, notifications.c.last_error, notifications.c.created_at,
                  notifications.c.sent_at)
    if status is not None:
        stmt = stmt.where(notifications.c.status == status)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt.order_by(notifications.c.id.desc()).limit(limit))]
