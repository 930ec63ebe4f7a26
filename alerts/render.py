"""Alert and digest e-mails: multipart text + HTML, charts inline, evidence first.

Everything that comes from posts or series names is untrusted: it is HTML-escaped in the HTML part,
and anything that goes into a header (the subject names tickers and languages) has CR, LF and every
other control or line-separator character removed, so no text can add a header or a recipient.
Bodies are quoted-printable and images base64: the stored message is 7-bit, and one stored message
is delivered byte for byte, however late.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from alerts.evidence import Evidence, iso
from alerts.notification import Notification

_SPACES = re.compile(r"\s+")
_COLOURS = {"critical": "#b3261e", "warning": "#b26a00", "info": "#1f5aaa", "resolved": "#2e7d32"}
POST_CHARS = 280
MAX_DETAILED = 10  # alerts shown with chart and posts; the rest are listed


def header_safe(text: str, limit: int = 200) -> str:
    """One line of printable text: control characters (CR, LF, NUL...) and line separators become spaces."""
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    cleaned = _SPACES.sub(" ", cleaned).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _line(text: object) -> str:
    """Untrusted text (series names, summaries) as one line in a body, as in a header."""
    return header_safe(str(text), limit=2000)


def _e(text: object) -> str:
    return html.escape(_line(text), quote=True)


def _clip(text: str, limit: int = POST_CHARS) -> str:
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def subject_for(n: Notification) -> str:
    pool = n.firing or n.resolved
    head = f"[FIRING:{len(n.firing)}] {n.severity.upper()}" if n.firing else f"[RESOLVED:{len(n.resolved)}]"
    scope = " ".join(v for v in n.group_labels.values() if v)
    more = f" (+{len(pool) - 1} more)" if len(pool) > 1 else ""
    return header_safe(f"{head} {scope + ': ' if scope else ''}{pool[0].summary}{more}")


def _message(subject: str, sender: str, to: str, at: datetime, key: str) -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = subject
    msg["From"] = header_safe(sender)
    msg["To"] = header_safe(to)
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@finsent-monitor>"
    msg["Auto-Submitted"] = "auto-generated"
    return msg


def _finish(msg: EmailMessage, text: str, html_body: str, images: dict[str, bytes]) -> str:
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html_body, subtype="html", cte="quoted-printable")
    html_part = msg.get_payload()[1]  # type: ignore[index]
    for cid, png in images.items():
        html_part.add_related(png, "image", "png", cid=f"<{cid}>", filename=f"{cid.split('@')[0]}.png")
    return msg.as_string()


def _post_lines(ev: Evidence) -> list[str]:
    return [f"    - [{p.lang}] {_line(p.source)} · {p.label} {p.score:+.2f}: {_clip(p.text)}" for p in ev.posts]


def _post_html(ev: Evidence) -> str:
    if not ev.posts:
        return ""
    items = "".join(
        f'<li style="margin:4px 0"><span style="color:#666">[{_e(p.lang)}] {_e(p.source)} · {_e(p.label)} '
        f'{p.score:+.2f}</span><br>{_e(_clip(p.text))}</li>' for p in ev.posts)
    return f'<div style="font-size:13px;margin-top:6px"><b>Top posts</b><ul style="margin:4px 0 0 18px;padding:0">{items}</ul></div>'


def render_alert_email(n: Notification, evidence: list[Evidence], *, sender: str, to: str) -> tuple[str, str]:
    """Subject and the full MIME message (7-bit text) of one notification for one address."""
    subject = subject_for(n)
    by_fp = {ev.alert.fingerprint: ev for ev in evidence}
    status = "FIRING" if n.firing else "RESOLVED"
    colour = _COLOURS.get(n.severity if n.firing else "resolved", "#333")
    scope = _line(", ".join(f"{k}={v}" for k, v in n.group_labels.items() if v) or "all series")

    pool = n.firing or n.resolved
    langs = sorted({a.labels["lang"] for a in pool if a.labels.get("lang")})
    where = _line((f"languages: {', '.join(langs)} · " if langs else "") + f"rules: {', '.join(sorted({a.rule for a in pool}))}")
    text = [f"{status}: {len(n.firing)} firing, {len(n.resolved)} resolved ({scope})", where, f"at {iso(n.at)}", ""]
    blocks: list[str] = []
    images: dict[str, bytes] = {}
    for i, alert in enumerate(n.firing + n.resolved):
        ev = by_fp.get(alert.fingerprint)
        state = alert.state.upper() if alert.state != "firing" else alert.severity.upper()
        since = f"resolved {iso(alert.resolved_at)}" if alert.resolved_at else f"firing since {iso(alert.fired_at or alert.active_since)}"
        text += [f"* [{state}] {_line(alert.summary)}", f"    rule {alert.rule}, {since}",
                 f"    window {iso(alert.window_start)} .. {iso(alert.window_end)}"]
        if alert.annotations.get("description"):
            text.append(f"    {alert.annotations['description']}")
        badge = _COLOURS.get("resolved" if alert.state == "resolved" else alert.severity, "#333")
        block = (f'<div style="border-left:4px solid {badge};padding:6px 10px;margin:10px 0">'
                 f'<div style="font-size:15px"><b style="color:{badge}">{_e(state)}</b> {_e(alert.summary)}</div>'
                 f'<div style="color:#666;font-size:12px">rule {_e(alert.rule)} · {_e(since)} · window '
                 f'{_e(iso(alert.window_start))} .. {_e(iso(alert.window_end))}</div>')
        if alert.annotations.get("description"):
            block += f'<div style="font-size:13px">{_e(alert.annotations["description"])}</div>'
        if ev is not None and i < MAX_DETAILED:
            text += [f"    drill-down: {ev.link}"] + (["    top posts:"] + _post_lines(ev) if ev.posts else [])
            if ev.chart_png:
                cid = f"chart{i}@finsent-monitor"
                images[cid] = ev.chart_png
                block += f'<div><img src="cid:{cid}" alt="chart of {_e(alert.series_key)}" width="360" height="120"></div>'
            block += f'<div style="font-size:13px"><a href="{_e(ev.link)}">Open the drill-down</a></div>{_post_html(ev)}'
        blocks.append(block + "</div>")
        text.append("")
    silence = _line(" ".join(f"{k}={v}" for k, v in n.group_labels.items() if v) or "rule=NAME")
    text.append(f"Mute this group: monitor alerts silence add {silence} --for 2h --comment WHY")
    body = (f'<!doctype html><html><body style="font-family:Arial,Helvetica,sans-serif;color:#222;max-width:640px">'
            f'<div style="background:{colour};color:white;padding:10px 12px;font-size:18px">'
            f'<b>{status}</b> · {len(n.firing)} firing, {len(n.resolved)} resolved · {_e(scope)}</div>'
            f'<div style="font-size:14px;margin:6px 0 0">{_e(where)}</div>'
            f'<div style="color:#666;font-size:12px;margin:2px 0 6px">{_e(iso(n.at))} · receiver {_e(n.receiver)}</div>'
            f'{"".join(blocks)}'
            f'<div style="color:#888;font-size:11px;margin-top:14px">Mute this group: '
            f'<code>monitor alerts silence add {_e(silence)} --for 2h --comment WHY</code></div></body></html>')
    msg = _message(subject, sender, to, n.at, f"{n.group_key}|{n.receiver}|{to}|{iso(n.at)}")
    return subject, _finish(msg, "\n".join(text), body, images)


def render_digest_email(*, to: str, sender: str, day_end: datetime, fired: list[dict], firing_now: list[str],
                        dashboard_url: str) -> tuple[str, str]:
    """A daily summary: what fired in the last 24 hours (per rule), and what still fires."""
    subject = header_safe(f"[DIGEST] {len(fired)} alerts fired in the last 24h, {len(firing_now)} firing now")
    text = [subject, f"until {iso(day_end)}", ""]
    rows = []
    by_rule: dict[str, list[dict]] = {}
    for event in fired:
        by_rule.setdefault(event["rule"], []).append(event)
    for rule, events in sorted(by_rule.items()):
        keys = sorted({e["series_key"] for e in events})
        text.append(_line(f"* {rule}: {len(events)} times ({', '.join(keys[:12])}{' ...' if len(keys) > 12 else ''})"))
        rows.append(f"<tr><td>{_e(rule)}</td><td>{len(events)}</td><td>{_e(', '.join(keys[:12]))}</td></tr>")
    if not fired:
        text.append("No alert fired. The monitor was running and watching.")
    text += ["", "Firing now:"] + [f"  - {_line(s)}" for s in firing_now] + ["", f"Dashboard: {dashboard_url}"]
    table = (f'<table cellpadding="4" style="border-collapse:collapse;font-size:13px"><tr><th align="left">rule</th>'
             f'<th>times</th><th align="left">series</th></tr>{"".join(rows)}</table>' if rows
             else "<p>No alert fired. The monitor was running and watching.</p>")
    now_html = "".join(f"<li>{_e(s)}</li>" for s in firing_now) or "<li>nothing</li>"
    body = (f'<!doctype html><html><body style="font-family:Arial,Helvetica,sans-serif;color:#222;max-width:640px">'
            f'<h2 style="margin:0 0 6px">Daily alert digest</h2><div style="color:#666;font-size:12px">'
            f'until {_e(iso(day_end))}</div>{table}<h3>Firing now</h3><ul>{now_html}</ul>'
            f'<p><a href="{_e(dashboard_url)}">Open the dashboard</a></p></body></html>')
    msg = _message(subject, sender, to, day_end, f"digest|{to}|{iso(day_end)}")
    return subject, _finish(msg, "\n".join(text), body, {})
