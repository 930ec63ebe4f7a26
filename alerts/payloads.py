"""JSON bodies for webhooks and the ``alerts`` Kafka topic.

The generic body follows Alertmanager's webhook format (``version``, ``status``, ``groupLabels``,
``alerts[]`` with ``labels``/``annotations``/``startsAt``/``endsAt``/``fingerprint``), so tools that
read Alertmanager webhooks read these too; ``dashboardURL`` and ``postIds`` are added. The Slack
body is an incoming-webhook message (``text`` plus ``blocks``), with Slack's ``& < >`` escaped.
"""

from __future__ import annotations

import json

from alerts.evidence import Evidence, iso
from alerts.notification import Notification
from alerts.render import subject_for


def alertmanager_body(n: Notification, evidence: list[Evidence], dashboard_url: str) -> str:
    links = {ev.alert.fingerprint: ev.link for ev in evidence}
    common = dict(n.alerts[0].labels) if n.alerts else {}
    for a in n.alerts[1:]:
        common = {k: v for k, v in common.items() if a.labels.get(k) == v}
    body = {
        "version": "4", "status": n.kind, "receiver": n.receiver, "groupKey": n.group_key,
        "groupLabels": n.group_labels, "commonLabels": common, "externalURL": dashboard_url,
        "title": subject_for(n), "sentAt": iso(n.at),
        "alerts": [{
            "status": a.state, "fingerprint": a.fingerprint, "labels": a.labels, "annotations": a.annotations,
            "startsAt": iso(a.fired_at or a.active_since),
            "endsAt": iso(a.resolved_at) if a.resolved_at else None,
            "value": a.value, "threshold": a.threshold,
            "dashboardURL": links.get(a.fingerprint), "postIds": list(a.post_ids),
        } for a in n.alerts],
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(n: Notification, evidence: list[Evidence]) -> str:
    links = {ev.alert.fingerprint: ev.link for ev in evidence}
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": subject_for(n)[:150]}}]
    for a in (n.firing + n.resolved)[:20]:
        line = f"*{a.state.upper() if a.state != 'firing' else a.severity.upper()}* {_slack_escape(a.summary)}"
        if a.fingerprint in links:
            line += f"\n<{links[a.fingerprint]}|Open the drill-down>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line[:3000]}})
    return json.dumps({"text": subject_for(n), "blocks": blocks}, ensure_ascii=False)
