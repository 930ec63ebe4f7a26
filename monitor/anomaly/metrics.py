"""The metrics watched on every series, each on a scale where its sampling noise is known.

Detectors compare values across windows of very different volumes; on the raw scale a window of 10
posts is far noisier than one of 1,000, and a fixed threshold would either flood small series or
miss big ones. Each metric therefore maps a window to a *variance-stabilised* value and gives the
least spread that sampling noise alone produces (the detector's ``floor``):

* ``volume`` (unique posts): Anscombe's ``2 sqrt(x + 3/8)``, Poisson noise 1. Bad direction: up.
* ``share_negative``: ``2 asin(sqrt(p))``, binomial noise ``1 / sqrt(n)``. Bad direction: up.
* ``mean_score`` (p(pos) - p(neg), in [-1, 1]): the mean itself, noise at most ``sqrt((1 - m^2) / n)``
  (the largest variance of a variable on [-1, 1] with mean m). Bad direction: down.

Sentiment metrics need ``min_volume`` unique posts in a window to be observed at all (and past
windows below it are left out of the baseline); volume is observed in every window, an empty
window counting as 0 once the series has data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple


class Point(NamedTuple):
    """One window of one series, as stored in ``aggregates`` (unique posts only)."""

    unique: int
    n_negative: int
    sum_score: float

    @property
    def share_negative(self) -> float:
        return self.n_negative / self.unique if self.unique else 0.0

    @property
    def mean_score(self) -> float:
        return self.sum_score / self.unique if self.unique else 0.0


EMPTY = Point(0, 0, 0.0)


@dataclass(frozen=True)
class Metric:
    name: str
    bad: int  # +1: a rise is bad, -1: a fall is bad
    needs_volume: bool  # observed only with min_volume unique posts
    raw: Callable[[Point], float]
    stable: Callable[[float], float]  # raw -> stabilised scale
    unstable: Callable[[float], float]  # stabilised -> raw (to report the baseline)
    floor: Callable[[float, int], float]  # (centre on raw scale, unique posts observed) -> least spread

    def observe(self, point: Point, min_volume: int) -> float | None:
        if self.needs_volume and point.unique < min_volume:
            return None
        return self.stable(self.raw(point))


def _anscombe(x: float) -> float:
    return 2.0 * math.sqrt(max(x, 0.0) + 0.375)


def _anscombe_inv(y: float) -> float:
    return max((y / 2.0) ** 2 - 0.375, 0.0)


def _arcsine(p: float) -> float:
    return 2.0 * math.asin(math.sqrt(min(max(p, 0.0), 1.0)))


def _arcsine_inv(y: float) -> float:
    return math.sin(min(max(y, 0.0), math.pi) / 2.0) ** 2


VOLUME = Metric("volume", +1, False, lambda p: float(p.unique), _anscombe, _anscombe_inv, lambda c, n: 1.0)
SHARE_NEGATIVE = Metric("share_negative", +1, True, lambda p: p.share_negative, _arcsine, _arcsine_inv,
                        lambda c, n: 1.0 / math.sqrt(max(n, 1)))
MEAN_SCORE = Metric("mean_score", -1, True, lambda p: p.mean_score, float, float,
                    lambda c, n: math.sqrt(max(1.0 - c * c, 0.05) / max(n, 1)))
METRICS = (VOLUME, SHARE_NEGATIVE, MEAN_SCORE)
SENTIMENT = (SHARE_NEGATIVE, MEAN_SCORE)
