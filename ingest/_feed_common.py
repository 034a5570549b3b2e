"""Shared pieces of the historical feed readers (see :mod:`ingest._feeds`).

Private: import the public names from ``ingest._feeds``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from ingest._item import NewsItem, make_item_id

__all__ = ["Rejected", "FeedResult", "IdAllocator", "RAW_MAX_CHARS", "truncate_raw"]

RAW_MAX_CHARS = 300
"""Longest ``Rejected.raw`` kept, in characters (longer text ends with ``…``)."""


def truncate_raw(raw: str) -> str:
    """Cut ``raw`` to at most :data:`RAW_MAX_CHARS` characters."""
    if len(raw) <= RAW_MAX_CHARS:
        return raw
    return raw[: RAW_MAX_CHARS - 1] + "…"


@dataclass(frozen=True)
class Rejected:
    """One input record that could not become a :class:`NewsItem`.

    Attributes:
        line: 1-based physical line where the record starts (CSV: header is
            line 1; JSONL: the line itself; Parquet: 1-based row number;
            StockNet: line inside the file named in ``detail``), ``None`` when
            unknown.
        reason: short machine-readable cause (see the table in
            :mod:`ingest._feeds`).
        raw: the record's text as found, truncated to ~300 characters.
        detail: human-readable explanation, ``""`` when the reason says it all.
    """

    line: int | None
    reason: str
    raw: str
    detail: str = ""


@dataclass
class FeedResult:
    """What :func:`ingest._feeds.read_feed` returns.

    Attributes:
        items: parsed items, sorted by ``published_at`` (stable: ties keep
            file order).
        rejected: records that could not be parsed, in file order.
        format: the format the file was read as.
        notes: human-readable remarks on repairs made (e.g. a broken Benzinga
            record joined back together); empty when none.
    """

    items: list[NewsItem]
    rejected: list[Rejected]
    format: str
    notes: list[str] = field(default_factory=list)

    def rejected_by_reason(self) -> dict[str, int]:
        """Count of rejected records per ``reason``, most frequent first."""
        return dict(Counter(r.reason for r in self.rejected).most_common())


class IdAllocator:
    """Hands out item ids that are unique within one read and stable across reads.

    Derived ids come from :func:`make_item_id`; an exact repeat of
    ``(source, published_at, title)`` in the same file gets ``<id>-2``,
    ``<id>-3``, ... in file order. Ids given by the feed are never rewritten:
    a repeat is refused (the caller rejects it as ``duplicate_id``).
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._repeats: dict[str, int] = {}

    def derive(self, source: str, published_at: datetime, title: str) -> str:
        """Return a fresh derived id for the item."""
        base = make_item_id(source, published_at, title)
        n = self._repeats.get(base, 0) + 1
        self._repeats[base] = n
        item_id = base if n == 1 else f"{base}-{n}"
        while item_id in self._seen:  # only if a feed-given id took it
            n += 1
            self._repeats[base] = n
            item_id = f"{base}-{n}"
        self._seen.add(item_id)
        return item_id

    def claim(self, item_id: str) -> bool:
        """Register a feed-given id; ``False`` when it was already used."""
        if item_id in self._seen:
            return False
        self._seen.add(item_id)
        return True
