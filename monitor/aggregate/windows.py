"""Tumbling windows in event time: ``[start, start + size)``, aligned on the Unix epoch (so on UTC minutes,
quarter-hours and hours), identified by ``(size_s, start_ts)``."""

from __future__ import annotations

import math
from datetime import datetime, timezone

WindowKey = tuple[int, int]  # (size in seconds, start as epoch seconds)


def window_of(ts: float, size_s: int) -> WindowKey:
    return size_s, int(math.floor(ts / size_s)) * size_s


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def ending_between(after: float | None, until: float, size_s: int, not_before: float | None = None) -> list[WindowKey]:
    """Windows whose end lies in ``(after, until]``: those that a move of event time from ``after`` to
    ``until`` has just ended. With ``after`` unknown (a fresh start) none have, except from ``not_before``."""
    lower = after if after is not None else not_before
    if lower is None or until <= lower:
        return []
    first = int(math.floor(lower / size_s)) * size_s  # the window containing `lower` ends after it
    last_end = int(math.floor(until / size_s)) * size_s
    return [(size_s, start) for start in range(first, last_end, size_s) if lower < start + size_s <= until]
