"""The outbox's rules (callflow/agencies/delivery.py) and its secrets (callflow/agencies/outbox.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callflow.agencies import Endpoint
from callflow.agencies.delivery import RETRY_DELAYS, DeliveryState, accepted, after_attempt, signature, verify
from callflow.agencies.outbox import OutboxError, read_secret

AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def test_retry_schedule_then_failed() -> None:
    assert after_attempt(1, True, AT).state is DeliveryState.DELIVERED
    waits = []
    attempt, at = 1, AT
    while (outcome := after_attempt(attempt, False, at)).state is DeliveryState.PENDING:
        assert outcome.next_attempt_at is not None
        waits.append(outcome.next_attempt_at - at)
        at, attempt = outcome.next_attempt_at, attempt + 1
    assert waits == list(RETRY_DELAYS) == [timedelta(seconds=5), timedelta(seconds=30), timedelta(minutes=2),
                                           timedelta(minutes=10), timedelta(minutes=30), timedelta(hours=2)]
    assert (attempt, outcome.state, outcome.next_attempt_at) == (7, DeliveryState.FAILED, None)
    assert [accepted(s) for s in (200, 204, 299, 300, 404, 503, None)] == [True] * 3 + [False] * 4


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # worked out with: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
    sent = signature(b"secret", 1700000000, b'{"a":1}')
    assert sent == "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
    assert verify(b"secret", 1700000000, b'{"a":1}', sent)
    assert not verify(b"secret", 1700000001, b'{"a":1}', sent)  # another timestamp
    assert not verify(b"secret", 1700000000, b'{"a":2}', sent)  # another body


def test_secrets_from_the_environment_or_a_file_and_clear_refusals(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLN_SECRET", "s3")
    assert read_secret("pln", Endpoint("http://127.0.0.1:1/", secret_env="PLN_SECRET")) == b"s3"
    key = tmp_path / "pln.key"
    key.write_text("from-file\n", encoding="utf-8")
    assert read_secret("pln", Endpoint("http://127.0.0.1:1/", secret_file=key)) == b"from-file"
    monkeypatch.delenv("PLN_SECRET")
    with pytest.raises(OutboxError, match=r"\[agencies.endpoints.pln\]: the environment variable PLN_SECRET"):
        read_secret("pln", Endpoint("http://127.0.0.1:1/", secret_env="PLN_SECRET"))
    with pytest.raises(OutboxError, match=r"cannot read secret_file .*missing\.key"):
        read_secret("pln", Endpoint("http://127.0.0.1:1/", secret_file=tmp_path / "missing.key"))
