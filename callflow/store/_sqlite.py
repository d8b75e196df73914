"""The embedded store: one SQLite file (WAL, synchronous=FULL) shared by the engine's components.

Each component owns its tables and declares them as a :class:`Schema` (name plus ordered migration
steps); :func:`open_sqlite` applies what is missing. A file that is not SQLite, or a SQLite file of
another application, is refused with a clear error and never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite

from callflow.store._interface import (
    Cursor,
    DatabaseError,
    Dialect,
    IntegrityError,
    OperationalError,
    Params,
    Row,
    Schema,
    Statement,
    StoreError,
)

APPLICATION_ID = 0x51A6A112  # "siaga 112": marks the file as ours
BUSY_TIMEOUT_S = 5.0
_STALE_READ_PAUSE_S = 0.05  # between tries of a write refused by another part's stale read


def _reads_only(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """sqlite3's errors as the store's own (the message is SQLite's: "database is locked", ...)."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc
    except sqlite3.OperationalError as exc:
        raise OperationalError(str(exc)) from exc
    except sqlite3.Error as exc:
        raise DatabaseError(str(exc)) from exc


class _SqliteCursor:
    __slots__ = ("_cur",)

    def __init__(self, cur: aiosqlite.Cursor) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    async def fetchone(self) -> Row | None:
        with translated():
            row = await self._cur.fetchone()
        return None if row is None else tuple(row)

    async def fetchall(self) -> list[Row]:
        with translated():
            return [tuple(r) for r in await self._cur.fetchall()]

    async def fetchmany(self, size: int) -> list[Row]:
        with translated():
            return [tuple(r) for r in await self._cur.fetchmany(size)]

    async def close(self) -> None:
        with translated():
            await self._cur.close()


class SqliteDatabase:
    """The store on one SQLite file (aiosqlite: one worker thread per connection)."""

    dialect = Dialect.SQLITE

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.raw = conn
        self.path = path
        self._holds_work = False  # a statement other than a read succeeded in the open transaction

    @property
    def location(self) -> Path:
        return self.path

    @property
    def in_transaction(self) -> bool:
        return bool(self.raw.in_transaction)

    def execute(self, sql: str, params: Params = ()) -> Statement:
        async def run() -> Cursor:
            return _SqliteCursor(await self._first_write_waits(sql, tuple(params)))
        return Statement(run)

    async def _first_write_waits(self, sql: str, params: tuple[Any, ...]) -> aiosqlite.Cursor:
        """Run one statement. The parts of a process share a connection (the console's requests do): while
        one part's read on it is open, SQLite refuses another part's write at once with "database is
        locked" if a different connection committed since that read began (a stale WAL snapshot: the busy
        timeout does not apply). Seen as 500s on the console's writes under load (bench/nuisance.py). A
        refused write wrote nothing, so while the open transaction holds no statement that succeeded (it
        was opened by this refused write, or by another part's write refused the same way and not yet
        retried: seen under load in bench/nuisance.py, 1 tag of 142), end that empty transaction (COMMIT
        leaves the other part's read running; ROLLBACK would abort it) and try again while the read
        finishes, for about the busy timeout. A transaction with work in it is the caller's to end."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            empty = not self.raw.in_transaction or not self._holds_work
            try:
                with translated():
                    cur = await self.raw.execute(sql, params)
            except OperationalError as exc:
                if not empty or "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                if not self._holds_work:  # still empty: no other part's statement got in meanwhile
                    with translated():
                        await self.raw.commit()
                await asyncio.sleep(_STALE_READ_PAUSE_S)
                continue
            if not self.raw.in_transaction:
                self._holds_work = False
            elif not _reads_only(sql):  # a read in another part's empty transaction adds no work to it
                self._holds_work = True
            return cur

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        with translated():
            await self.raw.executemany(sql, [tuple(r) for r in rows])

    async def insert(self, sql: str, params: Params = ()) -> int:
        cur = await self._first_write_waits(sql, tuple(params))
        with translated():
            await cur.close()
        if cur.lastrowid is None:
            raise DatabaseError(f"SQLite gave no row id for {sql[:60]}")
        return int(cur.lastrowid)

    async def commit(self) -> None:
        with translated():
            await self.raw.commit()
        self._holds_work = False

    async def rollback(self) -> None:
        with translated():
            await self.raw.rollback()
        self._holds_work = False

    async def close(self) -> None:
        await self.raw.close()

    async def tables(self, prefix: str = "") -> list[str]:
        async with self.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                "AND substr(name, 1, ?) = ? ORDER BY name", (len(prefix), prefix)) as cur:
            return [str(r[0]) for r in await cur.fetchall()]

    async def columns(self, table: str) -> list[str]:
        async with self.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,)) as cur:
            return [str(r[0]) for r in await cur.fetchall()]

    async def iterdump(self) -> AsyncIterator[str]:
        """The whole file as SQL text (tests read it to prove a secret is not stored)."""
        async for line in self.raw.iterdump():
            yield line

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


def create_private(path: Path) -> None:
    """Create the database file and its directory owner-only (0600 / 0700): it holds password hashes and
    callers' numbers. SQLite gives the WAL and shared-memory files the database file's mode, so the mode
    set here reaches them too. An existing file is only ``chmod``-ed (no descriptor is opened: see
    :func:`open_database` on POSIX locks)."""
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL: the descriptor is opened and closed only on a file no connection of ours can hold yet
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for suffix in ("", "-wal", "-shm"):
            companion = path.with_name(path.name + suffix)
            with contextlib.suppress(FileNotFoundError, PermissionError):
                if companion.stat().st_mode & 0o077:
                    companion.chmod(0o600)
    else:
        os.close(fd)


async def _check_ours(conn: aiosqlite.Connection, path: Path) -> None:
    """Refuse a foreign or corrupt file, asking SQLite itself (its header read through the connection).

    Never read the file with ``open()``: closing any descriptor of a file drops every POSIX lock this
    process holds on it, so another process's close then believes it is the last connection, checkpoints
    and deletes the WAL under the engine (issue 15: one ``calls list`` beside the engine lost its writes)."""
    try:
        async with conn.execute("PRAGMA application_id") as cur:
            row = await cur.fetchone()
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError):  # locked, I/O error...: not a verdict on the file
            raise
        raise StoreError(f"{path} is not a SQLite database (corrupt or another kind of file: {exc}); "
                         "siaga112 will not overwrite it. Move it aside or point the engine at another "
                         "database.") from exc
    app_id = int(row[0]) if row else 0
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(f"{path} is a SQLite database of another application (application_id "
                         f"{app_id:#x}); siaga112 will not touch it. Use another database path.")


async def open_sqlite(path: Path, schemas: Sequence[Schema] = ()) -> SqliteDatabase:
    """Open (creating if needed) the store and apply missing migrations. Always ``await conn.close()``:
    aiosqlite's worker thread is not a daemon and an unclosed connection hangs the process at exit."""
    create_private(path)
    conn = await aiosqlite.connect(path)
    try:
        # first: components open one new database at once at start-up, and switching it to WAL takes a
        # lock; without a busy timeout the second opener failed at once ("database is locked")
        await conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        await _check_ours(conn, path)
        async with conn.execute("PRAGMA quick_check") as cur:
            row = await cur.fetchone()
        if row is None or row[0] != "ok":
            raise StoreError(f"{path} failed SQLite's integrity check ({row[0] if row else 'no answer'}); "
                             "siaga112 will not write to it. Restore it from a backup or move it aside.")
        await _switch_to_wal(conn, path)
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, "
                           "version INTEGER NOT NULL)")
        for schema in schemas:
            await migrate(conn, schema)
        await conn.commit()
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise StoreError(f"{path}: {exc}; siaga112 will not overwrite it. Move it aside or fix it.") from exc
    except BaseException:
        await conn.close()
        raise
    return SqliteDatabase(conn, path)


async def _switch_to_wal(conn: aiosqlite.Connection, path: Path) -> None:
    """Put the file in WAL mode. Switching a new file takes an exclusive lock and SQLite answers "database
    is locked" at once, without the busy handler, while another connection opens the same new file (the
    engine's components do at first start: one in ten such starts lost a component before this retry).
    WAL is persistent, so once any opener has switched, the others read "wal" and stop."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.005
    while True:
        try:
            async with conn.execute("PRAGMA journal_mode=WAL") as cur:
                row = await cur.fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        else:
            if row is not None and str(row[0]).lower() == "wal":
                return
            if time.monotonic() >= deadline:
                mode = row[0] if row else "?"
                raise StoreError(f"{path}: SQLite refused WAL mode (journal mode stays {mode}); the database "
                                 "must be on a local file system that supports it")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.1)


def statements(script: str) -> list[str]:
    """A schema step's SQL script as single statements: cut at each ``;`` where SQLite says the text so
    far is a complete statement (a ``;`` inside a string or a trigger body is not a cut)."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    return statements


async def migrate(conn: aiosqlite.Connection, schema: Schema) -> None:
    """Bring ``schema``'s tables to its last version, in one IMMEDIATE transaction: components open a new
    database at once at start-up, and two of them sharing a schema both read version 0 and both created its
    tables ("table ... already exists", a component lost) before this. Now the second waits for the lock
    (busy timeout) and reads the first's version. Statements one by one: ``executescript`` would commit the
    transaction first."""
    if conn.in_transaction:
        await conn.commit()
    await conn.execute("BEGIN IMMEDIATE")
    try:
        async with conn.execute("SELECT version FROM schema_version WHERE component = ?",
                                (schema.name,)) as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        if current > len(schema.steps):
            raise StoreError(f"the database's {schema.name!r} tables are at version {current}, newer than "
                             f"this siaga112 knows ({len(schema.steps)}); upgrade siaga112")
        for version in range(current, len(schema.steps)):
            for statement in statements(schema.step(version, Dialect.SQLITE)):
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (component, version) VALUES (?, ?) "
                               "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                               (schema.name, version + 1))
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
