"""EWMA control chart (Roberts 1959): a smoothed statistic of the recent windows against the robust
baseline of the history. It accumulates small persistent shifts that no single window shows, so it
sees a slow drift before the robust z-score does, and ignores a single noisy window.

The statistic starts at the baseline centre, runs over the history and the observed window, and
is compared with the centre in units of its own steady-state spread ``sigma * sqrt(a / (2 - a))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.anomaly.base import Finding, robust_center_spread


@dataclass(frozen=True)
class EwmaChart:
    alpha: float = 0.3  # weight of the newest window
    min_history: int = 6
    name: str = "ewma"

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")

    def score(self, history: Sequence[float], observed: float, floor: float) -> Finding | None:
        if len(history) < self.min_history:
            return None
        center, sigma = robust_center_spread(history, floor)
        smoothed = center
        for value in (*history, observed):
            smoothed = self.alpha * value + (1 - self.alpha) * smoothed
        spread = sigma * math.sqrt(self.alpha / (2 - self.alpha))
        return Finding(center, spread, (smoothed - center) / spread)
