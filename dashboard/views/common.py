"""Controls and helpers that several pages share."""

from __future__ import annotations

from datetime import datetime, timedelta

import streamlit as st

from dashboard import data
from dashboard.links import drilldown_params, parse_time

RANGES_S = {"15 min": 900, "1 h": 3600, "6 h": 6 * 3600, "24 h": 86400, "7 d": 7 * 86400, "30 d": 30 * 86400}


def human_window(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def window_picker(key: str, prefer: int = 60) -> int:
    options = data.windows()
    index = options.index(prefer) if prefer in options else 0
    return st.selectbox("Window", options, index=index, format_func=human_window, key=key,
                        help="aggregation window of the trend points")


def range_picker(key: str, default: str = "6 h") -> int:
    names = list(RANGES_S)
    choice = st.selectbox("Range", names, index=names.index(default), key=key,
                          help="how far back from the newest data")
    return RANGES_S[choice]


def data_range(window_s: int, span_s: int) -> tuple[datetime, datetime]:
    """``[end - span, end)`` where ``end`` is the end of the newest window of data."""
    end = data.data_end(window_s)
    return end - timedelta(seconds=span_s), end


def clicked_params(event: object, window_s: int) -> dict[str, str] | None:
    """Drill-down parameters of the point or anomaly marker picked on a chart (see ``dashboard.charts``)."""
    selection = getattr(event, "selection", None) or (event.get("selection") if isinstance(event, dict) else None)
    points = (selection or {}).get("points") or []
    for point in points:
        custom = point.get("customdata")
        if not custom or len(custom) < 4:
            continue
        kind, key, start_iso, anomaly_id = custom[:4]
        start = parse_time(str(start_iso))
        return drilldown_params(str(kind), str(key), start, start + timedelta(seconds=window_s),
                                anomaly=int(anomaly_id) if int(anomaly_id) >= 0 else None)
    return None


def live(fn):
    """Run ``fn`` as a fragment that refreshes itself every ``refresh_s`` without re-running the page."""
    return st.fragment(run_every=timedelta(seconds=data.refresh_s()))(fn)
