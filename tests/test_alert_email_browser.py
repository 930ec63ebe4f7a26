"""The alert e-mail as a mail client shows it: rendered by headless Chromium, inline charts included."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from alerts.smtp_sink import html_with_images
from monitor.store.db import open_store
from tests.alert_helpers import MIN, T0, Mailbox, make_service, run_clock, seed_posts
from tests.test_alert_notify import rules, seed_burst

pytestmark = pytest.mark.browser
CHART_BLUE = (31, 90, 170)

POSTS = {
    "de": ["Apple senkt überraschend die Umsatzprognose für das Gesamtjahr", "Sammelklage gegen Apple eingereicht"],
    "fr": ["Apple : l'action chute après l'avertissement sur les résultats"],
    "ja": ["アップル、業績見通しを下方修正 株価急落"],
}


def screenshot(html: str, folder: Path, out: Path, size: str = "720,1000") -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("headless Chromium is not installed")
    page = folder / "mail.html"
    page.write_text(html, encoding="utf-8")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--hide-scrollbars", f"--user-data-dir={folder / 'profile'}", f"--screenshot={out}",
                    f"--window-size={size}", page.as_uri()], check=True, capture_output=True, timeout=90)
    return out


def seeded_alert_email(tmp_path: Path):
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    seed_burst(engine)
    for lang, texts in POSTS.items():
        seed_posts(engine, "AAPL", lang, T0 + 61 * MIN, texts + ['<b onclick="x()">fake</b> & more'])
    box = Mailbox(tmp_path / "mail")
    try:
        run_clock(make_service(engine, rules(), box.port, tmp_path), T0 + 50 * MIN, T0 + 72 * MIN)
        [msg] = box.messages()
    finally:
        box.close()
    return msg


def test_the_email_renders_with_its_charts_and_escaped_posts(tmp_path):
    msg = seeded_alert_email(tmp_path)
    html = html_with_images(msg)
    assert "cid:" not in html and html.count("data:image/png;base64,") == 3
    png = screenshot(html, tmp_path, tmp_path / "mail.png")
    image = Image.open(png).convert("RGB")
    assert image.size == (720, 1000)
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20)}
    assert CHART_BLUE in colours  # the inline charts were decoded and drawn
