"""Showing untrusted strings (post text, URLs, tickers, source names) without letting them act.

Everything a post carries comes from the outside world. Streamlit renders Markdown in many places
(labels, captions, ``st.markdown``) and plotly renders a subset of HTML in hover labels, so a post
could otherwise inject links, images that call home, or fake UI. Text goes through ``st.text`` /
``st.dataframe`` (plain text), or through these helpers where Markdown or plotly is unavoidable.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$=^&])")


def md(text: object) -> str:
    """``text`` escaped so that Streamlit Markdown shows it literally (no links, images, emoji codes, LaTeX)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text).replace("\n", " "))


def plot_text(text: object) -> str:
    """``text`` for a plotly label or hover: plotly reads ``<a>``, ``<b>``... so entities go in instead."""
    return html.escape(str(text), quote=True)


def http_url(url: object) -> str | None:
    """``url`` when it is an absolute http(s) URL, else None: no ``javascript:``, ``data:`` or relative links."""
    if not isinstance(url, str) or not url or any(ord(c) < 33 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None
