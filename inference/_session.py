"""ONNX Runtime session creation with execution-provider selection."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from inference._errors import ProviderError

__all__ = ["create_session", "usable_cpu_count"]

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "gpu"]


def usable_cpu_count() -> int:
    """Cores this process may run on (CPU affinity), not the host's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def create_session(model_path: Path, device: Device = "auto", intra_op_threads: int = 0) -> ort.InferenceSession:
    """Open an ONNX model on the best available execution provider.

    Args:
        model_path: the ``.onnx`` file.
        device: ``"gpu"`` requires CUDA (fails otherwise); ``"auto"`` uses
            CUDA when available, else warns once and uses the CPU; ``"cpu"``
            forces the CPU provider.
        intra_op_threads: ONNX Runtime intra-op threads; 0 = the number of
            cores this process may use (no oversubscription).

    Returns:
        the session; ``session.get_providers()[0]`` is the provider in use.

    Raises:
        ProviderError: ``device="gpu"`` and CUDA is not usable.
    """
    available = ort.get_available_providers()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads or usable_cpu_count()
    options.inter_op_num_threads = 1
    providers: list[str] = ["CPUExecutionProvider"]
    if device in ("auto", "gpu") and "CUDAExecutionProvider" in available:
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    elif device == "gpu":
        raise ProviderError(
            f"device='gpu' but CUDAExecutionProvider is not available (have {available}); "
            "install the [gpu] extra (onnxruntime-gpu) and check the CUDA driver"
        )
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    in_use = session.get_providers()[0]
    if device == "gpu" and in_use != "CUDAExecutionProvider":
        raise ProviderError(f"device='gpu' but ONNX Runtime fell back to {in_use}")
    if device == "auto" and in_use != "CUDAExecutionProvider":
        log.warning("no usable CUDA execution provider; scoring on %s", in_use)
    log.info("ONNX Runtime %s: %s in use for %s", ort.__version__, in_use, model_path)
    return session
