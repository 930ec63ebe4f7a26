"""Alerts (placeholder until the alerts concern lands)."""

from __future__ import annotations

import streamlit as st


def render() -> None:
    st.title("Alerts")
