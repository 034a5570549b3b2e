"""The machine's limit and the model's cost: matmul GFLOP/s and FLOPs per item."""

from __future__ import annotations

import time

import numpy as np

__all__ = ["bert_flops_per_item", "int8_matmul_gops", "matmul_gflops"]


def matmul_gflops(n: int = 2048, repeats: int = 7) -> float:
    """Measured float32 matrix-multiply rate of this machine, GFLOP/s (best of ``repeats``).

    ``numpy.matmul`` of two n x n float32 matrices (numpy's BLAS, all the
    threads it uses by default) costs 2 n^3 FLOPs. The best run, not the
    median, is the limit: on a shared machine slower runs measure the
    neighbours, not the CPU.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up (thread pool, caches)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    return max(rates)


def int8_matmul_gops(m: int = 640, k: int = 384, n: int = 1536, threads: int = 0, repeats: int = 20) -> float | None:
    """ONNX Runtime's own int8 matrix-multiply rate at the model's FFN shape, GOP/s (best of ``repeats``).

    One ``MatMulInteger`` node (uint8 [m, k] x int8 [k, n] -> int32, the
    kernel family of per-tensor dynamic int8, ``DynamicQuantizeMatMul``; the
    block-wise model's ``MatMulNBits`` also multiplies int8 on the same VNNI
    units); m = 640 is a 32-row call of 20-token headlines (the scorer's CPU
    calls are 8 rows since issue #4 run 3: this limit is the larger-GEMM one),
    k x n = 384 x 1536 the FFN's first matrix. 2 m k n operations per call. Returns None when the ``onnx``
    package (``train`` extra) is not installed.
    """
    try:
        from onnx import TensorProto, helper
    except ImportError:
        return None
    import onnxruntime as ort

    from inference import session_options

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "mm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [k, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(0, 255, (m, k), dtype=np.uint8), "b": rng.integers(-127, 127, (k, n), dtype=np.int8)}
    sess.run(None, feeds)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, feeds)
        best = max(best, 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    return best


def bert_flops_per_item(seq_len: float, layers: int = 6, hidden: int = 384, ffn: int = 1536,
                        head_outputs: int = 23) -> float:
    """Forward FLOPs of one item through a BERT encoder + linear heads (1 MAC = 2 FLOPs).

    Per layer and token: Q, K, V, O projections ``4 d^2`` MACs and the FFN
    ``2 d d_ff`` MACs; attention scores ``Q K^T`` and the weighted sum ``A V``
    ``2 L d`` MACs (bidirectional: each token attends to all L). Heads:
    ``d * head_outputs`` MACs on the pooled vector. Embedding look-ups,
    softmax, LayerNorm and GELU are not counted (they are O(L d), <1%).
    This is the count of Kaplan et al. 2020, "Scaling Laws for Neural
    Language Models", Table 1 (``C_forward = 2N + 2 n_layer n_ctx d_attn``
    per token), with d_ff = 4d giving the 24 d^2 of ``2N``, and with the
    context term doubled because a BERT encoder's attention is not causal.
    MiniLM-L6 (all-MiniLM-L6-v2): 6 layers, d = 384, d_ff = 1536.

    Args:
        seq_len: tokens per item (L), [CLS] and [SEP] included.

    Returns:
        FLOPs per item.
    """
    per_token_layer = 2 * (4 * hidden * hidden + 2 * hidden * ffn) + 2 * (2 * seq_len * hidden)
    return layers * seq_len * per_token_layer + 2 * hidden * head_outputs
