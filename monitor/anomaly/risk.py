"""The composite risk score of a ticker in a window (0-100), from its scores in that window.

Three signals, each in z units in its bad direction (noise is about 1, so a dead zone of 1 is
subtracted first):

* negative shift: the worst sentiment score of the ticker series (share negative up, mean score down);
* volume spike: the ticker's volume score, weighted lower: attention alone is not bad news;
* cross-language spread: the number of languages in which the ticker's per-language series turned
  negative (sentiment z >= ``language_z``, with ``min_volume`` posts); each language beyond the
  first adds a fixed amount, because the same company going negative in several markets at once
  is a crisis rather than a local story.

``risk = 100 * (1 - exp(-x / scale))`` with ``x`` the weighted sum: it saturates instead of growing
without bound, so rankings stay readable during a crisis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.anomaly.evaluate import Score
from monitor.anomaly.metrics import SENTIMENT, VOLUME

_Z_CAP = 20.0


@dataclass(frozen=True)
class Risk:
    ticker: str
    risk: float
    negative_shift: float
    volume_spike: float
    languages_negative: int
    languages: list[str] = field(default_factory=list)  # the languages that turned negative, sorted


@dataclass(frozen=True)
class RiskModel:
    language_z: float = 2.5
    volume_weight: float = 0.35
    language_weight: float = 2.0
    scale: float = 8.0

    def score(self, ticker: str, scores: Iterable[Score]) -> Risk:
        negative = volume = 0.0
        langs: set[str] = set()
        for s in scores:
            kind, key = s.series
            bad = min(max(s.badness, 0.0), _Z_CAP)
            if kind == "ticker" and s.metric in SENTIMENT:
                negative = max(negative, bad)
            elif kind == "ticker" and s.metric is VOLUME:
                volume = max(volume, bad)
            elif kind == "ticker_lang" and s.metric in SENTIMENT and bad >= self.language_z:
                langs.add(key.rsplit("|", 1)[1])
        x = (max(negative - 1.0, 0.0) + self.volume_weight * max(volume - 1.0, 0.0)
             + self.language_weight * max(len(langs) - 1, 0))
        return Risk(ticker, round(100.0 * (1.0 - math.exp(-x / self.scale)), 3), round(negative, 4),
                    round(volume, 4), len(langs), sorted(langs))
