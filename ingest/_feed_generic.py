"""Readers for finsentry's own tabular forms of NewsItem: JSONL, CSV, Parquet.

Private: use :func:`ingest._feeds.read_feed`. Columns/keys are NewsItem field
names (``id, source, published_at, title, body, url, tickers``); others are
ignored. Text is taken as is (NewsItem strips it; whitespace is not collapsed,
so a write → read round trip is exact).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from ingest._errors import FeedError
from ingest._feed_common import FeedResult, IdAllocator, Rejected, truncate_raw
from ingest._feed_sites import read_csv_table
from ingest._item import NewsItem

__all__ = ["ITEM_FIELDS", "REQUIRED_COLUMNS", "read_jsonl", "read_item_csv", "read_parquet", "has_item_columns"]

ITEM_FIELDS = ("id", "source", "published_at", "title", "body", "url", "tickers")
REQUIRED_COLUMNS = ("published_at", "title")
_TICKER_SPLIT = re.compile(r"[|,]")
_PENDING_ID = "pending"


def has_item_columns(columns: Iterable[str]) -> bool:
    """True when ``columns`` include every name in :data:`REQUIRED_COLUMNS`."""
    names = {c.strip() for c in columns}
    return all(c in names for c in REQUIRED_COLUMNS)


def _split_tickers(value: Any) -> Any:
    if isinstance(value, str):
        return [t for t in _TICKER_SPLIT.split(value) if t.strip()]
    if hasattr(value, "tolist"):  # numpy array from Parquet list columns
        return value.tolist()
    return value


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _normalise(obj: Mapping[str, Any], default_source: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in ITEM_FIELDS:
        value = obj.get(key)
        if _is_missing(value) or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        data[key] = _split_tickers(value) if key == "tickers" else value
    if "source" not in data and default_source:
        data["source"] = default_source
    return data


def _reason_of(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors()
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors)[:1000]
    first = errors[0]
    if first["loc"] and first["loc"][0] == "published_at":
        return ("naive_time" if "timezone offset" in first["msg"] else "bad_date"), detail
    return "invalid", detail


def item_from_mapping(
    obj: Mapping[str, Any], default_source: str | None, alloc: IdAllocator
) -> NewsItem | tuple[str, str]:
    """Validate one record into a NewsItem, or return ``(reason, detail)``.

    The record's ``source`` wins over ``default_source``; a missing ``id`` is
    derived with :func:`ingest._item.make_item_id` (via ``alloc``).
    """
    data = _normalise(obj, default_source)
    given_id = str(data.get("id", "")).strip()
    try:
        item = NewsItem.model_validate({**data, "id": given_id or _PENDING_ID})
    except ValidationError as exc:
        return _reason_of(exc)
    if not item.title and not item.body:
        return "empty_text", ""
    if given_id:
        if not alloc.claim(item.id):
            return "duplicate_id", f"id {item.id!r} already used earlier in the file"
        return item
    return item.model_copy(update={"id": alloc.derive(item.source, item.published_at, item.title)})


def _collect(
    rows: Iterable[tuple[int, str, Mapping[str, Any] | tuple[str, str]]], source: str | None, fmt: str
) -> FeedResult:
    alloc = IdAllocator()
    items: list[NewsItem] = []
    rejected: list[Rejected] = []
    for line, raw, obj in rows:
        out = obj if isinstance(obj, tuple) else item_from_mapping(obj, source, alloc)
        if isinstance(out, NewsItem):
            items.append(out)
        else:
            rejected.append(Rejected(line, out[0], truncate_raw(raw), out[1]))
    return FeedResult(items, rejected, fmt)


# --------------------------------------------------------------------------- JSONL


def _json_line(raw: bytes) -> tuple[str, Mapping[str, Any] | tuple[str, str]]:
    try:
        text = raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", errors="replace"), ("not_utf8", str(exc))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return text, ("not_json", str(exc))
    if not isinstance(obj, dict):
        return text, ("not_object", f"expected a JSON object, got {type(obj).__name__}")
    return text, obj


def _jsonl_rows(path: Path) -> Iterable[tuple[int, str, Mapping[str, Any] | tuple[str, str]]]:
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                text, obj = _json_line(raw)
                yield line_no, text, obj


def read_jsonl(path: Path, source: str | None) -> FeedResult:
    """Read one NewsItem JSON object per line (blank lines skipped).

    Bad lines are rejected as ``not_utf8``, ``not_json``, ``not_object``,
    ``naive_time``, ``bad_date``, ``invalid``, ``empty_text`` or
    ``duplicate_id``, with their 1-based line number.

    Raises:
        FeedError: the file cannot be opened.
    """
    try:
        return _collect(_jsonl_rows(path), source, "jsonl")
    except OSError as exc:
        raise FeedError(f"{path}: cannot read: {exc}") from None


# --------------------------------------------------------------------------- CSV


def read_item_csv(path: Path, source: str | None) -> FeedResult:
    """Read a CSV whose header names NewsItem fields (``published_at`` and ``title`` required).

    ``tickers`` may be separated by ``|`` or ``,``; empty cells mean "absent".

    Raises:
        FeedError: unreadable file or missing required columns.
    """
    table = read_csv_table(path)
    if not has_item_columns(table.header):
        raise FeedError(
            f"{path}: not a finsentry item CSV: columns {list(table.header)}, need {list(REQUIRED_COLUMNS)}"
        )

    def rows() -> Iterable[tuple[int, str, Mapping[str, Any] | tuple[str, str]]]:
        for i, rec in enumerate(table.records):
            if len(rec) != len(table.header):
                obj: Mapping[str, Any] | tuple[str, str] = (
                    "field_count", f"{len(rec)} fields, header has {len(table.header)}")
            elif not any(v.strip() for v in rec):
                obj = ("empty_row", "")
            else:
                obj = dict(zip(table.header, rec, strict=True))
            yield table.starts[i], table.raw(i), obj

    return _collect(rows(), source, "csv")


# --------------------------------------------------------------------------- Parquet


def read_parquet(path: Path, source: str | None) -> FeedResult:
    """Read a Parquet file with NewsItem columns; ``line`` is the 1-based row number.

    A ``published_at`` column of tz-naive timestamps is rejected row by row as
    ``naive_time`` (never taken as UTC).

    Raises:
        FeedError: unreadable file or missing required columns.
    """
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise FeedError(f"{path}: cannot read Parquet: {exc}") from None
    if not has_item_columns(frame.columns):
        raise FeedError(
            f"{path}: not a finsentry item Parquet: columns {list(frame.columns)}, need {list(REQUIRED_COLUMNS)}"
        )
    records = frame[[c for c in ITEM_FIELDS if c in frame.columns]].to_dict("records")

    def rows() -> Iterable[tuple[int, str, Mapping[str, Any]]]:
        for i, rec in enumerate(records):
            yield i + 1, _repr_row(rec), rec

    return _collect(rows(), source, "parquet")


def _repr_row(rec: Mapping[str, Any]) -> str:
    def show(v: Any) -> Any:
        if isinstance(v, (datetime, pd.Timestamp)):
            return v.isoformat()
        return v.tolist() if hasattr(v, "tolist") else v

    return json.dumps({k: show(v) for k, v in rec.items()}, default=str, ensure_ascii=False)
