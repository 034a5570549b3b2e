"""Exceptions raised by the inference stage."""

from __future__ import annotations

__all__ = ["InferenceError", "ModelFolderError", "ProviderError"]


class InferenceError(Exception):
    """Base class of every inference error."""


class ModelFolderError(InferenceError):
    """A model folder is missing a file, is malformed, or fails its manifest check."""


class ProviderError(InferenceError):
    """The requested execution provider cannot be used (e.g. ``device="gpu"`` without CUDA)."""
