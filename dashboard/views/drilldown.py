"""Drill-down: the posts behind a point, an anomaly or an alert, with the model's view of each.

Opened from chart clicks and alert e-mails through the link contract of :mod:`dashboard.links`.
Post text and URLs are untrusted: they are shown only as plain text (``st.dataframe``, ``st.text``)
and a link is offered only for http(s) URLs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from dashboard import data, queries
from dashboard.data import query
from dashboard.links import DrilldownLink, iso, parse_link, series_filter
from dashboard.safe import http_url, md

_LABELS = ["negative", "neutral", "positive"]


def render() -> None:
    st.title("Drill-down")
    link, errors = parse_link({k: st.query_params[k] for k in st.query_params})
    for message in errors:
        st.error(f"This link is not valid: {message}.")
    _init_filters(link)
    if link is not None:
        st.caption(f"Opened for series {md(link.series_kind)} {md(link.series_key)}, {iso(link.start)} to {iso(link.end)}")
    evidence = _evidence_ids(link)
    with st.container(border=True):
        c1, c2, c3 = st.columns(3)
        start = c1.datetime_input("From (UTC)", key="dd_start", step=60)
        end = c2.datetime_input("To (UTC)", key="dd_end", step=60)
        langs = c3.multiselect("Languages", _language_options(), key="dd_langs")
        c4, c5, c6, c7 = st.columns(4)
        ticker = c4.text_input("Ticker", key="dd_ticker").strip() or None
        source = c5.text_input("Source", key="dd_source").strip() or None
        labels = c6.multiselect("Label", _LABELS, key="dd_labels")
        text = c7.text_input("Text contains", key="dd_text").strip() or None
        only_evidence = False
        if evidence is not None:
            what = f"anomaly {link.anomaly}" if link and link.anomaly is not None else "the alert"
            only_evidence = st.checkbox(f"Only the {len(evidence)} posts recorded as evidence of {what}",
                                        value=True, key="dd_evidence")
    if start is None or end is None or end <= start:
        st.warning("Choose a time range whose end is after its start.")
        return
    f = queries.PostFilter(start=_utc(start), end=_utc(end), langs=langs, ticker=ticker, source=source,
                           labels=labels, text=text, post_ids=evidence if only_evidence else None)
    limit = data.settings().dashboard.max_posts
    found = query(queries.find_posts, f, limit)
    _summary(found, limit)
    if found.empty:
        return
    shown = _table(found)
    picked = st.dataframe(shown, key="dd_posts", hide_index=True, on_select="rerun", selection_mode="single-row",
                          width="stretch", height=420, column_config=_COLUMNS)
    rows = picked.selection.rows if picked else []
    if rows:
        _detail(found.iloc[rows[0]])
    else:
        st.caption("Select a row to read the post with the model's probabilities.")


_COLUMNS = {
    "created_at": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "p_negative": st.column_config.ProgressColumn("p(neg)", min_value=0.0, max_value=1.0, format="%.2f"),
    "p_neutral": st.column_config.ProgressColumn("p(neu)", min_value=0.0, max_value=1.0, format="%.2f"),
    "p_positive": st.column_config.ProgressColumn("p(pos)", min_value=0.0, max_value=1.0, format="%.2f"),
    "score": st.column_config.NumberColumn("score", format="%.2f"),
    "text": st.column_config.TextColumn("text (original language)", width="large"),
    "label": st.column_config.TextColumn("label", width="small"),
    "lang": st.column_config.TextColumn("lang", width="small"),
    "url": st.column_config.LinkColumn("source link", display_text="open"),
}


def _table(found: pd.DataFrame) -> pd.DataFrame:
    table = found[["created_at", "lang", "label", "text", "p_negative", "p_neutral", "p_positive", "score",
                   "source", "tickers", "url"]].copy()
    table["tickers"] = table["tickers"].map(lambda ts: ", ".join(map(str, ts or [])))
    table["url"] = table["url"].map(http_url)  # LinkColumn would follow javascript: and data: URLs too
    return table


def _summary(found: pd.DataFrame, limit: int) -> None:
    if found.empty:
        st.info("No posts match these filters.")
        return
    more = " (the newest; narrow the filters to see older ones)" if len(found) >= limit else ""
    counts = found["label"].value_counts()
    st.caption(f"{len(found)} posts{more}: " + ", ".join(f"{counts.get(lb, 0)} {lb}" for lb in _LABELS))


def _detail(post: pd.Series) -> None:
    with st.container(border=True):
        st.subheader("Post")
        st.text(post["text"])
        c1, c2, c3 = st.columns(3)
        for col, label in zip((c1, c2, c3), _LABELS):
            col.metric(f"p({label})", f"{post[f'p_{label}']:.3f}")
            col.progress(float(post[f"p_{label}"]))
        st.text(f"label {post['label']}  ·  score {post['score']:+.3f}  ·  language {post['lang']}"
                f"  ·  model {post['model_version']}  ·  source {post['source']}  ·  id {post['id']}")
        url = http_url(post["url"])
        if url:
            st.link_button("Open the source", url)
        elif post["url"]:
            st.text(f"source URL not shown as a link (not http/https): {post['url']}")
        if post["notes"]:
            st.text("repairs made at ingest: " + "; ".join(map(str, post["notes"])))


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _language_options() -> list[str]:
    window = data.windows()[-1]
    end = data.data_end(window)
    langs = query(queries.series_keys, "lang", window, end - timedelta(days=30), end)
    chosen = st.session_state.get("dd_langs") or []
    return sorted(set(langs) | set(chosen))


def _init_filters(link: DrilldownLink | None) -> None:
    """Fill the filters from a new link once; afterwards they are the user's (a rerun keeps edits)."""
    signature = repr(link)
    if st.session_state.get("dd_link") == signature and "dd_start" in st.session_state:
        return
    st.session_state["dd_link"] = signature
    if link is None:
        end = data.data_end(data.windows()[0])
        start, end, series = end - timedelta(hours=1), end, series_filter("all", "*")
    else:
        start, end, series = link.start, link.end, series_filter(link.series_kind, link.series_key)
    st.session_state.update(dd_start=start.replace(tzinfo=None), dd_end=end.replace(tzinfo=None),
                            dd_langs=series.langs, dd_ticker=series.ticker or "", dd_source=series.source or "",
                            dd_labels=[], dd_text="")


def _evidence_ids(link: DrilldownLink | None) -> list[str] | None:
    if link is None:
        return None
    if link.anomaly is not None:
        row = query(queries.anomaly, link.anomaly)
        if row is None:
            st.warning(f"Anomaly {link.anomaly} is not in the store (any more); showing the window instead.")
            return None
        return list(row["post_ids"] or [])
    if link.alert:
        row = query(queries.alert_evidence, link.alert)
        if row is None:
            st.warning("That alert is not in the store (any more); showing the window instead.")
            return None
        return row
    return None
