"""Alerts: what fires and what resolved, the history, the notifications sent, the demo mailbox,
and silencing or acknowledging from the page (through the alerts concern's own functions).

Acknowledging an alert is a silence on exactly its labels, as in Alertmanager: the alert keeps its
state and stays on this page, but its receivers are not notified again until the silence ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from alerts.silences import Matcher, create_silence, expire_silence, parse_matcher
from alerts.smtp_sink import list_mail, mail_dir
from dashboard import data, nav, queries
from dashboard.auth import current_user
from dashboard.data import query
from dashboard.links import drilldown_params
from dashboard.views.common import live
from monitor.errors import UserError

_DURATIONS = {"1 h": timedelta(hours=1), "4 h": timedelta(hours=4), "24 h": timedelta(days=1), "7 d": timedelta(days=7)}
_HISTORY = timedelta(days=7)
_ALERT_COLUMNS = ["state", "severity", "rule", "series_kind", "series_key", "value", "threshold", "active_since",
                  "fired_at", "resolved_at"]


def render() -> None:
    st.title("Alerts")
    notice = st.session_state.pop("al_notice", None)
    if notice:
        (st.error if notice[0] == "error" else st.success)(notice[1])
    live(_current)()
    _act()
    live(_history)()
    _mailbox()


def _current() -> None:
    firing = query(queries.alerts_by_state, ["firing", "pending"])
    c1, c2 = st.columns(2)
    c1.metric("Firing", int((firing["state"] == "firing").sum()) if not firing.empty else 0)
    c2.metric("Pending", int((firing["state"] == "pending").sum()) if not firing.empty else 0)
    st.subheader("Firing and pending")
    if firing.empty:
        st.info("Nothing is firing.")
    else:
        _alert_table(firing, "al_firing")
    st.subheader("Resolved")
    resolved = query(queries.alerts_by_state, ["resolved"], 200)
    if resolved.empty:
        st.info("No resolved alerts.")
    else:
        _alert_table(resolved, "al_resolved")


def _alert_table(frame: pd.DataFrame, key: str) -> None:
    picked = st.dataframe(frame[_ALERT_COLUMNS].assign(summary=frame["annotations"].map(lambda a: (a or {}).get("summary", ""))),
                          key=key, hide_index=True, on_select="rerun", selection_mode="single-row", width="stretch")
    rows = picked.selection.rows if picked else []
    if not rows:
        st.caption("Select an alert to open its posts, or to acknowledge it.")
        return
    alert = frame.iloc[rows[0]]
    if st.session_state.get(f"{key}_picked") != alert["fingerprint"]:
        # A pick inside a live fragment reruns only the fragment: rerun the page so the actions see it.
        st.session_state[f"{key}_picked"] = st.session_state["al_selected"] = alert["fingerprint"]
        st.rerun(scope="app")
    params = drilldown_params(alert["series_kind"], alert["series_key"], alert["window_start"], alert["window_end"],
                              alert=alert["fingerprint"])
    nav.link("drilldown", "Posts behind this alert", params, icon=":material/manage_search:")


def _selected_alert() -> pd.Series | None:
    fingerprint = st.session_state.get("al_selected")
    if not fingerprint:
        return None
    frame = query(queries.alerts_by_state, ["firing", "pending", "resolved"])
    match = frame[frame["fingerprint"] == fingerprint]
    return match.iloc[0] if not match.empty else None


def _act() -> None:
    st.subheader("Silences")
    now = datetime.now(timezone.utc)
    alert = _selected_alert()
    left, right = st.columns(2)
    with left, st.form("al_ack"):
        st.markdown("**Acknowledge the selected alert**")
        if alert is None:
            st.caption("Select an alert above first.")
        else:
            st.text(f"{alert['rule']} on {alert['series_kind']} {alert['series_key']} ({alert['state']})")
        duration = st.selectbox("Mute its notifications for", list(_DURATIONS), key="al_ack_for")
        note = st.text_input("Note", key="al_ack_note")
        if st.form_submit_button("Acknowledge", disabled=alert is None) and alert is not None:
            matchers = [Matcher(name=k, op="=", value=str(v)) for k, v in sorted((alert["labels"] or {}).items())]
            _apply(lambda: create_silence(data.engine(), matchers, duration=_DURATIONS[duration], now=now,
                                          created_by=current_user(), comment=f"acknowledged: {note}".strip()),
                   "Acknowledged: its receivers are not notified again until the silence ends.")
    with right, st.form("al_silence"):
        st.markdown("**New silence**")
        text = st.text_area("Matchers, one per line", placeholder="ticker=AAPL\nlang=~de|fr", key="al_matchers")
        duration = st.selectbox("For", list(_DURATIONS), key="al_silence_for")
        comment = st.text_input("Comment", key="al_comment")
        if st.form_submit_button("Silence"):
            _apply(lambda: create_silence(data.engine(), [parse_matcher(line) for line in text.splitlines() if line.strip()],
                                          duration=_DURATIONS[duration], now=now, created_by=current_user(),
                                          comment=comment), "Silence created.")
    silences = query(queries.active_silences, data.now())
    if silences.empty:
        st.caption("No active silences.")
        return
    shown = silences.assign(matchers=silences["matchers"].map(lambda ms: " ".join(f"{m['name']}{m['op']}{m['value']}"
                                                                                for m in ms)))
    picked = st.dataframe(shown, key="al_silences", hide_index=True, on_select="rerun", selection_mode="single-row",
                          width="stretch")
    rows = picked.selection.rows if picked else []
    if rows and st.button("Expire the selected silence", key="al_expire"):
        _apply(lambda: expire_silence(data.engine(), str(shown.iloc[rows[0]]["id"]), datetime.now(timezone.utc)),
               "Silence expired.")


def _apply(action, done: str) -> None:
    """Run a store change, then rerun the page so every table shows it (the outcome is shown at the top)."""
    try:
        action()
    except UserError as exc:
        st.session_state["al_notice"] = ("error", str(exc))
    else:
        data.invalidate()
        st.session_state["al_notice"] = ("success", done)
    st.rerun()


def _history() -> None:
    since = data.now() - _HISTORY
    st.subheader("History (7 days)")
    events = query(queries.alert_history, since)
    if events.empty:
        st.info("No alert state changes in the last 7 days.")
    else:
        st.dataframe(events, hide_index=True, width="stretch")
    st.subheader("Notifications sent")
    sent = query(queries.notifications_since, since)
    if sent.empty:
        st.info("No notifications in the last 7 days.")
    else:
        st.dataframe(sent, hide_index=True, width="stretch")


def _mailbox() -> None:
    folder = mail_dir(data.settings().data_dir)
    st.subheader("E-mails received by the demo's SMTP sink")
    mails = list_mail(folder) if folder.is_dir() else []
    if not mails:
        st.caption(f"No e-mail in {folder} (the demo's local SMTP sink saves what it receives there).")
        return
    table = pd.DataFrame([{"date": m.date, "from": m.sender, "to": m.to, "subject": m.subject, "file": m.path.name}
                          for m in mails[:200]])
    picked = st.dataframe(table, key="al_mail", hide_index=True, on_select="rerun", selection_mode="single-row",
                          width="stretch")
    rows = picked.selection.rows if picked else []
    if rows:
        message = mails[rows[0]].message()
        body = message.get_body(preferencelist=("plain",))
        st.text(body.get_content() if body is not None else "(no plain-text part)")
