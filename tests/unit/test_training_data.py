"""Trainer pieces that need no torch: data loading, splits, metrics, manifest, import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training import (
    SENTIMENT_LABELS,
    ManifestError,
    classification_metrics,
    load_labelled,
    load_phrasebank,
    verify_manifest,
    write_manifest,
)
from training._data import TWEET_SENTIMENT_MAP, hash_split

REPO = Path(__file__).resolve().parents[2]


def _csv(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "s.csv"
    p.write_text("text,label\n" + body, encoding="utf-8")
    return p


def test_csv_loader_maps_labels_and_keeps_embedded_newlines(tmp_path):
    p = _csv(tmp_path, '"line one\nline two",0\nup up,1\nflat,2\n')
    ds = load_labelled(p, label_names=SENTIMENT_LABELS, label_map=TWEET_SENTIMENT_MAP)
    assert ds.texts == ["line one\nline two", "up up", "flat"]
    assert [ds.label_names[i] for i in ds.labels] == ["negative", "positive", "neutral"]
    assert ds.rejected == []


def test_loader_rejects_bad_labels_and_reports_them(tmp_path):
    p = _csv(tmp_path, "ok,0\nbad label,7\nword label,bullish\n,1\nmissing label,\nfine,2\n")
    ds = load_labelled(p, label_names=SENTIMENT_LABELS, label_map=TWEET_SENTIMENT_MAP, max_rejected_fraction=1.0)
    assert ds.texts == ["ok", "fine"]
    reasons = {r.row: r.reason for r in ds.rejected}
    assert reasons == {1: "unknown label", 2: "unknown label", 3: "empty or missing text", 4: "unknown label"}
    assert "7" in next(r.value for r in ds.rejected if r.row == 1)


def test_loader_fails_when_too_many_rows_are_rejected(tmp_path):
    p = _csv(tmp_path, "a,9\nb,9\nc,0\n")
    with pytest.raises(ValueError, match="rejected"):
        load_labelled(p, label_names=SENTIMENT_LABELS, label_map=TWEET_SENTIMENT_MAP)


def test_jsonl_with_column_mapping_and_names(tmp_path):
    p = tmp_path / "d.jsonl"
    rows = [{"headline": "a", "sent": "positive"}, {"headline": "b", "sent": "negative"}, {"headline": "c", "sent": "meh"}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    ds = load_labelled(p, label_names=SENTIMENT_LABELS, columns={"text": "headline", "label": "sent"},
                       max_rejected_fraction=0.5)
    assert ds.labels == [2, 0] and len(ds.rejected) == 1
    with pytest.raises(KeyError):
        load_labelled(p, label_names=SENTIMENT_LABELS, columns={"text": "title"})


def test_parquet_loader(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["x", "y"], "label": [1, 0]}), p)
    ds = load_labelled(p, label_names=("a", "b"))
    assert ds.labels == [1, 0]


def test_phrasebank_dedup_and_conflicts(tmp_path):
    p = tmp_path / "pb.txt"
    lines = ["Sales rose .@positive", "Sales rose .@positive", "Flat year .@neutral",
             "Mixed news .@positive", "Mixed news .@neutral", "Caf\u00e9 loss@negative"]
    p.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    ds = load_phrasebank(p, max_rejected_fraction=0.5)
    assert ds.texts == ["Sales rose .", "Flat year .", "Caf\u00e9 loss"]
    assert [SENTIMENT_LABELS[i] for i in ds.labels] == ["positive", "neutral", "negative"]
    assert sorted(r.reason for r in ds.rejected) == ["conflicting labels"] * 2


def test_hash_split_is_seeded_stratified_and_disjoint(tmp_path):
    p = _csv(tmp_path, "".join(f"text {i},{i % 3}\n" for i in range(300)))
    ds = load_labelled(p, label_names=SENTIMENT_LABELS, label_map=TWEET_SENTIMENT_MAP)
    keep, held = hash_split(ds, 0.1, seed=5)
    assert hash_split(ds, 0.1, seed=5) == (keep, held)
    assert hash_split(ds, 0.1, seed=6)[1] != held
    assert not set(keep) & set(held) and len(keep) + len(held) == 300
    assert sorted(ds.labels[i] for i in held) == [0] * 10 + [1] * 10 + [2] * 10


def test_classification_metrics_match_definitions():
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8), "support": 2}
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    sk = pytest.importorskip("sklearn.metrics")
    assert m["macro_f1"] == pytest.approx(sk.f1_score([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], average="macro"))
    with pytest.raises(ValueError):
        classification_metrics([0], [3], ["a", "b"])


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"\x00onnx" * 1000)
    (d / "labels.json").write_text('{"sentiment": []}', encoding="utf-8")
    write_manifest(d, "v1")
    return d


def test_manifest_round_trip_and_tampering(tmp_path):
    d = _folder(tmp_path)
    man = verify_manifest(d)
    assert man["version"] == "v1" and set(man["files"]) == {"model.onnx", "labels.json"}
    (d / "labels.json").write_text('{"sentiment": [1]}', encoding="utf-8")
    with pytest.raises(ManifestError, match="labels.json: sha256"):
        verify_manifest(d)


@pytest.mark.parametrize("change", ["extra", "missing", "garbage"])
def test_manifest_rejects_extra_missing_and_garbage(tmp_path, change):
    d = _folder(tmp_path)
    if change == "extra":
        (d / "evil.py").write_text("x", encoding="utf-8")
    elif change == "missing":
        (d / "model.onnx").unlink()
    else:
        (d / "manifest.json").write_text("not json", encoding="utf-8")
    with pytest.raises(ManifestError):
        verify_manifest(d)
    if change == "extra":
        verify_manifest(d, allow_extra=True)


def test_import_training_without_torch():
    code = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'sklearn', 'onnx'): sys.modules[m] = None\n"
        "import training, training._evaluate, training._publish\n"
        "assert callable(training.train_main) and callable(training.evaluate_main)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_user_sentiment_files_with_column_mapping(tmp_path):
    from training._data import load_user_sentiment, parse_label_map

    a = tmp_path / "desk.csv"
    filler = "".join(f"Gamma item {i} unchanged,Neutral\n" for i in range(30))
    a.write_text("headline,tone\nAcme slumps,Bearish\nAcme soars,Bullish\nAcme meets,Neutral\nAcme ???,Unclear\n" + filler)
    b = tmp_path / "more.jsonl"
    b.write_text('{"headline": "Beta cuts guidance", "tone": "Bearish"}\n')
    label_map = parse_label_map("Bearish=negative,Bullish=positive,Neutral=neutral")
    ds = load_user_sentiment([a, b], "headline", "tone", label_map)
    assert ds is not None
    assert ds.texts[:3] == ["Acme slumps", "Acme soars", "Acme meets"] and ds.texts[-1] == "Beta cuts guidance"
    assert len(ds) == 34
    assert [ds.label_names[i] for i in ds.labels[:3]] + [ds.label_names[ds.labels[-1]]] == [
        "negative", "positive", "neutral", "negative"]
    assert len(ds.rejected) == 1 and ds.rejected[0].reason
    assert load_user_sentiment([]) is None
    assert parse_label_map("0=negative")[0] == "negative"
    with pytest.raises(ValueError, match="RAW=NAME"):
        parse_label_map("negative")
