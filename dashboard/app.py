"""The Streamlit entry point (``monitor dashboard`` runs it; settings come from MONITOR_* variables)."""

from __future__ import annotations

import streamlit as st

from dashboard import data, nav
from dashboard.auth import require_login

st.set_page_config(page_title="Sentiment & risk monitor", page_icon=":material/monitoring:", layout="wide")
require_login(data.settings().dashboard)
st.navigation(nav.pages(st.query_params.get("page"))).run()
