"""Reader for RSS 2.0, RSS 1.0 (RDF) and Atom 1.0 feed files, and their date rule.

Private: use :func:`ingest._feeds.read_feed`. The XML is parsed by
``feedparser``; entry dates are parsed here from the entry's *raw* date text
(feedparser's ``*_parsed`` struct_time is already shifted to UTC and no longer
says whether the text had a zone at all, so it is never used). The time and
text rules are tabled in :mod:`ingest._feeds`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime, parsedate_tz
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.parsers import expat

import feedparser
from dateutil.parser import isoparse
from pydantic import ValidationError

from ingest._errors import FeedError
from ingest._feed_common import FeedResult, IdAllocator, Rejected, truncate_raw
from ingest._item import NewsItem

__all__ = ["FeedDateError", "RFC822_ZONES", "parse_feed_date", "read_rss", "xml_root", "is_feed_root"]

RFC822_ZONES: dict[str, str] = {
    "UT": "+0000", "UTC": "+0000", "GMT": "+0000", "Z": "+0000",
    "EST": "-0500", "EDT": "-0400", "CST": "-0600", "CDT": "-0500",
    "MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700",
}
"""Zone names accepted in RFC 2822 dates, as fixed offsets (RFC 822 §5.1 /
RFC 2822 §4.3; ``UTC`` added, unambiguous). ``EST`` is -0500 on every date: a
name is never reinterpreted as a region's wall time. Other names, military
letters except ``Z`` (RFC 2822 §4.3: their sign is unreliable) included, are
unknown zones."""

ATOM_NS = "http://www.w3.org/2005/Atom"
RSS10_NS = "http://purl.org/rss/1.0/"
SOURCE_MAX_CHARS = 128
"""Longest feed title used as ``source`` (NewsItem's limit); longer titles are cut."""

_ISO_START = re.compile(r"^\d{4}-\d{2}")
_ZERO_OFFSET = re.compile(r"-00:?00$")
_COMMENT = re.compile(r"\([^()]*\)")
_COLON_OFFSET = re.compile(r"(?<=\s)([+-]\d{2}):(\d{2})$")
_NUMERIC_ZONE = re.compile(r"^[+-]\d{4}$")
_ALPHA_ZONE = re.compile(r"^[A-Za-z]+$")
_WEEKDAY = re.compile(r"^([A-Za-z]{3}),")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_XML_ROOT = re.compile(
    r"^\s*(?:(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(?:\[.*?\])?\s*>)\s*)*<([A-Za-z_][\w.:-]*)([^>]*)>", re.DOTALL
)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_BREAK_TAGS = frozenset({"br", "p", "div", "li", "tr", "td", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"})


# --------------------------------------------------------------------------- dates


class FeedDateError(ValueError):
    """A feed date that cannot be taken as a UTC instant.

    Attributes:
        reason: a :class:`~ingest._feed_common.Rejected` reason: ``bad_date``
            (unparseable, impossible or unknown zone), ``naive_time`` (no zone
            or the "zone unknown" ``-0000`` / ``-00:00``) or
            ``weekday_mismatch``.
        detail: human-readable explanation naming the text.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_feed_date(text: str) -> datetime:
    """Parse an RSS/Atom date (RFC 2822 or ISO 8601 / RFC 3339) to aware UTC.

    Text starting ``YYYY-MM`` is ISO 8601 (Atom, RSS 1.0 ``dc:date``), any
    other text RFC 2822 (RSS ``pubDate``); both forms are accepted in every
    element because feeds mix them.

    Returns:
        The instant as a ``datetime`` in UTC (``tzinfo`` is ``timezone.utc``).

    Raises:
        FeedDateError: no zone, the "no zone information" offsets ``-0000``
            (RFC 2822 §3.3) and ``-00:00`` (RFC 3339 §4.3), a zone name not in
            :data:`RFC822_ZONES`, a weekday that is not the date's (RFC 2822
            §3.3), or unparseable text. Never guessed as UTC.
    """
    text = " ".join(text.split())
    if not text:
        raise FeedDateError("bad_date", "empty date")
    value = _parse_iso(text) if _ISO_START.match(text) else _parse_rfc2822(text)
    return value.astimezone(timezone.utc)


def _parse_iso(text: str) -> datetime:
    if _ZERO_OFFSET.search(text):
        raise FeedDateError("naive_time", f"{text!r}: offset -00:00 means local zone unknown (RFC 3339 §4.3)")
    try:
        value = isoparse(text)
    except (ValueError, OverflowError) as exc:
        raise FeedDateError("bad_date", f"{text!r}: not an ISO 8601 date ({exc})") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise FeedDateError("naive_time", f"{text!r}: no offset or Z (not guessed as UTC)")
    return value


def _rfc2822_zone(text: str) -> tuple[str, str]:
    """Split RFC 2822 text into ``(text without zone, numeric zone)``; raise if no usable zone."""
    bare = _COLON_OFFSET.sub(r"\1\2", " ".join(_COMMENT.sub(" ", text).split()))
    if parsedate_tz(bare) is None:
        raise FeedDateError("bad_date", f"{text!r}: not an RFC 2822 date")
    head, _, zone = bare.rpartition(" ")
    if not head or ":" in zone or not (_NUMERIC_ZONE.match(zone) or _ALPHA_ZONE.match(zone)):
        raise FeedDateError("naive_time", f"{text!r}: no time zone after the time (not guessed as UTC)")
    if zone == "-0000":
        raise FeedDateError("naive_time", f"{text!r}: -0000 means no local zone information (RFC 2822 §3.3)")
    if _ALPHA_ZONE.match(zone):
        if zone.upper() not in RFC822_ZONES:
            raise FeedDateError("bad_date", f"{text!r}: unknown time zone {zone!r} "
                                f"(known: {', '.join(RFC822_ZONES)} and numeric offsets)")
        zone = RFC822_ZONES[zone.upper()]
    elif int(zone[3:]) > 59:
        raise FeedDateError("bad_date", f"{text!r}: offset {zone} has more than 59 minutes (RFC 2822 §3.3)")
    return head, zone


def _parse_rfc2822(text: str) -> datetime:
    head, zone = _rfc2822_zone(text)
    try:
        value = parsedate_to_datetime(f"{head} {zone}")
    except (TypeError, ValueError) as exc:
        raise FeedDateError("bad_date", f"{text!r}: not an RFC 2822 date ({exc})") from None
    if value.tzinfo is None:  # defensive: the zone was checked above
        raise FeedDateError("naive_time", f"{text!r}: no usable zone")
    day = _WEEKDAY.match(head)
    if day and day.group(1).lower() != _WEEKDAYS[value.weekday()]:
        raise FeedDateError("weekday_mismatch", f"{text!r}: {value.date()} is a {value.strftime('%A')}")
    return value


# --------------------------------------------------------------------------- detection


def xml_root(text: str) -> tuple[str, str] | None:
    """``(name, attribute text)`` of the root element at the start of ``text``, or ``None``.

    Skips an XML declaration, processing instructions, comments and a DOCTYPE.
    """
    match = _XML_ROOT.match(text)
    return (match.group(1), match.group(2)) if match else None


def is_feed_root(name: str, attrs: str) -> bool:
    """True for an ``<rss>``, RSS 1.0 ``<rdf:RDF>`` or Atom 1.0 ``<feed>`` root (names and namespaces only)."""
    local = name.rpartition(":")[2]
    if name == "rss":
        return True
    if local == "RDF":
        return RSS10_NS in attrs
    return local == "feed" and ATOM_NS in attrs


# --------------------------------------------------------------------------- text


class _TextOf(HTMLParser):
    """Text content of an HTML fragment; block tags become spaces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _BREAK_TAGS:
            self.parts.append(" ")


def _text(detail: Mapping[str, Any] | None) -> str:
    """Plain text of a feedparser ``*_detail``: HTML tags dropped, whitespace runs → one space."""
    if not detail or not detail.get("value"):
        return ""
    value = str(detail["value"])
    if detail.get("type") in _HTML_TYPES:
        parser = _TextOf()
        parser.feed(value)
        parser.close()
        value = "".join(parser.parts)
    return " ".join(value.split())


def _link(entry: Mapping[str, Any]) -> str | None:
    link = entry.get("link")
    return link if isinstance(link, str) and link.startswith(("http://", "https://")) else None


# --------------------------------------------------------------------------- reading


def _entry_spans(data: bytes, count: int) -> list[tuple[int, str]] | None:
    """1-based start line and XML text of each ``<item>``/``<entry>``; ``None`` unless exactly ``count`` found."""
    found: list[tuple[int, int]] = []
    ends: list[int] = []
    parser = expat.ParserCreate(namespace_separator=" ")

    def start(name: str, _attrs: object) -> None:
        if name.rpartition(" ")[2] in ("item", "entry"):
            found.append((parser.CurrentLineNumber, parser.CurrentByteIndex))

    def end(name: str) -> None:
        if name.rpartition(" ")[2] in ("item", "entry"):
            ends.append(data.find(b">", parser.CurrentByteIndex) + 1)

    parser.StartElementHandler, parser.EndElementHandler = start, end
    try:
        parser.Parse(data, True)
    except expat.ExpatError:
        return None
    if len(found) != count or len(ends) != count:
        return None
    return [(line, data[pos:stop].decode("utf-8", errors="replace")) for (line, pos), stop in zip(found, ends)]


def _entry_item(entry: Mapping[str, Any], source: str, alloc: IdAllocator) -> NewsItem | tuple[str, str]:
    """One entry as a NewsItem, or ``(reason, detail)``."""
    title = _text(entry.get("title_detail"))
    if not title:
        return "empty_text", "entry has no <title> text"
    raw_date = entry.get("published") or entry.get("updated")
    if not raw_date:
        return "missing_date", "no <pubDate>, <published>, <updated> or <dc:date>"
    try:
        when = parse_feed_date(raw_date)
    except FeedDateError as exc:
        return exc.reason, exc.detail
    try:
        return NewsItem(id=alloc.derive(source, when, title), source=source, published_at=when, title=title,
                        body=_text(entry.get("summary_detail")), url=_link(entry))
    except ValidationError as exc:
        return "invalid", "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())[:1000]


def _feed_source(feed: Mapping[str, Any]) -> str:
    return _text(feed.get("title_detail"))[:SOURCE_MAX_CHARS] or "rss"


def read_rss(path: Path, source: str) -> FeedResult:
    """Read an RSS 2.0 / RSS 1.0 / Atom 1.0 file into items, one per ``<item>``/``<entry>``.

    Title and body (``description``/``summary``) are plain text (HTML dropped,
    whitespace collapsed); ``url`` is the entry's http(s) link;
    ``published_at`` is the entry's published date, else its updated date
    (:func:`parse_feed_date`); tickers are ``()`` (``<category>`` is free
    text, not symbols). ``source`` wins; ``""`` means the feed's title, else
    ``rss``. ``Rejected.line``/``raw`` are the entry's start line and XML,
    or ``None``/the date when the XML is not well-formed. A document
    feedparser flags as malformed (``bozo``) is still read; the flag goes to
    :attr:`FeedResult.notes`.

    Raises:
        FeedError: unreadable file, or feedparser finds no RSS/Atom feed in it.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FeedError(f"{path}: cannot read: {exc}") from None
    parsed = feedparser.parse(data)
    if not parsed.get("version"):
        raise FeedError(f"{path}: not an RSS or Atom feed ({parsed.get('bozo_exception') or 'unknown root'})")
    source = source or _feed_source(parsed.feed)
    spans = _entry_spans(data, len(parsed.entries))
    alloc = IdAllocator()
    items: list[NewsItem] = []
    rejected: list[Rejected] = []
    for i, entry in enumerate(parsed.entries):
        out = _entry_item(entry, source, alloc)
        if isinstance(out, NewsItem):
            items.append(out)
            continue
        line, raw = spans[i] if spans else (None, str(entry.get("published") or entry.get("title") or ""))
        rejected.append(Rejected(line, out[0], truncate_raw(raw), out[1]))
    exc = parsed.get("bozo_exception")
    note = f"{parsed.version}: feedparser flagged the file ({type(exc).__name__}: {exc}); read leniently"
    return FeedResult(items, rejected, "rss", [note] if exc else [])
