"""queues.ManagedOperators: the console's OperatorsProvider over the operator manager's table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from callflow.ami.codec import AmiMessage
from callflow.ami.errors import ActionFailed
from callflow.console.models import OperatorState
from callflow.console.providers import NotFound, ProviderUnavailable
from callflow.service import Engine
from queues import ManagedOperators, OperatorManager, QueuePolicy
from queues.states import Membership, State

T0 = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


class RefusingSession:
    """Asterisk answering every action with an error (the real refusal is tested on the lab)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                     timeout: float | None = None, variables: Mapping[str, str] | None = None) -> AmiMessage:
        self.sent.append((name, dict(headers or {})))
        raise ActionFailed(name, "Interface not found")


class FakeEngine:
    def __init__(self) -> None:
        self.session = RefusingSession()


def manager(tmp_path: Path) -> OperatorManager:
    policy = QueuePolicy(operators=("op1", "op2"), members={"op1": {"emergency": 0}, "op2": {"emergency": 0}})
    m = OperatorManager(database=tmp_path / "db.sqlite", policy=policy,
                        clock=lambda: T0 + timedelta(seconds=30))
    m.table.member_added("op1", T0, Membership("emergency"))
    return m


async def test_operators_lists_every_operator_with_time_in_state(tmp_path: Path) -> None:
    statuses = {s.operator: s for s in await ManagedOperators(manager(tmp_path)).operators()}
    assert statuses["op1"].state is OperatorState.READY
    assert statuses["op1"].seconds_in_state == 30.0
    assert statuses["op2"].state is OperatorState.OFFLINE


async def test_refused_action_is_reported_and_state_unchanged(tmp_path: Path) -> None:
    m = manager(tmp_path)
    engine = FakeEngine()
    m._engine = cast(Engine, engine)
    provider = ManagedOperators(m, confirm_timeout=0.1)
    with pytest.raises(ProviderUnavailable, match=r"refused QueuePause for operator op1.*not found"):
        await provider.set_state("op1", OperatorState.PAUSED, "break")
    assert engine.session.sent == [("QueuePause", {"Interface": "PJSIP/op1", "Paused": "true",
                                                   "Reason": "break"})]
    assert m.table.view("op1").state.value == "ready"
    with pytest.raises(NotFound, match=r"unknown operator 'op7'"):
        await provider.set_state("op7", OperatorState.READY, "")


def test_the_console_api_names_every_state_the_operator_manager_has() -> None:
    """The API's enum is the console's contract (callflow does not import queues); it must name exactly the
    manager's states, or a view in a new state would fail ``OperatorState(view.state.value)``."""
    assert [s.value for s in OperatorState] == [s.value for s in State]
