"""finsentry.ops without Kafka: secret masking, `config check`, the ops HTTP server on
127.0.0.1, the model self-check and the reload watcher on copies of the real model."""

from __future__ import annotations

import io
import json
import logging
import shutil
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from finsentry.cli import main
from finsentry.config import REPO_ROOT, load_settings
from finsentry.daemon import DaemonStats
from finsentry.logs import setup_logging
from finsentry.ops import (
    DaemonMetrics,
    MetricSource,
    ModelReloader,
    OpsServer,
    SelfCheckError,
    mask_secrets,
    mask_url,
    self_check,
)
from inference import Scorer, write_manifest

MODEL = REPO_ROOT / "models" / (REPO_ROOT / "models" / "DEFAULT").read_text().strip()


# -- masking ---------------------------------------------------------------------

@pytest.mark.parametrize("url, want", [
    ("https://hooks.slack.com/services/T0/B0/abcdefSECRET", "https://hooks.slack.com/services/***"),
    ("https://discord.com/api/webhooks/123/tok", "https://discord.com/api/webhooks/***"),
    ("https://acme.webhook.office.com/webhookb2/xyz", "https://acme.webhook.office.com/***"),
    ("https://bob:hunter2@example.com/hook", "https://bob:***@example.com/hook"),
    ("https://example.com/hook?token=abc&x=1", "https://example.com/hook?token=***&x=***"),
    ("http://127.0.0.1:8765/alerts", "http://127.0.0.1:8765/alerts"),
])
def test_mask_url(url: str, want: str) -> None:
    assert mask_url(url) == want


def test_mask_secrets_masks_secret_values_not_variable_names() -> None:
    data = {"webhooks": {"secret_env": "HOOK_SECRET", "secret_file": "/etc/s", "api_token": "t0k",
                         "endpoints": [{"url": "https://hooks.slack.com/services/A/B/C", "password": "pw"}]},
            "kafka": {"bootstrap": "127.0.0.1:9092"}}
    masked = mask_secrets(data)
    assert masked["webhooks"]["secret_env"] == "HOOK_SECRET" and masked["webhooks"]["secret_file"] == "/etc/s"
    assert masked["webhooks"]["api_token"] == "***"
    assert masked["webhooks"]["endpoints"][0] == {"url": "https://hooks.slack.com/services/***", "password": "***"}
    assert masked["kafka"] == data["kafka"]
    assert data["webhooks"]["api_token"] == "t0k"  # the input is left alone


def test_config_check_prints_masked_and_fails_on_an_unset_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FINSENTRY_TEST_UNSET_SECRET", raising=False)
    cfg = tmp_path / "f.toml"
    cfg.write_text('[webhooks]\nurls = ["https://hooks.slack.com/services/T1/B2/XYZSECRET"]\n'
                   'secret_env = "FINSENTRY_TEST_UNSET_SECRET"\n[ops]\nport = 9464\n')
    assert main(["--config", str(cfg), "config", "check"]) == 2
    out, err = capsys.readouterr()
    assert "XYZSECRET" not in out + err
    shown = json.loads(out)
    assert shown["webhooks"]["urls"] == ["https://hooks.slack.com/services/***"]
    assert shown["ops"]["port"] == 9464
    assert "FINSENTRY_TEST_UNSET_SECRET is unset" in err

    monkeypatch.setenv("FINSENTRY_TEST_UNSET_SECRET", "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert main(["--config", str(cfg), "config", "check"]) == 0
    assert "configuration OK" in capsys.readouterr().err


def test_config_check_reports_a_broken_model_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "m"
    shutil.copytree(MODEL, folder)
    (folder / "labels.json").write_text("{}")
    cfg = tmp_path / "f.toml"
    cfg.write_text(f'[model]\npath = "{folder}"\n')
    assert main(["--config", str(cfg), "config"]) == 2
    err = capsys.readouterr().err
    assert "model.path:" in err and "labels.json" in err


# -- JSON logs --------------------------------------------------------------------

def test_json_logs_carry_extra_ids() -> None:
    setup_logging("INFO", "json")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        logging.getLogger("finsentry.daemon").info("ALERT %s", "a1", extra={"alert_id": "a1", "key": "ACME"})
    finally:
        setup_logging("INFO")
    record = json.loads(stream.getvalue().strip())
    assert record["message"] == "ALERT a1" and record["alert_id"] == "a1" and record["level"] == "INFO"
    assert record["time"].endswith("Z")


# -- the ops server -----------------------------------------------------------------

def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_ops_server_health_readiness_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("finsentry_test_things", "Things.", registry=registry).inc(3)
    state = {"alive": True, "assigned": False}
    server = OpsServer("127.0.0.1", 0, lambda: (state["alive"], "ok" if state["alive"] else "stalled"),
                       {"consumer_assigned": lambda: (state["assigned"], "n"), "boom": lambda: 1 / 0},
                       registries=[registry]).start()
    try:
        assert _get(server.url + "/healthz")[0] == 200
        status, ctype, body = _get(server.url + "/readyz")
        assert status == 503 and ctype == "application/json"
        got = json.loads(body)
        assert got["ready"] is False and got["checks"] == {"consumer_assigned": False, "boom": False}
        assert "ZeroDivisionError" in got["detail"]["boom"]
        status, ctype, body = _get(server.url + "/metrics")
        assert status == 200 and ctype.startswith("text/plain") and "finsentry_test_things_total 3.0" in body
        state["alive"] = False
        assert _get(server.url + "/healthz")[:1] == (503,)
        assert _get(server.url + "/nope")[0] == 404
    finally:
        server.close()


# -- self-check and reload ---------------------------------------------------------------

@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(MODEL, "cpu", 1)


def test_self_check_passes_on_the_real_model(scorer: Scorer) -> None:
    labels = self_check(scorer, scorer.folder.topic_labels)
    assert len(labels) == 5 and set(labels) <= {"negative", "neutral", "positive"}
    assert labels[0] == "negative" and labels[2] == "positive"


def test_self_check_refuses_a_changed_topic_set_and_bad_outputs(scorer: Scorer) -> None:
    with pytest.raises(SelfCheckError, match="topic labels differ"):
        self_check(scorer, scorer.folder.topic_labels[:-1])

    class Wrong:  # a model whose sentiment head lost a column
        folder = scorer.folder
        version = "wrong"

        def score_texts(self, texts: list[str]) -> SimpleNamespace:
            return SimpleNamespace(sentiment=np.full((len(texts), 2), 0.5), topic=None)

    with pytest.raises(SelfCheckError, match="sentiment output shape"):
        self_check(Wrong())


def _registry_with_copy(tmp_path: Path, name: str) -> Path:
    registry = tmp_path / "registry"
    shutil.copytree(MODEL, registry / name)
    (registry / "DEFAULT").write_text(name + "\n")
    return registry


def _publish_copy(registry: Path, name: str, breakage: str | None = None) -> None:
    folder = registry / name
    shutil.copytree(MODEL, folder)
    config = json.loads((folder / "config.json").read_text())
    config["version"] = name
    (folder / "config.json").write_text(json.dumps(config))
    write_manifest(folder, name)
    if breakage == "truncated_onnx":
        data = (folder / "model.onnx").read_bytes()
        (folder / "model.onnx").write_bytes(data[: len(data) // 2])
        write_manifest(folder, name)  # a consistent manifest: only loading can tell
    elif breakage == "corrupt_manifest":
        (folder / "manifest.json").write_text('{"version": "x", "files": ')
    elif breakage == "topic_labels":
        labels = json.loads((folder / "labels.json").read_text())
        labels["topic"] = labels["topic"][:-1]
        (folder / "labels.json").write_text(json.dumps(labels))
        write_manifest(folder, name)


@pytest.mark.parametrize("breakage", ["truncated_onnx", "corrupt_manifest", "topic_labels"])
def test_reloader_refuses_a_broken_model_and_then_takes_a_good_one(
    tmp_path: Path, scorer: Scorer, breakage: str
) -> None:
    registry = _registry_with_copy(tmp_path, "m1")
    refused: list[tuple[str, str]] = []
    reloader = ModelReloader(registry, "m1", lambda p: Scorer(p, "cpu", 1), scorer.folder.topic_labels,
                             on_refused=lambda n, r: refused.append((n, r)))
    assert reloader.check_once() is False and reloader.take() is None  # DEFAULT unchanged

    _publish_copy(registry, "m2-broken", breakage)
    (registry / "DEFAULT").write_text("m2-broken\n")
    assert reloader.check_once() is False and reloader.take() is None
    assert [n for n, _ in refused] == ["m2-broken"]
    assert reloader.check_once() is False and len(refused) == 1  # not retried while DEFAULT stays

    _publish_copy(registry, "m3")
    (registry / "DEFAULT").write_text("m3\n")
    assert reloader.check_once() is True
    new = reloader.take()
    assert new is not None and new.version == "m3"  # type: ignore[attr-defined]
    assert reloader.take() is None and reloader.check_once() is False


# -- deploy/ ------------------------------------------------------------------------------

def test_systemd_unit_runs_the_daemon_with_a_bounded_graceful_stop() -> None:
    import configparser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(REPO_ROOT / "deploy" / "systemd" / "finsentry.service")
    service = unit["Service"]
    assert service["Type"] == "simple" and service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM" and service["User"] == "finsentry"
    assert service["ExecStart"].endswith("finsentry run")
    assert service["EnvironmentFile"] == "/etc/finsentry/finsentry.env"
    example = load_settings(REPO_ROOT / "deploy" / "finsentry.example.toml")
    assert float(service["TimeoutStopSec"]) > example.webhooks.drain_timeout_s + 10
    assert example.ops.port == 9464


def test_the_daemon_counters_come_from_its_stats_and_stay_exact_past_the_bounded_alert_history() -> None:
    stats = DaemonStats(alerts=deque(maxlen=10), alerts_firing=12_000, alerts_resolved=5, broker_errors=7,
                        alerts_claimed_elsewhere=2)
    metrics = DaemonMetrics(MetricSource(lambda: stats, lambda: 0, dict, lambda: ("v", "cpu", "/m")))
    body = generate_latest(metrics.registry).decode()
    assert "finsentry_alerts_raised_total 12005.0" in body  # not len(stats.alerts), which stops at 10
    assert "finsentry_broker_errors_total 7.0" in body
    assert "finsentry_alerts_claimed_elsewhere_total 2.0" in body


def test_job_runs_are_not_logged_at_info_but_their_failures_are() -> None:
    import logging

    from finsentry.logs import setup_logging

    executor = logging.getLogger("apscheduler.executors.default")
    setup_logging("INFO")
    assert not executor.isEnabledFor(logging.INFO) and executor.isEnabledFor(logging.WARNING)
    setup_logging("DEBUG")
    assert executor.isEnabledFor(logging.INFO)
    setup_logging("INFO")
