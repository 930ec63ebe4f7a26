"""A short sustained overload (``bench/load.py`` in small): the scorer's memory does not follow the backlog,
the lag grows while the producer outpaces it and recovers after, and nothing is lost. No timings asserted."""

from __future__ import annotations

from bench.load import LoadConfig, run_load
from ingest.broker import EmbeddedBroker


def test_overload_keeps_memory_bounded_lag_recovers_and_nothing_is_lost(tmp_path):
    # 30 KB posts (the scorer reads 10,000 characters of each) offered at 400/s for 3 s to a scorer that cannot
    # pass 200/s on any machine (5 ms per post on top of its path): a backlog of at least 600 posts, 18 MB
    config = LoadConfig(rate=400, seconds=3, per_post_ms=5, text_bytes=30_000, batch_size=64, sample_s=0.5)
    with EmbeddedBroker() as broker:
        r = run_load(config, broker.bootstrap, broker.pid, tmp_path)
    assert (r.lost, r.duplicated) == (0, 0) and r.stored == r.produced
    assert r.lag_when_producer_stopped > 5 * config.batch_size, "the producer never outpaced the scorer"
    assert r.samples[-1].lag == 0  # recovered
    assert r.backlog_peak_mb >= 15, r
    # backpressure: the scorer holds a batch and the fetch buffers, not the backlog
    assert r.scorer_rss_growth_mb < r.backlog_peak_mb / 2, r
