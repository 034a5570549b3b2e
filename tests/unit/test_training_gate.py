"""The int8 publication gate (training._export.quantization_gate): int8 replaces fp32 only when, on every
evaluation set, its macro-F1 is within 1 point of fp32 and its labels agree with fp32's on >= 99 % of items."""

from __future__ import annotations

from training._export import quantization_gate


def _m(f1: float) -> dict[str, float]:
    return {"macro_f1": f1, "accuracy": f1}


FP32 = {"tweets": _m(0.833), "phrasebank": _m(0.700)}


def test_within_one_point_and_99_percent_agreement_everywhere_passes() -> None:
    gate = quantization_gate(FP32, {"tweets": _m(0.824), "phrasebank": _m(0.702)},
                             {"tweets": 0.990, "phrasebank": 0.995})
    assert gate["passed"] and all(s["passed"] for s in gate["sets"].values())


def test_more_than_one_point_lost_on_one_set_fails() -> None:
    gate = quantization_gate(FP32, {"tweets": _m(0.833), "phrasebank": _m(0.689)},
                             {"tweets": 1.0, "phrasebank": 1.0})
    assert not gate["passed"] and not gate["sets"]["phrasebank"]["passed"] and gate["sets"]["tweets"]["passed"]


def test_labels_agreeing_on_less_than_99_percent_fail_even_with_equal_f1() -> None:
    gate = quantization_gate(FP32, FP32, {"tweets": 0.989, "phrasebank": 1.0})
    assert not gate["passed"] and round(gate["sets"]["tweets"]["f1_drop"], 9) == 0
