"""Robust z-score: the window against the median and MAD of its baseline (a Shewhart chart that
outliers in the history cannot bend). Sees sudden bursts and spikes at once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.anomaly.base import Finding, robust_center_spread

MEDIAN_VARIANCE = math.pi / 2  # variance of a normal sample's median, in sigma^2 / n


@dataclass(frozen=True)
class RobustZ:
    min_history: int = 6  # warm-up: fewer past windows give no score
    name: str = "robust_z"

    def score(self, history: Sequence[float], observed: float, floor: float) -> Finding | None:
        if len(history) < self.min_history:
            return None
        center, sigma = robust_center_spread(history, floor)
        spread = sigma * math.sqrt(1 + MEDIAN_VARIANCE / len(history))  # the median is an estimate too
        return Finding(center, spread, (observed - center) / spread)
