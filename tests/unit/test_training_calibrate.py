"""Per-class logit offsets (training._calibrate): the coordinate search, the cross-validated
decision and baking the offsets into a real ONNX graph's bias (numpy, onnx, onnxruntime; no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from training._calibrate import (  # noqa: E402
    apply_offsets,
    bake_logit_offsets,
    calibrate_heads,
    cross_validated_gain,
    fit_logit_offsets,
    macro_f1,
)
from training._evaluate import classification_metrics  # noqa: E402


def _biased_logits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3 balanced classes; the logits carry a +1.5 bias towards class 1 (a majority-leaning head)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    logits = rng.normal(0, 1, (n, 3)) + 2.0 * np.eye(3)[y]
    logits[:, 1] += 1.5
    return logits.astype(np.float32), y


def test_macro_f1_matches_classification_metrics() -> None:
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 300), rng.integers(0, 4, 300)  # class 4 never predicted
    assert macro_f1(y, p, 5) == pytest.approx(classification_metrics(y, p, list("abcde"))["macro_f1"])


def test_offsets_undo_a_known_logit_bias_and_help_out_of_sample() -> None:
    logits, y = _biased_logits(3000, 1)
    offsets, score = fit_logit_offsets(logits, y)
    assert offsets[0] == 0.0
    # removing the +1.5 on class 1 means offset(1) ≈ -1.5 relative to the others
    assert offsets[1] - (offsets[0] + offsets[2]) / 2 == pytest.approx(-1.5, abs=0.4)
    assert score > macro_f1(y, logits.argmax(1), 3) + 0.05
    test_logits, test_y = _biased_logits(3000, 2)  # fresh items: the gain carries over
    assert macro_f1(test_y, apply_offsets(test_logits, offsets), 3) > macro_f1(test_y, test_logits.argmax(1), 3) + 0.05
    assert cross_validated_gain(logits, y)["gain"] > 0.05


def test_unbiased_head_keeps_zero_offsets() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(3000) % 3
    logits = (rng.normal(0, 1, (3000, 3)) + 2.0 * np.eye(3)[y]).astype(np.float32)
    rec = calibrate_heads({"sentiment_logits": logits}, {"sentiment_logits": y},
                          {"sentiment_logits": ["negative", "neutral", "positive"]})["sentiment_logits"]
    assert rec["cv"]["gain"] < rec["min_cv_gain"] and not rec["applied"] and rec["offsets"] is None
    assert rec["dev_macro_f1_after"] == rec["dev_macro_f1_before"]


def test_fit_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        fit_logit_offsets(np.zeros((4, 3)), np.zeros(5, dtype=int))


def _head_graph(path: Path, op: str) -> Path:
    """x float [batch, 4] -> one linear head 'sentiment_logits' [batch, 3], as Gemm (beta 0.5) or MatMul+Add."""
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    b = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("sentiment_logits", TensorProto.FLOAT, ["batch", 3])
    if op == "Gemm":
        nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["sentiment_logits"], transB=1, beta=0.5)]
        inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    else:
        nodes = [helper.make_node("MatMul", ["x", "Wt"], ["mm"]), helper.make_node("Add", ["mm", "B"], ["sentiment_logits"])]
        inits = [numpy_helper.from_array(w.T.copy(), "Wt"), numpy_helper.from_array(b, "B")]
    model = helper.make_model(helper.make_graph(nodes, "head", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(path))
    return path


@pytest.mark.parametrize("op", ["Gemm", "Add"])
def test_baked_offsets_shift_the_logits_and_keep_the_contract(tmp_path: Path, op: str) -> None:
    src = _head_graph(tmp_path / "src.onnx", op)
    offsets = np.array([0.0, -0.7, 0.25], dtype=np.float32)
    dst = bake_logit_offsets(src, tmp_path / "dst.onnx", {"sentiment_logits": offsets})
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    before = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(after.run(None, {"x": x})[0], before.run(None, {"x": x})[0] + offsets, atol=1e-6)
    assert [(o.name, o.shape) for o in after.get_outputs()] == [(o.name, o.shape) for o in before.get_outputs()]
    assert [i.name for i in after.get_inputs()] == ["x"]


def test_bake_refuses_an_output_without_a_bias(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("sentiment_logits", TensorProto.FLOAT, ["batch", 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["sentiment_logits"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(tmp_path / "relu.onnx"))
    with pytest.raises(ValueError, match="without a bias"):
        bake_logit_offsets(tmp_path / "relu.onnx", tmp_path / "out.onnx", {"sentiment_logits": np.zeros(3)})
    src = _head_graph(tmp_path / "src.onnx", "Gemm")
    with pytest.raises(ValueError, match="shape"):
        bake_logit_offsets(src, tmp_path / "out.onnx", {"sentiment_logits": np.zeros(4)})
