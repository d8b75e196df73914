"""The embedded store: the engine's components open one new database at the same moment at first start,
and every one of them must get it (a component that loses the race would run without its tables)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from callflow.calls.tracker import SCHEMAS as CALL_SCHEMAS
from callflow.store import Schema, StoreError, open_database
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


def _deleted_descriptors() -> list[str]:
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.endswith(" (deleted)"):
            found.append(target)
    return found


async def test_a_second_opener_in_the_process_keeps_the_wal_of_the_first(tmp_path: Path) -> None:
    """Issue 15's reproduction: component A writes, component B opens the same file in the same process,
    another process opens and closes a connection. Before the fix B's header read with ``open()`` dropped
    A's POSIX locks, the other process deleted the WAL, and A's later writes were invisible to everyone."""
    db = tmp_path / "var" / "siaga112.db"
    first = await open_database(db, CALL_SCHEMAS)
    try:
        await first.execute("CREATE TABLE notes (n INTEGER)")
        await first.execute("INSERT INTO notes VALUES (1)")
        await first.commit()
        second = await open_database(db, [RECORDING_SCHEMA])
        await second.close()
        reader = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                  "c.execute('SELECT count(*) FROM sqlite_master').fetchone(); c.close()")
        other = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", reader, str(db)],
                                        capture_output=True, text=True, timeout=30, check=False)
        assert other.returncode == 0, other.stderr
        assert db.with_name(db.name + "-wal").exists()
        assert not [d for d in _deleted_descriptors() if str(tmp_path) in d]
        await first.execute("INSERT INTO notes VALUES (2)")
        await first.commit()
        with sqlite3.connect(db) as fresh:
            assert fresh.execute("SELECT count(*) FROM notes").fetchone() == (2,)
    finally:
        await first.close()


async def test_the_database_and_its_directory_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "new" / "siaga112.db"
    conn = await open_database(db, CALL_SCHEMAS)
    try:
        await conn.execute("INSERT INTO schema_version (component, version) VALUES ('x', 1)")
        await conn.commit()
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    finally:
        await conn.close()


async def test_an_existing_world_readable_database_is_made_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "siaga112.db"
    conn = await open_database(db)
    await conn.close()
    db.chmod(0o644)
    conn = await open_database(db)
    await conn.close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


async def test_components_sharing_a_schema_open_a_new_database_at_once(tmp_path: Path) -> None:
    """Two components migrating the same schema on a new file at the same moment (the callback service
    and the abuse flags both use ``abuse``): one creates the tables, the others wait and see them.
    Before the migration took an IMMEDIATE lock, all read version 0 and one failed "table ... already
    exists"."""
    shared = Schema("shared_test", ("CREATE TABLE shared_t (a INTEGER);\n"
                                    "CREATE INDEX shared_i ON shared_t(a);",
                                    "ALTER TABLE shared_t ADD COLUMN b TEXT NOT NULL DEFAULT '';"))
    for n in range(8):
        path = tmp_path / f"race{n}.db"
        conns = await asyncio.gather(*(open_database(path, (shared,)) for _ in range(3)))
        for conn in conns:
            async with conn.execute("SELECT version FROM schema_version "
                                    "WHERE component = 'shared_test'") as cur:
                assert await cur.fetchone() == (2,)
            await conn.close()
