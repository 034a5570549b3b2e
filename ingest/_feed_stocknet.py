"""Reader for the StockNet tweet corpus (``tweet/preprocessed/<TICKER>/<YYYY-MM-DD>``).

Private: use :func:`ingest._feeds.read_feed`. Each file holds one JSON object
per line: ``{"text": [tokens], "created_at": "Thu Jan 02 15:45:02 +0000 2014",
"user_id_str": "..."}``. The tweet time is ``created_at`` (explicit UTC
offset), not the file's date (which is shifted to trading days for ~7 % of
tweets). The same tweet filed under several tickers becomes ONE item whose
tickers are the folders it was found in (sorted folder order).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from ingest._errors import FeedError
from ingest._feed_common import FeedResult, IdAllocator, Rejected, truncate_raw
from ingest._item import NewsItem

__all__ = ["read_stocknet", "stocknet_files", "is_stocknet_record", "looks_like_stocknet"]

_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CREATED_AT_FORMAT = "%a %b %d %H:%M:%S %z %Y"


def is_stocknet_record(obj: object) -> bool:
    """True for a StockNet tweet object (token list + Twitter ``created_at``)."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("text"), list)
        and isinstance(obj.get("created_at"), str)
        and "published_at" not in obj
    )


def _ticker_dirs(root: Path) -> list[Path]:
    if (root / "tweet" / "preprocessed").is_dir():
        root = root / "tweet" / "preprocessed"
    if any(_DAY_FILE.match(p.name) and p.is_file() for p in root.iterdir()):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def stocknet_files(path: Path) -> list[tuple[str, Path]]:
    """``(ticker, file)`` pairs under a StockNet folder (or one day file), sorted.

    ``path`` may be the dataset root, ``tweet/preprocessed``, one ticker folder
    or one day file; the ticker is the name of the file's folder.

    Raises:
        FeedError: no ``YYYY-MM-DD`` day files found.
    """
    if path.is_file():
        return [(path.parent.name.upper(), path)]
    pairs = [
        (d.name.upper(), f)
        for d in _ticker_dirs(path)
        for f in sorted(d.iterdir())
        if f.is_file() and _DAY_FILE.match(f.name)
    ]
    if not pairs:
        raise FeedError(f"{path}: no StockNet day files (<TICKER>/<YYYY-MM-DD>) found")
    return pairs


def looks_like_stocknet(path: Path) -> bool:
    """Cheap check: the first day file found under folder ``path`` starts with a StockNet tweet."""
    try:
        for d in _ticker_dirs(path):
            for f in sorted(d.iterdir()):
                if f.is_file() and _DAY_FILE.match(f.name):
                    with f.open("rb") as fh:
                        first = fh.readline()
                    return is_stocknet_record(json.loads(first))
    except (OSError, ValueError):
        return False
    return False


@dataclass
class _Tweets:
    """Parsed lines, column-wise; ``keys`` maps a tweet to its first row."""

    created: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    tickers: list[list[str]] = field(default_factory=list)
    where: list[tuple[int, str, str]] = field(default_factory=list)  # line, file, raw
    keys: dict[tuple[str, str, str], int] = field(default_factory=dict)
    lines_read: int = 0

    def add(self, ticker: str, line: int, rel: str, raw: str, obj: dict) -> None:
        self.lines_read += 1
        text = " ".join(str(t) for t in obj["text"]).strip()
        key = (obj["created_at"], str(obj.get("user_id_str", "")), text)
        first = self.keys.get(key)
        if first is not None:
            if ticker not in self.tickers[first]:
                self.tickers[first].append(ticker)
            return
        self.keys[key] = len(self.texts)
        self.created.append(key[0])
        self.users.append(key[1])
        self.texts.append(text)
        self.tickers.append([ticker])
        self.where.append((line, rel, raw))


def _read_file(ticker: str, path: Path, rel: str, tweets: _Tweets, rejected: list[Rejected]) -> None:
    with path.open("rb") as fh:
        for line_no, raw_bytes in enumerate(fh, start=1):
            if not raw_bytes.strip():
                continue
            raw = raw_bytes.decode("utf-8", errors="replace").rstrip("\r\n")
            try:
                obj = json.loads(raw_bytes)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                rejected.append(Rejected(line_no, "not_json", truncate_raw(raw), f"{rel}: {exc}"))
                continue
            if not is_stocknet_record(obj):
                rejected.append(Rejected(line_no, "invalid", truncate_raw(raw), f"{rel}: not a StockNet tweet"))
                continue
            tweets.add(ticker, line_no, rel, raw, obj)


def _build(tweets: _Tweets, source: str, rejected: list[Rejected]) -> list[NewsItem]:
    created = pd.Series(tweets.created, dtype=object)
    times = pd.to_datetime(created, format=_CREATED_AT_FORMAT, utc=True, errors="coerce")
    alloc = IdAllocator()
    items: list[NewsItem] = []
    for i, ts in enumerate(times):
        line, rel, raw = tweets.where[i]
        if pd.isna(ts) or not tweets.texts[i]:
            reason = "bad_date" if pd.isna(ts) else "empty_text"
            rejected.append(Rejected(line, reason, truncate_raw(raw), rel))
            continue
        when = ts.to_pydatetime()
        item_id = alloc.derive(source, when, f"@{tweets.users[i]} {tweets.texts[i]}")
        try:
            items.append(NewsItem(id=item_id, source=source, published_at=when,
                                  title=tweets.texts[i], tickers=tuple(tweets.tickers[i])))
        except ValidationError as exc:
            rejected.append(Rejected(line, "invalid", truncate_raw(raw), f"{rel}: {exc.errors()[0]['msg']}"))
    return items


def read_stocknet(path: Path, source: str) -> FeedResult:
    """Read StockNet preprocessed tweets into items (one per distinct tweet).

    Title = the tokens joined by spaces (lower-cased, ``URL``/``AT_USER``
    placeholders kept); id = :func:`make_item_id` over ``"@<user_id> <text>"``.
    ``Rejected.detail`` names the file (relative to ``path``) of each rejected line.

    Raises:
        FeedError: no day files under ``path``.
    """
    base = path if path.is_dir() else path.parent
    tweets = _Tweets()
    rejected: list[Rejected] = []
    for ticker, file in stocknet_files(path):
        _read_file(ticker, file, str(file.relative_to(base)), tweets, rejected)
    items = _build(tweets, source, rejected)
    note = (
        f"{tweets.lines_read} tweet lines merged into {len(tweets.texts)} distinct tweets "
        "(same tweet under several tickers)"
    )
    return FeedResult(items, rejected, "stocknet", [note])
