"""Headless Chromium over the DevTools protocol: the browser test, the page-load benchmark and the
README screenshots drive the real app with it.

Why the DevTools protocol and not ``--dump-dom``: the app renders over a websocket after load, and
a virtual-time budget does not wait for that reliably; here we poll the live DOM until the charts
are drawn and the app is idle, then read or photograph it.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]

# True once a Streamlit page has finished a run: charts drawn, nothing running, no skeletons.
APP_IDLE = """(() => {
  const running = document.querySelector('[data-testid="stStatusWidget"]');
  const skeleton = document.querySelector('[data-testid="stSkeleton"]');
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && !running && !skeleton;
})()"""


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


class Chromium:
    """One headless browser with one tab; use as a context manager."""

    def __init__(self, binary: str | None = None, width: int = 1360, height: int = 1000, timeout_s: float = 60.0):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise BrowserError("no chromium on PATH (apt-get install chromium)")
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._next_id = 0

    def __enter__(self) -> "Chromium":
        self._profile = tempfile.mkdtemp(prefix="chromium-")
        self._stack = contextlib.ExitStack()
        self._proc = subprocess.Popen([self.binary, *FLAGS, f"--user-data-dir={self._profile}",
                                       f"--window-size={self.width},{self.height}", "about:blank"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._connect()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _connect(self) -> None:
        port = self._devtools_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = self._stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.resize(self.width, self.height)

    def __exit__(self, *exc: object) -> None:
        try:
            self._stack.close()
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            shutil.rmtree(self._profile, ignore_errors=True)

    def _devtools_port(self) -> int:
        marker = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrowserError(f"chromium exited with status {self._proc.returncode} at start")
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.1)
        raise BrowserError("chromium did not open its DevTools port")

    def call(self, method: str, **params: Any) -> dict:
        self._next_id += 1
        ident = self._next_id
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def click(self, x: float, y: float) -> None:
        """A left click at page coordinates (canvas widgets such as st.dataframe have no DOM to click)."""
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def wait_for(self, expression: str, timeout_s: float | None = None, settle_s: float = 0.0) -> float:
        """Seconds until ``expression`` is true (and still true ``settle_s`` later); BrowserError on timeout."""
        start = time.monotonic()
        deadline = start + (timeout_s or self.timeout_s)
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                reached = time.monotonic() - start
                if settle_s <= 0:
                    return reached
                time.sleep(settle_s)
                if self.evaluate(expression):
                    return reached
            time.sleep(0.1)
        raise BrowserError(f"timed out after {timeout_s or self.timeout_s:.0f}s waiting for: {expression[:120]}")

    def screenshot(self, path: Path, colours: int | None = 256) -> Path:
        """Save the whole app (its scrolling main area grown to fit) as PNG, palette-quantised to stay small."""
        height = self.evaluate("Math.max(document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0, "
                               "document.body.scrollHeight)") or self.height
        self.resize(self.width, int(min(max(height, self.height), 6000)))
        time.sleep(0.5)  # let plotly redraw at the new size
        data = self.call("Page.captureScreenshot", format="png")["data"]
        self.resize(self.width, self.height)
        raw = base64.b64decode(data)
        if colours:
            from PIL import Image

            image = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
            raw = buffer.getvalue()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        return path
