"""Standard Webhooks signatures: secrets, signing (sender) and verification (receiver).

Headers (https://www.standardwebhooks.com/): ``webhook-id`` (the message id),
``webhook-timestamp`` (integer Unix seconds) and ``webhook-signature``:
``v1,`` + base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}")), one per
secret, space-separated (several secrets at once allow rotation). The HMAC
is computed by the maintained ``standardwebhooks`` library, never here.

Secrets are ``whsec_`` + base64 of 24 to 64 random bytes (the prefix is
optional). They are read from an environment variable or a file and are
never logged nor shown in a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets as _random
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from standardwebhooks import Webhook, WebhookVerificationError

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "SecretError",
    "SignatureError",
    "Signer",
    "Verifier",
    "generate_secret",
    "load_secrets",
]

#: Timestamp tolerance of a receiver, seconds: the library's (and the spec's) 5 minutes.
DEFAULT_TOLERANCE_S = 300.0
_PREFIX = "whsec_"
_MIN_BYTES, _MAX_BYTES = 24, 64


class SecretError(ValueError):
    """A webhook secret is missing or malformed. The message never holds the secret."""


class SignatureError(Exception):
    """A delivery's signature headers are missing, stale or do not match."""


def generate_secret(n_bytes: int = 32) -> str:
    """A new random secret, ``whsec_`` + base64 of ``n_bytes`` (24..64) bytes.

    Raises:
        ValueError: when ``n_bytes`` is out of range.
    """
    if not _MIN_BYTES <= n_bytes <= _MAX_BYTES:
        raise ValueError(f"n_bytes must be in [{_MIN_BYTES}, {_MAX_BYTES}], got {n_bytes}")
    return _PREFIX + base64.b64encode(_random.token_bytes(n_bytes)).decode("ascii")


def _check_secret(secret: str, where: str) -> str:
    raw = secret[len(_PREFIX):] if secret.startswith(_PREFIX) else secret
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError(f"{where} is not base64 (expected whsec_ + base64)") from None
    if not _MIN_BYTES <= len(key) <= _MAX_BYTES:
        raise SecretError(f"{where} decodes to {len(key)} bytes; Standard Webhooks secrets are 24-64 bytes")
    return secret


def load_secrets(
    env: str | None = None,
    file: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Read the secrets named by an environment variable and/or a file.

    Either source holds one or more secrets separated by whitespace (a file
    may put one per line; lines starting with ``#`` are ignored). The first
    secret is the current one; the others are kept during a rotation.

    Args:
        env: name of the environment variable (not its value).
        file: path of the secrets file.
        environ: the environment to read (default ``os.environ``).

    Returns:
        The secrets, env first, then the file; empty when neither is given.

    Raises:
        SecretError: the variable is unset or empty, the file is missing or
            empty, or a secret is malformed (the message names the source, never the value).
    """
    environ = os.environ if environ is None else environ
    found: list[str] = []
    if env:
        value = environ.get(env, "")
        if not value.strip():
            raise SecretError(f"environment variable {env} is unset or empty")
        found += [_check_secret(s, f"secret #{i + 1} in ${env}") for i, s in enumerate(value.split())]
    if file is not None:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"cannot read secrets file {path}: {exc.strerror}") from None
        words = [w for line in text.splitlines() if not line.lstrip().startswith("#") for w in line.split()]
        if not words:
            raise SecretError(f"secrets file {path} holds no secret")
        found += [_check_secret(s, f"secret #{i + 1} in {path}") for i, s in enumerate(words)]
    return tuple(found)


class Signer:
    """Builds the Standard Webhooks headers of one attempt.

    Args:
        secrets: secrets to sign with (each yields one ``v1,`` signature);
            empty: no ``webhook-signature`` header, only id and timestamp.

    Raises:
        SecretError: when a secret is malformed.
    """

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self._hooks = tuple(Webhook(_check_secret(s, f"secret #{i + 1}")) for i, s in enumerate(secrets))

    @property
    def signs(self) -> bool:
        """True when there is at least one secret."""
        return bool(self._hooks)

    def headers(self, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """``webhook-id``, ``webhook-timestamp`` and (with secrets) ``webhook-signature``.

        Args:
            msg_id: the message id, the same on every attempt.
            body: the exact bytes sent (UTF-8 JSON).
            timestamp: Unix seconds of this attempt (default: now).

        Raises:
            UnicodeDecodeError: when ``body`` is not UTF-8.
        """
        ts = int(time.time()) if timestamp is None else int(timestamp)
        out = {"webhook-id": msg_id, "webhook-timestamp": str(ts)}
        if self._hooks:
            when = datetime.fromtimestamp(ts, tz=timezone.utc)
            text = body.decode("utf-8")
            out["webhook-signature"] = " ".join(h.sign(msg_id, when, text) for h in self._hooks)
        return out

    def __repr__(self) -> str:
        return f"Signer(<{len(self._hooks)} secret(s)>)"


class Verifier:
    """Checks the Standard Webhooks headers of a received delivery.

    A delivery passes when its timestamp is within ``tolerance_s`` of now and
    one of its ``v1`` signatures matches one of the secrets (rotation).

    Args:
        secrets: accepted secrets, at least one.
        tolerance_s: largest clock difference accepted, seconds, in
            ``(0, 300]``: the library itself rejects anything beyond 5 minutes.

    Raises:
        SecretError: when ``secrets`` is empty or a secret is malformed.
        ValueError: when ``tolerance_s`` is out of range.
    """

    def __init__(self, secrets: Sequence[str], tolerance_s: float = DEFAULT_TOLERANCE_S) -> None:
        if not secrets:
            raise SecretError("a Verifier needs at least one secret")
        if not 0 < tolerance_s <= DEFAULT_TOLERANCE_S:
            raise ValueError(f"tolerance_s must be in (0, {DEFAULT_TOLERANCE_S:g}], got {tolerance_s!r}")
        self._hooks = tuple(Webhook(_check_secret(s, f"secret #{i + 1}")) for i, s in enumerate(secrets))
        self._tolerance_s = float(tolerance_s)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float | None = None) -> None:
        """Accept the delivery or raise.

        Args:
            body: the raw request body.
            headers: the request headers (any case).
            now: current Unix time, seconds (default: the clock).

        Raises:
            SignatureError: headers missing, timestamp outside the tolerance,
                malformed signature header, or no signature matches.
        """
        lower = {k.lower(): v for k, v in headers.items()}
        if not all(lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")):
            raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
        try:
            ts = int(lower["webhook-timestamp"])
        except ValueError:
            raise SignatureError("webhook-timestamp is not an integer") from None
        skew = (time.time() if now is None else now) - ts
        if abs(skew) > self._tolerance_s:
            which = "too old" if skew > 0 else "too new"
            raise SignatureError(f"webhook-timestamp {which} ({abs(skew):.0f} s > {self._tolerance_s:g} s tolerance)")
        for hook in self._hooks:
            try:
                hook.verify(body, lower, json_parse=False)
                return
            except WebhookVerificationError:
                continue
            except (ValueError, binascii.Error):  # "v1sig" without a comma, bad base64, non-UTF-8 body
                raise SignatureError("malformed webhook-signature header or body") from None
        raise SignatureError("no signature matches")

    def __repr__(self) -> str:
        return f"Verifier(<{len(self._hooks)} secret(s)>, tolerance_s={self._tolerance_s:g})"
