"""Integrity manifest for a published model folder (stdlib only).

A published folder ``models/<version>/`` holds ``manifest.json``::

    {"version": "<version>", "files": {"<file name>": "<sha256 hex>", ...}}

listing every other regular file of the folder (no sub-folders). The trainer
writes it (:func:`write_manifest`); the loader (``ModelFolder.load``) calls
:func:`verify_manifest` before it trusts a folder. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from inference._errors import ModelFolderError

__all__ = ["MANIFEST_NAME", "ManifestError", "sha256_file", "verify_manifest", "write_manifest"]

MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20  # 1 MiB read size for hashing


class ManifestError(ModelFolderError):
    """A model folder does not match its ``manifest.json``.

    Attributes:
        problems: one human-readable line per mismatch (missing file, extra
            file, wrong hash, malformed manifest).
    """

    def __init__(self, folder: Path, problems: list[str]) -> None:
        self.folder = Path(folder)
        self.problems = list(problems)
        lines = "\n  - ".join(self.problems)
        super().__init__(f"model folder {self.folder} fails manifest verification:\n  - {lines}")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 of a file's bytes as 64 lower-case hex digits.

    Reads in 1 MiB chunks (constant memory for the ~23 MB ONNX file).

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _payload_files(folder: Path) -> list[str]:
    """Names of the regular files in ``folder`` other than the manifest, sorted."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME)


def write_manifest(folder: str | os.PathLike[str], version: str) -> dict:
    """Hash every regular file of ``folder`` (except the manifest) into ``manifest.json``.

    Args:
        folder: the published model folder.
        version: the model version string stored in the manifest (normally the
            folder name, e.g. ``minilm6-mt-20250101``).

    Returns:
        The manifest dict that was written: ``{"version": str, "files": {name: sha256 hex}}``.

    Raises:
        NotADirectoryError: ``folder`` is not a directory.
        ValueError: ``folder`` contains a sub-directory (a published folder is flat).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a directory: {folder}")
    subdirs = [p.name for p in folder.iterdir() if p.is_dir()]
    if subdirs:
        raise ValueError(f"published model folder must be flat; found sub-folders {subdirs} in {folder}")
    files = {name: sha256_file(folder / name) for name in _payload_files(folder)}
    manifest = {"version": version, "files": files}
    tmp = folder / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST_NAME)
    return manifest


def verify_manifest(folder: str | os.PathLike[str], *, allow_extra: bool = False) -> dict:
    """Check that ``folder`` matches its ``manifest.json`` byte for byte.

    Every file listed must exist and have the recorded SHA-256; with
    ``allow_extra=False`` (the default) no unlisted regular file may be present
    either (a stray file in a model folder is treated as tampering).

    Args:
        folder: the model folder holding ``manifest.json``.
        allow_extra: tolerate regular files that the manifest does not list.

    Returns:
        The parsed manifest ``{"version": str, "files": {name: sha256 hex}}``.

    Raises:
        ManifestError: the manifest is missing or malformed, a listed file is
            missing or differs, or (unless ``allow_extra``) an unlisted file exists.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(folder, [f"{MANIFEST_NAME} not found"])
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(folder, [f"{MANIFEST_NAME} unreadable: {exc}"]) from exc
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not isinstance(manifest.get("version"), str):
        raise ManifestError(folder, [f"{MANIFEST_NAME} must be an object with 'version' (str) and 'files' (object)"])

    problems: list[str] = []
    for name, expected in sorted(files.items()):
        if not isinstance(expected, str) or len(expected) != 64:
            problems.append(f"{name}: malformed sha256 {expected!r}")
            continue
        if name != Path(name).name or name in ("", ".", "..", MANIFEST_NAME):
            problems.append(f"{name!r}: not a plain file name")
            continue
        p = folder / name
        if not p.is_file():
            problems.append(f"{name}: listed in manifest but missing")
            continue
        actual = sha256_file(p)
        if actual != expected.lower():
            problems.append(f"{name}: sha256 {actual} != manifest {expected}")
    if not allow_extra:
        for name in _payload_files(folder):
            if name not in files:
                problems.append(f"{name}: present but not listed in manifest")
    if problems:
        raise ManifestError(folder, problems)
    return manifest
