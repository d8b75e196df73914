"""The IVR gate's decisions: what it tells Asterisk (AMI Setvar of SIAGA_IVR_GATE) and what it logs.
The lab test (tests/integration/test_security_pbx.py) shows the dial plan obeying it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from callflow.ami import AmiMessage, ConnectionLost, LinkEvent
from callflow.ami.events import UnknownEvent
from callflow.lease import LEASE_S
from ivr.gate import GATE_VARIABLE, IvrGate, IvrState

NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
EPOCH = 1796414400
OPEN = str(EPOCH + LEASE_S)  # the gate is a lease: open until Asterisk's clock passes this


class _Session:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.attempts = 0
        self.down = False
        self.changed = asyncio.Event()

    async def action(self, name: str, headers: dict[str, str], **_: Any) -> AmiMessage:
        if self.down or name == "Setvar":
            self.attempts += 1
            self.changed.set()
        if self.down:
            raise ConnectionLost("AMI link is down; the action was not sent")
        if name == "Getvar":  # the lease is reckoned on Asterisk's clock
            assert headers["Variable"] == "EPOCH"
            return AmiMessage((("Response", "Success"), ("Value", str(EPOCH))))
        assert name == "Setvar"
        assert headers["Variable"] == GATE_VARIABLE
        self.sent.append(headers["Value"])
        self.changed.set()
        return AmiMessage((("Response", "Success"),))


class _Engine:
    def __init__(self) -> None:
        self.session = _Session()


async def _settle(engine: _Engine, attempts: int) -> None:
    async with asyncio.timeout(2):
        while engine.session.attempts < attempts:
            engine.session.changed.clear()
            await engine.session.changed.wait()
    await asyncio.sleep(0.01)  # the gate logs after the action returned


async def test_open_only_while_bound_and_set_again_after_a_reload_or_reconnect() -> None:
    gate, engine = IvrGate(port=4573), _Engine()
    task = asyncio.create_task(gate.run(engine))  # type: ignore[arg-type]
    with capture_logs() as logs:
        gate.report(IvrState.BOUND, 4573)
        await _settle(engine, 1)
        assert gate.opened.is_set()
        reload = UnknownEvent(name="Reload", timestamp=NOW, received_at=NOW,
                              message=AmiMessage((("Event", "Reload"),)))
        await gate.handle(reload)  # the dial plan's globals are back to `closed`
        await _settle(engine, 2)
        await gate.handle(LinkEvent("up", NOW))
        await _settle(engine, 3)
        gate.report(IvrState.FAILED, 4573)
        await _settle(engine, 4)
    task.cancel()
    assert engine.session.sent == [OPEN, OPEN, OPEN, "0"]
    assert not gate.opened.is_set()
    assert [e["event"] for e in logs].count("ivr.listening") == 3
    [closed] = [e for e in logs if e["event"] == "ivr.gate_closed"]
    assert "calls go to the emergency queue" in closed["hint"]


async def test_a_gate_it_could_not_close_is_said_so_and_retried_when_ami_is_back() -> None:
    gate, engine = IvrGate(port=4573), _Engine()
    engine.session.down = True
    task = asyncio.create_task(gate.run(engine))  # type: ignore[arg-type]
    with capture_logs() as logs:
        gate.report(IvrState.FAILED, 4573)
        await _settle(engine, 1)
        assert any(e["event"] == "ivr.gate_not_closed" for e in logs)
        assert not any(e["event"] == "ivr.gate_closed" for e in logs)  # never claims a fail-safe
        engine.session.down = False
        await gate.handle(LinkEvent("up", NOW))
        await _settle(engine, 2)
    task.cancel()
    assert engine.session.sent == ["0"]
    assert any(e["event"] == "ivr.gate_closed" for e in logs)


async def test_the_lease_is_renewed_while_bound_and_ended_when_the_ivr_stops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 of the engine leaves no one to close the gate: it stays open only as long as renewed."""
    monkeypatch.setattr("ivr.gate.RENEW_S", 0.02)
    gate, engine = IvrGate(port=4573), _Engine()
    task = asyncio.create_task(gate.run(engine))  # type: ignore[arg-type]
    with capture_logs() as logs:
        gate.report(IvrState.BOUND, 4573)
        await _settle(engine, 4)  # granted, then renewed three times without any event
        gate.report(IvrState.STOPPED)
        await _settle(engine, 5)
    task.cancel()
    assert engine.session.sent[:4] == [OPEN] * 4
    assert engine.session.sent[-1] == "0"
    assert [e["event"] for e in logs].count("ivr.listening") == 1  # renewals are not news
