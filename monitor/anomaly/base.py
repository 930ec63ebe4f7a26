"""The detector interface shared by every detector (river style: one estimator per file, one API)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MAD_TO_SD = 1.4826  # MAD of a normal sample times this estimates its standard deviation


@dataclass(frozen=True, slots=True)
class Finding:
    center: float  # what the baseline expected, on the metric's scale
    spread: float  # the noise the score is measured in (never below the floor)
    z: float  # (statistic - center) / spread, signed


class Detector(Protocol):
    name: str

    def score(self, history: Sequence[float], observed: float, floor: float) -> Finding | None:
        """Score ``observed`` against ``history`` (oldest first, empty windows already dropped or
        zero-filled by the caller). ``floor`` is the least spread the metric's sampling noise allows:
        a zero-variance history (a constant series) is measured in it instead of dividing by zero.
        None: too little history (warm-up)."""
        ...


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


def robust_center_spread(values: Sequence[float], floor: float) -> tuple[float, float]:
    """Median and MAD-based spread, at least ``floor``."""
    center = median(values)
    mad = median([abs(v - center) for v in values])
    return center, max(MAD_TO_SD * mad, floor)


def trimmed_mean(values: Sequence[float], cut: float = 0.2) -> float:
    """Mean of the middle values (``cut`` of them dropped at each end): robust to a few outliers
    like the median, but continuous, so small counts do not make it jump by whole steps."""
    s = sorted(values)
    k = int(len(s) * cut)
    middle = s[k : len(s) - k] or s
    return sum(middle) / len(middle)
