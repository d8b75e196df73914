"""The login throttle (issue 17): attempts reserved before the password check, one person's failures
never lock out another person's correct login, X-Forwarded-For only from a trusted proxy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callflow.console.accounts import User
from callflow.console.throttle import Attempt, LoginThrottle, ThrottleRules
from callflow.console_settings import ConsoleSettings
from tests.console.conftest import PASSWORD, Console, ManualClock

WRONG = "not the password"


async def _login(console: Console, name: str, password: str, address: str = "192.0.2.7",
                 **headers: str) -> int:
    async with console.client(address=address) as c:
        r = await c.post("/api/auth/login", json={"name": name, "password": password}, headers=headers)
        return r.status_code


def _count_checks(console: Console, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    checked: list[str] = []
    real = console.ctx.accounts.authenticate

    async def counting(name: str, password: str) -> tuple[User | None, str]:
        checked.append(name)
        return await real(name, password)

    monkeypatch.setattr(console.ctx.accounts, "authenticate", counting)
    return checked


async def test_concurrent_wrong_passwords_are_throttled_before_the_check(
        console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    """30 at once for one account: before, all 30 were hashed and none throttled (the failure was
    counted only after the slow check)."""
    checked = _count_checks(console, monkeypatch)
    codes = await asyncio.gather(*(_login(console, "op1", WRONG) for _ in range(30)))
    assert sorted(codes) == [401] * 5 + [429] * 25
    assert len(checked) == 5
    outcomes = [row[2] for row in await console.audit_rows()]
    assert (outcomes.count("failed"), outcomes.count("throttled")) == (5, 25)


async def test_failures_from_one_address_never_lock_the_owner_out_elsewhere(console: Console) -> None:
    for _ in range(5):
        assert await _login(console, "op1", WRONG, "192.0.2.7") == 401
    assert await _login(console, "op1", PASSWORD, "192.0.2.7") == 429  # that address waits
    assert await _login(console, "op1", PASSWORD, "198.51.100.9") == 200  # before: 429 for 300 s


async def test_failures_never_lock_out_a_colleague_behind_the_same_address(console: Console) -> None:
    for _ in range(5):
        assert await _login(console, "op1", WRONG) == 401
    console.ctx.throttle.rules = ThrottleRules(unknown_names_per_address=6)  # fewer slow hashes
    for name in (f"nobody{i}" for i in range(8)):  # unknown names: before, 5 locked out the address
        assert await _login(console, name, PASSWORD) in (401, 429)
    assert await _login(console, "sup", PASSWORD) == 200
    assert await _login(console, "adm", PASSWORD) == 200


async def test_unknown_names_from_one_address_are_throttled_without_a_check(
        console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = _count_checks(console, monkeypatch)
    limit = console.ctx.throttle.rules.unknown_names_per_address
    codes = [await _login(console, f"guess{i}", PASSWORD) for i in range(limit + 3)]
    assert codes == [401] * limit + [429] * 3
    assert len(checked) == limit
    assert await _login(console, "guess99", PASSWORD, "198.51.100.9") == 401  # another address: checked


async def test_an_account_under_attack_still_lets_its_owner_in(console: Console) -> None:
    rules = console.ctx.throttle.rules = ThrottleRules(per_account=10)  # the default 50: slow hashes
    per_address = rules.per_account_address
    attackers = [f"203.0.113.{i}" for i in range(1, rules.per_account // per_address + 1)]
    for address in attackers:  # each address up to its own limit: the account reaches its limit
        for _ in range(per_address):
            assert await _login(console, "sup", WRONG, address) == 401
    late = "203.0.113.200"
    assert await _login(console, "sup", WRONG, late) == 401
    assert await _login(console, "sup", WRONG, late) == 429  # under attack: one failure per address
    assert await _login(console, "sup", PASSWORD, "198.51.100.9") == 200  # the owner, from their desk
    console.clock.advance(minutes=5, seconds=1)
    assert await _login(console, "sup", PASSWORD, late) == 200  # the window passed


async def test_forwarded_for_is_believed_from_a_trusted_proxy_only(console: Console) -> None:
    console.ctx.web = ConsoleSettings.model_validate({"trusted_proxies": ["10.0.0.0/24"]})
    forwarded: dict[str, Any] = {"X-Forwarded-For": "198.51.100.23, 10.0.0.7"}
    assert await _login(console, "op1", WRONG, "10.0.0.5", **forwarded) == 401  # via the proxy
    assert await _login(console, "op1", WRONG, "192.0.2.50", **forwarded) == 401  # forged, direct
    addresses = [row[4] for row in await console.audit_rows()]
    assert addresses == ["198.51.100.23", "192.0.2.50"]
    # behind the proxy each client has its own address: one client's failures block only it
    for _ in range(4):
        await _login(console, "op1", WRONG, "10.0.0.5", **forwarded)
    assert await _login(console, "op1", PASSWORD, "10.0.0.5", **forwarded) == 429
    assert await _login(console, "op1", PASSWORD, "10.0.0.5", **{"X-Forwarded-For": "198.51.100.24"}) == 200


def test_counters_of_a_past_window_are_swept() -> None:
    """Attempts with ever new names and addresses must not grow the throttle's memory without end."""
    clock = ManualClock()
    throttle = LoginThrottle(clock)
    for i in range(12_000):
        attempt = throttle.reserve(f"name{i}", f"198.51.{i // 250}.{i % 250}", known=False)
        assert isinstance(attempt, Attempt)
        throttle.failed(attempt)
    clock.advance(minutes=6)
    throttle.reserve("late", "192.0.2.1", known=False)
    assert throttle.keys < 10
