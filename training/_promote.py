"""Champion / challenger: promote a newly trained model only if it is better.

The *champion* is the model folder that the registry's ``DEFAULT`` file names;
the *challenger* is a freshly published folder. Both are scored by the same
code (:func:`training._evaluate.evaluate_folder`: manifest check, ONNX
Runtime) on the frozen evaluation sets, which are never used for training or
model selection. Rule (:func:`decide`):

* no champion yet → promote;
* the challenger's macro-F1 must not fall more than ``MAX_SET_DROP`` (1 point)
  below the champion's on any set, and
* its mean macro-F1 over the sets must be strictly higher.

Every decision, with both scores, is logged and appended as one JSON line to
``<registry>/promotions.jsonl``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["MAX_SET_DROP", "PromotionDecision", "decide", "promote_if_better", "read_default", "set_default"]

#: Largest tolerated macro-F1 drop on any single evaluation set (fraction, 0.01 = 1 point).
MAX_SET_DROP = 0.01


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of one champion / challenger comparison.

    Attributes:
        promote: True when the challenger becomes the default.
        reason: one human-readable sentence.
        champion, challenger: model versions (champion ``None`` when there was none).
        champion_scores, challenger_scores: macro-F1 per evaluation set, in [0, 1].
    """

    promote: bool
    reason: str
    champion: str | None
    challenger: str
    champion_scores: dict[str, float] = field(default_factory=dict)
    challenger_scores: dict[str, float] = field(default_factory=dict)


def _mean(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores)


def decide(
    champion: str | None,
    champion_scores: dict[str, float],
    challenger: str,
    challenger_scores: dict[str, float],
) -> PromotionDecision:
    """Apply the promotion rule (module docstring) to macro-F1 scores per set.

    Raises:
        ValueError: the two score dicts do not cover the same sets.
    """
    if champion is None:
        return PromotionDecision(True, "no champion: the first model becomes the default", None, challenger,
                                 {}, dict(challenger_scores))
    if set(champion_scores) != set(challenger_scores) or not challenger_scores:
        raise ValueError(f"score sets differ: {sorted(champion_scores)} vs {sorted(challenger_scores)}")
    args = (champion, challenger, dict(champion_scores), dict(challenger_scores))
    for name in sorted(challenger_scores):
        drop = champion_scores[name] - challenger_scores[name]
        if drop > MAX_SET_DROP:
            return PromotionDecision(False, f"macro-F1 on {name} drops by {drop * 100:.2f} points "
                                            f"(more than {MAX_SET_DROP * 100:.0f})", *args)
    old, new = _mean(champion_scores), _mean(challenger_scores)
    if new <= old:
        return PromotionDecision(False, f"mean macro-F1 {new:.4f} does not beat the champion's {old:.4f}", *args)
    return PromotionDecision(True, f"mean macro-F1 {new:.4f} beats the champion's {old:.4f}", *args)


def read_default(registry: Path) -> str | None:
    """The version named by ``registry/DEFAULT``, or None when there is none."""
    path = registry / "DEFAULT"
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8").strip() or None


def set_default(registry: Path, version: str) -> None:
    """Point ``registry/DEFAULT`` at ``version`` atomically (write + rename)."""
    tmp = registry / ".DEFAULT.tmp"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, registry / "DEFAULT")


def promote_if_better(
    registry: Path,
    challenger: str,
    data_dir: Path | None = None,
    max_items: int | None = None,
    threads: int = 2,
) -> PromotionDecision:
    """Score champion and challenger on the frozen sets; move ``DEFAULT`` if the rule says so.

    Raises:
        inference.ManifestError: either folder fails its manifest check.
        FileNotFoundError: the challenger folder does not exist.
    """
    from ._evaluate import evaluate_folder

    registry = Path(registry)
    if not (registry / challenger).is_dir():
        raise FileNotFoundError(f"challenger {registry / challenger} does not exist")
    champion = read_default(registry)
    if champion == challenger:
        champion = None
    new = {k: m["macro_f1"] for k, m in evaluate_folder(registry / challenger, data_dir, max_items, threads).items()}
    old: dict[str, float] = {}
    if champion is not None:
        old = {k: m["macro_f1"] for k, m in evaluate_folder(registry / champion, data_dir, max_items, threads).items()}
    decision = decide(champion, old, challenger, new)
    if decision.promote:
        set_default(registry, challenger)
    log.info("promotion %s: %s -> %s: %s; champion %s, challenger %s",
             "ACCEPTED" if decision.promote else "REFUSED", champion, challenger, decision.reason, old, new)
    record = {"at_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **asdict(decision)}
    with (registry / "promotions.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
    return decision
