"""The embedded store: the engine's components open one new database at the same moment at first start,
and every one of them must get it (a component that loses the race would run without its tables)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callflow.calls.tracker import SCHEMAS as CALL_SCHEMAS
from callflow.store import StoreError, open_database
from queues.operators import SCHEMA as OPERATOR_SCHEMA
from recordings import SCHEMA as RECORDING_SCHEMA

ROUNDS = 40


async def test_components_opening_a_new_database_together_all_get_it(tmp_path: Path) -> None:
    failures: list[str] = []
    for n in range(ROUNDS):
        db = tmp_path / f"round{n}" / "siaga112.db"
        opened = await asyncio.gather(open_database(db, CALL_SCHEMAS), open_database(db, [RECORDING_SCHEMA]),
                                      open_database(db, [OPERATOR_SCHEMA]), return_exceptions=True)
        for conn in opened:
            if isinstance(conn, BaseException):
                failures.append(f"round {n}: {conn!r}")
            else:
                async with conn.execute("PRAGMA journal_mode") as cur:
                    assert (await cur.fetchone()) == ("wal",)
                await conn.close()
    assert failures == []
    # and every component's tables are there, at their latest version
    conn = await open_database(tmp_path / "round0" / "siaga112.db")
    try:
        async with conn.execute("SELECT component, version FROM schema_version") as cur:
            versions = dict(await cur.fetchall())
    finally:
        await conn.close()
    expected = {s.name: len(s.steps) for s in [*CALL_SCHEMAS, RECORDING_SCHEMA, OPERATOR_SCHEMA]}
    assert versions == expected


async def test_a_foreign_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "siaga112.db"
    db.write_bytes(b"not a database, someone's notes")
    with pytest.raises(StoreError, match="not a SQLite database"):
        await open_database(db, CALL_SCHEMAS)
    assert db.read_bytes() == b"not a database, someone's notes"
