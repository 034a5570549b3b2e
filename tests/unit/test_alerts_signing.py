"""Standard Webhooks signatures: secrets from env/file, signing, rotation, verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from alerts import SecretError, SignatureError, Signer, Verifier, generate_secret, load_secrets

BODY = b'{"alert_id":"0123456789abcdef01234567","status":"firing"}'


def test_signature_is_v1_base64_hmac_sha256_of_id_timestamp_body() -> None:
    secret = generate_secret()
    headers = Signer([secret]).headers("msg_1", BODY, timestamp=1_700_000_000)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == "1700000000"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, b"msg_1.1700000000." + BODY, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    # and the reference library accepts it (its own 5-minute tolerance: use a fresh timestamp)
    fresh = Signer([secret]).headers("msg_1", BODY)
    Webhook(secret).verify(BODY, fresh)


def test_unsigned_without_secrets() -> None:
    headers = Signer().headers("m", BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp"}
    assert not Signer().signs


def test_rotation_signs_with_every_secret_and_verifies_with_any() -> None:
    old, new = generate_secret(), generate_secret()
    headers = Signer([new, old]).headers("m", BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Verifier([old]).verify(BODY, headers)
    Verifier([new]).verify(BODY, headers)
    Verifier([generate_secret(), new]).verify(BODY, Signer([new]).headers("m", BODY))


def test_verifier_rejects_wrong_secret_stale_or_future_timestamp_and_tampering() -> None:
    secret = generate_secret()
    verifier = Verifier([secret], tolerance_s=60)
    with pytest.raises(SignatureError, match="no signature matches"):
        verifier.verify(BODY, Signer([generate_secret()]).headers("m", BODY))
    stale = Signer([secret]).headers("m", BODY, timestamp=int(time.time()) - 120)
    with pytest.raises(SignatureError, match="too old"):
        verifier.verify(BODY, stale)
    future = Signer([secret]).headers("m", BODY, timestamp=int(time.time()) + 120)
    with pytest.raises(SignatureError, match="too new"):
        verifier.verify(BODY, future)
    good = Signer([secret]).headers("m", BODY)
    with pytest.raises(SignatureError):
        verifier.verify(BODY + b" ", good)
    with pytest.raises(SignatureError):
        verifier.verify(BODY, {**good, "webhook-id": "other"})
    with pytest.raises(SignatureError, match="missing"):
        verifier.verify(BODY, {"webhook-id": "m"})
    with pytest.raises(SignatureError, match="malformed"):
        verifier.verify(BODY, {**good, "webhook-signature": "v1-no-comma"})
    with pytest.raises(SignatureError, match="integer"):
        verifier.verify(BODY, {**good, "webhook-timestamp": "yesterday"})
    verifier.verify(BODY, {k.upper(): v for k, v in good.items()})  # header names in any case


def test_tolerance_bounds() -> None:
    for bad in (0, -1, 301):
        with pytest.raises(ValueError):
            Verifier([generate_secret()], tolerance_s=bad)
    with pytest.raises(SecretError):
        Verifier([])


def test_secrets_from_env_and_file(tmp_path: Path) -> None:
    a, b, c = generate_secret(), generate_secret(24), generate_secret(64)
    path = tmp_path / "secrets"
    path.write_text(f"# rotated 2026-01\n{b}\n\n{c}\n")
    assert load_secrets("HOOK", path, environ={"HOOK": f" {a} "}) == (a, b, c)
    assert load_secrets() == ()
    assert load_secrets(file=path) == (b, c)
    raw = base64.b64encode(b"k" * 32).decode()  # the whsec_ prefix is optional
    assert load_secrets("HOOK", environ={"HOOK": raw}) == (raw,)


def test_secret_errors_name_the_source_never_the_value(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    short = "whsec_" + base64.b64encode(b"x" * 8).decode()
    cases = [
        ({"env": "HOOK"}, {}, "HOOK is unset"),
        ({"env": "HOOK"}, {"HOOK": "whsec_not*base64!"}, "not base64"),
        ({"env": "HOOK"}, {"HOOK": short}, "8 bytes"),
        ({"file": tmp_path / "missing"}, {}, "cannot read"),
    ]
    (tmp_path / "empty").write_text("# nothing\n")
    cases.append(({"file": tmp_path / "empty"}, {}, "holds no secret"))
    with caplog.at_level(logging.DEBUG):
        for kwargs, environ, message in cases:
            with pytest.raises(SecretError, match=message) as info:
                load_secrets(**kwargs, environ=environ)
            assert "not*base64" not in str(info.value) and short not in str(info.value)
    assert not caplog.records


def test_reprs_hide_secrets() -> None:
    secret = generate_secret()
    assert secret not in repr(Signer([secret])) and secret not in repr(Verifier([secret]))
