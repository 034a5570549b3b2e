"""The scorer over the committed default model (models/), on ONNX Runtime."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from finsentry.config import REPO_ROOT
from inference import (
    ModelFolder,
    ModelFolderError,
    ProviderError,
    ScoredItem,
    Scorer,
    Unscored,
    resolve_model_folder,
)
from ingest import NewsItem

MODELS = REPO_ROOT / "models"
TEXTS = [
    "Acme cuts full-year guidance, shares slide",
    "Apple Reports Q2 EPS Beat, Sales Up 1% Year-Over-Year",
    "Fed holds rates steady",
    "AbbVie Raises FY20 Adj. EPS Guidance",
    "Agilent shares are trading lower after the company missed estimates and cut its outlook",
    "Stocks That Hit 52-Week Lows On Friday",
]


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(MODELS, device="cpu")


def test_registry_default_resolves_to_a_verified_folder() -> None:
    folder = resolve_model_folder(MODELS)
    assert folder.parent == MODELS
    assert folder.name == (MODELS / "DEFAULT").read_text().strip()
    meta = ModelFolder.load(MODELS)
    assert meta.sentiment_labels == ("negative", "neutral", "positive")
    assert len(meta.topic_labels) == 20


def test_tampered_folder_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(resolve_model_folder(MODELS), copy)
    labels = copy / "labels.json"
    labels.write_text(labels.read_text() + " ")
    with pytest.raises(ModelFolderError, match="labels.json: sha256"):
        Scorer(copy, device="cpu")
    (copy / "labels.json").unlink()
    with pytest.raises(ModelFolderError, match="missing labels.json"):
        ModelFolder.load(copy)


def _folder_with_fp16(tmp_path: Path, listed: bool) -> Path:
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("model.onnx", "model.fp16.onnx"):
        (folder / name).write_bytes(b"x")
    files = {"model.onnx": "0" * 64, **({"model.fp16.onnx": "0" * 64} if listed else {})}
    (folder / "manifest.json").write_text(json.dumps({"version": "m", "files": files}))
    return folder


def test_fp16_model_is_chosen_only_for_cuda(tmp_path: Path) -> None:
    """model.fp16.onnx on the CUDA provider (auto or gpu), model.onnx (fp32/int8) on the CPU."""
    from inference import model_file

    folder = _folder_with_fp16(tmp_path, listed=True)
    cuda, cpu = ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]
    assert model_file(folder, "auto", cuda).name == "model.fp16.onnx"
    assert model_file(folder, "gpu", cuda).name == "model.fp16.onnx"
    assert model_file(folder, "cpu", cuda).name == "model.onnx"
    assert model_file(folder, "auto", cpu).name == "model.onnx"


def test_fp16_model_not_listed_in_the_manifest_is_not_chosen(tmp_path: Path) -> None:
    from inference import model_file

    folder = _folder_with_fp16(tmp_path, listed=False)
    assert model_file(folder, "gpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]).name == "model.onnx"


def test_scorer_on_cpu_loads_the_cpu_model(scorer: Scorer) -> None:
    assert scorer.model_file.name == "model.onnx" and scorer.provider == "CPUExecutionProvider"


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="neither a model folder"):
        Scorer(tmp_path, device="cpu")


def test_gpu_without_cuda_fails_clearly() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ProviderError, match="CUDAExecutionProvider is not available"):
        Scorer(MODELS, device="gpu")


def test_probabilities_and_provider(scorer: Scorer) -> None:
    scores = scorer.score_texts(TEXTS)
    assert scores.sentiment.shape == (len(TEXTS), 3) and scores.sentiment.dtype == np.float32
    np.testing.assert_allclose(scores.sentiment.sum(axis=1), 1.0, atol=1e-5)
    assert scores.topic is not None and scores.topic.shape == (len(TEXTS), 20)
    assert scorer.provider == "CPUExecutionProvider"


def test_batched_and_single_scoring_agree(scorer: Scorer) -> None:
    batched = scorer.score_texts(TEXTS).sentiment
    single = np.vstack([scorer.score_texts([t]).sentiment for t in TEXTS])
    assert (batched.argmax(axis=1) == single.argmax(axis=1)).all()
    np.testing.assert_allclose(batched, single, atol=2e-2)


def test_obvious_negative_headline(scorer: Scorer) -> None:
    scores = scorer.score_texts([TEXTS[0]]).sentiment[0]
    assert scores.argmax() == 0, scores


def test_score_items_marks_empty_text_and_truncation(scorer: Scorer) -> None:
    t = datetime(2020, 5, 1, tzinfo=timezone.utc)
    items = [
        NewsItem(id="a", source="s", published_at=t, title=TEXTS[0], tickers=["ACME"]),
        NewsItem(id="b", source="s", published_at=t, title=" <br/> ", body="&nbsp;"),
        NewsItem(id="c", source="s", published_at=t, title="Long", body="word " * 600),
    ]
    out = scorer.score_items(items)
    assert isinstance(out[0], ScoredItem) and out[0].label == "negative" and out[0].tickers == ("ACME",)
    assert out[0].model_version == scorer.version and not out[0].truncated
    assert out[1] == Unscored("empty_text")
    assert isinstance(out[2], ScoredItem) and out[2].truncated


def test_cli_score_prints_negative_label() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "finsentry", "score", "--json", TEXTS[0]],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["label"] == "negative"
    assert set(result["probabilities"]) == {"negative", "neutral", "positive"}
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-3


def test_published_ms_follows_a_copy_with_a_new_event_time() -> None:
    from datetime import datetime, timedelta, timezone

    from inference import ScoredItem

    item = ScoredItem(item_id="a", source="s", published_at=datetime(2024, 1, 1, tzinfo=timezone.utc), p_negative=0.1,
                      p_neutral=0.8, p_positive=0.1, label="neutral", score=0.0, model_version="m")
    assert item.published_ms == 1_704_067_200_000  # computed once, then kept
    later = item.model_copy(update={"published_at": item.published_at + timedelta(minutes=5)})
    assert later.published_ms == item.published_ms + 300_000
    assert item.model_copy(update={"novel": False}).published_ms == item.published_ms
    assert ScoredItem.from_json(item.to_json()) == item  # the cached value is no field: equality and JSON unchanged
