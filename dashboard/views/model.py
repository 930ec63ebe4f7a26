"""Model: which model versions scored the posts, how the shipped model evaluated, and live label drift."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import charts, data, model_card, queries
from dashboard.data import query
from dashboard.views.common import data_range, human_window, live

_VERSION_SAMPLE = 10_000


def render() -> None:
    st.title("Model")
    live(_versions)()
    _evaluation()
    live(_drift)()


def _versions() -> None:
    st.subheader("Model versions in the store")
    sample = query(queries.newest_posts_meta, _VERSION_SAMPLE)
    if sample.empty:
        st.info("No scored posts yet.")
        return
    table = (sample.groupby("model_version")
             .agg(posts=("created_at", "size"), first=("created_at", "min"), last=("created_at", "max"))
             .reset_index().sort_values("last", ascending=False))
    st.dataframe(table, hide_index=True, width="stretch", key="md_versions")
    st.caption(f"Among the newest {len(sample):,} posts (a bounded sample, so the page stays fast on a large store).")


def _evaluation() -> None:
    st.subheader("Evaluation per language (model card)")
    directory = model_card.model_dir(data.settings())
    table, origin = model_card.read_eval(directory)
    if table is None:
        st.info(origin[:1].upper() + origin[1:] + ".")
        return
    st.dataframe(table, hide_index=True, width="stretch", key="md_eval",
                 column_config={"accuracy": st.column_config.NumberColumn(format="%.3f"),
                                "macro-F1": st.column_config.NumberColumn(format="%.3f")})
    st.caption(origin)


def _drift() -> None:
    window_s = 3600 if 3600 in data.windows() else data.windows()[-1]
    start, end = data_range(window_s, 7 * 86400)
    frame = query(queries.series, "lang", None, window_s, start, end)
    st.subheader("Live label distribution per language")
    if frame.empty:
        st.info("No aggregated data yet.")
        return
    recent = end - timedelta(hours=1)
    periods = {"last hour": frame[frame["window_start"] >= recent],
               "previous 24 h": frame[(frame["window_start"] < recent) & (frame["window_start"] >= recent - timedelta(days=1))],
               "previous 7 d": frame[frame["window_start"] < recent]}
    st.plotly_chart(charts.label_share_figure(_shares(periods)), key="md_shares", width="stretch")
    st.caption("Bars that differ between periods of one language are drift: in the feed, or in the model's behaviour "
               "on it.")
    st.plotly_chart(charts.trend_figure("lang", frame, pd.DataFrame(), "share_negative"), key="md_negative",
                    width="stretch")
    st.caption(f"Share negative per language, {human_window(window_s)} windows over the last 7 days of data.")


def _shares(periods: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for period, part in periods.items():
        totals = part.groupby("series_key")[["unique_count", "n_negative", "n_neutral", "n_positive"]].sum()
        for lang, t in totals.iterrows():
            n = t["n_negative"] + t["n_neutral"] + t["n_positive"]
            if n:
                rows.append({"lang": lang, "period": period, **{f"share_{lb}": t[f"n_{lb}"] / n
                                                                for lb in ("negative", "neutral", "positive")}})
    return pd.DataFrame(rows, columns=["lang", "period", "share_negative", "share_neutral", "share_positive"]).sort_values(
        ["lang", "period"])
