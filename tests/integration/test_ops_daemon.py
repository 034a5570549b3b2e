"""Against the real broker and the real model: a running daemon's /readyz and
/metrics, and a hot model reload under load (a copy of the committed model
promoted in a temp registry) that neither drops nor double-scores an item,
then a broken model refused while the running one keeps scoring."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from finsentry.config import REPO_ROOT, load_settings
from finsentry.daemon import Daemon
from finsentry.topics import read_topic
from inference import ScoredItem, write_manifest
from ingest import NewsItem, make_producer

pytestmark = pytest.mark.integration

MODEL = REPO_ROOT / "models" / (REPO_ROOT / "models" / "DEFAULT").read_text().strip()
T0 = datetime(2021, 3, 1, 14, 0, tzinfo=timezone.utc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def _publish(registry: Path, name: str, truncate_onnx: bool = False) -> None:
    """A copy of the committed model under a new version (what the trainer's publish writes)."""
    folder = registry / name
    shutil.copytree(MODEL, folder)
    config = json.loads((folder / "config.json").read_text())
    config["version"] = name
    (folder / "config.json").write_text(json.dumps(config))
    if truncate_onnx:
        data = (folder / "model.onnx").read_bytes()
        (folder / "model.onnx").write_bytes(data[: len(data) // 3])
    write_manifest(folder, name)


def _promote(registry: Path, name: str) -> None:
    tmp = registry / ".DEFAULT.tmp"
    tmp.write_text(name + "\n")
    os.replace(tmp, registry / "DEFAULT")


def _produce(bootstrap: str, topic: str, start: int, n: int) -> None:
    producer = make_producer(bootstrap)
    for i in range(start, start + n):
        item = NewsItem(id=f"r{i}", source="t", published_at=T0 + timedelta(seconds=30 * i),
                        title=f"Company {i % 13} shares move after quarterly update {i}", tickers=[f"T{i % 7}"])
        producer.send(topic, key=item.tickers[0].encode(), value=item.to_json(), timestamp_ms=item.published_ms)
    producer.flush()
    producer.close()


def _wait(cond: Callable[[], bool], what: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start!r} in /metrics")


def test_ops_endpoint_and_hot_reload_under_load(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    raw, scored, dlq, late = new_topic("raw", 3), new_topic("scored", 3), new_topic("dlq", 1), new_topic("late", 1)
    registry = tmp_path / "registry"
    registry.mkdir()
    _publish(registry, "champion-1")
    _promote(registry, "champion-1")
    port = _free_port()
    settings = load_settings(
        kafka={"bootstrap": kafka_bootstrap, "group_id": f"ops-{uuid.uuid4().hex[:8]}", "raw_topic": raw,
               "scored_topic": scored, "dlq_topic": dlq, "late_topic": late, "create_topics": False},
        model={"path": str(registry), "device": "cpu", "intra_op_threads": 1},
        batch={"max_batch": 16, "max_wait_ms": 20},
        webhooks={"outbox_path": str(tmp_path / "outbox.sqlite"), "drain_timeout_s": 1},
        ops={"host": "127.0.0.1", "port": port},
        jobs={"refresh_interval_s": 0.3, "digest_cron": "", "housekeeping_cron": ""},
    )
    base = f"http://127.0.0.1:{port}"
    _produce(kafka_bootstrap, raw, 0, 300)  # the topic's metadata is settled before the group forms
    daemon = Daemon(settings)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        assert _get(base + "/healthz")[0] == 200
        _wait(lambda: _get(base + "/readyz")[0] == 200, "/readyz 200",
              timeout_s=240)
        ready = json.loads(_get(base + "/readyz")[1])
        assert ready["checks"] == {"consumer_assigned": True, "model_loaded": True, "broker_reachable": True}
        assert "champion-1" in ready["detail"]["model_loaded"]

        # promote a challenger while items stream in
        _publish(registry, "challenger-2")
        feeder = threading.Thread(target=_produce, args=(kafka_bootstrap, raw, 300, 900))
        feeder.start()
        _promote(registry, "challenger-2")
        feeder.join()
        _wait(lambda: daemon.stats.scored >= 1200, "1200 items scored")
        _wait(lambda: daemon.pipeline.scorer.version == "challenger-2", "the swap")

        # a broken model (truncated model.onnx, consistent manifest) is refused; scoring goes on
        _publish(registry, "broken-3", truncate_onnx=True)
        _promote(registry, "broken-3")
        _wait(lambda: (daemon.ops.metrics.value("finsentry_model_reloads_total", result="refused") or 0) >= 1,
              "the refusal")
        _produce(kafka_bootstrap, raw, 1200, 100)
        _wait(lambda: daemon.stats.scored >= 1300, "1300 items scored")

        status, metrics = _get(base + "/metrics")
        assert status == 200
        assert _metric(metrics, "finsentry_items_scored_total ") == 1300
        assert _metric(metrics, "finsentry_items_consumed_total ") == 1300
        assert _metric(metrics, 'finsentry_model_reloads_total{result="swapped"}') == 1
        assert _metric(metrics, 'finsentry_model_reloads_total{result="refused"}') == 1
        assert _metric(metrics, 'finsentry_model_info{path=') == 1
        assert 'version="challenger-2"' in metrics and "CPUExecutionProvider" in metrics
        assert _metric(metrics, "finsentry_batch_size_count ") == daemon.stats.batches
        assert _metric(metrics, "finsentry_batch_scoring_seconds_count ") == daemon.stats.batches
        assert f'finsentry_consumer_lag{{partition="0",topic="{raw}"}}' in metrics
        assert _metric(metrics, "finsentry_windows_open ") >= 1
        assert "process_resident_memory_bytes" in metrics  # the global registry is served too
    finally:
        daemon.stop()
        runner.join(timeout=60)
    assert not runner.is_alive()
    assert _get(base + "/healthz")[0] == 0  # the port is released at close

    records = [ScoredItem.from_json(v) for _, _, _, v in read_topic(kafka_bootstrap, scored)]
    per_item = Counter(r.item_id for r in records)
    assert len(per_item) == 1300, "an item was dropped"
    assert max(per_item.values()) == 1, "an item was scored twice"
    versions = Counter(r.model_version for r in records)
    assert set(versions) == {"champion-1", "challenger-2"}, versions
    by_id = {r.item_id: r.model_version for r in records}
    assert all(by_id[f"r{i}"] == "challenger-2" for i in range(1200, 1300))  # after the refusal: still v2
