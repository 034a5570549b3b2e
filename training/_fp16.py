"""The fp16 copy of a model for CUDA (``model.fp16.onnx``) and its check against fp32 (onnxruntime; no torch).

:func:`make_fp16` runs ONNX Runtime's transformer optimizer on the fp32 export
(``onnxruntime.transformers.optimizer.optimize_model``, ``model_type="bert"``:
fuses SkipLayerNormalization and BiasGelu) and converts weights and
activations to float16 with ``keep_io_types=True``: inputs stay int64
``input_ids`` / ``attention_mask`` and outputs float32 ``sentiment_logits`` /
``topic_logits``, so the scorer feeds it like the CPU model. The word-embedding
table (the largest ``Gather`` weight, half of MiniLM's parameters) is then
stored as int8 with one float16 scale per row (symmetric, scale = max|row| / 127;
looked up as ``Gather`` int8 → ``Cast`` → ``Mul`` by the gathered row scale):
the file shrinks from 45.2 to 33.5 MB, which keeps a checkout with the CPU and
the CUDA model under the device machines' 64 MiB working-tree limit, and the
compute stays float16. The scorer loads
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

__all__ = ["FP16_ATOL", "FP16_MIN_AGREEMENT", "Fp16CheckError", "check_fp16", "int8_embedding_rows", "make_fp16"]

#: Largest tolerated |fp16 logit - fp32 logit| (absolute, logit units) on the random batches.
#: float16 alone (11-bit significand, relative rounding 4.9e-4) gives ~4e-3 on MiniLM-L6; the int8
#: word-embedding rows (rounding up to 1/254 of each row's maximum) give up to 0.12 on random
#: 128-token batches of the shipped model (metrics.json ``fp16_check``), which are far from real
#: text. What decides is the label check on the real evaluation sets (:data:`FP16_MIN_AGREEMENT`).
FP16_ATOL = 0.25
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


def int8_embedding_rows(model: Any) -> str:
    """Store the largest ``Gather`` weight of ``model`` (an ``onnx.ModelProto``, changed in place) as
    int8 rows with a per-row scale of the table's float type (module docstring).

    Returns:
        the name of the replaced initializer.

    Raises:
        ValueError: the graph has no ``Gather`` over an initializer.
    """
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    gathers = [n for n in g.node if n.op_type == "Gather" and n.input[0] in inits]
    if not gathers:
        raise ValueError("no Gather over an initializer (no embedding table) in the graph")
    node = max(gathers, key=lambda n: int(np.prod(inits[n.input[0]].dims)))
    table_init = inits[node.input[0]]
    table = numpy_helper.to_array(table_init)
    rows = table.astype(np.float32)
    scale = np.abs(rows).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(rows / scale), -127, 127).astype(np.int8)
    name, ids, out = table_init.name, node.input[1], node.output[0]
    g.initializer.remove(table_init)
    g.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                          numpy_helper.from_array(scale.astype(table.dtype), f"{name}_row_scale")])
    at = list(g.node).index(node)
    g.node.remove(node)
    new = [helper.make_node("Gather", [f"{name}_int8", ids], [f"{out}_int8"], name=f"{node.name}_int8", axis=0),
           helper.make_node("Gather", [f"{name}_row_scale", ids], [f"{out}_scale"], name=f"{node.name}_scale", axis=0),
           helper.make_node("Cast", [f"{out}_int8"], [f"{out}_cast"], name=f"{node.name}_cast",
                            to=helper.np_dtype_to_tensor_dtype(table.dtype)),
           helper.make_node("Mul", [f"{out}_cast", f"{out}_scale"], [out], name=f"{node.name}_dequant")]
    for k, n in enumerate(new):
        g.node.insert(at + k, n)
    return name


def make_fp16(fp32_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
              base_model: str | os.PathLike[str] | None = None, int8_embeddings: bool = True) -> Path:
    """Write the fused float16 copy of an fp32 BERT-style ONNX graph (module docstring).

    Args:
        fp32_path: the fp32 export (inputs int64 [batch, seq], outputs float32 logits).
        out_path: where ``model.fp16.onnx`` goes (one self-contained file).
        base_model: the encoder folder whose ``config.json`` gives the attention heads and hidden size.
        int8_embeddings: store the word-embedding table as int8 rows (:func:`int8_embedding_rows`).

    Raises:
        RuntimeError: the optimizer or the conversion fails.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = _encoder_shape(base_model)
    logging.getLogger("onnxruntime.transformers").setLevel(logging.WARNING)
    model = optimize_model(str(fp32_path), model_type="bert", num_heads=heads, hidden_size=hidden,
                           opt_level=1, use_gpu=True)
    model.convert_float_to_float16(keep_io_types=True)
    if int8_embeddings:
        int8_embedding_rows(model.model)
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
        ``{"atol", "max_abs_diff", "cases", "min_agreement", "agreement": {set: fraction},
        "quality": {set: {"accuracy", "macro_f1", "n"}}, "passed": True}`` (fractions in [0, 1]).

    Raises:
        Fp16CheckError: a logit differs by more than ``atol`` or a set's agreement is below ``min_agreement``.
    """
    import onnxruntime as ort

    from ._evaluate import OnnxClassifier, classification_metrics, predict_sets

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    fp32 = ort.InferenceSession(str(fp32_path), sess_options=so, providers=["CPUExecutionProvider"])
    fp16 = ort.InferenceSession(str(fp16_path), sess_options=so, providers=["CPUExecutionProvider"])
    worst, cases = _random_parity(fp32, fp16, vocab, seed)
    del fp32, fp16
    pred = predict_sets(OnnxClassifier(fp16_path, tokenizer_path, 128, threads), sets)
    agreement = {k: float(np.mean(pred[k] == fp32_pred[k])) for k in sets}
    quality = {k: {m: v for m, v in classification_metrics(ds.labels, pred[k], ds.label_names).items()
                   if m in ("accuracy", "macro_f1", "n")} for k, ds in sets.items()}
    record = {"atol": atol, "max_abs_diff": worst, "cases": cases, "min_agreement": min_agreement,
              "agreement": agreement, "quality": quality, "passed": True}
    problems = ([f"max |fp16 - fp32 logit| {worst:.3g} > {atol}"] if not worst <= atol else []) + \
        [f"{k}: labels agree on {100 * a:.2f} % < {100 * min_agreement:.1f} %" for k, a in agreement.items()
         if a < min_agreement]
    if problems:
        raise Fp16CheckError("fp16 check FAILED:\n  " + "\n  ".join(problems))
    log.info("fp16 check ok: max |diff| %.3g <= %g; label agreement %s", worst, atol,
             {k: round(100 * a, 2) for k, a in agreement.items()})
    return record
