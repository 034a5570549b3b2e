"""Settings: defaults, TOML, environment overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from finsentry.config import ConfigError, load_settings


def test_defaults_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINSENTRY_CONFIG", raising=False)
    s = load_settings()
    assert s.kafka.raw_topic == "news.raw" and s.batch.max_batch >= 1


def test_toml_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text('[kafka]\nbootstrap = "10.0.0.1:9092"\n[detector]\nmin_negative = 7\n')
    monkeypatch.setenv("FINSENTRY_DETECTOR__MIN_NEGATIVE", "9")
    s = load_settings(cfg)
    assert s.kafka.bootstrap == "10.0.0.1:9092"
    assert s.detector.min_negative == 9
    assert s.detector.min_neg_share == 0.6  # untouched default


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[detector]\nmin_neg_share = 3\n")
    with pytest.raises(ConfigError, match=r"detector\.min_neg_share: .*less than or equal to 1"):
        load_settings(cfg)


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[windows]\nsize_minuts = 5\n")
    with pytest.raises(ConfigError, match=r"windows\.size_minuts"):
        load_settings(cfg)


def test_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_BATCH__MAX_BATCH", "lots")
    with pytest.raises(ConfigError, match=r"batch\.max_batch"):
        load_settings()


def test_bad_webhook_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_WEBHOOKS__URLS", '["ftp://x"]')
    with pytest.raises(ConfigError, match=r"webhooks\.urls"):
        load_settings()


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="could not be read"):
        load_settings(broken)


def test_paused_poll_must_fit_the_poll_interval(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[kafka]\nmax_poll_interval_ms = 1500\n[batch]\npaused_poll_ms = 1000\n")
    with pytest.raises(ConfigError, match=r"paused_poll_ms \(1000\) must be at most half"):
        load_settings(cfg)
    cfg.write_text("[kafka]\nmax_poll_interval_ms = 1500\n[batch]\npaused_poll_ms = 750\n")
    assert load_settings(cfg).batch.paused_poll_ms == 750


@pytest.mark.parametrize("windows,message", [
    ({"hop_minutes": float("inf")}, r"windows\.hop_minutes: .*less than or equal"),
    ({"size_minutes": 7}, r"hop_minutes=5 \(the default hop is 5 minutes\) must divide size_minutes=7"),
    ({"hop_minutes": 120}, r"hop_minutes=120.0 must divide"),
    ({"hop_minutes": 0.001}, r"60000 hops per window .* at most 1440"),
    ({"size_minutes": 60.0000001}, r"not a whole number of milliseconds"),
])
def test_window_sizes_are_checked(windows: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(windows=windows)
    assert load_settings(windows={"size_minutes": 1440, "hop_minutes": 1440}).windows.hop_minutes == 1440


@pytest.mark.parametrize("value", ["bad topic!", "x/y", ".", "t" * 250, "__consumer_offsets", "nés"])
def test_a_topic_name_kafka_refuses_fails_at_load_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match="alert_claims_topic"):
        load_settings(kafka={"alert_claims_topic": value})


def test_the_claims_topic_cannot_be_a_data_topic() -> None:
    with pytest.raises(ConfigError, match="alert_claims_topic and raw_topic are both 'news.raw'"):
        load_settings(kafka={"alert_claims_topic": "news.raw"})
    with pytest.raises(ConfigError, match="late_topic and dlq_topic"):
        load_settings(kafka={"late_topic": "news.dlq"})


@pytest.mark.parametrize("detector,message", [
    ({"alpha": 0.05}, "resolve_p must be in (alpha, 1]"),
    ({"resolve_share": 0.9}, "resolve_share must be in [0, min_neg_share]"),
])
def test_detector_settings_that_do_not_fit_together_fail_at_load(detector: dict, message: str) -> None:
    # each value is in range alone; the detector refuses the pair: that must fail at load, not at `finsentry run`
    with pytest.raises(ConfigError) as info:
        load_settings(detector=detector)
    assert "detector" in str(info.value) and message in str(info.value)
    load_settings(detector={**detector, "kind": "threshold"})  # the threshold detector has no such pair
