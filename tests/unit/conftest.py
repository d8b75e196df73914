"""Unit tests' shared set-up."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _apply_user_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """`config apply`'s AMI user's secret, from its default source (site file ``[ami.apply]`` unset): the
    test site files describe the engine's user and operators; a test about this secret sets its own."""
    monkeypatch.setenv("SIAGA112_AMI_APPLY_SECRET", "Apply-user-secret-9Kx2Lm7Q")
