"""Webhook delivery of alerts over HTTP (httpx, synchronous).

Every attempt for one alert sends the same bytes (``Alert.to_json``) and the
same ``webhook-id`` (the alert id), so that receivers can deduplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from types import TracebackType

import httpx

from ._alert import Alert

__all__ = ["DeliveryResult", "WebhookSender"]

log = logging.getLogger(__name__)

#: Status codes worth another attempt besides 5xx.
_RETRY_STATUS = frozenset({408, 429})


def _version() -> str:
    try:
        return metadata.version("finsentry")
    except metadata.PackageNotFoundError:
        return "0+unknown"


USER_AGENT = f"finsentry/{_version()}"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Outcome of delivering one alert to one URL.

    Attributes:
        url: the webhook URL.
        delivered: True when a 2xx answer came back.
        attempts: HTTP attempts made, >= 1.
        status: the last HTTP status received, None when no answer came back.
        error: why the last attempt failed, None when delivered.
    """

    url: str
    delivered: bool
    attempts: int
    status: int | None
    error: str | None


class WebhookSender:
    """POSTs alerts to a fixed list of webhook URLs, with retries.

    Per URL: up to ``1 + retries`` attempts. A 2xx answer means delivered; a
    5xx, 408 or 429 answer, a timeout or a connection error is retried after
    ``backoff_s * 2 ** (attempt - 1)`` seconds (no jitter); any other answer
    (3xx, other 4xx) fails at once. Redirects are not followed. ``send``
    blocks for the attempts and backoffs; URLs are served one after another.

    Args:
        urls: the http(s) URLs to deliver to, in order (may be empty).
        timeout_s: connect and read timeout per attempt, seconds, > 0.
        retries: extra attempts after the first, >= 0.
        backoff_s: first backoff, seconds, >= 0; doubles each retry.

    Raises:
        ValueError: when a URL is not http(s) or a number is out of range.
    """

    def __init__(
        self,
        urls: Sequence[str],
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        if isinstance(urls, str):
            raise ValueError("urls must be a sequence of URLs, not one string")
        for url in urls:
            try:
                parsed = httpx.URL(url)
            except (httpx.InvalidURL, TypeError) as exc:
                raise ValueError(f"not an http(s) URL: {url!r}") from exc
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise ValueError(f"not an http(s) URL: {url!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        if backoff_s < 0:
            raise ValueError(f"backoff_s must be >= 0, got {backoff_s!r}")
        self._urls = tuple(urls)
        self._retries = int(retries)
        self._backoff_s = float(backoff_s)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=timeout_s, read=timeout_s),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )

    @property
    def urls(self) -> tuple[str, ...]:
        """The webhook URLs."""
        return self._urls

    def send(self, alert: Alert) -> list[DeliveryResult]:
        """Deliver ``alert`` to every URL.

        Never raises for HTTP or network failures: they are logged and
        reported in the results.

        Returns:
            One result per URL, in the order of ``urls``.

        Raises:
            RuntimeError: when the sender was closed.
        """
        if self._client.is_closed:
            raise RuntimeError("WebhookSender is closed")
        body = alert.to_json()
        headers = {"content-type": "application/json", "webhook-id": alert.alert_id}
        return [self._deliver(url, body, headers, alert.alert_id) for url in self._urls]

    def _deliver(self, url: str, body: bytes, headers: dict[str, str], alert_id: str) -> DeliveryResult:
        max_attempts = 1 + self._retries
        status: int | None = None
        error: str | None = None
        for attempt in range(1, max_attempts + 1):
            retryable = True
            try:
                response = self._client.post(url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                status, error = None, f"timeout: {type(exc).__name__}"
            except httpx.TransportError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return DeliveryResult(url, True, attempt, status, None)
                error = f"HTTP {status}"
                retryable = status >= 500 or status in _RETRY_STATUS
            if not retryable or attempt == max_attempts:
                log.error(
                    "webhook delivery failed: alert %s to %s after %d attempt(s): %s",
                    alert_id, url, attempt, error,
                )
                return DeliveryResult(url, False, attempt, status, error)
            delay = self._backoff_s * 2 ** (attempt - 1)
            log.warning(
                "webhook attempt %d/%d failed: alert %s to %s: %s; retrying in %.3fs",
                attempt, max_attempts, alert_id, url, error, delay,
            )
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the HTTP client (idempotent)."""
        self._client.close()

    def __enter__(self) -> "WebhookSender":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
