"""Alert lifecycle per key: quiet -> firing -> (cooldown while firing) -> resolved.

* A key with no open episode starts one when a window *fires*; the episode's
  firing alert (id from the first firing window, so stable for the whole
  episode) is emitted once.
* While the episode is open nothing more is emitted for the key (cooldown),
  however many further windows fire.
* The episode resolves (its firing alert is emitted again with
  ``status="resolved"``) at the first closed window of the key that is
  *calm* (the detector decides: see ``SpikeDetector``; a hysteresis bound
  well inside the firing condition), or when a whole hop passes with no
  window for the key (an empty window is calm). Both are decided on event time only (window ends and
  the watermark), so replays give the same lifecycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._alert import Alert

__all__ = ["AlertLifecycle", "Episode"]


@dataclass(slots=True)
class Episode:
    """An open alert episode: its firing ``alert`` and the end (ms) of the key's last window seen."""

    alert: Alert
    last_end_ms: int


class AlertLifecycle:
    """Open episodes per ``(key_type, key)``; see the module docstring.

    """

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], Episode] = {}

    def firing(self, key: tuple[str, str]) -> bool:
        """Whether ``key`` has an open episode."""
        return key in self._open

    @property
    def open_count(self) -> int:
        """How many keys have an open episode."""
        return len(self._open)

    @property
    def open_keys(self) -> frozenset[tuple[str, str]]:
        """The keys with an open episode."""
        return frozenset(self._open)

    @property
    def open_episodes(self) -> dict[tuple[str, str], Episode]:
        """The open episodes (a copy)."""
        return dict(self._open)

    def adopt(self, other: "AlertLifecycle") -> int:
        """Take ``other``'s open episodes for the keys that have none here (their alert ids unchanged).

        Used after a restart or a rebalance, with a lifecycle rebuilt by
        replaying the scored topic (``finsentry.rebuild``): an episode whose
        firing alert was sent before is continued (cooldown, then one
        resolved message with the same id) instead of opened again.

        Returns:
            How many episodes were taken.
        """
        taken = 0
        for key, ep in other._open.items():
            if key not in self._open:
                self._open[key] = Episode(alert=ep.alert, last_end_ms=ep.last_end_ms)
                taken += 1
        return taken

    def forget(self, keys: Iterable[tuple[str, str]]) -> int:
        """Drop the open episodes of ``keys`` without any message (their partition went to another daemon,
        which continues them); returns how many were open."""
        return sum(self._open.pop(key, None) is not None for key in keys)

    def expire_quiet(self, key: tuple[str, str], seen_through_ms: int, hop_ms: int) -> Alert | None:
        """Resolve ``key``'s episode when the window after its last one closed empty.

        Args:
            key: (key_type, key).
            seen_through_ms: every window of the key ending at or before this
                (ms) has been observed: the end of the key's next closed
                window minus ``hop_ms``, or the watermark.
            hop_ms: the distance between consecutive window ends, ms.
        """
        ep = self._open.get(key)
        if ep is not None and seen_through_ms >= ep.last_end_ms + hop_ms:
            del self._open[key]
            return ep.alert.resolved()
        return None

    def observe(self, key: tuple[str, str], end_ms: int, fires: bool, calm: bool, alert: Alert | None) -> Alert | None:
        """Take one closed window of ``key``; return the message to send, if any.

        Args:
            key: (key_type, key).
            end_ms: the window end, ms.
            fires: whether the detector's condition holds for the window.
            calm: whether the window is calm enough to end an episode.
            alert: the firing alert to open an episode with (needed when ``fires``).
        """
        ep = self._open.get(key)
        if ep is None:
            if fires and alert is not None:
                self._open[key] = Episode(alert=alert, last_end_ms=end_ms)
                return alert
            return None
        ep.last_end_ms = end_ms
        if calm and not fires:
            del self._open[key]
            return ep.alert.resolved()
        return None
