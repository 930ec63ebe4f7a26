"""Tables for alert state, notification groups, the outbox, silences and history (owned by the alerts concern).

The dashboard reads these; the alerts concern writes them. Times are event times of the evaluator's
clock (aware UTC), so a simulated run and a live run look alike.

``alerts``
    One row per alert *instance* (a rule applied to one series), keyed by its ``fingerprint``
    (a hash of the rule name and the instance labels: the same series breaching the same rule
    again is the same alert). ``state`` is ``pending`` (condition holds, not yet for ``for``),
    ``firing`` or ``resolved``. ``series_kind``/``series_key``/``window_start``/``window_end`` point
    at the evidence for the dashboard drill-down, ``post_ids`` at the posts behind it.
``alert_events``
    The history: one row per state change of an alert (``pending``, ``firing``, ``resolved``,
    ``inactive`` = a pending alert whose condition stopped before it fired).
``alert_groups``
    Alertmanager's aggregation groups and notification log in one: alerts routed to one receiver
    with equal ``group_by`` label values are notified together. ``notified_firing`` holds the
    fingerprints the receiver was last told were firing; it is written in the same transaction
    that puts the notification in the outbox, so a restart neither re-sends nor forgets.
``notifications``
    The outbox: every rendered message (e-mail as a full MIME text, webhook / Kafka bodies as JSON)
    until it is delivered. ``status`` is ``pending`` (retried with back-off from ``next_attempt_at``),
    ``sent`` or ``failed`` (refused for good, e.g. an unknown recipient; ``last_error`` says why).
    ``dedup_key`` is unique: a message enqueued twice (a digest after a restart) is stored once.
``silences``
    Label matchers (``[{"name", "op", "value"}]``, op one of ``=``, ``!=``, ``=~``, ``!~``) that mute
    matching alerts from ``starts_at`` until ``ends_at``; expiring a silence sets ``ends_at``.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table, Text

from monitor.store.tables import metadata
from monitor.store.types import UtcDateTime

alerts = Table(
    "alerts",
    metadata,
    Column("fingerprint", String(32), primary_key=True),
    Column("rule", String(200), nullable=False),
    Column("severity", String(16), nullable=False),  # info | warning | critical
    Column("state", String(16), nullable=False),  # pending | firing | resolved
    Column("labels", JSON, nullable=False),  # rule, severity, series_kind, series_key, ticker?, lang?, source?
    Column("annotations", JSON, nullable=False),  # summary, description, languages...
    Column("receivers", JSON, nullable=False),  # receiver names from the rule's routing
    Column("value", Float, nullable=False),  # the observed value when the condition last held
    Column("threshold", Float, nullable=False),
    Column("series_kind", String(16), nullable=False),
    Column("series_key", String(300), nullable=False),
    Column("window_start", UtcDateTime, nullable=False),
    Column("window_end", UtcDateTime, nullable=False),
    Column("post_ids", JSON, nullable=False),
    Column("active_since", UtcDateTime, nullable=False),  # when the condition started to hold
    Column("fired_at", UtcDateTime),
    Column("last_true_at", UtcDateTime, nullable=False),  # for keep_firing_for
    Column("resolved_at", UtcDateTime),
    Column("evaluated_at", UtcDateTime, nullable=False),
)
Index("ix_alerts_state", alerts.c.state)
Index("ix_alerts_rule", alerts.c.rule)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(32), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # pending | firing | resolved | inactive
    Column("value", Float, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("series_kind", String(16), nullable=False),
    Column("series_key", String(300), nullable=False),
)
Index("ix_alert_events_at", alert_events.c.at)
Index("ix_alert_events_fingerprint", alert_events.c.fingerprint, alert_events.c.at)

alert_groups = Table(
    "alert_groups",
    metadata,
    Column("group_key", String(64), primary_key=True),  # hash of receiver + group label values
    Column("receiver", String(200), nullable=False),
    Column("group_labels", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_flush_at", UtcDateTime, nullable=False),  # group_wait, then group_interval
    Column("last_notified_at", UtcDateTime),
    Column("notified_firing", JSON, nullable=False),  # fingerprints of the last notification
)
Index("ix_alert_groups_next_flush_at", alert_groups.c.next_flush_at)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(200), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # firing | resolved | digest
    Column("channel", String(16), nullable=False),  # email | webhook | kafka
    Column("receiver", String(200), nullable=False),
    Column("target", String(2048), nullable=False),  # address, URL or topic
    Column("group_key", String(64)),
    Column("subject", String(998), nullable=False),
    Column("body", Text, nullable=False),  # MIME message (7-bit) or JSON
    Column("fingerprints", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("claimed_until", UtcDateTime),  # a sender holds it until then (several processes)
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
)
Index("ix_notifications_due", notifications.c.status, notifications.c.next_attempt_at)
Index("ix_notifications_created_at", notifications.c.created_at)

silences = Table(
    "silences",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_silences_ends_at", silences.c.ends_at)
