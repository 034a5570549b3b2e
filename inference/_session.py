"""ONNX Runtime session creation, tuned per execution provider.

CPU: all graph optimizations (ORT's fusions: SkipLayerNormalization,
MatMul+Add, dynamic-quantized MatMul, ...), intra-op threads = the cores this
process may really use (CPU affinity and the cgroup CPU quota, so several
daemons sharing a host do not oversubscribe it), one inter-op thread
(sequential execution: a BERT graph is a chain).

CUDA: the CUDA execution provider with its defaults for a fixed device,
``cudnn_conv_algo_search=HEURISTIC`` and a kSameAsRequested arena (buffers
grow to the batch shapes actually seen and are then reused). IO binding and
fp16 model selection live in the scorer (``inference._scorer``).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from inference._errors import ProviderError

__all__ = ["Device", "cgroup_cpu_limit", "create_session", "usable_cpu_count"]

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "gpu"]

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
_CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def cgroup_cpu_limit(cpu_max: Path = _CGROUP_V2_CPU_MAX) -> float | None:
    """The CPU quota of this process's cgroup, in cores, or ``None`` when unlimited/unknown.

    Reads cgroup v2 ``cpu.max`` (``"<quota_us> <period_us>"`` or ``"max <period>"``),
    else cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1 = none).
    A container started with ``--cpus=1.5`` has a limit of 1.5.
    """
    try:
        if cpu_max.is_file():
            quota, period = cpu_max.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if _CGROUP_V1_QUOTA.is_file():
            quota_us = int(_CGROUP_V1_QUOTA.read_text())
            return None if quota_us <= 0 else quota_us / int(_CGROUP_V1_PERIOD.read_text())
    except (OSError, ValueError):
        return None
    return None


def usable_cpu_count() -> int:
    """Cores this process may run on: CPU affinity, capped by the cgroup quota (rounded up).

    Not the host's total (``os.cpu_count()``), which oversubscribes a
    container or a core-pinned daemon.
    """
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = max(1, os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = max(1, min(cores, math.ceil(limit)))
    return cores


def session_options(intra_op_threads: int = 0, spin: bool = True) -> ort.SessionOptions:
    """CPU-side session options (see the module docstring).

    Args:
        intra_op_threads: 0 = :func:`usable_cpu_count`.
        spin: let idle intra-op threads busy-wait for the next op (ORT's
            default; faster on dedicated cores, wasteful on a crowded host).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads or usable_cpu_count()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


def _providers(device: Device, available: list[str]) -> list[str | tuple[str, dict[str, str]]]:
    if device in ("auto", "gpu") and CUDA in available:
        cuda_options = {"device_id": "0", "arena_extend_strategy": "kSameAsRequested",
                        "cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": "1"}
        return [(CUDA, cuda_options), CPU]
    if device == "gpu":
        raise ProviderError(
            f"device='gpu' but {CUDA} is not available (have {available}); "
            "install the [gpu] extra (onnxruntime-gpu) and check the CUDA driver"
        )
    return [CPU]


def create_session(
    model_path: Path, device: Device = "auto", intra_op_threads: int = 0, spin: bool = True
) -> ort.InferenceSession:
    """Open an ONNX model on the best available execution provider.

    Args:
        model_path: the ``.onnx`` file.
        device: ``"gpu"`` requires CUDA (fails otherwise); ``"auto"`` uses
            CUDA when available, else warns once and uses the CPU; ``"cpu"``
            forces the CPU provider.
        intra_op_threads: ONNX Runtime intra-op threads; 0 = the number of
            cores this process may use (:func:`usable_cpu_count`).
        spin: see :func:`session_options`.

    Returns:
        the session; ``session.get_providers()[0]`` is the provider in use.

    Raises:
        ProviderError: ``device="gpu"`` and CUDA is not usable.
    """
    available = ort.get_available_providers()
    providers = _providers(device, available)
    options = session_options(intra_op_threads, spin)
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    in_use = session.get_providers()[0]
    if device == "gpu" and in_use != CUDA:
        raise ProviderError(f"device='gpu' but ONNX Runtime fell back to {in_use}")
    if device == "auto" and in_use != CUDA:
        log.warning("no usable CUDA execution provider; scoring on %s", in_use)
    log.info(
        "ONNX Runtime %s: provider=%s in use for %s (intra_op_threads=%d)",
        ort.__version__, in_use, model_path, options.intra_op_num_threads,
    )
    return session
