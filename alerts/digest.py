"""The daily digest: one e-mail per address with what fired in the last 24 hours and what still fires.

A quiet day is reported too: "nothing fired" from a monitor that is known to be running is worth
knowing. The digest goes through the outbox with a key per address and day, so a restart on the
same day does not send a second one.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Engine

from alerts.alert_store import history, load_alerts
from alerts.model import FIRING
from alerts.notification import Message
from alerts.outbox import enqueue
from alerts.render import render_digest_email
from alerts.rules import RuleSet


class DigestSender:
    def __init__(self, engine: Engine, ruleset: RuleSet, *, sender: str, dashboard_url: str) -> None:
        self.engine = engine
        self.ruleset = ruleset
        self.sender = sender
        self.dashboard_url = dashboard_url

    def recipients(self) -> dict[str, set[str]]:
        """Each digest address and the rules whose alerts it receives."""
        out: dict[str, set[str]] = defaultdict(set)
        for rule in self.ruleset.rules:
            for name in rule.receivers:
                receiver = self.ruleset.receiver(name)
                if receiver is not None and receiver.digest:
                    for address in receiver.email:
                        out[address].add(rule.name)
        return dict(out)

    def enqueue(self, now: datetime) -> int:
        """Put today's digests in the outbox (once per address and UTC day); returns how many were new."""
        fired = history(self.engine, now - timedelta(days=1), now, states=[FIRING])
        firing = load_alerts(self.engine, states=[FIRING])
        messages = []
        for address, rules in sorted(self.recipients().items()):
            subject, body = render_digest_email(
                to=address, sender=self.sender, day_end=now, fired=[e for e in fired if e["rule"] in rules],
                firing_now=[a.summary for a in firing if a.rule in rules], dashboard_url=self.dashboard_url)
            messages.append(Message(kind="digest", channel="email", receiver="digest", target=address,
                                    subject=subject, body=body).keyed("digest", now.date().isoformat()))
        with self.engine.begin() as conn:
            return enqueue(conn, messages, now)
