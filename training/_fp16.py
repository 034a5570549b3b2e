"""The fp16 copy of a model for CUDA (``model.fp16.onnx``) and its check against fp32 (onnxruntime; no torch).

:func:`make_fp16` runs ONNX Runtime's transformer optimizer on the fp32 export
(``onnxruntime.transformers.optimizer.optimize_model``, ``model_type="bert"``:
fuses SkipLayerNormalization and BiasGelu) and converts weights and
activations to float16 with ``keep_io_types=True``: inputs stay int64
``input_ids`` / ``attention_mask`` and outputs float32 ``sentiment_logits`` /
``topic_logits``, so the scorer feeds it like the CPU model. The scorer loads
it only on the CUDA execution provider (``inference.model_file``); on the CPU
the fp32 or int8 ``model.onnx`` is used.

:func:`check_fp16` runs both graphs on the CPU execution provider and fails
unless (a) logits agree within :data:`FP16_ATOL` on random padded batches of
batch 1/3/32 × sequence 7/64/128 tokens and (b) the argmax labels agree on at
least :data:`FP16_MIN_AGREEMENT` of every evaluation set's items.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["FP16_ATOL", "FP16_MIN_AGREEMENT", "Fp16CheckError", "check_fp16", "make_fp16"]

#: Largest tolerated |fp16 logit - fp32 logit| (absolute, logit units). float16 has an 11-bit
#: significand (relative rounding 4.9e-4); measured on MiniLM-L6: ~4e-3 (metrics.json ``fp16``).
FP16_ATOL = 0.05
#: Least share of items of every evaluation set whose fp16 label equals the fp32 label.
FP16_MIN_AGREEMENT = 0.995


class Fp16CheckError(RuntimeError):
    """The fp16 graph's logits or labels differ from fp32 by more than the tolerances."""


def _encoder_shape(base_model: str | os.PathLike[str] | None) -> tuple[int, int]:
    """(attention heads, hidden size) from the encoder's ``config.json``; (0, 0) = let ORT detect them."""
    if base_model is None or not (Path(base_model) / "config.json").is_file():
        return 0, 0
    cfg = json.loads((Path(base_model) / "config.json").read_text(encoding="utf-8"))
    return int(cfg.get("num_attention_heads", 0)), int(cfg.get("hidden_size", 0))


def make_fp16(fp32_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
              base_model: str | os.PathLike[str] | None = None) -> Path:
    """Write the fused float16 copy of an fp32 BERT-style ONNX graph (module docstring).

    Args:
        fp32_path: the fp32 export (inputs int64 [batch, seq], outputs float32 logits).
        out_path: where ``model.fp16.onnx`` goes (one self-contained file).
        base_model: the encoder folder whose ``config.json`` gives the attention heads and hidden size.

    Raises:
        RuntimeError: the optimizer or the conversion fails.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = _encoder_shape(base_model)
    logging.getLogger("onnxruntime.transformers").setLevel(logging.WARNING)
    model = optimize_model(str(fp32_path), model_type="bert", num_heads=heads, hidden_size=hidden,
                           opt_level=1, use_gpu=True)
    model.convert_float_to_float16(keep_io_types=True)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save_model_to_file(str(out_path))
    log.info("fp16 copy %s (%.1f MB); fused %s", out_path, out_path.stat().st_size / 1e6,
             {k: v for k, v in model.get_fused_operator_statistics().items() if v})
    return out_path


def _random_parity(fp32: Any, fp16: Any, vocab: int, seed: int) -> tuple[float, list[dict[str, Any]]]:
    """Max |Δlogit| over batch 1/3/32 × seq 7/64/128 random padded batches, and the per-case record."""
    from ._export import OUTPUT_NAMES, PARITY_BATCHES, PARITY_SEQ_LENS, _parity_inputs

    rng = np.random.default_rng(seed)
    worst, cases = 0.0, []
    for b in PARITY_BATCHES:
        for s in PARITY_SEQ_LENS:
            ids, mask = _parity_inputs(b, s, vocab, rng)
            feeds = {"input_ids": ids, "attention_mask": mask}
            ref = fp32.run(list(OUTPUT_NAMES), feeds)
            got = fp16.run(list(OUTPUT_NAMES), feeds)
            case: dict[str, Any] = {"batch": b, "seq": s}
            for name, r, g in zip(OUTPUT_NAMES, ref, got):
                if g.shape != r.shape or g.dtype != np.float32:
                    raise Fp16CheckError(f"{name} b={b} s={s}: fp16 gives {g.shape} {g.dtype}, fp32 {r.shape} float32")
                case[name] = float(np.max(np.abs(g - r)))
                worst = max(worst, case[name])
            cases.append(case)
    return worst, cases


def check_fp16(fp32_path: str | os.PathLike[str], fp16_path: str | os.PathLike[str],
               tokenizer_path: str | os.PathLike[str], sets: dict[str, Any], fp32_pred: dict[str, np.ndarray],
               threads: int = 2, atol: float = FP16_ATOL, min_agreement: float = FP16_MIN_AGREEMENT,
               vocab: int = 30522, seed: int = 0) -> dict[str, Any]:
    """Check the fp16 graph against fp32 on the CPU execution provider (module docstring).

    Args:
        sets: ``{set name: LabelledSet}`` evaluation sets.
        fp32_pred: ``{set name: int [n]}`` fp32 argmax labels of those sets.
        vocab: token ids of the random batches are drawn below this.

    Returns:
        ``{"atol", "max_abs_diff", "cases", "min_agreement", "agreement": {set: fraction}, "passed": True}``.

    Raises:
        Fp16CheckError: a logit differs by more than ``atol`` or a set's agreement is below ``min_agreement``.
    """
    import onnxruntime as ort

    from ._evaluate import OnnxClassifier, predict_sets

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    fp32 = ort.InferenceSession(str(fp32_path), sess_options=so, providers=["CPUExecutionProvider"])
    fp16 = ort.InferenceSession(str(fp16_path), sess_options=so, providers=["CPUExecutionProvider"])
    worst, cases = _random_parity(fp32, fp16, vocab, seed)
    del fp32, fp16
    pred = predict_sets(OnnxClassifier(fp16_path, tokenizer_path, 128, threads), sets)
    agreement = {k: float(np.mean(pred[k] == fp32_pred[k])) for k in sets}
    record = {"atol": atol, "max_abs_diff": worst, "cases": cases, "min_agreement": min_agreement,
              "agreement": agreement, "passed": True}
    problems = ([f"max |fp16 - fp32 logit| {worst:.3g} > {atol}"] if not worst <= atol else []) + \
        [f"{k}: labels agree on {100 * a:.2f} % < {100 * min_agreement:.1f} %" for k, a in agreement.items()
         if a < min_agreement]
    if problems:
        raise Fp16CheckError("fp16 check FAILED:\n  " + "\n  ".join(problems))
    log.info("fp16 check ok: max |diff| %.3g <= %g; label agreement %s", worst, atol,
             {k: round(100 * a, 2) for k, a in agreement.items()})
    return record
