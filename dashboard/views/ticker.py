"""Ticker view: one ticker across languages and sources, its anomalies and alerts, language x time."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, nav, queries
from dashboard.data import query
from dashboard.links import drilldown_params
from dashboard.safe import md
from dashboard.views.common import clicked_params, data_range, human_window, live, range_picker, window_picker

_SOURCE_SAMPLE = 5000


def render() -> None:
    st.title("Ticker")
    c1, c2, c3 = st.columns([2, 1, 1])
    with c2:
        window_s = window_picker("tk_window", prefer=900)
    with c3:
        span_s = range_picker("tk_range", default="24 h")
    start, end = data_range(window_s, span_s)
    tickers = query(queries.series_keys, "ticker", window_s, start, end)
    wanted = st.query_params.get("ticker")
    if wanted and wanted not in tickers:
        tickers = [wanted, *tickers]
    with c1:
        if not tickers:
            st.info("No ticker has posts in this range yet.")
            return
        ticker = st.selectbox("Ticker", tickers, index=tickers.index(wanted) if wanted else 0, key="tk_ticker",
                              help="tickers with posts in the range, most posts first")
    if ticker != wanted:
        st.query_params["ticker"] = ticker
    live(_timeline)(ticker, window_s, span_s)
    live(_languages)(ticker, window_s, span_s)
    live(_sources)(ticker, window_s, span_s)


def _timeline(ticker: str, window_s: int, span_s: int) -> None:
    start, end = data_range(window_s, span_s)
    st.subheader(f"Timeline ({human_window(window_s)} windows): sentiment, volume, anomalies, alerts")
    frame = query(queries.series, "ticker", [ticker], window_s, start, end)
    found = query(queries.anomalies_between, "ticker", [ticker], start, end)
    found = found[found["window_s"] == window_s] if not found.empty else found
    alerts = query(queries.alerts_for_series, ticker, start, end)
    fig = charts.add_alert_spans(charts.trend_figure("ticker", frame, found), alerts)
    event = st.plotly_chart(fig, key="tk_trend", on_select="rerun", selection_mode="points", width="stretch")
    params = clicked_params(event, window_s)
    whole = drilldown_params("ticker", ticker, start, end)
    nav.link("drilldown", "Posts behind the selected point" if params else f"All posts about {md(ticker)} in the range",
             params or whole, icon=":material/manage_search:")
    if not alerts.empty:
        st.dataframe(alerts[["rule", "severity", "state", "series_key", "value", "threshold", "fired_at",
                             "resolved_at"]], hide_index=True, width="stretch", key="tk_alerts")


def _languages(ticker: str, window_s: int, span_s: int) -> None:
    start, end = data_range(window_s, span_s)
    langs = query(queries.series_keys, "lang", window_s, start, end)
    keys = [f"{ticker}|{lang}" for lang in langs]
    frame = query(queries.series, "ticker_lang", keys, window_s, start, end)
    st.subheader("Mean sentiment per language")
    if frame.empty:
        st.info("No per-language data for this ticker in the range.")
        return
    lang_of = dict(zip(keys, langs))
    st.plotly_chart(charts.heatmap_figure(frame, lang_of), key="tk_heatmap", width="stretch")
    found = query(queries.anomalies_between, "ticker_lang", keys, start, end)
    found = found[found["window_s"] == window_s] if not found.empty else found
    lines = frame.assign(series_key=frame["series_key"].map(lang_of))
    found = found.assign(series_key=found["series_key"].map(lang_of)) if not found.empty else found
    event = st.plotly_chart(charts.trend_figure("lang", lines, found), key="tk_langs", on_select="rerun",
                            selection_mode="points", width="stretch")
    params = clicked_params(event, window_s)
    if params:  # the chart's series are languages; the posts are this ticker's in that language
        params = drilldown_params("ticker_lang", f"{ticker}|{params['series_key']}", start, end) | {
            k: v for k, v in params.items() if k in ("start", "end", "anomaly")}
        nav.link("drilldown", "Posts behind the selected point", params, icon=":material/manage_search:")


def _sources(ticker: str, window_s: int, span_s: int) -> None:
    start, end = data_range(window_s, span_s)
    st.subheader("Per source")
    table = query(queries.ticker_sources, ticker, start, end, _SOURCE_SAMPLE)
    if table.empty:
        st.info("No posts for this ticker in the range.")
        return
    if table["posts"].sum() >= _SOURCE_SAMPLE:
        st.caption(f"The newest {_SOURCE_SAMPLE:,} posts about the ticker in the range.")
    st.dataframe(table, hide_index=True, width="stretch", key="tk_sources",
                 column_config={"mean_score": st.column_config.NumberColumn("mean score", format="%.3f")})
