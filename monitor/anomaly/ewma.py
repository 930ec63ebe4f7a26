"""EWMA control chart (Roberts 1959): a smoothed statistic of the recent windows against the level
before them. It accumulates small persistent shifts that no single window shows, so it sees a slow
drift that the robust z-score misses, and ignores a single noisy window.

The history is split: the older part is the reference (trimmed-mean centre, MAD spread), the newest
``memory`` windows (about the chart's memory, ``(2 - alpha) / alpha``) and the observed window feed
the smoothed statistic, which starts at the reference centre. Keeping the recent windows out of the
reference matters: otherwise a drift raises its own baseline as fast as it moves. The statistic is
compared with the centre in units of its steady-state spread ``sigma * sqrt(alpha / (2 - alpha))``,
widened by the uncertainty of the centre itself: with ``alpha`` 0.2 and 15 reference windows, a
shift of 2 sigma sustained over ten windows reaches z 4.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.anomaly.base import Finding, robust_center_spread, trimmed_mean


@dataclass(frozen=True)
class EwmaChart:
    alpha: float = 0.2  # weight of the newest window
    min_history: int = 6  # of reference windows, before any score
    name: str = "ewma"

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")

    @property
    def memory(self) -> int:
        return max(1, round((2 - self.alpha) / self.alpha))

    def score(self, history: Sequence[float], observed: float, floor: float) -> Finding | None:
        recent = min(self.memory, len(history) - self.min_history)
        if recent < 0:
            return None
        reference, run = history[: len(history) - recent], history[len(history) - recent :]
        _, sigma = robust_center_spread(reference, floor)
        center = trimmed_mean(reference)  # the statistic is a mean: a median would bias it on small counts
        smoothed = center
        for value in (*run, observed):
            smoothed = self.alpha * value + (1 - self.alpha) * smoothed
        # The centre is estimated too: its error (about 1.2 sigma^2 / n for a trimmed mean) is as large
        # as the smoothed statistic's own variance with 15 reference windows, and must be counted.
        spread = sigma * math.sqrt(self.alpha / (2 - self.alpha) + 1.2 / len(reference))
        return Finding(center, spread, (smoothed - center) / spread)
