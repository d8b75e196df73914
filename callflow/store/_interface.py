"""The one store interface every component writes through, and what it is made of: the location (a SQLite
file or a PostgreSQL URL), the migration steps (:class:`Schema`) and the errors.

Component code is written once, in SQLite's SQL with ``?`` placeholders and the forms both engines
accept (``ON CONFLICT ... DO NOTHING/UPDATE``, ``RETURNING id``); what differs between the engines is
carried out in :mod:`callflow.store._dialect` (one place) by the PostgreSQL implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit, urlunsplit

Row = tuple[Any, ...]
Params = Sequence[Any]


class StoreError(Exception):
    """The database cannot be used as it is; the message says which one and what to do."""


class DatabaseError(Exception):
    """A statement failed (the engine's own error, translated at the store's boundary)."""


class OperationalError(DatabaseError):
    """The database is not available right now (locked, unreachable, disk full, no such table yet): the
    same statement may succeed later."""


class IntegrityError(DatabaseError):
    """A constraint refused the row (unique, foreign key, check)."""


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class Schema:
    """A component's tables: ``steps[i]`` migrates version i to i+1 (SQL script, SQLite's SQL; the
    PostgreSQL store translates it). ``postgresql`` overrides a step by index where no translation fits
    (SQLite rebuilds a table to widen a CHECK; PostgreSQL alters it in place)."""

    name: str
    steps: tuple[str, ...]
    postgresql: Mapping[int, str] = field(default_factory=dict)

    def step(self, index: int, dialect: Dialect) -> str:
        if dialect is Dialect.POSTGRESQL and index in self.postgresql:
            return self.postgresql[index]
        return self.steps[index]


@dataclass(frozen=True)
class PostgresUrl:
    """A PostgreSQL store: a libpq URL (``postgresql://user@host:port/dbname``, or
    ``postgresql:///?service=NAME`` for a libpq service file entry). The password is never part of it: it
    comes from libpq's own sources (``PGPASSFILE``, a 0600 ``~/.pgpass``, the service file, or
    ``PGPASSWORD`` in the environment), so settings files and logs never hold it."""

    url: str

    @classmethod
    def parse(cls, text: str) -> PostgresUrl:
        parts = urlsplit(text)
        if parts.password is not None or "password=" in parts.query:
            raise StoreError(
                "the database URL holds a password; passwords never go in a URL, a settings file or a log. "
                "Remove it and put it in a 0600 password file (PGPASSFILE or ~/.pgpass), a libpq service "
                "file (PGSERVICEFILE, then postgresql:///?service=NAME) or PGPASSWORD in the environment")
        return cls(text)

    @property
    def display(self) -> str:
        """The URL as messages and logs show it (user, host, port, database; never a secret)."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    def __str__(self) -> str:
        return self.display


StoreLocation = Path | PostgresUrl
URL_SCHEMES = ("postgresql://", "postgres://")


def parse_location(value: str | Path | PostgresUrl) -> StoreLocation:
    """A ``--database``/``SIAGA112_DATABASE``/settings value: a ``postgresql://`` URL, else a file path."""
    if isinstance(value, PostgresUrl | Path):
        return value
    if value.startswith(URL_SCHEMES):
        return PostgresUrl.parse(value)
    return Path(value)


class Cursor(Protocol):
    """A statement's result: rows as tuples, and how many rows a write touched."""

    @property
    def rowcount(self) -> int: ...

    async def fetchone(self) -> Row | None: ...

    async def fetchall(self) -> list[Row]: ...

    async def fetchmany(self, size: int) -> list[Row]:
        """Up to ``size`` more rows ([] at the end): long reads without every row in memory at once."""
        ...

    async def close(self) -> None: ...


class Statement:
    """What :meth:`Database.execute` returns: await it for the cursor, or ``async with`` it (the cursor is
    closed at the end), as aiosqlite allowed."""

    __slots__ = ("_cursor", "_run")

    def __init__(self, run: Callable[[], Awaitable[Cursor]]) -> None:
        self._run = run
        self._cursor: Cursor | None = None

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._run().__await__()

    async def __aenter__(self) -> Cursor:
        self._cursor = await self._run()
        return self._cursor

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class Database(Protocol):
    """One connection to the store. Transactions are implicit (the first statement opens one; ``commit``
    or ``rollback`` ends it), as in Python's sqlite3; ``BEGIN IMMEDIATE`` takes the store's write lock at
    once (SQLite: the database lock; PostgreSQL: a transaction-scoped advisory lock)."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def location(self) -> StoreLocation: ...

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Params = ()) -> Statement: ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an ``INSERT`` into a table whose key is ``id``; the new row's id."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def close(self) -> None: ...

    async def tables(self, prefix: str = "") -> list[str]:
        """The store's table names starting with ``prefix``, sorted."""
        ...

    async def columns(self, table: str) -> list[str]:
        """A table's column names, in order."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...
