"""SMTP delivery of stored MIME messages: plain, STARTTLS or implicit TLS, with optional login.

Credentials come from ``SmtpSettings`` (environment or secrets file) and never appear in errors
or logs. SMTP's own classes decide what is retried: a 4xx reply, a refused connection or a timeout
is temporary; a 5xx reply to the recipient is permanent. A refused login is retried too (someone
will fix the password; until then the messages wait in the outbox).
"""

from __future__ import annotations

import smtplib
import socket
import ssl

from alerts.outbox import Delivery, DeliveryError
from monitor.config import SmtpSettings


class EmailNotifier:
    channel = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        if not settings.host:
            raise ValueError("EmailNotifier needs an SMTP host (MONITOR_SMTP_HOST, or the local sink)")
        self.settings = settings

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        if s.ssl:
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=context)
        client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        if s.starttls:
            try:
                client.starttls(context=context)
            except BaseException:
                client.close()
                raise
        return client

    def send(self, delivery: Delivery) -> None:
        s = self.settings
        where = f"SMTP {s.host}:{s.port}"
        try:
            with self._connect() as client:
                if s.username:
                    client.login(s.username, s.password.get_secret_value() if s.password else "")
                client.sendmail(s.sender, [delivery.target], delivery.body.encode("ascii"))
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{where} refused the login for {s.username!r} ({exc.smtp_code}); "
                                "check MONITOR_SMTP_USERNAME / MONITOR_SMTP_PASSWORD") from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise DeliveryError(f"{where} refused {delivery.target}: {code} {_text(reply)}", permanent=code >= 500) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}",
                                permanent=exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPSenderRefused)) from None
        except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as exc:
            raise DeliveryError(f"{where} unreachable: {type(exc).__name__}: {exc}") from None


def _text(reply: bytes | str) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply).replace("\n", " ")[:300]
