"""Operator time report (`siaga112 report operators`): hand-computed periods over stored transitions."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from callflow.cli import main
from callflow.store import StoreLocation, open_database
from queues.occupancy import TransitionRow, operator_time_report
from queues.operators import SCHEMA
from queues.states import State
from tests.conftest import BOTH_STORES

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# op1: logs in at 0, rung at 60 for 5 s, on call 65..185 (2 min), wrap-up to 200, ready, paused for a
# break 300..600, ready again, logs out at 900.
OP1 = [
    TransitionRow("op1", at(0), State.OFFLINE, State.READY),
    TransitionRow("op1", at(60), State.READY, State.RINGING),
    TransitionRow("op1", at(65), State.RINGING, State.ON_CALL),
    TransitionRow("op1", at(185), State.ON_CALL, State.WRAPUP),
    TransitionRow("op1", at(200), State.WRAPUP, State.READY),
    TransitionRow("op1", at(300), State.READY, State.PAUSED, "break"),
    TransitionRow("op1", at(600), State.PAUSED, State.READY),
    TransitionRow("op1", at(900), State.READY, State.OFFLINE),
]


def test_whole_shift_by_state_and_occupancy() -> None:
    [o] = operator_time_report(OP1, at(0), at(1000))
    assert o.seconds[State.READY] == pytest.approx(60 + 100 + 300)
    assert o.seconds[State.RINGING] == pytest.approx(5)
    assert o.seconds[State.ON_CALL] == pytest.approx(120)
    assert o.seconds[State.WRAPUP] == pytest.approx(15)
    assert o.seconds[State.PAUSED] == pytest.approx(300)
    assert o.seconds[State.OFFLINE] == pytest.approx(100)
    assert o.logged_in_s == pytest.approx(900)
    assert o.available_s == pytest.approx(600)
    assert o.occupancy == pytest.approx(120 / 600)
    assert o.pause_by_reason == {"break": pytest.approx(300)}


def test_a_period_starting_mid_shift_takes_the_state_at_its_start() -> None:
    [o] = operator_time_report(OP1, at(100), at(400))  # on call since 65, paused since 300
    assert o.seconds[State.ON_CALL] == pytest.approx(85)
    assert o.seconds[State.WRAPUP] == pytest.approx(15)
    assert o.seconds[State.READY] == pytest.approx(100)
    assert o.seconds[State.PAUSED] == pytest.approx(100)
    assert sum(o.seconds.values()) == pytest.approx(300)  # every second of the period, once


def test_listed_operator_without_transitions_is_offline_and_has_no_occupancy() -> None:
    [o1, o2] = operator_time_report(OP1, at(0), at(1000), operators=["op2"])
    assert o1.operator == "op1"
    assert o2.operator == "op2"
    assert o2.seconds[State.OFFLINE] == pytest.approx(1000)
    assert o2.occupancy is None


def test_an_empty_period_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        operator_time_report(OP1, at(10), at(10))


@BOTH_STORES
def test_report_command_reads_the_engine_database(store_location: StoreLocation,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    db = store_location

    async def store() -> None:
        conn = await open_database(db, [SCHEMA])
        try:
            for r in OP1:
                await conn.execute(
                    "INSERT INTO operator_transitions (operator, at, old_state, new_state, reason, cause) "
                    "VALUES (?, ?, ?, ?, ?, 'test')", (r.operator, r.at.isoformat(), r.old_state.value,
                                                       r.new_state.value, r.reason))
            await conn.commit()
        finally:
            await conn.close()

    asyncio.run(store())
    argv = ["report", "operators", "--database", str(db), "--since", at(0).isoformat(),
            "--until", at(1000).isoformat()]
    assert main([*argv, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    [op1] = out["operators"]
    assert op1["seconds"]["on_call"] == pytest.approx(120)
    assert op1["occupancy"] == pytest.approx(0.2)
    assert op1["pause_by_reason"] == {"break": pytest.approx(300)}
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "op1" in text
    assert "20.0%" in text
    assert "break 0:05:00" in text
    assert main([*argv[:4], "--since", at(10).isoformat(), "--until", at(5).isoformat()]) == 2
    assert "is not after" in capsys.readouterr().err
