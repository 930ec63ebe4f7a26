"""Score one window of many series against their baselines: every metric, every detector.

Pure: the inputs are the stored aggregates (``points``), so the live aggregator, a backfill and a
dry run score a window identically.

Empty windows: a window slot counts in baselines only if the stream was alive then (the ``all``
series has a row); there, a series without a row had 0 posts (volume 0, no sentiment). Slots before
the data begins or during an outage are left out, so a fresh start warms up instead of comparing
against zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitor.anomaly.base import Detector, Finding, median
from monitor.anomaly.metrics import EMPTY, METRICS, Metric, Point
from monitor.anomaly.seasonality import Baseline
from monitor.store.aggregate_tables import ALL, Series


@dataclass(frozen=True, slots=True)
class Score:
    """One (series, metric, detector) in one window, anomalous or not (risk uses them all)."""

    series: Series
    metric: Metric
    detector: str
    observed: float  # raw scale (posts, share, mean score)
    baseline: float  # raw scale
    spread: float  # raw scale, around the baseline
    finding: Finding  # stabilised scale
    volume: int  # unique posts in the window

    @property
    def badness(self) -> float:
        """The z-score in the metric's bad direction (positive = worse than usual)."""
        return self.finding.z * self.metric.bad

    @property
    def direction(self) -> str:
        return "up" if self.finding.z > 0 else "down"


@dataclass(frozen=True)
class Evaluator:
    detectors: Sequence[Detector]
    baseline: Baseline
    min_volume: int
    metrics: Sequence[Metric] = METRICS

    @property
    def min_history(self) -> int:
        return max(getattr(d, "min_history", 1) for d in self.detectors)

    def slots_needed(self, start: int, size_s: int) -> set[int]:
        return {s for slots in self.baseline.slots(start, size_s) for s in slots} | {start}

    def score_window(self, points: Mapping[Series, Mapping[int, Point]], start: int, size_s: int,
                     series: Sequence[Series]) -> list[Score]:
        alive = set(points.get(ALL, {}))
        candidates = self.baseline.slots(start, size_s)
        out: list[Score] = []
        for s in series:
            own = points.get(s, {})
            now = own.get(start)
            if now is None:
                continue
            for metric in self.metrics:
                observed = metric.observe(now, self.min_volume)
                if observed is None:
                    continue
                history, volumes = self._history(metric, own, alive, candidates)
                if not history:
                    continue
                # Noise of the busier of this window and a typical one: a MAD of a few windows can
                # undershoot, and a window busier than usual must not shrink the floor under them.
                floor = metric.floor(metric.unstable(median(history)), min(now.unique, int(median(volumes))))
                for detector in self.detectors:
                    finding = detector.score(history, observed, floor)
                    if finding is None:
                        continue
                    base = metric.unstable(finding.center)
                    out.append(Score(s, metric, detector.name, metric.raw(now), base,
                                     abs(metric.unstable(finding.center + finding.spread) - base), finding,
                                     now.unique))
        return out

    def _history(self, metric: Metric, own: Mapping[int, Point], alive: set[int],
                 candidates: Sequence[Sequence[int]]) -> tuple[list[float], list[int]]:
        """Baseline values and their windows' volumes, from the first candidate baseline that is
        warm enough (else the last)."""
        values: list[float] = []
        volumes: list[int] = []
        for slots in candidates:
            if metric.needs_volume:
                points = [own[slot] for slot in slots if slot in own and own[slot].unique >= self.min_volume]
            else:
                points = [own.get(slot, EMPTY) for slot in slots if slot in alive]
            values = [metric.stable(metric.raw(p)) for p in points]
            volumes = [p.unique for p in points]
            if len(values) >= self.min_history:
                break
        return values, volumes
