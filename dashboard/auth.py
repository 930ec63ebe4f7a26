"""The login in front of every page: a shared password, or OIDC through ``st.login``.

Off by default (the local demo binds 127.0.0.1). ``monitor dashboard`` refuses an exposed address
without a login (:mod:`dashboard.exposure`); the app checks again, because it can also be started
with a bare ``streamlit run``.
"""

from __future__ import annotations

import hmac
import time

import streamlit as st
from streamlit import config

from dashboard.exposure import auth_mode, check_exposure
from monitor.config import DashboardSettings
from monitor.errors import UserError

_FAILED_LOGIN_DELAY_S = 1.0  # slows password guessing to one try per second per session


def require_login(cfg: DashboardSettings) -> None:
    """Return when the visitor may see the pages; otherwise show the login (or the refusal) and stop."""
    try:
        mode = auth_mode(cfg)
        check_exposure(cfg, _bound_address(cfg))
    except UserError as exc:
        st.error(str(exc))
        st.stop()
    if mode == "oidc":
        _oidc(cfg)
    elif mode == "password":
        _password(cfg)


def _bound_address(cfg: DashboardSettings) -> str:
    """The address the server listens on; a bare ``streamlit run`` without ``--server.address`` listens on all."""
    address = config.get_option("server.address")
    if address:
        return str(address)
    return cfg.host if config.get_option("global.appTest") else "0.0.0.0"  # an in-process AppTest listens nowhere


def current_user() -> str:
    """Who acts, for the audit fields of silences: the OIDC identity when there is one."""
    if st.user.get("is_logged_in", False):
        return str(st.user.get("email") or st.user.get("name") or "oidc user")
    return "dashboard (password)" if st.session_state.get("_dashboard_authenticated") else "dashboard (local)"


def _password(cfg: DashboardSettings) -> None:
    if st.session_state.get("_dashboard_authenticated"):
        with st.sidebar:
            if st.button("Log out", key="_logout"):
                st.session_state["_dashboard_authenticated"] = False
                st.rerun()
        return
    assert cfg.password is not None
    st.title("Sentiment & risk monitor")
    with st.form("login"):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        if hmac.compare_digest(given.encode(), cfg.password.get_secret_value().encode()):
            st.session_state["_dashboard_authenticated"] = True
            st.rerun()
        time.sleep(_FAILED_LOGIN_DELAY_S)
        st.error("Wrong password.")
    st.stop()


def _oidc(cfg: DashboardSettings) -> None:
    if "auth" not in st.secrets:
        st.error("OIDC login is configured (MONITOR_DASHBOARD_OIDC_SECRETS_FILE) but Streamlit found no [auth] "
                 "section in its secrets; start the dashboard with `monitor dashboard`.")
        st.stop()
    if st.user.get("is_logged_in", False):  # absent (not False) until Streamlit has seen an identity
        with st.sidebar:
            st.text(f"Signed in as {st.user.get('email') or st.user.get('name') or 'user'}")
            st.button("Log out", key="_logout", on_click=st.logout)
        return
    st.title("Sentiment & risk monitor")
    st.button("Log in", key="_login", on_click=st.login, args=(cfg.oidc_provider,) if cfg.oidc_provider else ())
    st.stop()
