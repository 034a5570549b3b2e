"""The benchmark's headlines: real Benzinga titles from the shared data folder."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from finsentry.config import REPO_ROOT

__all__ = ["BENZINGA", "data_dir", "load_headlines"]

BENZINGA = Path("massive_stock_news_analyst_ratings_partial") / "analyst_ratings_processed.csv"


def data_dir() -> Path:
    """``$FINSENTRY_DATA_DIR``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("FINSENTRY_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")


def load_headlines(n: int, path: Path | None = None) -> list[str]:
    """The first ``n`` distinct non-empty titles of the Benzinga analyst-ratings file, in file order.

    Raises:
        FileNotFoundError: the file is missing (set FINSENTRY_DATA_DIR).
        ValueError: the file holds fewer than ``n`` distinct titles.
    """
    path = path or data_dir() / BENZINGA
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (set FINSENTRY_DATA_DIR to the shared data folder)")
    seen: dict[str, None] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            title = (row.get("title") or "").strip()
            if title:
                seen.setdefault(title, None)
            if len(seen) == n:
                return list(seen)
    raise ValueError(f"{path} holds only {len(seen)} distinct titles, {n} asked")
