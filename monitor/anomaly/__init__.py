"""Anomaly detection per series against its own baseline, and the composite risk score per ticker.

One API for every detector (:class:`~monitor.anomaly.base.Detector`): ``score(history, observed,
floor)`` on one metric's values, oldest first, returning a :class:`~monitor.anomaly.base.Finding`
(centre, spread, signed z) or None while the detector is still warming up. Detectors are pure
functions of the history they are given, so a restart or a backfill gives the same findings.
Metrics (:mod:`monitor.anomaly.metrics`) put each series on a scale where noise is comparable,
seasonality (:mod:`monitor.anomaly.seasonality`) chooses which past windows form the baseline,
and :mod:`monitor.anomaly.evaluate` runs it all over stored aggregates.
"""

from monitor.anomaly.base import Detector, Finding
from monitor.anomaly.ewma import EwmaChart
from monitor.anomaly.robust_z import RobustZ

__all__ = ["Detector", "EwmaChart", "Finding", "RobustZ"]
