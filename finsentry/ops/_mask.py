"""Masking secrets in a configuration dump (``finsentry config check``).

Masked: values of keys that name a secret (``secret``, ``token``,
``password``, ``api_key``, ...; but not ``*_env`` / ``*_file``, which hold a
variable name or a path, never the secret), and inside every URL string the
password of its user-info, the values of query parameters, and the path of
webhook URLs whose path *is* the credential (Slack ``hooks.slack.com``,
Discord, Microsoft Teams / Office 365 connectors).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "mask_secrets", "mask_url"]

MASK = "***"
_SECRET_KEY = re.compile(r"(secret|token|passw|api_?key|credential|private_?key|auth)", re.IGNORECASE)
_NOT_SECRET_KEY = re.compile(r"(_env|_file|_path)$", re.IGNORECASE)
# Hosts whose webhook URL path carries the credential: keep only the first path segment(s) shown.
_PATH_SECRET_HOSTS = {
    "hooks.slack.com": 1,          # /services/T../B../XXXX
    "discord.com": 2,              # /api/webhooks/<id>/<token>
    "discordapp.com": 2,
}
_PATH_SECRET_SUFFIXES = (".webhook.office.com", ".logic.azure.com")


def mask_url(url: str) -> str:
    """``url`` with its user-info password, query values and credential-bearing path masked.

    >>> mask_url("https://hooks.slack.com/services/T000/B000/XXXXXXXX")
    'https://hooks.slack.com/services/***'
    >>> mask_url("https://user:pw@example.com/hook?token=abc&x=1")
    'https://user:***@example.com/hook?token=***&x=***'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    host = (parts.hostname or "").lower()
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    path = parts.path
    keep = _PATH_SECRET_HOSTS.get(host)
    if keep is None and host.endswith(_PATH_SECRET_SUFFIXES):
        keep = 0
    if keep is not None:
        segments = [s for s in path.split("/") if s]
        if len(segments) > keep:
            path = "/" + "/".join(segments[:keep] + [MASK])
    query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def _mask(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(key, v) for v in value]
    if value in (None, "", [], {}):
        return value
    if _SECRET_KEY.search(key) and not _NOT_SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str) and re.match(r"^[a-z][a-z0-9+.-]*://", value, re.IGNORECASE):
        return mask_url(value)
    return value


def mask_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a JSON-like config dict with secret values masked as ``***`` (see the module docstring)."""
    return {k: _mask(str(k), v) for k, v in config.items()}
