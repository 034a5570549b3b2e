"""Ticker extraction for items that arrive without tickers: cashtags and an alias table.

Rules (documented in ``docs/detector.md``):

* **Cashtags**: ``$`` followed by 1-5 ASCII letters, optionally a class
  suffix ``.A``-style (``$BRK.B``), not preceded by a word character or ``$``
  and not followed by a letter or digit; case-insensitive, upper-cased
  (``$aapl`` -> ``AAPL``). ``$5`` or ``$1.2bn`` are money, not cashtags.
* **Aliases** (CSV with a header ``alias,ticker``): each alias is matched on
  word boundaries (``\\b`` on both sides, so ``Apple`` does not match
  ``Pineapple``). An alias written all in upper case (``IBM``, ``GE``) is
  matched case-sensitively, so that short upper-case aliases do not match
  ordinary words (``ge``); any other alias is matched case-insensitively.
  Longer aliases are tried first; one text position is used once.
* An item the feed gave tickers keeps exactly those (source ``feed``): the
  text is not searched, so an alias or a passing cashtag cannot add a key to
  an item whose source already said what it is about. With
  ``only_missing=False`` (``windows.extract_tickers = "always"``, e.g. for
  tweets that tag several symbols) the feed's tickers come first, then
  cashtags (``cashtag``), then aliases (``alias``), without repeats.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ingest._errors import FeedError

__all__ = ["TickerExtractor", "extract_cashtags", "load_aliases"]

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,5}(?:\.[A-Za-z])?)(?![A-Za-z0-9])")


def extract_cashtags(text: str) -> list[str]:
    """Upper-cased cashtag symbols in ``text``, in order of first appearance, without repeats."""
    return list(dict.fromkeys(m.group(1).upper() for m in _CASHTAG.finditer(text)))


def load_aliases(path: Path) -> dict[str, str]:
    """Read an alias CSV (header ``alias,ticker``) into ``{alias: TICKER}``.

    Raises:
        FeedError: the file is missing, has no ``alias``/``ticker`` columns,
            or a row has an empty alias or ticker (the row number is named).
    """
    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"alias", "ticker"} <= set(reader.fieldnames):
                raise FeedError(f"{path}: alias CSV needs the columns alias,ticker; got {reader.fieldnames}")
            out: dict[str, str] = {}
            for i, row in enumerate(reader, start=2):
                alias, ticker = (row.get("alias") or "").strip(), (row.get("ticker") or "").strip().upper()
                if not alias or not ticker:
                    raise FeedError(f"{path}:{i}: empty alias or ticker")
                out[alias] = ticker
            return out
    except OSError as exc:
        raise FeedError(f"{path}: cannot read alias CSV: {exc}") from exc


def _alias_pattern(aliases: Iterable[str], case_sensitive: bool) -> re.Pattern[str] | None:
    names = sorted(set(aliases), key=lambda a: (-len(a), a))
    if not names:
        return None
    body = "|".join(re.escape(a) for a in names)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", 0 if case_sensitive else re.IGNORECASE)


class TickerExtractor:
    """Finds tickers in a text from cashtags and an alias table.

    Args:
        aliases: ``{alias: ticker}`` (e.g. from ``load_aliases``); may be empty.
        only_missing: search the text only when the feed gave no ticker (the
            default); False adds cashtags and aliases to the feed's tickers.
    """

    def __init__(self, aliases: Mapping[str, str] | None = None, only_missing: bool = True) -> None:
        self.only_missing = only_missing
        aliases = dict(aliases or {})
        self._exact = {a: t.upper() for a, t in aliases.items() if a.isupper()}
        self._folded = {a.casefold(): t.upper() for a, t in aliases.items() if not a.isupper()}
        self._exact_re = _alias_pattern(self._exact, case_sensitive=True)
        self._folded_re = _alias_pattern(aliases.keys() - self._exact.keys(), case_sensitive=False)

    def extract(self, text: str, given: Iterable[str] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The tickers of ``text`` and where each came from.

        Args:
            text: headline (and body) text.
            given: tickers the feed supplied (kept first, source ``feed``; with
                ``only_missing``, kept alone when there is any).

        Returns:
            ``(tickers, sources)``, parallel tuples; a source is ``feed``,
            ``cashtag`` or ``alias``.
        """
        found: dict[str, str] = {}
        for t in given:
            found.setdefault(t.upper(), "feed")
        if found and self.only_missing:
            return tuple(found), tuple(found.values())
        for t in extract_cashtags(text):
            found.setdefault(t, "cashtag")
        hits: list[tuple[int, str]] = []
        if self._exact_re is not None:
            hits.extend((m.start(), self._exact[m.group(0)]) for m in self._exact_re.finditer(text))
        if self._folded_re is not None:
            hits.extend((m.start(), self._folded[m.group(0).casefold()]) for m in self._folded_re.finditer(text))
        for _, t in sorted(hits):
            found.setdefault(t, "alias")
        return tuple(found), tuple(found.values())
