"""What one notification is about (a group's alerts at one flush) and the messages it becomes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from alerts.model import FIRING, RESOLVED, Alert

SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Notification:
    receiver: str
    group_key: str
    group_labels: dict[str, str]
    alerts: tuple[Alert, ...]
    at: datetime

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == FIRING]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == RESOLVED]

    @property
    def kind(self) -> str:
        """``firing`` while anything in it fires; ``resolved`` when it only tells of resolutions."""
        return FIRING if self.firing else RESOLVED

    @property
    def severity(self) -> str:
        pool = self.firing or self.resolved
        return max((a.severity for a in pool), key=lambda s: SEVERITY_ORDER.get(s, 0), default="info")

    @property
    def fingerprints(self) -> list[str]:
        return [a.fingerprint for a in self.alerts]


@dataclass(frozen=True)
class Message:
    """One rendered message for one target, as the outbox stores it until it is delivered."""

    kind: str  # firing | resolved | digest
    channel: str  # email | webhook | kafka
    receiver: str
    target: str
    subject: str
    body: str
    group_key: str | None = None
    fingerprints: list[str] = field(default_factory=list)
    dedup_key: str = ""

    def keyed(self, *parts: Any) -> "Message":
        """The same message with a dedup key made of ``parts`` (plus channel and target)."""
        raw = "\x00".join(str(p) for p in (*parts, self.channel, self.target))
        return replace(self, dedup_key=hashlib.sha256(raw.encode()).hexdigest()[:40])
