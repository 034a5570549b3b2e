"""The offset-commit metadata through which a partition's next owner learns what was decided."""

from __future__ import annotations

from finsentry.rebuild import _closed_through, commit_metadata


def test_metadata_round_trip_and_fallback_for_commits_without_it() -> None:
    committed = {
        0: (1_000_000, commit_metadata(900_000)),  # decided through 900,000 by its committer
        1: (2_000_000, commit_metadata(None)),  # its committer had closed no window
        2: (1_500_000, ""),  # an old commit without metadata
        3: (1_200_000, "not json"),
    }
    closed = _closed_through(committed, lateness_ms=100_000)
    assert closed[0] == 900_000
    assert closed[1] < 0  # nothing decided: every window of the partition is rebuilt
    assert closed[2] == closed[3] == 1_000_000 - 100_000  # min over the committed timestamps - lateness
