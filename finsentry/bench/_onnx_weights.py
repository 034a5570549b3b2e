"""The trainer's fp32 weights recovered from a published ONNX model (for the HF side of the bench).

A fresh clone has the published model folder but not the training run's
``best.pt`` (90 MB, not shipped). The bench's Hugging Face side needs
PyTorch weights of *the same model*, so this module reads them back out of
the ONNX graph, as a state_dict keyed like ``training._model.MultiTaskModel``:

* fp32 initializers that carry the trainer's names (LayerNorm weights and
  biases, every bias) are taken as they are;
* ``MatMulNBits`` weights (ONNX Runtime contrib op, used by the block-wise
  int8 model): ``B`` uint8 [N, K / block, block] with ``scales`` float32
  [N, K / block] and no zero points (default ``2 ** (bits - 1)``) give
  ``W[n, b * block + i] = (B[n, b, i] - 128) * scales[n, b]``, i.e. the
  ``torch.nn.Linear`` weight [out = N, in = K]; its name comes from the bias
  of the ``Add`` that consumes the product (``<prefix>.bias`` ->
  ``<prefix>.weight``). Source: ONNX Runtime contrib operators,
  ``com.microsoft.MatMulNBits`` (docs/ContribOperators.md);
* plain ``MatMul`` weights stored transposed (``<name>.weight_Transposed``,
  [K, N]) are transposed back;
* ``DequantizeLinear`` inputs ``<name>_quantized``, ``<name>_scale``,
  ``<name>_zero_point`` (the int8 embedding tables) give
  ``(q - zero_point) * scale``.

The recovered weights equal the published model's effective weights (its
int8 rounding included): the HF pipeline then runs the shipped model's
weights in fp32 PyTorch, which is what a user handed those weights would do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["state_dict_from_onnx"]

_BIAS = ".bias"


def _consumers(graph) -> dict[str, list]:  # noqa: ANN001 (onnx GraphProto)
    out: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _bias_prefix(node, consumers: dict[str, list], inits: dict[str, np.ndarray]) -> str | None:  # noqa: ANN001
    for add in consumers.get(node.output[0], []):
        if add.op_type == "Add":
            for name in add.input:
                if name in inits and name.endswith(_BIAS):
                    return name[: -len(_BIAS)]
    return None


def _dequantize_nbits(node, inits: dict[str, np.ndarray]) -> np.ndarray:  # noqa: ANN001
    attrs = {a.name: a.i for a in node.attribute}
    if attrs.get("bits") != 8 or len(node.input) > 3 and node.input[3]:
        raise ValueError(f"{node.name}: only 8-bit MatMulNBits without zero points are supported")
    blob, scales = inits[node.input[1]], inits[node.input[2]]
    n, k = attrs["N"], attrs["K"]
    w = (blob.astype(np.float32) - 128.0) * scales.reshape(n, -1, 1).astype(np.float32)
    return w.reshape(n, -1)[:, :k]


def state_dict_from_onnx(model_path: Path) -> dict[str, np.ndarray]:
    """Trainer-named fp32 weights of an exported finsentry model (see the module docstring).

    Args:
        model_path: a ``model.onnx`` written by ``finsentry train`` (fp32,
            dynamic int8 embeddings or block-wise int8).

    Returns:
        ``name -> float32 array``, e.g. ``encoder.encoder.layer.0.attention.self.query.weight``
        [384, 384], ``sentiment_head.weight`` [3, 384].

    Raises:
        ValueError: a quantized weight whose layer cannot be named, or an
            unsupported quantization.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers = _consumers(graph)
    state: dict[str, np.ndarray] = {k: v.astype(np.float32) for k, v in inits.items()
                                    if v.dtype == np.float32 and (k.endswith(_BIAS) or "LayerNorm" in k
                                                                 or k.endswith(".weight"))}
    for name, value in inits.items():
        if name.endswith(".weight_Transposed"):
            state[name[: -len("_Transposed")]] = value.T.astype(np.float32)
        elif name.endswith("_quantized") and name[: -len("_quantized")] + "_scale" in inits:
            base = name[: -len("_quantized")]
            zero = inits[base + "_zero_point"].astype(np.float32)
            state[base] = (value.astype(np.float32) - zero) * inits[base + "_scale"].astype(np.float32)
    for node in graph.node:
        if node.op_type == "MatMulNBits":
            prefix = _bias_prefix(node, consumers, inits)
            if prefix is None:
                raise ValueError(f"{node.name}: no bias Add names this weight")
            state[prefix + ".weight"] = _dequantize_nbits(node, inits)
    return state
