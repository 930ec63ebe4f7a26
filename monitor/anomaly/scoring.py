"""Score stored anomalies against known episodes: precision, recall and detection delay.

Used by the detection benchmark (``bench/detection.py``) and its test; pure (rows in, numbers out),
so any feed with ground truth can be scored.

Rules, chosen to be strict where it matters to an analyst:

* an episode is *detected* when an anomaly of the right kind is found on one of its own series (its
  ticker, or its ticker in one of its languages) in a window overlapping it: a volume anomaly for a
  volume spike, a sentiment anomaly (share negative up or mean score down) for the others;
* the *delay* is from the episode's start to the end of the first such window plus the evaluation
  delay, in event time (when the anomaly could first be written);
* an anomaly is *explained* when its series contains an episode's posts (``all``, ``source``, the
  episode's language, ticker or ticker x language), its window overlaps the episode or follows it
  by at most ``grace_windows`` windows (the robust z; the EWMA chart remembers about
  ``ewma_grace_windows`` windows, and keeps seeing an episode that long after it), and its metric
  fits the episode (no sentiment anomaly is explained by a pure volume spike). Anything else is a
  *false alarm*; precision is explained anomalies over all anomalies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

SENTIMENT_METRICS = {"share_negative", "mean_score"}


@dataclass(frozen=True)
class TrueEpisode:
    name: str
    kind: str  # negative_burst | volume_spike | drift | crisis
    start: datetime
    end: datetime
    tickers: Sequence[str]
    langs: Sequence[str]
    volume_factor: float = 1.0

    def metrics(self) -> set[str]:
        if self.kind == "volume_spike":
            return {"volume"}
        return SENTIMENT_METRICS | ({"volume"} if self.volume_factor > 1 else set())

    def contains(self, kind: str, key: str) -> bool:
        if kind in ("all", "source"):
            return True
        if kind == "lang":
            return key in self.langs
        if kind == "ticker":
            return key in self.tickers
        if kind == "ticker_lang":
            ticker, _, lang = key.rpartition("|")
            return ticker in self.tickers and lang in self.langs
        return False

    def own_series(self, kind: str, key: str) -> bool:
        return kind in ("ticker", "ticker_lang") and self.contains(kind, key)


@dataclass
class EpisodeResult:
    episode: TrueEpisode
    detected: bool
    delay_s: float | None
    first_window_s: int | None  # the window size that saw it first
    anomalies: int  # explained by this episode


@dataclass
class Scorecard:
    episodes: list[EpisodeResult]
    total: int
    explained: int
    false_alarms: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return sum(e.detected for e in self.episodes) / len(self.episodes) if self.episodes else 1.0

    @property
    def precision(self) -> float:
        return self.explained / self.total if self.total else 1.0


def score(anomalies: Iterable[Mapping[str, Any]], episodes: Sequence[TrueEpisode], *, evaluation_delay_s: float = 0.0,
          grace_windows: int = 2, ewma_grace_windows: int = 10) -> Scorecard:
    """``anomalies``: rows of the ``anomalies`` table (dicts with its columns)."""
    rows = sorted(anomalies, key=lambda r: (r["window_end"], r["window_s"]))
    results = {e.name: EpisodeResult(e, False, None, None, 0) for e in episodes}
    explained = 0
    false_alarms = []
    for row in rows:
        start, end, size = row["window_start"], row["window_end"], row["window_s"]
        grace = timedelta(seconds=(ewma_grace_windows if row["detector"] == "ewma" else grace_windows) * size)
        owner = None
        for e in episodes:
            overlaps = start < e.end + grace and end > e.start
            if overlaps and row["metric"] in e.metrics() and e.contains(row["series_kind"], row["series_key"]):
                owner = e
                break
        if owner is None:
            false_alarms.append(row)
            continue
        explained += 1
        result = results[owner.name]
        result.anomalies += 1
        in_episode = start < owner.end and end > owner.start
        right_kind = row["metric"] == "volume" if owner.kind == "volume_spike" else row["metric"] in SENTIMENT_METRICS
        if (in_episode and right_kind and not result.detected
                and owner.own_series(row["series_kind"], row["series_key"])):
            result.detected = True
            result.delay_s = max((end - owner.start).total_seconds() + evaluation_delay_s, 0.0)
            result.first_window_s = size
    return Scorecard(list(results.values()), len(rows), explained, false_alarms)
