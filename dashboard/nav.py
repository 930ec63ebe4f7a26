"""The pages of the app and links between them (``st.page_link`` keeps the session, so a login holds)."""

from __future__ import annotations

import importlib

import streamlit as st

# url path -> (title, icon); each is rendered by ``dashboard.views.<path>.render``.
PAGES: dict[str, tuple[str, str]] = {
    "overview": ("Overview", ":material/monitoring:"),
    "ticker": ("Ticker", ":material/candlestick_chart:"),
    "drilldown": ("Drill-down", ":material/manage_search:"),
    "alerts": ("Alerts", ":material/notifications_active:"),
    "model": ("Model", ":material/model_training:"),
}
DEFAULT = "overview"


def page(name: str, default: bool = False) -> st.Page:
    title, icon = PAGES[name]
    render = importlib.import_module(f"dashboard.views.{name}").render
    return st.Page(render, title=title, icon=icon, url_path=name, default=default)


def pages(requested: str | None) -> list[st.Page]:
    """All pages; ``?page=NAME`` (the form alert e-mails use) makes NAME the page served at the root URL."""
    chosen = requested if requested in PAGES else DEFAULT
    return [page(name, default=name == chosen) for name in PAGES]


def link(name: str, label: str, params: dict[str, str] | None = None, icon: str | None = None) -> None:
    """A link to page ``name``; ``label`` is Markdown, so callers escape untrusted parts."""
    st.page_link(page(name), label=label, query_params=params, icon=icon)
