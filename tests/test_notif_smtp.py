"""SMTP delivery against real servers: STARTTLS and implicit TLS with login, refusals, no secret in errors."""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.notifiers.mail import EmailNotifier
from alerts.outbox import Delivery, DeliveryError
from alerts.smtp_sink import free_port
from monitor.config import SmtpSettings

PASSWORD = "correct horse battery staple"
MESSAGE = "From: monitor@example.com\r\nTo: desk@example.com\r\nSubject: test\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(folder / "key.pem"),
                    "-out", str(folder / "cert.pem")], check=True, capture_output=True)
    return folder / "cert.pem", folder / "key.pem"


class _Inbox:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _auth(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 itself


def _server_context(cert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def _delivery(to: str = "desk@example.com") -> Delivery:
    return Delivery(1, "firing", "email", "desk", to, "test", MESSAGE, None, 0)


@pytest.fixture
def starttls_server(cert):
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=_server_context(cert),
                            require_starttls=True, authenticator=_auth, auth_required=True)
    controller.start()
    yield inbox, controller.port
    controller.stop()


def test_starttls_with_login_delivers(starttls_server, cert):
    inbox, port = starttls_server
    settings = SmtpSettings(host="127.0.0.1", port=port, starttls=True, ca_file=cert[0], username="alerts",
                            password=PASSWORD, sender="monitor@example.com")
    EmailNotifier(settings).send(_delivery())
    [(sender, rcpts, content)] = inbox.received
    assert sender == "monitor@example.com" and rcpts == ["desk@example.com"] and b"hello" in content


def test_a_refused_login_is_retried_and_never_shows_the_password(starttls_server, cert, caplog):
    _, port = starttls_server
    settings = SmtpSettings(host="127.0.0.1", port=port, starttls=True, ca_file=cert[0], username="alerts",
                            password="wrong-" + PASSWORD)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeliveryError) as err:
        EmailNotifier(settings).send(_delivery())
    assert not err.value.permanent and "refused the login for 'alerts'" in str(err.value)
    assert PASSWORD not in str(err.value) and PASSWORD not in caplog.text
    assert PASSWORD not in repr(settings)


def test_an_unknown_recipient_is_permanent(starttls_server, cert):
    _, port = starttls_server
    settings = SmtpSettings(host="127.0.0.1", port=port, starttls=True, ca_file=cert[0], username="alerts",
                            password=PASSWORD)
    with pytest.raises(DeliveryError) as err:
        EmailNotifier(settings).send(_delivery("nobody@example.com"))
    assert err.value.permanent and "550" in str(err.value)


def test_an_untrusted_certificate_is_refused(starttls_server):
    _, port = starttls_server
    with pytest.raises(DeliveryError, match="unreachable.*CERTIFICATE_VERIFY_FAILED"):
        EmailNotifier(SmtpSettings(host="127.0.0.1", port=port, starttls=True)).send(_delivery())


def test_implicit_tls_delivers(cert):
    inbox = _Inbox()
    # aiosmtpd only counts STARTTLS as TLS for AUTH; the whole connection is TLS here.
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), ssl_context=_server_context(cert),
                            authenticator=_auth, auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        settings = SmtpSettings(host="127.0.0.1", port=controller.port, ssl=True, ca_file=cert[0], username="alerts",
                                password=PASSWORD)
        EmailNotifier(settings).send(_delivery())
    finally:
        controller.stop()
    assert len(inbox.received) == 1


def test_a_server_that_is_down_is_retryable():
    with pytest.raises(DeliveryError) as err:
        EmailNotifier(SmtpSettings(host="127.0.0.1", port=free_port(), timeout_s=2)).send(_delivery())
    assert not err.value.permanent and "unreachable" in str(err.value)


def test_ssl_and_starttls_together_are_refused():
    with pytest.raises(ValueError, match="choose one of MONITOR_SMTP_SSL"):
        SmtpSettings(host="x", ssl=True, starttls=True)
