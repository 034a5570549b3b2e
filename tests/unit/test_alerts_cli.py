"""``finsentry alerts list|redeliver|enable`` and the webhook-sink signature options."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts import Alert, Endpoint, Evidence, Outbox, ThresholdDetector, WindowResult
from finsentry.cli import main

START_MS = 1_704_186_000_000
EP = Endpoint("http://127.0.0.1:9/hook", name="hook")


def _alert(key: str) -> Alert:
    window = WindowResult(
        key_type="ticker", key=key, start_ms=START_MS, end_ms=START_MS + 3_600_000,
        n=6, n_negative=5, n_neutral=1, n_positive=0, neg_share=5 / 6, mean_score=-0.61,
        evidence=(Evidence(item_id="i0", title=f"{key} falls", p_negative=0.9),), model_versions=("m1",),
    )
    alert = ThresholdDetector(5, 0.6).evaluate(window)
    assert alert is not None
    return alert


@pytest.fixture
def outbox_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An outbox with one dead letter (AAPL, HTTP 503) and one pending delivery (MSFT)."""
    path = tmp_path / "outbox.sqlite"
    monkeypatch.setenv("FINSENTRY_WEBHOOKS__OUTBOX_PATH", str(path))
    monkeypatch.delenv("FINSENTRY_CONFIG", raising=False)
    box = Outbox(path, [EP])
    box.put(_alert("AAPL"), now=1.0)
    box.put(_alert("MSFT"), now=2.0)
    pending = box.next_pending(EP.id)
    assert pending is not None
    box.mark_dead(pending, 503, "HTTP 503", "8 attempt(s) failed, the last: HTTP 503")
    box.close()
    return path


@pytest.mark.parametrize("args", [["alerts", "--help"], ["alerts", "list", "--help"],
                                  ["alerts", "redeliver", "--help"], ["alerts", "enable", "--help"]])
def test_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0 and "usage: finsentry alerts" in capsys.readouterr().out


def test_sink_help_lists_the_signature_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["webhook-sink", "--help"])
    out = capsys.readouterr().out
    assert "--secret-env" in out and "--secret-file" in out and "--tolerance" in out


def test_list_and_list_dead(outbox_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aapl, msft = _alert("AAPL").alert_id, _alert("MSFT").alert_id
    assert main(["alerts", "list"]) == 0
    out = capsys.readouterr().out
    assert aapl in out and msft in out and "dead" in out and "pending" in out and "HTTP 503" in out
    assert main(["alerts", "list", "--dead"]) == 0
    out = capsys.readouterr().out
    assert aapl in out and msft not in out and "8 attempt(s) failed" in out


def test_redeliver_one_then_all(outbox_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aapl = _alert("AAPL").alert_id
    assert main(["alerts", "redeliver", "0" * 24]) == 1  # nothing dead for that id
    assert main(["alerts", "redeliver", aapl]) == 0
    assert "queued 1 dead letter(s)" in capsys.readouterr().out
    assert main(["alerts", "redeliver", "--all-dead"]) == 1
    box = Outbox(outbox_path)
    assert box.counts() == {"pending": 2}
    box.close()
    with pytest.raises(SystemExit):
        main(["alerts", "redeliver"])  # an id or --all-dead is required


def test_enable_a_disabled_endpoint(outbox_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    box = Outbox(outbox_path)
    box.disable_endpoint(EP.id, "HTTP 410 Gone")
    box.close()
    assert main(["alerts", "list"]) == 0
    assert "endpoint hook DISABLED: HTTP 410 Gone" in capsys.readouterr().out
    assert main(["alerts", "redeliver", "--all-dead"]) == 0
    assert "alerts enable hook" in capsys.readouterr().err
    assert main(["alerts", "enable", "hook"]) == 0
    assert main(["alerts", "enable", "hook"]) == 1


def test_missing_outbox_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FINSENTRY_WEBHOOKS__OUTBOX_PATH", str(tmp_path / "none.sqlite"))
    assert main(["alerts", "list"]) == 1
    assert "no outbox at" in capsys.readouterr().err
