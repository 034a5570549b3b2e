"""``finsentry bench`` parts that need no broker: FLOP count, headlines, torch-missing path, JSON keys."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys

import pytest

from finsentry.bench import BenchConfig, bert_flops_per_item, format_table, load_headlines, run_bench
from finsentry.bench._data import BENZINGA, data_dir
from finsentry.config import REPO_ROOT

needs_data = pytest.mark.skipif(not (data_dir() / BENZINGA).is_file(), reason=f"{data_dir() / BENZINGA} missing")


def test_bert_flops_formula() -> None:
    # 6 layers x L tokens x (2 x 12 d^2 + 4 L d) + heads 2 d x 23, d = 384, d_ff = 4d (Kaplan et al. 2020, Table 1)
    d, L = 384, 20
    expected = 6 * L * (24 * d * d + 4 * L * d) + 2 * d * 23
    assert bert_flops_per_item(L) == expected
    assert bert_flops_per_item(40) > 2 * bert_flops_per_item(20) - 1  # grows at least linearly in L


@needs_data
def test_load_headlines_distinct_and_in_file_order() -> None:
    titles = load_headlines(50)
    assert len(titles) == len(set(titles)) == 50 and all(titles)
    assert titles[:2] == load_headlines(2)
    with pytest.raises(ValueError, match="distinct titles"):
        load_headlines(10**9)


@needs_data
def test_bench_without_torch_says_so_and_runs_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_torch(name: str, *args: object, **kwargs: object):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "finsentry.bench._hf", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_torch)
    cfg = BenchConfig(model=REPO_ROOT / "models", n=64, hf_n=16, repeats=1, batch_sizes=(8, 64), e2e=False)
    result = run_bench(cfg)
    assert any("torch/transformers not installed" in n and "[train]" in n for n in result["notes"])
    assert result["hf_pipeline_docs_per_s"] is None and result["ratio"] is None
    assert result["finsentry_docs_per_s"] > 0 and set(result["finsentry_docs_per_s_by_batch"]) == {8, 64}
    assert 0 < result["model_flops_per_item"] and result["matmul_gflops"] > 0
    for key in ("finsentry_docs_per_s", "hf_pipeline_docs_per_s", "ratio", "label_agreement", "e2e_docs_per_s",
                "p99_ms_at_50pct"):
        assert key in result
    json.dumps(result, default=str)
    table = format_table(result)
    assert "finsentry docs/s, micro-batch 64" in table and "torch/transformers not installed" in table


def test_cli_bench_rejects_bad_batch_sizes() -> None:
    proc = subprocess.run([sys.executable, "-m", "finsentry", "bench", "--batch-sizes", "8,0"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--batch-sizes" in proc.stderr


def test_weights_recovered_from_the_published_onnx_give_the_scorers_labels(tmp_path) -> None:
    """A fresh clone has no best.pt: the HF side runs the shipped model's weights read back from model.onnx."""
    pytest.importorskip("transformers")
    from finsentry.bench._hf import hf_classifier, hf_labels
    from inference import SENTIMENT_LABELS, Scorer

    scorer = Scorer(REPO_ROOT / "models", "cpu", 1)
    texts = ["Acme cuts full-year guidance, shares slide", "Acme beats estimates and raises its dividend",
             "Acme to hold annual meeting on May 5", "Regulators fine Acme $2bn over fraud",
             "Acme shares jump after record quarter"]
    classifier = hf_classifier(tmp_path / "no-run", scorer.folder.path)  # no best.pt there
    scores = scorer.score_texts(texts)
    ours = [SENTIMENT_LABELS[int(row.argmax())] for row in scores.sentiment]
    assert hf_labels(classifier, texts, batch_size=8) == ours
    assert len(set(ours)) >= 2  # the texts are not all one label: the comparison can fail
