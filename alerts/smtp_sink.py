"""A local SMTP server that keeps every message it receives as an ``.eml`` file.

``monitor demo`` and ``monitor alerts run`` start it on 127.0.0.1 when no SMTP server is
configured, so alerts can be read (``monitor alerts mail``, or the dashboard's list) without
sending mail anywhere. Files are named ``<UTC time>-<n>.eml`` in ``<data dir>/mail``; a message is
written to a temporary name first and renamed, so a reader never sees half a message.
"""

from __future__ import annotations

import base64
import itertools
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

MAIL_DIR = "mail"


def mail_dir(data_dir: Path) -> Path:
    return Path(data_dir) / MAIL_DIR


class _SaveHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session: Session, envelope: Envelope) -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.folder / f"{stamp}-{next(self.counter):05d}.eml"
        tmp = path.with_suffix(".tmp")
        data = envelope.original_content or envelope.content
        tmp.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        os.replace(tmp, path)
        return "250 Message accepted for delivery"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class SmtpSink:
    """``with SmtpSink(folder) as sink:`` listens on ``sink.host:sink.port`` until the block ends."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.folder = Path(folder)
        self.host = host
        self.port = port or free_port(host)
        self._controller: Controller | None = None

    def start(self) -> "SmtpSink":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(_SaveHandler(self.folder), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass(frozen=True)
class StoredMail:
    path: Path
    subject: str
    sender: str
    to: str
    date: str

    def message(self) -> EmailMessage:
        return read_eml(self.path)

    def html(self) -> str | None:
        """The HTML part with its inline images as ``data:`` URIs, ready for a browser or ``st.html``."""
        return html_with_images(self.message())


def html_with_images(msg: EmailMessage) -> str | None:
    """What a mail client shows: the HTML part, each ``cid:`` reference replaced by its image's data."""
    part = msg.get_body(preferencelist=("html",))
    if part is None:
        return None
    html = part.get_content()
    for item in msg.walk():
        cid = item.get("Content-ID")
        if cid and item.get_content_maintype() == "image":
            data = base64.b64encode(item.get_content()).decode("ascii")
            html = html.replace(f"cid:{cid.strip('<>')}", f"data:{item.get_content_type()};base64,{data}")
    return html


def read_eml(path: Path) -> EmailMessage:
    return message_from_bytes(Path(path).read_bytes(), policy=policy.default)  # type: ignore[return-value]


def list_mail(folder: Path) -> list[StoredMail]:
    """The received messages, newest first (for the dashboard and ``monitor alerts mail``)."""
    out = []
    for path in sorted(Path(folder).glob("*.eml"), reverse=True):
        msg = read_eml(path)
        out.append(StoredMail(path, str(msg.get("Subject", "")), str(msg.get("From", "")), str(msg.get("To", "")),
                              str(msg.get("Date", ""))))
    return out
