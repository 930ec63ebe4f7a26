"""Overview: the mood per language now, what is unusual, which tickers are at risk, and pipeline health."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import charts, data, nav, queries
from dashboard.data import query
from dashboard.safe import md
from dashboard.views.common import clicked_params, data_range, human_window, live, range_picker, window_picker

_KPI_SPAN_S = 15 * 60
_PIPELINE_SAMPLE = 2000


def render() -> None:
    st.title("Overview")
    c1, c2, c3, c4 = st.columns([1, 1, 2, 1.2])
    with c1:
        window_s = window_picker("ov_window")
    with c2:
        span_s = range_picker("ov_range", default="1 h")
    with c3:
        metric = st.selectbox("Metric", list(charts.METRICS), format_func=charts.METRICS.get, key="ov_metric")
    with c4:
        overlay = st.radio("Layout", ["overlay", "small multiples"], horizontal=True, key="ov_layout") == "overlay"
    live(_kpis)()
    start, end = data_range(window_s, span_s)
    langs = query(queries.series_keys, "lang", window_s, start, end)
    chosen = st.multiselect("Languages", langs, default=langs[:8], key="ov_langs",
                            help="languages with posts in the range, most posts first")
    live(_trends)(window_s, span_s, metric, overlay, tuple(chosen))
    live(_risk)(window_s, span_s)


def _kpis() -> None:
    smallest = data.windows()[0]
    end = data.data_end(smallest)
    recent = query(queries.series, "all", None, smallest, end - timedelta(seconds=_KPI_SPAN_S), end)
    total = int(recent["count"].sum()) if not recent.empty else 0
    unique = int(recent["unique_count"].sum()) if not recent.empty else 0
    negative = float((recent["share_negative"] * recent["unique_count"]).sum() / unique) if unique else None
    firing = query(queries.count_firing)
    scored_per_min, delay_s = _pipeline(query(queries.newest_posts_meta, _PIPELINE_SAMPLE))
    status = data.scorer_status()
    k = st.columns(6)
    k[0].metric("Posts / min", f"{total / (_KPI_SPAN_S / 60):.1f}", help="last 15 minutes of data, all posts")
    k[1].metric("Share negative", "-" if negative is None else f"{negative:.1%}",
                help="last 15 minutes of data, after de-duplication")
    k[2].metric("Firing alerts", firing)
    if status is not None and not status[0].failed:
        scrape, rate = status
        k[3].metric("Scorer throughput / min", "-" if rate is None else f"{rate:.0f}",
                    help="rate of monitor_scorer_scored over the scorers' Prometheus endpoints")
        k[4].metric("Consumer lag", "-" if scrape.lag is None else f"{scrape.lag:.0f}",
                    help="messages behind the high watermark, summed over partitions (monitor_scorer_lag)")
    else:
        k[3].metric("Scored / min (store)", "-" if scored_per_min is None else f"{scored_per_min:.0f}",
                    help=f"posts whose scored_at is in the last minute, among the newest {_PIPELINE_SAMPLE} stored "
                         "posts (no scorer metrics endpoint configured: MONITOR_DASHBOARD_METRICS_URLS)")
        k[4].metric("Consumer lag", "-", help="needs the scorers' metrics: set MONITOR_METRICS_PORT for the scorer, "
                                              "or MONITOR_DASHBOARD_METRICS_URLS")
        if status is not None:
            st.warning("Scorer metrics unreachable: " + "; ".join(status[0].failed))
    k[5].metric("Scoring delay (median)", "-" if delay_s is None else _duration(delay_s),
                help=f"received -> scored, newest {_PIPELINE_SAMPLE} posts: how far the scorers run behind "
                     "the feed")
    st.caption(f"Data up to {end:%Y-%m-%d %H:%M} UTC; refreshed every {data.refresh_s()} s.")


def _pipeline(sample: pd.DataFrame) -> tuple[float | None, float | None]:
    if sample.empty:
        return None, None
    wall = datetime.now(sample["scored_at"].iloc[0].tzinfo)
    scored = int((sample["scored_at"] >= wall - timedelta(minutes=1)).sum())
    delay = (sample["scored_at"] - sample["received_at"]).dt.total_seconds().median()
    return float(scored), float(delay)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _trends(window_s: int, span_s: int, metric: str, overlay: bool, langs: tuple[str, ...]) -> None:
    start, end = data_range(window_s, span_s)
    st.subheader(f"Sentiment and volume per language ({human_window(window_s)} windows)")
    if not langs:
        st.info("No aggregated data in this range yet: start the pipeline (`monitor demo`) or widen the range.")
        return
    frame = query(queries.series, "lang", list(langs), window_s, start, end)
    found = query(queries.anomalies_between, "lang", list(langs), start, end)
    found = found[found["window_s"] == window_s] if not found.empty else found
    fig = charts.trend_figure("lang", frame, found, metric, overlay)
    event = st.plotly_chart(fig, key="ov_trend", on_select="rerun", selection_mode="points", width="stretch")
    params = clicked_params(event, window_s)
    if params:
        nav.link("drilldown", f"Posts behind {md(params['series_key'])} at {params['start']}", params,
                 icon=":material/manage_search:")
    else:
        st.caption(f"{len(found)} anomalies (x). Click a point or an anomaly to open the posts behind it.")


def _risk(window_s: int, span_s: int) -> None:
    start, end = data_range(window_s, span_s)
    st.subheader("Risk ranking of tickers")
    for scored_s in [window_s, *(w for w in data.windows() if w != window_s)]:
        ranking = query(queries.risk_ranking, scored_s, start)
        if not ranking.empty:
            break
    if ranking.empty:
        st.info("No risk scores in this range yet.")
        return
    if scored_s != window_s:
        st.caption(f"No risk scores for {human_window(window_s)} windows; showing {human_window(scored_s)} windows.")
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(charts.risk_figure(ranking), key="ov_risk", width="stretch")
    with right:
        table = ranking[["ticker", "risk", "negative_shift", "volume_spike", "languages_negative", "window_start"]]
        picked = st.dataframe(table, key="ov_risk_table", hide_index=True, on_select="rerun",
                              selection_mode="single-row", width="stretch",
                              column_config={"risk": st.column_config.ProgressColumn("risk", min_value=0, max_value=100,
                                                                                     format="%.0f")})
        rows = picked.selection.rows if picked else []
        if rows:
            ticker = str(table.iloc[rows[0]]["ticker"])
            nav.link("ticker", f"Open {md(ticker)}", {"ticker": ticker}, icon=":material/candlestick_chart:")
        else:
            st.caption("Select a row to open the ticker view.")
