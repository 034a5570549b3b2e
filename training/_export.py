"""ONNX export, torch/onnxruntime parity check, int8 dynamic quantisation and its gate.

torch is imported inside the functions that need it; quantisation and the gate
only need onnxruntime and numpy.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("sentiment_logits", "topic_logits")
OPSET = 17
PARITY_ATOL = 1e-4
PARITY_BATCHES = (1, 3, 32)
PARITY_SEQ_LENS = (7, 64, 128)

GATE_MAX_F1_DROP = 0.01  # 1 macro-F1 point, as a fraction
GATE_MIN_AGREEMENT = 0.99  # issue #4: >= 99 % label agreement with fp32 on every evaluation set
BLOCKWISE_BLOCK_SIZE = 64


class ParityError(RuntimeError):
    """onnxruntime logits differ from torch logits by more than the tolerance."""


def export_onnx(model, path: str | os.PathLike[str], opset: int = OPSET) -> Path:
    """Export a :class:`training._model.MultiTaskModel` to a single self-contained ONNX file.

    Graph: inputs ``input_ids``, ``attention_mask`` int64 [batch, seq]; outputs
    ``sentiment_logits`` float32 [batch, 3] and ``topic_logits`` float32
    [batch, 20]; ``batch`` and ``seq`` are dynamic. ``token_type_ids`` is not a
    graph input (the model feeds zeros internally). Uses the torch.export-based
    exporter (``dynamo=True``) with weights embedded (no external data file).
    The model's encoder should use ``attn_implementation="eager"`` (plain
    MatMul/Softmax attention, which int8 dynamic quantisation handles).

    Raises:
        RuntimeError: the export fails, or the written graph does not have the
            expected input/output names.
    """
    import onnx
    import torch
    from torch.export import Dim

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    ids = torch.tensor([[101, 2054, 2003, 1996, 3006, 102, 0], [101, 4518, 2015, 2039, 2651, 1012, 102]])
    mask = (ids != 0).to(torch.int64)
    batch, seq = Dim("batch", min=1, max=4096), Dim("seq", min=2, max=512)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        prog = torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
        )
    del prog
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    got_in = [i.name for i in m.graph.input]
    got_out = [o.name for o in m.graph.output]
    if got_in != list(INPUT_NAMES) or got_out != list(OUTPUT_NAMES):
        raise RuntimeError(f"exported graph has inputs {got_in} / outputs {got_out}, "
                           f"expected {list(INPUT_NAMES)} / {list(OUTPUT_NAMES)}")
    stray = [p for p in path.parent.glob(path.name + ".data")]
    if stray:
        raise RuntimeError(f"export wrote external data {stray}; expected one self-contained file")
    return path


def _parity_inputs(batch: int, seq: int, vocab: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random token batches shaped like real ones: ``[CLS] tokens [SEP]`` then padding,
    lengths drawn in [2, seq] with the first row full length. int64 [batch, seq] each."""
    ids = np.zeros((batch, seq), dtype=np.int64)
    mask = np.zeros((batch, seq), dtype=np.int64)
    for b in range(batch):
        n = seq if b == 0 else int(rng.integers(2, seq + 1))
        ids[b, :n] = rng.integers(1000, vocab, size=n)
        ids[b, 0], ids[b, n - 1] = 101, 102
        mask[b, :n] = 1
    return ids, mask


def check_parity(
    model,
    onnx_path: str | os.PathLike[str],
    batches: Sequence[int] = PARITY_BATCHES,
    seq_lens: Sequence[int] = PARITY_SEQ_LENS,
    atol: float = PARITY_ATOL,
    seed: int = 0,
    threads: int = 2,
) -> dict[str, Any]:
    """Compare torch and onnxruntime logits on random padded batches.

    For every ``batch x seq`` combination (default 1, 3, 32 x 7, 64, 128; 128 is
    the inference maximum) both outputs must satisfy
    ``max |onnx - torch| <= atol`` (absolute, in logit units; default 1e-4).

    Returns:
        ``{"atol", "max_abs_diff", "cases": [{"batch", "seq", "sentiment_logits", "topic_logits"}]}``
        with the max absolute difference per output.

    Raises:
        ParityError: any case exceeds ``atol`` or returns a wrong shape/dtype.
    """
    import onnxruntime as ort
    import torch

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
    vocab = int(model.encoder.config.vocab_size)
    rng = np.random.default_rng(seed)
    model = model.eval()
    cases, failures, worst = [], [], 0.0
    for b in batches:
        for s in seq_lens:
            ids, mask = _parity_inputs(b, s, vocab, rng)
            with torch.no_grad():
                ref = [t.numpy() for t in model(torch.from_numpy(ids), torch.from_numpy(mask))]
            got = sess.run(list(OUTPUT_NAMES), {"input_ids": ids, "attention_mask": mask})
            case: dict[str, Any] = {"batch": b, "seq": s}
            for name, r, g in zip(OUTPUT_NAMES, ref, got):
                if g.shape != r.shape or g.dtype != np.float32:
                    failures.append(f"{name} b={b} s={s}: shape/dtype {g.shape} {g.dtype} != {r.shape} float32")
                    continue
                d = float(np.max(np.abs(g - r)))
                case[name] = d
                worst = max(worst, d)
                if not d <= atol:
                    failures.append(f"{name} b={b} s={s}: max |diff| {d:.3g} > {atol}")
            cases.append(case)
    if failures:
        raise ParityError("ONNX parity check FAILED:\n  " + "\n  ".join(failures))
    log.info("ONNX parity ok: max |diff| %.3g <= %g over %d cases", worst, atol, len(cases))
    return {"atol": atol, "max_abs_diff": worst, "cases": cases}


#: node groups :func:`int8_exclusions` can keep in fp32 (see there).
KEEP_FP32_GROUPS = ("heads", "attention", "ffn_out", "last_layer")


def int8_exclusions(fp32_path: str | os.PathLike[str], keep_fp32: Sequence[str]) -> list[str]:
    """Names of the nodes of a BERT-style ONNX graph that int8 quantisation should leave in fp32.

    Groups are found from the graph's structure, not from exporter-specific names:

    * ``heads``: the ``Gemm`` nodes (the classification heads);
    * ``attention``: ``MatMul`` nodes with no weight initializer (Q·Kᵀ and
      softmax·V, activation × activation);
    * ``ffn_out``: weight ``MatMul`` nodes whose weight has more rows than
      columns (the feed-forward down-projection, intermediate → hidden, whose
      GELU inputs have the widest range);
    * ``last_layer``: the weight and attention ``MatMul`` nodes of the last
      encoder layer (graph order; layers counted by their ``Softmax`` nodes).

    Raises:
        ValueError: an unknown group name.
    """
    import onnx

    unknown = set(keep_fp32) - set(KEEP_FP32_GROUPS)
    if unknown:
        raise ValueError(f"unknown node groups {sorted(unknown)}; known: {KEEP_FP32_GROUPS}")
    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    inits = {i.name: tuple(i.dims) for i in graph.initializer}
    weighted = [n for n in graph.node if n.op_type == "MatMul" and any(x in inits for x in n.input)]
    attention = [n for n in graph.node if n.op_type == "MatMul" and not any(x in inits for x in n.input)]
    names: set[str] = set()
    if "heads" in keep_fp32:
        names |= {n.name for n in graph.node if n.op_type == "Gemm"}
    if "attention" in keep_fp32:
        names |= {n.name for n in attention}
    if "ffn_out" in keep_fp32:
        for n in weighted:
            dims = next(inits[x] for x in n.input if x in inits)
            if len(dims) == 2 and dims[0] > dims[1]:
                names.add(n.name)
    if "last_layer" in keep_fp32:
        layers = max(1, sum(n.op_type == "Softmax" for n in graph.node))
        names |= {n.name for n in weighted[-(len(weighted) // layers):]}
        names |= {n.name for n in attention[-(len(attention) // layers):]}
    return sorted(names)


def quantize_int8(fp32_path: str | os.PathLike[str], out_path: str | os.PathLike[str], per_channel: bool,
                  embeddings: bool = True, keep_fp32: Sequence[str] = ()) -> Path:
    """int8 dynamic quantisation (``onnxruntime.quantization.quantize_dynamic``): weights of
    MatMul/Gemm stored as signed int8 (``QuantType.QInt8``), activations quantised
    at run time. ``per_channel`` selects per-output-channel weight scales;
    ``embeddings`` also stores the embedding tables (``Gather``) as int8, which
    shrinks MiniLM from ~58 MB to ~22 MB. ``keep_fp32`` names node groups of
    :func:`int8_exclusions` that stay fp32 (``nodes_to_exclude``).

    Raises:
        ValueError: an unknown ``keep_fp32`` group.
        RuntimeError: onnxruntime fails to quantise the model.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path = Path(out_path)
    quantize_dynamic(
        model_input=str(fp32_path),
        model_output=str(out_path),
        per_channel=per_channel,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm", "Gather"] if embeddings else ["MatMul", "Gemm"],
        nodes_to_exclude=int8_exclusions(fp32_path, keep_fp32) if keep_fp32 else None,
    )
    return out_path


def quantize_int8_blockwise(fp32_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                            block_size: int = BLOCKWISE_BLOCK_SIZE) -> Path:
    """int8 block-wise weight quantisation of every weight MatMul (ONNX Runtime ``MatMulNBits``,
    8 bits, symmetric, ``block_size`` weights per scale along the input dimension) with
    ``accuracy_level=4``: at run time each *row* of activations is quantised to int8 per block and
    multiplied on the int8 (VNNI) kernels, so an item's logits do not depend on the other items of
    its batch (unlike ``quantize_dynamic``, whose activation scale is one per tensor). The
    embedding tables (``Gather``) are then stored as int8 (``quantize_dynamic``, per tensor),
    which keeps MiniLM at ~23 MB; the heads (``Gemm``) stay fp32.

    Source: ONNX Runtime contrib op ``com.microsoft.MatMulNBits`` and
    ``onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer``.

    Raises:
        RuntimeError: onnxruntime fails to quantise the model.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    out_path = Path(out_path)
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # a line per node
    quantizer = MatMulNBitsQuantizer(str(fp32_path), bits=8, block_size=block_size, is_symmetric=True,
                                     accuracy_level=4, op_types_to_quantize=("MatMul",))
    quantizer.process()
    with tempfile.TemporaryDirectory(prefix="finsentry-blockwise-") as tmp:
        mid = Path(tmp) / "matmul-nbits.onnx"
        onnx.save_model(quantizer.model.model, str(mid))
        quantize_dynamic(model_input=str(mid), model_output=str(out_path), per_channel=False,
                         weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"])
    return out_path


def quantization_gate(
    fp32: dict[str, dict[str, Any]],
    int8: dict[str, dict[str, Any]],
    agreement: dict[str, float],
    max_f1_drop: float = GATE_MAX_F1_DROP,
    min_agreement: float = GATE_MIN_AGREEMENT,
) -> dict[str, Any]:
    """Decide whether an int8 model may replace fp32.

    Passes iff on *every* evaluation set ``fp32 macro-F1 - int8 macro-F1 <= max_f1_drop``
    (default 0.01 = 1 point) and the share of items whose int8 label equals the
    fp32 label is ``>= min_agreement`` (default 0.99).

    Args:
        fp32, int8: ``{set_name: metrics}`` from ``classification_metrics``.
        agreement: ``{set_name: fraction of identical argmax labels}``.

    Returns:
        ``{"passed": bool, "max_f1_drop", "min_agreement", "sets": {name: {"fp32_macro_f1",
        "int8_macro_f1", "f1_drop", "agreement", "passed"}}}``.
    """
    sets = {}
    for name in fp32:
        drop = fp32[name]["macro_f1"] - int8[name]["macro_f1"]
        ok = drop <= max_f1_drop + 1e-12 and agreement[name] >= min_agreement
        sets[name] = {
            "fp32_macro_f1": fp32[name]["macro_f1"],
            "int8_macro_f1": int8[name]["macro_f1"],
            "fp32_accuracy": fp32[name]["accuracy"],
            "int8_accuracy": int8[name]["accuracy"],
            "f1_drop": drop,
            "agreement": agreement[name],
            "passed": bool(ok),
        }
    return {
        "passed": all(v["passed"] for v in sets.values()),
        "max_f1_drop": max_f1_drop,
        "min_agreement": min_agreement,
        "sets": sets,
    }
