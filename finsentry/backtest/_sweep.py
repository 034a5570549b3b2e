"""``--sweep key=v1,v2,...``: detector and window settings compared in one run.

Keys are ``section.field`` of the ``windows`` and ``detector`` settings
sections (e.g. ``detector.min_negative=3,5,8``, ``windows.size_minutes=30,60``).
Several ``--sweep`` options give their Cartesian product. Each variant
replays the cached scores through a pipeline built by ``build_pipeline``
from the settings with the variant's values, so the model never runs again.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from finsentry.config import Settings

__all__ = ["SWEEP_SECTIONS", "SweepError", "SweepVariant", "apply_overrides", "expand_sweep", "parse_sweep"]

#: Settings sections a sweep may change.
SWEEP_SECTIONS: tuple[str, ...] = ("windows", "detector")


class SweepError(ValueError):
    """A ``--sweep`` option is malformed, names an unknown key or gives a bad value."""


@dataclass(frozen=True)
class SweepVariant:
    """One combination of swept values: ``overrides`` maps ``section.field`` to the value (as typed)."""

    overrides: dict[str, Any]

    @property
    def label(self) -> str:
        """``key=value`` pairs joined by spaces (``"baseline"`` for no override)."""
        return " ".join(f"{k}={v}" for k, v in self.overrides.items()) or "baseline"


def parse_sweep(options: Sequence[str]) -> dict[str, list[str]]:
    """Parse ``["detector.min_negative=3,5", ...]`` into ``{key: [values]}``.

    Raises:
        SweepError: an option without ``=``, an empty value list, or a key given twice.
    """
    out: dict[str, list[str]] = {}
    for opt in options:
        key, sep, values = opt.partition("=")
        key = key.strip()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not vals:
            raise SweepError(f"--sweep {opt!r}: expected key=v1,v2,... (e.g. detector.min_negative=3,5,8)")
        if key in out:
            raise SweepError(f"--sweep key {key!r} given twice")
        out[key] = vals
    return out


def apply_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """A copy of ``settings`` with ``section.field`` values replaced and validated.

    Raises:
        SweepError: unknown section or field, or a value the settings reject.
    """
    sections: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in SWEEP_SECTIONS or not name:
            raise SweepError(f"--sweep key {key!r}: must be one of {', '.join(s + '.<field>' for s in SWEEP_SECTIONS)}")
        current = getattr(settings, section)
        if name not in type(current).model_fields:
            known = ", ".join(f"{section}.{f}" for f in type(current).model_fields)
            raise SweepError(f"--sweep key {key!r}: unknown field; known: {known}")
        sections.setdefault(section, current.model_dump())[name] = value
    update: dict[str, Any] = {}
    for section, values in sections.items():
        try:
            update[section] = type(getattr(settings, section)).model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            if err["loc"]:  # one field's value
                raise SweepError(f"--sweep {section}.{err['loc'][0]}={err.get('input')!r}: {err['msg']}") from None
            raise SweepError(f"--sweep {section}: {err['msg']}") from None  # a rule across fields (e.g. hop | size)
    return settings.model_copy(update=update)


def expand_sweep(sweep: Mapping[str, Sequence[str]], settings: Settings) -> list[SweepVariant]:
    """Every combination of the swept values, each validated against ``settings``.

    Returns:
        ``[SweepVariant({})]`` (the baseline only) when ``sweep`` is empty;
        otherwise one variant per combination, values as the settings typed them.

    Raises:
        SweepError: see :func:`apply_overrides`.
    """
    if not sweep:
        return [SweepVariant({})]
    keys = list(sweep)
    variants: list[SweepVariant] = []
    for combo in itertools.product(*(sweep[k] for k in keys)):
        raw = dict(zip(keys, combo))
        typed = apply_overrides(settings, raw)
        variants.append(SweepVariant({k: getattr(getattr(typed, k.split(".")[0]), k.split(".")[1]) for k in keys}))
    return variants
