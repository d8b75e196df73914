"""``siaga112 callbacks close``: a supervisor settles a task the engine flagged for them, and only such."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from callflow.cli import main
from callflow.store import StoreLocation, open_database
from queues.callbacks import CALLBACKS_SCHEMA, TaskStatus
from queues.callbacks.store import closure_of, create_task, get_task
from tests.conftest import BOTH_STORES
from tests.support.callbacks import T0

pytestmark = BOTH_STORES  # the close command on SQLite and on PostgreSQL


async def _tasks(db: StoreLocation) -> None:
    conn = await open_database(db, (CALLBACKS_SCHEMA,))
    try:
        await create_task(conn, linkedid="1.1", number="", reason="abandoned_in_queue",
                          call_class="emergency", arrival=T0, now=T0, status=TaskStatus.SUPERVISOR,
                          next_attempt_at=None,
                          flag="the number is withheld: no callback possible")
        await create_task(conn, linkedid="1.2", number="081234567890", reason="short_abandon",
                          call_class="emergency", arrival=T0, now=T0, status=TaskStatus.PENDING,
                          next_attempt_at=T0 + timedelta(seconds=5))
    finally:
        await conn.close()


@pytest.fixture
def db(store_location: StoreLocation) -> StoreLocation:
    asyncio.run(_tasks(store_location))
    return store_location


def close(db: StoreLocation, task: str, *extra: str) -> int:
    return main(["callbacks", "close", task, "--by", "sup1", "--outcome", "unreachable",
                 "--note", "called twice from the desk, no answer", "--database", str(db), *extra])


def test_a_flagged_task_is_closed_with_who_how_and_why(db: StoreLocation,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    before = datetime.now(UTC)
    assert close(db, "1") == 0
    after = datetime.now(UTC)
    out = capsys.readouterr().out
    assert out.startswith("callback task 1 closed by sup1 at ")
    assert "unreachable (called twice from the desk, no answer)" in out

    async def check() -> None:
        conn = await open_database(db, (CALLBACKS_SCHEMA,))
        try:
            task = await get_task(conn, 1)
            closure = await closure_of(conn, 1)
        finally:
            await conn.close()
        assert task is not None
        assert task.status is TaskStatus.CLOSED
        assert closure is not None
        assert (closure.closed_by, str(closure.outcome)) == ("sup1", "unreachable")
        assert closure.flag == "the number is withheld: no callback possible"  # what they acted on
        assert before <= closure.closed_at <= after  # UTC-aware, the command's own clock

    asyncio.run(check())
    # No longer open (the wallboard's list), and `show` tells the closure.
    assert main(["callbacks", "list", "--open", "--json", "--database", str(db)]) == 0
    assert [t["id"] for t in json.loads(capsys.readouterr().out)] == [2]
    assert main(["callbacks", "show", "1", "--json", "--database", str(db)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "closed"
    assert shown["closure"]["note"] == "called twice from the desk, no answer"


def test_closing_twice_says_who_closed_it(db: StoreLocation, capsys: pytest.CaptureFixture[str]) -> None:
    assert close(db, "1") == 0
    capsys.readouterr()
    assert close(db, "1") == 1
    err = capsys.readouterr().err
    assert "task 1 not closed: it was closed by sup1 at " in err


def test_a_task_the_engine_is_still_working_on_is_not_closed(db: StoreLocation,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert close(db, "2") == 1
    err = capsys.readouterr().err
    assert "it is pending: the engine is still calling the citizen back" in err

    async def status() -> TaskStatus:
        conn = await open_database(db, (CALLBACKS_SCHEMA,))
        try:
            task = await get_task(conn, 2)
        finally:
            await conn.close()
        assert task is not None
        return task.status

    assert asyncio.run(status()) is TaskStatus.PENDING


@pytest.mark.parametrize("case", [
    ("x", (), 2, "'x' is not a task id"),
    ("9", (), 1, "no callback task 9"),
    ("1", ("--by", " "), 2, "--by and --note must not be empty"),
])
def test_bad_input_says_what_to_do(db: StoreLocation, capsys: pytest.CaptureFixture[str],
                                   case: tuple[str, tuple[str, ...], int, str]) -> None:
    task, extra, code, message = case
    assert close(db, task, *extra) == code
    assert message in capsys.readouterr().err


def test_an_unknown_outcome_is_refused_by_the_parser(db: StoreLocation,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["callbacks", "close", "1", "--by", "sup1", "--outcome", "gone", "--note", "x",
              "--database", str(db)])
    assert exc.value.code == 2
    assert "invalid choice: 'gone'" in capsys.readouterr().err
