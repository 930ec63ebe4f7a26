"""Plotly figures of the dashboard, pure functions of query frames (testable without a browser).

Every point carries ``customdata = [series_kind, series_key, window_start ISO, anomaly id or -1]``
so that a click on a point or an anomaly marker can open the drill-down to the posts behind it
(:func:`dashboard.views.common.clicked_link`). Series keys come from posts (tickers, sources), so
every label is escaped (:func:`dashboard.safe.plot_text`).
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from dashboard.links import iso
from dashboard.safe import plot_text

METRICS = {
    "mean_score": "mean sentiment (p(pos) - p(neg))",
    "share_negative": "share negative",
    "share_positive": "share positive",
}
_PALETTE = qualitative.Plotly + qualitative.D3
_MAX_MARKERS = 150


def colours(keys: list[str]) -> dict[str, str]:
    return {k: _PALETTE[i % len(_PALETTE)] for i, k in enumerate(sorted(keys))}


def _customdata(kind: str, frame: pd.DataFrame, anomaly_ids: pd.Series | None = None) -> list[list]:
    ids = anomaly_ids if anomaly_ids is not None else [-1] * len(frame)
    return [[kind, key, iso(t), int(a)] for key, t, a in zip(frame["series_key"], frame["window_start"], ids)]


def _markers(kind: str, df: pd.DataFrame, anomalies: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Anomalies placed on the line they belong to (the metric's value at the anomaly's window)."""
    if anomalies.empty or df.empty:
        return pd.DataFrame()
    placed = anomalies.merge(df[["series_key", "window_start", metric]], on=["series_key", "window_start"])
    placed["label"] = [plot_text(f"{k}: {m} {d}, z={s:+.1f} (observed {o:.3g}, baseline {b:.3g}, {v} posts)")
                       for k, m, d, s, o, b, v in zip(placed["series_key"], placed["metric"], placed["direction"],
                                                       placed["score"], placed["observed"], placed["baseline"],
                                                       placed["volume"])]
    return placed


def _anomaly_trace(kind: str, placed: pd.DataFrame, metric: str, showlegend: bool) -> go.Scatter:
    return go.Scatter(x=placed["window_start"], y=placed[metric], mode="markers", name="anomaly",
                      legendgroup="anomaly", showlegend=showlegend,
                      marker={"symbol": "x-thin-open", "size": 13, "color": "#d62728", "line": {"width": 3}},
                      text=placed["label"], hovertemplate="%{text}<extra></extra>",
                      customdata=_customdata(kind, placed, placed["id"]))


def _mode(part: pd.DataFrame) -> str:
    """Markers only where they stay few: thousands of SVG markers make a browser take seconds to draw."""
    return "lines+markers" if len(part) <= _MAX_MARKERS else "lines"


def _volume_trace(kind: str, part: pd.DataFrame, name: str, colour: str, legendgroup: str | None = None,
                  fill: bool = False) -> go.Scatter:
    """Posts per window as a step line (one SVG path, where bars would be one element per window)."""
    return go.Scatter(x=part["window_start"], y=part["unique_count"], mode="lines", line_shape="hv",
                      name=f"{name} posts", legendgroup=legendgroup, showlegend=False,
                      line={"color": colour, "width": 1}, fill="tozeroy" if fill else None,
                      opacity=0.35 if fill else 0.9, customdata=_customdata(kind, part),
                      hovertemplate=f"{name} %{{x}}<br>%{{y}} posts<extra></extra>")


def trend_figure(kind: str, df: pd.DataFrame, anomalies: pd.DataFrame, metric: str = "mean_score",
                 overlay: bool = True) -> go.Figure:
    """Sentiment over time per series with its volume below (overlay) or one panel per series."""
    keys = sorted(df["series_key"].unique()) if not df.empty else []
    colour = colours(keys)
    placed = _markers(kind, df, anomalies, metric)
    if overlay or not keys:
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
        for key in keys:
            part = df[df["series_key"] == key]
            name = plot_text(key)
            fig.add_trace(go.Scatter(x=part["window_start"], y=part[metric], mode=_mode(part), name=name,
                                     legendgroup=name, line={"color": colour[key], "width": 1.5}, marker={"size": 4},
                                     customdata=_customdata(kind, part),
                                     hovertemplate=f"{name} %{{x}}<br>{metric} %{{y:.3f}}<extra></extra>"), row=1, col=1)
            fig.add_trace(_volume_trace(kind, part, name, colour[key], legendgroup=name), row=2, col=1)
        if not placed.empty:
            fig.add_trace(_anomaly_trace(kind, placed, metric, True), row=1, col=1)
        fig.update_layout(height=520)
        fig.update_yaxes(title_text=METRICS.get(metric, metric), row=1, col=1)
        fig.update_yaxes(title_text="posts", row=2, col=1)
    else:
        cols = 2 if len(keys) > 1 else 1
        rows = math.ceil(len(keys) / cols)
        fig = make_subplots(rows=rows, cols=cols, shared_xaxes=True, subplot_titles=[plot_text(k) for k in keys],
                            specs=[[{"secondary_y": True}] * cols] * rows, vertical_spacing=0.25 / max(rows, 1))
        for i, key in enumerate(keys):
            r, c = i // cols + 1, i % cols + 1
            part = df[df["series_key"] == key]
            name = plot_text(key)
            fig.add_trace(_volume_trace(kind, part, name, colour[key], fill=True), row=r, col=c, secondary_y=True)
            fig.add_trace(go.Scatter(x=part["window_start"], y=part[metric], mode=_mode(part), name=name,
                                     line={"color": colour[key], "width": 1.5}, marker={"size": 4},
                                     customdata=_customdata(kind, part),
                                     hovertemplate=f"{name} %{{x}}<br>{metric} %{{y:.3f}}<extra></extra>"),
                          row=r, col=c, secondary_y=False)
            mine = placed[placed["series_key"] == key] if not placed.empty else placed
            if not mine.empty:
                fig.add_trace(_anomaly_trace(kind, mine, metric, i == 0), row=r, col=c, secondary_y=False)
        fig.update_layout(height=max(320, 230 * rows))
    fig.update_layout(margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h", "y": -0.08},
                      hovermode="closest")
    return fig


def risk_figure(df: pd.DataFrame) -> go.Figure:
    ordered = df.sort_values("risk")
    fig = go.Figure(go.Bar(x=ordered["risk"], y=[plot_text(t) for t in ordered["ticker"]], orientation="h",
                           marker={"color": ordered["risk"], "colorscale": "YlOrRd", "cmin": 0, "cmax": 100},
                           customdata=ordered[["negative_shift", "volume_spike", "languages_negative"]].to_numpy(),
                           hovertemplate="%{y}: risk %{x:.0f}<br>negative shift %{customdata[0]:.2f}<br>"
                                         "volume spike %{customdata[1]:.2f}<br>%{customdata[2]} languages turning "
                                         "negative<extra></extra>"))
    fig.update_layout(height=max(240, 24 * len(df) + 60), margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      xaxis={"range": [0, 100], "title": "risk (0-100)"})
    return fig


def heatmap_figure(df: pd.DataFrame, lang_of: dict[str, str]) -> go.Figure:
    """Mean sentiment, language x time; ``lang_of`` maps a series key (``T|de``) to its language."""
    frame = df.assign(lang=df["series_key"].map(lang_of))
    grid = frame.pivot_table(index="lang", columns="window_start", values="mean_score", aggfunc="mean")
    volume = frame.pivot_table(index="lang", columns="window_start", values="unique_count", aggfunc="sum")
    volume = volume.reindex(index=grid.index, columns=grid.columns).fillna(0)
    fig = go.Figure(go.Heatmap(z=grid.to_numpy(), x=list(grid.columns), y=[plot_text(v) for v in grid.index],
                               customdata=volume.to_numpy(), colorscale="RdYlGn", zmid=0, zmin=-1, zmax=1,
                               colorbar={"title": "mean"},
                               hovertemplate="%{y} %{x}<br>mean %{z:.3f}, %{customdata} posts<extra></extra>"))
    fig.update_layout(height=max(220, 34 * len(grid.index) + 90), margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def label_share_figure(df: pd.DataFrame) -> go.Figure:
    """Share of each label per language and period: drift shows as bars that differ between periods."""
    fig = go.Figure()
    label_colour = {"negative": "#d62728", "neutral": "#9e9e9e", "positive": "#2ca02c"}
    for label, colour in label_colour.items():
        fig.add_trace(go.Bar(x=[[plot_text(v) for v in df["lang"]], list(df["period"])], y=df[f"share_{label}"],
                             name=label, marker={"color": colour},
                             hovertemplate=f"{label} %{{y:.1%}}<extra></extra>"))
    fig.update_layout(barmode="stack", height=360, yaxis={"tickformat": ".0%", "range": [0, 1]},
                      margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend={"orientation": "h"})
    return fig


def add_alert_spans(fig: go.Figure, alerts: pd.DataFrame) -> go.Figure:
    """Shade the windows of alerts on a timeline: red while firing, grey once resolved."""
    for row in alerts.itertuples():
        colour = "#d62728" if row.state == "firing" else "#7f7f7f"
        fig.add_vrect(x0=row.window_start, x1=row.window_end, fillcolor=colour, opacity=0.15, line_width=0,
                      annotation_text=plot_text(f"{row.rule} ({row.state})"), annotation_position="top left",
                      annotation_font_size=10)
    return fig
