"""Tables for alert state, notifications (the outbox) and silences (owned by the alerts concern)."""

from __future__ import annotations
