"""Historical feed readers: news dumps → sorted, validated :class:`NewsItem` lists.

Used by ``finsentry replay FILE`` (which produces the items to Kafka) and by
backtests. :func:`read_feed` reads a whole file; :func:`detect_format` tells
which reader fits, from the file's header/columns (never from its name).

Formats
=======

============  ==============================================  ==========  ==============================
format        recognised by                                   source      id
============  ==============================================  ==========  ==============================
benzinga      header ``,title,date,stock``                    benzinga    ``benzinga-<upstream index>``
benzinga_raw  header ``,headline,url,publisher,date,stock``   benzinga    ``benzinga-<upstream index>``
cnbc          header ``Headlines,Time,Description`` + ET      cnbc        make_item_id
guardian      header ``Time,Headlines``                       guardian    make_item_id
reuters       no header; rows ``YYYY-MM-DD,headline``         reuters     make_item_id
jsonl         first line a JSON object (NewsItem fields)      per row     row ``id`` or make_item_id
csv           header with ``published_at`` and ``title``      per row     row ``id`` or make_item_id
parquet       ``PAR1`` magic + same columns as csv            per row     row ``id`` or make_item_id
stocknet      folder ``<TICKER>/<YYYY-MM-DD>`` of tweet JSON  stocknet    make_item_id("@user text")
rss           XML root ``<rss>``, ``<rdf:RDF>`` with the RSS  feed title  make_item_id
              1.0 namespace, or ``<feed>`` with the Atom 1.0  else
              namespace (RSS 2.0/0.9x, RSS 1.0, Atom 1.0)     ``rss``
============  ==============================================  ==========  ==============================

``source=`` overrides the per-format source; for jsonl/csv/parquet it only
fills rows without one. Tickers come from the feed's ticker column (Benzinga
``stock``, generic ``tickers`` split on ``|`` or ``,``, StockNet folder names),
else ``()``; RSS/Atom ``<category>`` is free text ("Markets"), not a ticker
column, so rss items have ``()`` (tickers are extracted downstream from
cashtags/aliases in title and body). Benzinga ``publisher`` is not kept
(NewsItem has no such field). RSS/Atom: ``<title>`` → ``title`` (required),
``<description>``/``<summary>`` → ``body``, the entry's http(s) link → ``url``;
HTML in them is reduced to text.
A repeat of ``(source, published_at, title)`` in one file (Reuters has 79
exact duplicate rows) keeps every row and gets ``<id>-2``, ``<id>-3``... in
file order, so ids are unique in a read and identical across reads.

Time rules
==========

Every ``published_at`` is timezone-aware UTC. A naive time is never taken as
UTC: either the feed's documented zone is applied (table) or the row is
rejected.

==============================  ================================================  ==========
input                           rule                                              resolution
==============================  ================================================  ==========
explicit offset (Benzinga       kept, converted to UTC                            minute/s
``-04:00``, generic ISO 8601,
StockNet ``+0000``)
Benzinga value without offset   America/New_York wall time (Benzinga is a US      day/second
(``2020-05-22 00:00:00``)       newsdesk; every explicit offset in the data is
                                EDT/EST)
CNBC ``7:51 PM ET Fri, 17 July  America/New_York via zoneinfo (EDT or EST as      minute
2020``                          that date had it); weekday must match the date
Guardian ``18-Jul-20``          00:00 Europe/London of that day                   **day**
Guardian ``Jul-18`` (month      rejected ``month_only_date`` (no day invented)    —
only)
Reuters ``2020-07-18``          00:00 America/New_York of that day                **day**
generic csv/jsonl/parquet       must carry an offset, else ``naive_time``         as given
naive value
local time in a DST gap /       rejected ``nonexistent_local_time`` /             —
repeated fall-back hour         ``ambiguous_local_time``
RSS/Atom date: published, else  raw text parsed (feedparser's struct_time is      second
updated (``pubDate``,           ignored: already UTC, zone-less text included)
``published``, ``updated``,
``dc:date``)
RSS/Atom RFC 2822 date with     kept, converted to UTC (RFC 2822 §3.3);           second
``+hhmm``/``-hhmm``, ``UT``,    US names are RFC 822 §5.1 fixed offsets, so
``UTC``, ``GMT``, ``Z``, ``EST  ``EST`` is -0500 even in July and items either
EDT CST CDT MST MDT PST PDT``   side of a DST change keep their real distance
RSS/Atom ISO 8601 / RFC 3339    kept, converted to UTC                            as given
with ``Z`` or ``±hh:mm``
RSS/Atom date without zone      rejected ``naive_time``                           —
RSS/Atom ``-0000``/``-00:00``   rejected ``naive_time``: RFC 2822 §3.3 / RFC      —
                                3339 §4.3 call it UTC with the local zone
                                unknown; a true UTC stamp cannot be told from
                                a zone-less local time so labelled
RSS/Atom unknown zone name      rejected ``bad_date`` (``AST``, ``CET``, ``IST``  —
(``CET``, military letters)     are ambiguous; RFC 2822 §4.3: military
                                letters are unreliable)
RSS/Atom wrong weekday          rejected ``weekday_mismatch`` (RFC 2822 §3.3)     —
RSS/Atom unparseable date /     rejected ``bad_date`` / ``missing_date``          —
none
==============================  ================================================  ==========

Why Reuters at 00:00 New York: the dump is the US reuters.com listing and the
prices it is backtested against are NYSE days; New York midnight keeps each
item on its own calendar day when viewed in exchange time, whereas 00:00 UTC
would be 19:00/20:00 ET of the *previous* day, i.e. the wrong trading day.
Day-resolution items (Guardian, Reuters) are stamped at the *start* of their
day although they were published some time during it: a backtest must treat
them as known only at that day's end (or next open) to avoid look-ahead.

Text rules
==========

Site feeds (benzinga, cnbc, guardian, reuters) and rss: every whitespace run,
newlines included, becomes one space; ends are stripped. Guardian headlines of
the form ``"series name \\n\\n\\n headline"`` keep the headline as ``title`` and
the series/column name (e.g. ``Nils Pratley on finance``) as ``body``; other
Guardian items have an empty body. CNBC ``Description`` → ``body``. An empty
title is rejected ``empty_text``. Generic formats are read as is (NewsItem
strips ends; nothing is collapsed, so a round trip is exact) and need a title
or a body.

Rejections
==========

Nothing is dropped silently: each record that cannot be parsed becomes a
:class:`Rejected` (1-based ``line`` where the record starts, ``reason``,
``raw`` text). Blank physical lines are not records. Rows outside
``[start, end)`` are filtered, not rejected. Reasons: ``empty_row`` (every
field empty, e.g. CNBC's 280 ``,,`` rows), ``empty_text``, ``missing_date``,
``bad_date``, ``month_only_date``, ``weekday_mismatch``, ``naive_time``,
``ambiguous_local_time``, ``nonexistent_local_time``, ``field_count`` (wrong
number of CSV fields, e.g. an unrepaired broken record), ``duplicate_id``
(a feed-given id repeated), ``not_utf8``, ``not_json``, ``not_object``,
``invalid`` (NewsItem validation failed; see ``detail``). An rss record is
one ``<item>``/``<entry>``: ``line`` is where its start tag is and ``raw`` its
XML, or ``None`` and its date/title when the file is not well-formed XML.

Benzinga's two upstream records split by a bare newline in an unquoted title
(indexes 5714 and 7021) are **repaired**: the fragment with too few fields is
joined to the next one when the result has exactly four fields and a valid
date/ticker; each repair is listed in :attr:`FeedResult.notes`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ingest._errors import FeedError
from ingest._feed_common import FeedResult, Rejected
from ingest._feed_generic import has_item_columns, read_item_csv, read_jsonl, read_parquet
from ingest._feed_rss import is_feed_root, read_rss, xml_root
from ingest._feed_sites import (
    BENZINGA_HEADER,
    BENZINGA_RAW_HEADER,
    CNBC_HEADER,
    GUARDIAN_HEADER,
    ISO_DAY_RE,
    read_benzinga,
    read_benzinga_raw,
    read_cnbc,
    read_guardian,
    read_reuters,
)
from ingest._feed_stocknet import is_stocknet_record, looks_like_stocknet, read_stocknet
from ingest._item import NewsItem

__all__ = ["FORMATS", "DEFAULT_SOURCES", "FeedResult", "Rejected", "detect_format", "read_feed"]

_Reader = Callable[[Path, str], FeedResult]

_READERS: dict[str, _Reader] = {
    "benzinga": read_benzinga,
    "benzinga_raw": read_benzinga_raw,
    "cnbc": read_cnbc,
    "guardian": read_guardian,
    "reuters": read_reuters,
    "jsonl": read_jsonl,
    "csv": read_item_csv,
    "parquet": read_parquet,
    "stocknet": read_stocknet,
    "rss": read_rss,
}

FORMATS: tuple[str, ...] = tuple(_READERS)
"""Every format name :func:`read_feed` accepts."""

DEFAULT_SOURCES: dict[str, str] = {
    "benzinga": "benzinga",
    "benzinga_raw": "benzinga",
    "cnbc": "cnbc",
    "guardian": "guardian",
    "reuters": "reuters",
    "stocknet": "stocknet",
}
"""Item ``source`` per format when ``read_feed(source=None)``."""

_SNIFF_BYTES = 65_536
_SNIFF_RECORDS = 6


# --------------------------------------------------------------------------- detection


def detect_format(path: Path | str) -> str:
    """Name the format of a feed file or folder from its content.

    Args:
        path: a file, or a StockNet folder.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        FeedError: missing/empty path, or content that matches no format (the
            message names the columns found and the formats known).
    """
    path = Path(path)
    if path.is_dir():
        return _detect_dir(path)
    if not path.is_file():
        raise FeedError(f"{path}: no such file")
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if head.startswith(b"PAR1"):
        return _detect_parquet(path)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    if not text.strip():
        raise FeedError(f"{path}: empty file")
    if text.lstrip().startswith("{"):
        return _detect_json(text)
    if xml_root(text) is not None:
        return _detect_xml(path, text)
    return _detect_csv(path, text)


def _unknown(path: Path, columns: object) -> FeedError:
    return FeedError(f"{path}: unknown feed format: columns found {columns!r}; formats known: {', '.join(FORMATS)}")


def _detect_xml(path: Path, text: str) -> str:
    name, attrs = xml_root(text) or ("", "")
    if is_feed_root(name, attrs):
        return "rss"
    raise FeedError(f"{path}: unknown feed format: XML root element <{name}> is not <rss>, RSS 1.0 <rdf:RDF> or "
                    f"Atom 1.0 <feed>; formats known: {', '.join(FORMATS)}")


def _detect_dir(path: Path) -> str:
    if not looks_like_stocknet(path):
        raise FeedError(f"{path}: a folder, but not StockNet <TICKER>/<YYYY-MM-DD> tweet files; formats known: "
                        f"{', '.join(FORMATS)}")
    return "stocknet"


def _detect_json(text: str) -> str:
    first = next(ln for ln in text.splitlines() if ln.strip())
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        return "jsonl"  # a malformed first line: the reader rejects it with its line number
    return "stocknet" if is_stocknet_record(obj) else "jsonl"


def _detect_parquet(path: Path) -> str:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several unrelated types
        raise FeedError(f"{path}: unreadable Parquet file: {exc}") from None
    if not has_item_columns(names):
        raise _unknown(path, names)
    return "parquet"


def _sample_records(text: str) -> list[list[str]]:
    records: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for rec in reader:
            if rec:
                records.append(rec)
            if len(records) >= _SNIFF_RECORDS:
                break
    except csv.Error:
        pass  # the sample may end inside a quoted field
    return records


def _detect_csv(path: Path, text: str) -> str:
    records = _sample_records(text)
    if not records:
        raise _unknown(path, [])
    header = tuple(h.strip() for h in records[0])
    normal = tuple("" if h == "Unnamed: 0" else h for h in header)
    fixed = {BENZINGA_HEADER: "benzinga", BENZINGA_RAW_HEADER: "benzinga_raw", GUARDIAN_HEADER: "guardian"}
    if normal in fixed:
        return fixed[normal]
    if normal == CNBC_HEADER:
        return _check_cnbc_times(path, records[1:])
    if all(len(r) == 2 and ISO_DAY_RE.match(r[0].strip()) for r in records):
        return "reuters"
    if has_item_columns(header):
        return "csv"
    raise _unknown(path, list(header))


def _check_cnbc_times(path: Path, rows: list[list[str]]) -> str:
    times = [r[1] for r in rows if len(r) == 3 and r[1].strip()]
    if times and not any(" ET " in " ".join(t.split()) + " " for t in times):
        raise FeedError(
            f"{path}: header {list(CNBC_HEADER)} but Time values like {times[0]!r} are not CNBC "
            "'h:mm PM ET Day, d Month yyyy' times (the upstream Reuters file shares this header; only the "
            f"processed header-less Reuters derivative is supported); formats known: {', '.join(FORMATS)}"
        )
    return "cnbc"


# --------------------------------------------------------------------------- reading


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware (naive times are not guessed as UTC)")


def _window(
    items: list[NewsItem], start: datetime | None, end: datetime | None, limit: int | None
) -> list[NewsItem]:
    if start is not None:
        items = [it for it in items if it.published_at >= start]
    if end is not None:
        items = [it for it in items if it.published_at < end]
    items.sort(key=lambda it: it.published_at)  # stable: ties keep file order
    return items if limit is None else items[:limit]


def read_feed(
    path: Path | str,
    fmt: str | None = None,
    *,
    source: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> FeedResult:
    """Read a historical feed file into items sorted by ``published_at``.

    Args:
        path: the feed file (or StockNet folder).
        fmt: one of :data:`FORMATS`; ``None`` to :func:`detect_format`.
        source: item ``source``; default per format (:data:`DEFAULT_SOURCES`).
            For jsonl/csv/parquet it only fills rows that have none.
        start: keep items with ``published_at >= start`` (tz-aware).
        end: keep items with ``published_at < end`` (tz-aware).
        limit: keep at most this many items (the earliest, after filtering).
            The whole file is still parsed (sorting needs every row).

    Returns:
        A :class:`FeedResult`: sorted items (stable), every unparseable
        record in ``rejected`` (not affected by start/end/limit).

    Raises:
        FeedError: missing file, unknown ``fmt``, undetectable format, or a
            header that does not fit ``fmt``.
        ValueError: naive ``start``/``end`` or negative ``limit``.
    """
    path = Path(path)
    _require_aware("start", start)
    _require_aware("end", end)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if not path.exists():
        raise FeedError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    reader = _READERS.get(fmt)
    if reader is None:
        raise FeedError(f"unknown feed format {fmt!r}; formats known: {', '.join(FORMATS)}")
    result = reader(path, source or DEFAULT_SOURCES.get(fmt, ""))
    result.items = _window(result.items, start, end, limit)
    return result
