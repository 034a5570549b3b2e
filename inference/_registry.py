"""Model folders and the model registry.

A *model folder* is a versioned directory written by the trainer::

    model.onnx       ONNX graph: inputs input_ids / attention_mask int64 [batch, seq]
                     outputs sentiment_logits float32 [batch, 3]
                     (and optionally topic_logits float32 [batch, n_topics])
    tokenizer.json   a `tokenizers` tokenizer
    labels.json      {"sentiment": [...3 names...], "topic": [...]}
    config.json      {"version", "max_length", "text_join": {"fields", "separator"}, ...}
    metrics.json, README.md (model card)
    manifest.json    {"version", "files": {name: sha256 hex}}

A *registry* is a directory of model folders plus a ``DEFAULT`` file holding
the name of the default folder (``models/`` in the repository is one).
Loaders refuse a folder whose files do not match its manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference._errors import ModelFolderError
from inference._manifest import verify_manifest

__all__ = ["ModelFolder", "resolve_model_folder"]

_REQUIRED = ("model.onnx", "tokenizer.json", "labels.json", "config.json", "manifest.json")


def resolve_model_folder(path: Path) -> Path:
    """Return the model folder that ``path`` names.

    ``path`` is either a model folder (has ``model.onnx``) or a registry
    (has a ``DEFAULT`` file naming a sub-folder).

    Raises:
        ModelFolderError: neither, or the DEFAULT entry does not exist.
    """
    path = Path(path)
    if (path / "model.onnx").is_file():
        return path
    default = path / "DEFAULT"
    if default.is_file():
        name = default.read_text(encoding="utf-8").strip()
        folder = path / name
        if not (folder / "model.onnx").is_file():
            raise ModelFolderError(f"{default} names {name!r}, but {folder} holds no model.onnx")
        return folder
    raise ModelFolderError(f"{path} is neither a model folder (model.onnx) nor a registry (DEFAULT file)")


@dataclass(frozen=True)
class ModelFolder:
    """A verified model folder's metadata (the ONNX graph is loaded by the scorer).

    Attributes:
        path: the folder.
        version: ``config.json`` version (falls back to the folder name).
        sentiment_labels: label order of ``sentiment_logits`` (3 names).
        topic_labels: label order of ``topic_logits`` (empty when no topic head).
        max_length: token limit (inputs are truncated to it).
        join_fields: NewsItem fields joined into the model text, in order.
        separator: string placed between non-empty fields.
        config: the raw ``config.json``.
    """

    path: Path
    version: str
    sentiment_labels: tuple[str, ...]
    topic_labels: tuple[str, ...]
    max_length: int
    join_fields: tuple[str, ...]
    separator: str
    config: dict[str, Any]

    @classmethod
    def load(cls, path: Path, verify: bool = True) -> "ModelFolder":
        """Resolve, verify (manifest digests) and read a model folder.

        Raises:
            ModelFolderError: a required file is missing or malformed;
                ``ManifestError`` (a subclass) when a file is missing from,
                differs from, or is not listed in the manifest.
        """
        folder = resolve_model_folder(path)
        missing = [n for n in _REQUIRED if not (folder / n).is_file()]
        if missing:
            raise ModelFolderError(f"{folder}: missing {', '.join(missing)}")
        if verify:
            verify_manifest(folder)
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
            sentiment = tuple(labels["sentiment"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFolderError(f"{folder}: bad config.json or labels.json ({exc})") from None
        if sentiment != ("negative", "neutral", "positive"):
            raise ModelFolderError(f"{folder}: sentiment labels must be negative, neutral, positive; got {sentiment}")
        join = config.get("text_join", {})
        return cls(
            path=folder,
            version=str(config.get("version") or folder.name),
            sentiment_labels=sentiment,
            topic_labels=tuple(labels.get("topic", ())),
            max_length=int(config.get("max_length", 128)),
            join_fields=tuple(join.get("fields", ("title", "body"))),
            separator=str(join.get("separator", ". ")),
            config=config,
        )
