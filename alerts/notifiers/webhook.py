"""Webhook delivery: the stored JSON body POSTed to the URL (or the URL in ``url_env``).

A URL or header taken from the environment is resolved at send time, so it reaches neither the
store nor the logs. Connection errors, timeouts, 408, 429 and 5xx are retried; any other 4xx is a
wrong URL or payload and is permanent.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping

from alerts.outbox import Delivery, DeliveryError
from alerts.rules import Webhook, secret_value


class WebhookNotifier:
    channel = "webhook"

    def __init__(self, hooks: Mapping[str, Webhook], timeout_s: float = 5.0) -> None:
        """``hooks`` maps each webhook's outbox target (URL or ``env:NAME``) to its definition."""
        self.hooks = dict(hooks)
        self.timeout_s = timeout_s

    def _resolve(self, target: str) -> tuple[str, dict[str, str]]:
        hook = self.hooks.get(target)
        url = secret_value(target[4:]) if target.startswith("env:") else target
        if not url:
            raise DeliveryError(f"webhook URL variable {target[4:]} is not set")
        headers = {"Content-Type": "application/json", "User-Agent": "finsent-monitor"}
        for name, var in (hook.headers_env if hook else {}).items():
            value = secret_value(var)
            if value is None:
                raise DeliveryError(f"webhook header variable {var} is not set")
            headers[name] = value
        return url, headers

    def send(self, delivery: Delivery) -> None:
        url, headers = self._resolve(delivery.target)
        shown = delivery.target if delivery.target.startswith("env:") else "/".join(url.split("/", 3)[:3])
        request = urllib.request.Request(url, data=delivery.body.encode("utf-8"), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read(1024)
        except urllib.error.HTTPError as exc:
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise DeliveryError(f"webhook {shown} answered HTTP {exc.code}", permanent=permanent) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"webhook {shown} unreachable: {reason}") from None
