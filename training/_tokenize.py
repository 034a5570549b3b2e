"""Tokenisation shared by training, evaluation and export (``tokenizers`` + numpy, no torch).

Training and the shipped model use the *same* ``tokenizer.json`` through the
``tokenizers`` library, so there is no train/serve tokenisation skew.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PAD_ID = 0  # BERT uncased vocab: [PAD] = 0


def load_tokenizer(path: str | os.PathLike[str], max_length: int):
    """Load a ``tokenizers.Tokenizer`` from ``tokenizer.json`` (a file, or a folder holding it),
    with truncation to ``max_length`` tokens (special tokens included) and padding off.

    Raises:
        FileNotFoundError: no ``tokenizer.json`` at ``path``.
    """
    from tokenizers import Tokenizer

    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise FileNotFoundError(p)
    tok = Tokenizer.from_file(str(p))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return tok


def encode(tok, texts: Sequence[str]) -> list[list[int]]:
    """Token ids per text (``[CLS] ... [SEP]``, truncated as configured on ``tok``), unpadded."""
    return [e.ids for e in tok.encode_batch(list(texts))]


def pad_batch(seqs: Sequence[Sequence[int]], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad id sequences to the longest one (dynamic padding) or to ``pad_to``.

    Returns:
        ``(input_ids, attention_mask)``, both int64 [batch, seq]; mask is 1 on
        real tokens and 0 on padding (pad id 0).

    Raises:
        ValueError: empty batch, or a sequence longer than ``pad_to``.
    """
    if not seqs:
        raise ValueError("empty batch")
    longest = max(len(s) for s in seqs)
    width = longest if pad_to is None else pad_to
    if longest > width:
        raise ValueError(f"sequence of length {longest} does not fit pad_to={pad_to}")
    ids = np.full((len(seqs), width), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


def write_published_tokenizer(src: str | os.PathLike[str], dst: str | os.PathLike[str], max_length: int) -> dict:
    """Copy ``tokenizer.json`` with truncation set to ``max_length`` (LongestFirst) and padding off.

    The file is rewritten from JSON (not re-serialised by ``tokenizers``) so the
    vocabulary and normaliser stay byte-identical to the base model's. Any
    ``tokenizers`` loader therefore truncates to ``max_length`` with no padding
    by default; finsentry pads each batch itself.

    Returns:
        The written JSON object.
    """
    data = json.loads(Path(src).read_text(encoding="utf-8"))
    data["truncation"] = {"direction": "Right", "max_length": int(max_length), "strategy": "LongestFirst", "stride": 0}
    data["padding"] = None
    Path(dst).write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    return data
