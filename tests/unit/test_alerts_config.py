"""Webhook settings: endpoint tables, the legacy ``urls`` list, retry schedule, secrets,
and the delivery service the daemon builds from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts import DEFAULT_RETRY_SCHEDULE_S, SecretError, generate_secret
from finsentry.config import ConfigError, load_settings
from finsentry.daemon import build_delivery


def test_default_schedule_and_a_local_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINSENTRY_CONFIG", raising=False)
    w = load_settings().webhooks
    assert tuple(w.retry_schedule_s) == DEFAULT_RETRY_SCHEDULE_S and w.retry_cap_s == 86400
    assert w.outbox_path == Path("var/outbox.sqlite") and w.group_wait_s == 0 and w.endpoints == []


def test_endpoint_tables_and_urls_together(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[webhooks]\nurls = ["http://127.0.0.1:1/a"]\ntimeout_s = 7\nsecret_env = "LEGACY_SECRET"\n'
        'group_wait_s = 2\nretry_schedule_s = [0, 0.5, 1]\n'
        '[[webhooks.endpoints]]\nurl = "https://am.example/hook"\nformat = "alertmanager"\n'
        'secret_file = "/run/secrets/am"\nconnect_timeout_s = 1\ngroup_wait_s = 0\n'
        '[[webhooks.endpoints]]\nurl = "https://hooks.slack.example/T/B/X"\nformat = "slack"\nname = "slack"\n'
    )
    w = load_settings(cfg).webhooks
    legacy, am, slack = w.all_endpoints()
    assert (legacy.url, legacy.format, legacy.secret_env, legacy.timeout_s, legacy.group_wait_s) == (
        "http://127.0.0.1:1/a", "native", "LEGACY_SECRET", 7, 2)
    assert (am.format, am.secret_file, am.connect_timeout_s, am.timeout_s, am.group_wait_s) == (
        "alertmanager", Path("/run/secrets/am"), 1, 7, 0)
    assert (slack.name, slack.secret_env, slack.group_wait_s) == ("slack", None, 2)
    assert w.retry_schedule_s == [0, 0.5, 1]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[[webhooks.endpoints]]\nurl = "ftp://x"\n', "webhooks.endpoints.0.url"),
        ('[[webhooks.endpoints]]\nurl = "http://x/"\nformat = "xml"\n', "webhooks.endpoints.0.format"),
        ('[[webhooks.endpoints]]\nurl = "http://x/"\nsecret = "whsec_abc"\n', "webhooks.endpoints.0.secret"),
        ('[webhooks]\nurls = ["http://x/"]\n[[webhooks.endpoints]]\nurl = "http://x/"\n', "webhooks"),
        ("[webhooks]\nretry_schedule_s = []\n", "webhooks.retry_schedule_s"),
        ('[[webhooks.endpoints]]\nurl = "http://x/"\nname = "a"\n[[webhooks.endpoints]]\nurl = "http://y/"\n'
         'name = "a"\n', "webhooks"),
        ("[webhooks]\nretry_schedule_s = [0, -5]\n", "webhooks.retry_schedule_s"),
    ],
)
def test_bad_webhook_settings_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(cfg)


def test_endpoints_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_WEBHOOKS__ENDPOINTS", '[{"url": "http://127.0.0.1:1/x", "format": "slack"}]')
    (endpoint,) = load_settings().webhooks.all_endpoints()
    assert endpoint.format == "slack"


def test_build_delivery_reads_secrets_and_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_secret()
    monkeypatch.setenv("HOOK_SECRET", secret)
    settings = load_settings(webhooks={
        "urls": ["http://127.0.0.1:1/a"], "secret_env": "HOOK_SECRET", "retry_schedule_s": [0, 1],
        "retry_jitter": False, "outbox_path": str(tmp_path / "o.sqlite"),
        "endpoints": [{"url": "http://127.0.0.1:1/b", "format": "alertmanager", "name": "am", "timeout_s": 2}],
    })
    service = build_delivery(settings)
    try:
        legacy, am = service.outbox.endpoints
        assert legacy.secrets == (secret,) and legacy.format == "native" and am.secrets == ()
        assert (am.name, am.read_timeout_s, am.connect_timeout_s) == ("am", 2, 3)
        assert secret not in repr(legacy)
        assert service.policy.schedule_s == (0, 1) and service.policy.next_delay(1) == 1
    finally:
        service.close()


def test_build_delivery_fails_clearly_on_a_missing_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABSENT_SECRET", raising=False)
    settings = load_settings(webhooks={"urls": ["http://127.0.0.1:1/a"], "secret_env": "ABSENT_SECRET",
                                       "outbox_path": str(tmp_path / "o.sqlite")})
    with pytest.raises(SecretError, match="ABSENT_SECRET is unset"):
        build_delivery(settings)
