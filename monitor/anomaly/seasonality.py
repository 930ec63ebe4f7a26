"""Which past windows form a window's baseline: the most recent ones, or the same hour of the week.

Financial chatter has strong daily and weekly rhythms (the open, the close, quiet weekends); against
a baseline of the last hours, every Monday open looks like a volume spike. With ``hour_of_week``
the baseline is the windows of the same hour-of-week in the previous ``weeks`` weeks (for a 1-minute
window: all 60 minutes of that hour, so there is enough of them). Until that much history exists
the recent baseline is used (``Baseline.slots`` returns both; the evaluator falls back in order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WEEK_S = 7 * 24 * 3600
HOUR_S = 3600


@dataclass(frozen=True)
class Baseline:
    windows: int = 24  # recent windows
    seasonality: Literal["none", "hour_of_week"] = "none"
    weeks: int = 4

    def recent(self, start: int, size_s: int) -> list[int]:
        """Starts of the ``windows`` windows before ``start``, oldest first."""
        return [start - k * size_s for k in range(self.windows, 0, -1)]

    def seasonal(self, start: int, size_s: int) -> list[int]:
        """Starts of the windows in the same hour of the week, in previous weeks, oldest first."""
        if self.seasonality == "none":
            return []
        hour = start - start % HOUR_S if size_s < HOUR_S else start
        span = max(size_s, HOUR_S)
        return [s for week in range(self.weeks, 0, -1)
                for s in range(hour - week * WEEK_S, hour - week * WEEK_S + span, size_s)]

    def slots(self, start: int, size_s: int) -> list[list[int]]:
        """Baselines to try, best first."""
        seasonal = self.seasonal(start, size_s)
        return [seasonal, self.recent(start, size_s)] if seasonal else [self.recent(start, size_s)]
