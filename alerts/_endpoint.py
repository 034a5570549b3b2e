"""One webhook endpoint: where, in which format, signed with what, how patient."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, get_args

import httpx

__all__ = ["Endpoint", "PayloadFormat", "endpoint_id_for"]

#: Body formats an endpoint can receive (see ``alerts._formats``).
PayloadFormat = Literal["native", "alertmanager", "slack"]


def endpoint_id_for(url: str) -> str:
    """The stable outbox id of the endpoint at ``url``: 16 hex digits of sha256(url)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Endpoint:
    """A webhook receiver and how to deliver to it.

    The URL (which may carry a token, e.g. a Slack webhook) and the secrets
    are never logged: logs and metrics use ``name``.

    Attributes:
        url: http(s) URL the notifications are POSTed to.
        format: ``"native"``, ``"alertmanager"`` or ``"slack"``.
        name: label in logs and metrics; default ``host:port-<6 hex of id>``.
        secrets: Standard Webhooks secrets to sign with (empty: unsigned).
        connect_timeout_s: TCP/TLS connect timeout per attempt, seconds, > 0.
        read_timeout_s: timeout for each read/write of the answer, seconds, > 0.
        group_wait_s: seconds to wait for repeats of an alert's key family
            before sending one notification for all of them; 0 = no grouping.
        external_url: ``externalURL``/``generatorURL`` of Alertmanager bodies.

    Raises:
        ValueError: bad URL, unknown format or out-of-range number.
    """

    url: str
    format: PayloadFormat = "native"
    name: str = ""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 5.0
    group_wait_s: float = 0.0
    external_url: str = ""

    def __post_init__(self) -> None:
        try:
            parsed = httpx.URL(self.url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ValueError("endpoint URL is not an http(s) URL") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("endpoint URL is not an http(s) URL")
        if self.format not in get_args(PayloadFormat):
            raise ValueError(f"unknown payload format {self.format!r}; use one of {get_args(PayloadFormat)}")
        if not (self.connect_timeout_s > 0 and self.read_timeout_s > 0):
            raise ValueError("endpoint timeouts must be > 0 seconds")
        if self.group_wait_s < 0:
            raise ValueError(f"group_wait_s must be >= 0, got {self.group_wait_s!r}")
        object.__setattr__(self, "secrets", tuple(self.secrets))
        if not self.name:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            object.__setattr__(self, "name", f"{parsed.host}:{port}-{self.id[:6]}")

    @property
    def id(self) -> str:
        """Stable id in the outbox (``endpoint_id_for(url)``)."""
        return endpoint_id_for(self.url)
