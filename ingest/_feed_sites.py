"""Readers for the published news-site dumps (Benzinga, CNBC, Guardian, Reuters).

Private: use :func:`ingest._feeds.read_feed`. Time and text rules are
documented in :mod:`ingest._feeds`.

Each reader parses the file with :func:`read_csv_table` (the ``csv`` module,
so every record keeps its physical line span), builds one pandas frame with
vectorised date parsing and text cleaning, and hands it to :func:`build_items`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from pydantic import ValidationError

from ingest._errors import FeedError
from ingest._feed_common import FeedResult, IdAllocator, Rejected, truncate_raw
from ingest._item import NewsItem

__all__ = [
    "CsvTable",
    "read_csv_table",
    "read_benzinga",
    "read_benzinga_raw",
    "read_cnbc",
    "read_guardian",
    "read_reuters",
    "BENZINGA_HEADER",
    "BENZINGA_RAW_HEADER",
    "CNBC_HEADER",
    "GUARDIAN_HEADER",
    "ISO_DAY_RE",
]

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")

BENZINGA_HEADER = ("", "title", "date", "stock")
BENZINGA_RAW_HEADER = ("", "headline", "url", "publisher", "date", "stock")
CNBC_HEADER = ("Headlines", "Time", "Description")
GUARDIAN_HEADER = ("Time", "Headlines")

ISO_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_OFFSET_TS = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[+-]\d{2}:?\d{2}|Z)$"
_NAIVE_TS = r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
_CNBC_TIME = r"^(\d{1,2}:\d{2} ?[AaPp][Mm]) ET ([A-Za-z]{3})[A-Za-z]*\.?, (\d{1,2} [A-Za-z]+\.? \d{4})$"
_MONTH_ONLY = r"^[A-Za-z]{3,9}-\d{2}$"
_GUARDIAN_SERIES_SPLIT = r"\n[ \t\r]*\n"


# --------------------------------------------------------------------------- CSV records


@dataclass
class CsvTable:
    """A CSV file as records with their physical line spans.

    Attributes:
        header: the header fields (``()`` when read without a header).
        records: data records, fields as strings.
        starts: 1-based first physical line of each record.
        ends: 1-based last physical line of each record.
        lines: the file's physical lines (line endings kept).
    """

    header: tuple[str, ...]
    records: list[list[str]]
    starts: list[int]
    ends: list[int]
    lines: list[str]

    def raw(self, i: int) -> str:
        """The text of record ``i`` as found in the file (line endings removed)."""
        text = "".join(self.lines[self.starts[i] - 1 : self.ends[i]])
        return text.rstrip("\r\n")

    def drop_blank(self) -> None:
        """Remove records with no fields at all (blank physical lines)."""
        keep = [i for i, rec in enumerate(self.records) if rec]
        self.records = [self.records[i] for i in keep]
        self.starts = [self.starts[i] for i in keep]
        self.ends = [self.ends[i] for i in keep]


def _iter_records(path: Path, lines: list[str]) -> Iterator[tuple[int, int, list[str]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:

        def feed() -> Iterator[str]:
            for ln in fh:
                lines.append(ln)
                yield ln

        reader = csv.reader(feed())
        prev = 0
        for rec in reader:
            yield prev + 1, reader.line_num, rec
            prev = reader.line_num


def read_csv_table(path: Path, *, has_header: bool = True) -> CsvTable:
    """Read a UTF-8 CSV file into a :class:`CsvTable` (blank lines skipped).

    Raises:
        FeedError: the file is not UTF-8, not valid CSV, or has no header.
    """
    lines: list[str] = []
    records: list[list[str]] = []
    starts: list[int] = []
    ends: list[int] = []
    try:
        for start, end, rec in _iter_records(path, lines):
            records.append(rec)
            starts.append(start)
            ends.append(end)
    except UnicodeDecodeError as exc:
        raise FeedError(f"{path}: not UTF-8 text ({exc})") from None
    except csv.Error as exc:
        raise FeedError(f"{path}: CSV syntax error near line {len(lines)}: {exc}") from None
    table = CsvTable((), records, starts, ends, lines)
    table.drop_blank()
    if has_header:
        if not table.records:
            raise FeedError(f"{path}: empty file (no header row)")
        table.header = tuple(h.strip() for h in table.records[0])
        del table.records[0], table.starts[0], table.ends[0]
    return table


def _require_header(path: Path, table: CsvTable, expected: tuple[str, ...], fmt: str) -> None:
    got = tuple("" if h in ("", "Unnamed: 0") else h for h in table.header)
    if got != expected:
        raise FeedError(f"{path}: not a {fmt} file: header {list(table.header)}, expected {list(expected)}")


def repair_split_records(
    table: CsvTable, n_fields: int, is_whole: Callable[[list[str]], bool]
) -> list[str]:
    """Join records that an unquoted newline split in two.

    A record with fewer than ``n_fields`` fields is joined with the next one
    (its last field + newline + the next record's first field) when the result
    has exactly ``n_fields`` fields and ``is_whole`` accepts it. Anything else
    is left alone (the caller rejects it as ``field_count``).

    Returns:
        One note per repair, naming the physical lines joined.
    """
    notes: list[str] = []
    i = 0
    while i < len(table.records) - 1:
        a, b = table.records[i], table.records[i + 1]
        merged = a[:-1] + [a[-1] + "\n" + b[0]] + b[1:] if a else b
        if len(a) < n_fields and len(merged) == n_fields and is_whole(merged):
            notes.append(
                f"joined lines {table.starts[i]}-{table.ends[i + 1]} into one record "
                f"(a bare newline had split it): {' | '.join(merged)!r}"
            )
            table.records[i] = merged
            table.ends[i] = table.ends[i + 1]
            del table.records[i + 1], table.starts[i + 1], table.ends[i + 1]
        i += 1
    return notes


def fields_frame(table: CsvTable, names: tuple[str, ...], *, drop_leading_extra: bool = False) -> pd.DataFrame:
    """Records as a string frame with columns ``names`` plus ``reason``.

    Records whose field count is not ``len(names)`` get ``reason =
    "field_count"`` (their fields are blanked). With ``drop_leading_extra``, a
    record with exactly one field too many loses its first field.
    """
    n = len(names)
    rows: list[list[str]] = []
    reasons: list[str | None] = []
    for rec in table.records:
        if drop_leading_extra and len(rec) == n + 1:
            rec = rec[1:]
        ok = len(rec) == n
        rows.append(rec if ok else [""] * n)
        reasons.append(None if ok else "field_count")
    frame = pd.DataFrame(rows, columns=list(names), dtype=object)
    frame["reason"] = pd.Series(reasons, dtype=object)
    frame.loc[frame["reason"].isna() & _all_blank(frame[list(names)]), "reason"] = "empty_row"
    return frame


def _all_blank(frame: pd.DataFrame) -> pd.Series:
    return frame.apply(lambda col: col.str.strip() == "").all(axis=1)


# --------------------------------------------------------------------------- text and time


def clean_text(values: pd.Series) -> pd.Series:
    """Collapse every whitespace run to one space and strip (vectorised)."""
    return values.fillna("").astype(str).str.replace(r"\s+", " ", regex=True).str.strip()


def _nonexistent(naive: datetime, tz: ZoneInfo) -> bool:
    back = naive.replace(tzinfo=tz).astimezone(ZoneInfo("UTC")).astimezone(tz)
    return back.replace(tzinfo=None) != naive


def localize(naive: pd.Series, tz: ZoneInfo) -> tuple[pd.Series, pd.Series]:
    """Attach wall-clock zone ``tz`` to naive times and convert to UTC.

    Returns:
        ``(utc, reasons)``: ``utc`` is tz-aware UTC (NaT where not possible);
        ``reasons`` is ``ambiguous_local_time`` (DST fall-back hour) or
        ``nonexistent_local_time`` (spring-forward gap) there, else ``None``.
    """
    aware = naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    reasons = pd.Series(None, index=naive.index, dtype=object)
    for idx in naive.index[aware.isna() & naive.notna()]:
        dt = naive[idx].to_pydatetime()
        reasons[idx] = "nonexistent_local_time" if _nonexistent(dt, tz) else "ambiguous_local_time"
    return aware.dt.tz_convert("UTC"), reasons


def _date_reason(text: pd.Series, parsed: pd.Series, bad: str = "bad_date") -> pd.Series:
    """``missing_date`` / ``bad`` where ``parsed`` is NaT, else ``None``."""
    reasons = pd.Series(None, index=text.index, dtype=object)
    reasons[parsed.isna()] = bad
    reasons[parsed.isna() & (text == "")] = "missing_date"
    return reasons


def _merge_reasons(*series: pd.Series) -> pd.Series:
    """First non-null reason per row."""
    out = series[0].copy()
    for s in series[1:]:
        out = out.where(out.notna(), s)
    return out


def parse_eastern_or_offset(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Benzinga dates: explicit offsets kept; offset-less values are New York wall time.

    Returns:
        ``(utc, reasons)`` as in :func:`localize`.
    """
    utc = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    has_offset = text.str.match(_OFFSET_TS)
    utc[has_offset] = pd.to_datetime(text[has_offset], format="ISO8601", utc=True, errors="coerce")
    naive_mask = text.str.match(_NAIVE_TS)
    naive = pd.to_datetime(text[naive_mask], format="ISO8601", errors="coerce")
    local_utc, local_reasons = localize(naive, NEW_YORK)
    utc[naive_mask] = local_utc
    reasons = _date_reason(text, utc)
    reasons[naive_mask] = local_reasons.where(local_reasons.notna(), reasons[naive_mask])
    return utc, reasons


# --------------------------------------------------------------------------- frame -> items


def build_items(frame: pd.DataFrame, table: CsvTable, source: str, fmt: str) -> FeedResult:
    """Turn a prepared frame into items and rejections (file order).

    ``frame`` is indexed like ``table.records`` and has the columns ``title``,
    ``body``, ``url``, ``tickers``, ``id`` (``None`` to derive), ``ts`` (UTC,
    NaT when unparsed) and ``reason`` (``None`` when the row is fine so far).
    Empty titles are rejected as ``empty_text``.
    """
    alloc = IdAllocator()
    items: list[NewsItem] = []
    rejected: list[Rejected] = []

    def reject(i: int, reason: str, detail: str = "") -> None:
        rejected.append(Rejected(table.starts[i], reason, truncate_raw(table.raw(i)), detail))

    for row in frame.itertuples():
        i = row.Index
        given_id = _str_or_none(row.id)
        if _str_or_none(row.reason):
            reject(i, row.reason)
        elif pd.isna(row.ts):
            reject(i, "bad_date")
        elif not row.title:
            reject(i, "empty_text")
        elif given_id is not None and not alloc.claim(given_id):
            reject(i, "duplicate_id", f"id {given_id!r} already used earlier in the file")
        else:
            ts = row.ts.to_pydatetime()
            item_id = given_id or alloc.derive(source, ts, row.title)
            try:
                items.append(
                    NewsItem(
                        id=item_id, source=source, published_at=ts, title=row.title,
                        body=row.body, url=_str_or_none(row.url), tickers=row.tickers,
                    )
                )
            except ValidationError as exc:
                reject(i, "invalid", "; ".join(e["msg"] for e in exc.errors())[:1000])
    return FeedResult(items, rejected, fmt)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _frame(index: pd.Index, **columns: object) -> pd.DataFrame:
    """Frame over ``index``; a scalar (``None``, ``""``, ``()``) fills its whole column."""
    frame = pd.DataFrame(index=index)
    for name, values in columns.items():
        if not isinstance(values, pd.Series):
            values = pd.Series([values] * len(index), index=index, dtype=object)
        frame[name] = values
    return frame


def _tickers(values: pd.Series) -> pd.Series:
    return values.fillna("").astype(str).str.strip().map(lambda t: (t,) if t else ())


# --------------------------------------------------------------------------- Benzinga


def _benzinga_whole(rec: list[str]) -> bool:
    return bool(re.match(_OFFSET_TS, rec[2].strip())) and bool(re.match(r"^[A-Za-z.\-]{1,10}$", rec[3].strip()))


def _benzinga_ids(index: pd.Series) -> pd.Series:
    """``benzinga-<upstream index>``, ``None`` (derive) where the index is not an integer."""
    ids = [f"benzinga-{int(v)}" if v.strip().isdigit() else None for v in index]
    return pd.Series(ids, index=index.index, dtype=object)


def _benzinga_frame(fields: pd.DataFrame, title_col: str, url: pd.Series | None) -> pd.DataFrame:
    ts, date_reasons = parse_eastern_or_offset(fields["date"].str.strip())
    return _frame(
        fields.index,
        title=clean_text(fields[title_col]),
        body="",
        url=url,
        tickers=_tickers(fields["stock"]),
        id=_benzinga_ids(fields["index"]),
        ts=ts,
        reason=_merge_reasons(fields["reason"], date_reasons),
    )


def read_benzinga(path: Path, source: str) -> FeedResult:
    """Read Benzinga ``analyst_ratings_processed.csv`` (header ``,title,date,stock``).

    Records split in two by a bare newline in an unquoted title are joined
    back (see :func:`repair_split_records`); ids are ``benzinga-<index>``.

    Raises:
        FeedError: wrong header, unreadable file.
    """
    table = read_csv_table(path)
    _require_header(path, table, BENZINGA_HEADER, "benzinga")
    notes = repair_split_records(table, len(BENZINGA_HEADER), _benzinga_whole)
    fields = fields_frame(table, ("index", "title", "date", "stock"))
    result = build_items(_benzinga_frame(fields, "title", None), table, source, "benzinga")
    result.notes = notes
    return result


def read_benzinga_raw(path: Path, source: str) -> FeedResult:
    """Read Benzinga ``raw_analyst_ratings.csv`` (``,headline,url,publisher,date,stock``).

    Rows with one extra leading field (a re-saved index) lose it, so the id is
    ``benzinga-<upstream index>``, the same as in the processed file. The
    ``publisher`` column is not kept (NewsItem has no field for it).

    Raises:
        FeedError: wrong header, unreadable file.
    """
    table = read_csv_table(path)
    _require_header(path, table, BENZINGA_RAW_HEADER, "benzinga_raw")
    names = ("index", "headline", "url", "publisher", "date", "stock")
    fields = fields_frame(table, names, drop_leading_extra=True)
    url = fields["url"].str.strip()
    frame = _benzinga_frame(fields, "headline", url.where(url != "", None))
    return build_items(frame, table, source, "benzinga_raw")


# --------------------------------------------------------------------------- CNBC


def parse_cnbc_times(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """CNBC ``" 7:51  PM ET Fri, 17 July 2020"`` → UTC via America/New_York.

    The weekday must agree with the date (``weekday_mismatch`` otherwise);
    month names may be full or abbreviated (``Sept`` included).
    """
    parts = clean_text(text).str.extract(_CNBC_TIME)
    naive = pd.to_datetime(parts[0] + " " + parts[2], format="mixed", dayfirst=True, errors="coerce")
    utc, local_reasons = localize(naive, NEW_YORK)
    wrong_day = naive.notna() & (naive.dt.strftime("%a") != parts[1].str.title())
    reasons = _merge_reasons(_date_reason(clean_text(text), naive), local_reasons)
    reasons[wrong_day & reasons.isna()] = "weekday_mismatch"
    return utc.where(reasons.isna()), reasons


def read_cnbc(path: Path, source: str) -> FeedResult:
    """Read ``cnbc_headlines.csv`` (``Headlines,Time,Description``).

    All-empty ``,,`` rows are rejected as ``empty_row``. ``Description`` → body.

    Raises:
        FeedError: wrong header, unreadable file.
    """
    table = read_csv_table(path)
    _require_header(path, table, CNBC_HEADER, "cnbc")
    fields = fields_frame(table, ("title", "time", "body"))
    ts, date_reasons = parse_cnbc_times(fields["time"])
    frame = _frame(
        fields.index, title=clean_text(fields["title"]), body=clean_text(fields["body"]), url=None,
        tickers=(), id=None, ts=ts, reason=_merge_reasons(fields["reason"], date_reasons),
    )
    return build_items(frame, table, source, "cnbc")


# --------------------------------------------------------------------------- Guardian


def parse_guardian_days(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Guardian ``18-Jul-20`` → 00:00 Europe/London of that day, in UTC.

    Month-only values (``Jul-18``) get ``month_only_date``.
    """
    clean = clean_text(text)
    naive = pd.to_datetime(clean, format="%d-%b-%y", errors="coerce")
    utc, local_reasons = localize(naive, LONDON)
    reasons = _merge_reasons(_date_reason(clean, naive), local_reasons)
    reasons[clean.str.match(_MONTH_ONLY)] = "month_only_date"
    return utc, reasons


def split_guardian_series(headlines: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split ``"series name \\n\\n\\n headline"`` into ``(headline, series)``.

    Headlines without a blank-line gap get series ``""``. Both parts are
    whitespace-cleaned.
    """
    parts = headlines.fillna("").str.split(_GUARDIAN_SERIES_SPLIT, n=1, regex=True)
    has_series = parts.str.len() == 2
    title = parts.str[-1]
    series = parts.str[0].where(has_series, "")
    return clean_text(title), clean_text(series)


def read_guardian(path: Path, source: str) -> FeedResult:
    """Read ``guardian_headlines.csv`` (``Time,Headlines``); series name → body.

    Raises:
        FeedError: wrong header, unreadable file.
    """
    table = read_csv_table(path)
    _require_header(path, table, GUARDIAN_HEADER, "guardian")
    fields = fields_frame(table, ("time", "headline"))
    ts, date_reasons = parse_guardian_days(fields["time"])
    title, series = split_guardian_series(fields["headline"])
    frame = _frame(
        fields.index, title=title, body=series, url=None, tickers=(), id=None,
        ts=ts, reason=_merge_reasons(fields["reason"], date_reasons),
    )
    return build_items(frame, table, source, "guardian")


# --------------------------------------------------------------------------- Reuters


def read_reuters(path: Path, source: str) -> FeedResult:
    """Read the header-less ``reuters_headlines.csv`` (``YYYY-MM-DD,headline``).

    Dates → 00:00 America/New_York of that day, in UTC.

    Raises:
        FeedError: unreadable file.
    """
    table = read_csv_table(path, has_header=False)
    fields = fields_frame(table, ("date", "title"))
    day = fields["date"].str.strip()
    naive = pd.to_datetime(day.where(day.str.match(ISO_DAY_RE.pattern)), format="%Y-%m-%d", errors="coerce")
    ts, local_reasons = localize(naive, NEW_YORK)
    reason = _merge_reasons(fields["reason"], _date_reason(day, naive), local_reasons)
    frame = _frame(
        fields.index, title=clean_text(fields["title"]), body="", url=None, tickers=(),
        id=None, ts=ts, reason=reason,
    )
    return build_items(frame, table, source, "reuters")
