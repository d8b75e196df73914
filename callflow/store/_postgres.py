"""The store on PostgreSQL (psycopg 3; docs/decisions.md says why this driver).

The same interface as the SQLite store: implicit transactions (psycopg opens one at the first statement,
as sqlite3 does), SQLite's SQL rewritten by :mod:`callflow.store._dialect`, errors translated to the
store's own. Parameters are sent untyped (``int``/``bool``/``float`` as text with no type), so
PostgreSQL types each from its place in the statement as SQLite's loose typing did (an integer compared
with a TEXT column, ``True`` stored in an INTEGER column). ``numeric`` results (``SUM`` of integers) come
back as ``int`` (or ``float``), as SQLite gives them.

A lost connection (the server restarted, the network cut) is reopened by the next statement: the
statement that met the loss raises :class:`OperationalError` (its transaction is gone, as after a
crash), the caller retries as it would a locked SQLite file. A failed statement undoes only itself, as
in SQLite: inside an open transaction each statement runs under a savepoint (PostgreSQL would otherwise
refuse the rest of the transaction, and the tasks of a component share one connection, so one task's
failed probe would undo another's uncommitted writes); a failure outside one ends its own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self

import psycopg
import psycopg.errors
from psycopg.adapt import Dumper, Loader
from psycopg.pq import TransactionStatus

from callflow.store._dialect import CREATE_NOCASE, MIGRATION_LOCK_KEY, to_postgresql
from callflow.store._interface import (
    Cursor,
    DatabaseError,
    Dialect,
    IntegrityError,
    OperationalError,
    Params,
    PostgresUrl,
    Row,
    Schema,
    Statement,
    StoreError,
)
from callflow.store._sqlite import statements

CONNECT_TIMEOUT_S = 3  # a stopped server is known at once; an unreachable host within this
APPLICATION_NAME = "siaga112"


class _Untyped(Dumper):
    """A number as text of unknown type: PostgreSQL infers it from the column or operator."""

    oid = 0

    def dump(self, obj: Any) -> bytes:
        return str(obj).encode()


class _UntypedBool(Dumper):
    oid = 0

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class _NumericAsNumber(Loader):
    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        if "." in text or "e" in text.lower() or "n" in text.lower():  # NaN, Infinity
            return float(text)
        return int(text)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """psycopg's errors as the store's own (a missing table is "not yet", as SQLite says it)."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise OperationalError(str(exc).strip()) from exc
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(str(exc).strip()) from exc
    except (psycopg.OperationalError, psycopg.errors.AdminShutdown, psycopg.errors.CannotConnectNow) as exc:
        raise OperationalError(str(exc).strip()) from exc
    except psycopg.Error as exc:
        raise DatabaseError(str(exc).strip()) from exc


class _PgCursor:
    __slots__ = ("_cur",)

    def __init__(self, cur: psycopg.AsyncCursor[Row]) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    async def fetchone(self) -> Row | None:
        if self._cur.pgresult is None or self._cur.description is None:
            return None
        with translated():
            return await self._cur.fetchone()

    async def fetchall(self) -> list[Row]:
        if self._cur.pgresult is None or self._cur.description is None:
            return []
        with translated():
            return await self._cur.fetchall()

    async def fetchmany(self, size: int) -> list[Row]:
        if self._cur.pgresult is None or self._cur.description is None:
            return []
        with translated():
            return await self._cur.fetchmany(size)

    async def close(self) -> None:
        await self._cur.close()


async def connect(url: PostgresUrl) -> psycopg.AsyncConnection[Row]:
    with translated():
        conn = await psycopg.AsyncConnection.connect(url.url, autocommit=False,
                                                     connect_timeout=CONNECT_TIMEOUT_S,
                                                     application_name=APPLICATION_NAME)
    for kind in (int, float):
        conn.adapters.register_dumper(kind, _Untyped)
    conn.adapters.register_dumper(bool, _UntypedBool)
    conn.adapters.register_loader("numeric", _NumericAsNumber)
    return conn


class PostgresDatabase:
    """One psycopg connection, reopened after a loss."""

    dialect = Dialect.POSTGRESQL

    def __init__(self, conn: psycopg.AsyncConnection[Row], url: PostgresUrl) -> None:
        self.raw = conn
        self.url = url
        self._closed = False
        # one statement (and what its failure undoes) at a time: the tasks of a component share the
        # connection, and none may run in a transaction another's failure has just aborted
        self._lock = asyncio.Lock()

    @property
    def location(self) -> PostgresUrl:
        return self.url

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    async def _ready(self) -> psycopg.AsyncConnection[Row]:
        if self._closed:
            raise OperationalError(f"the store {self.url} was closed")
        if self.raw.closed or self.raw.broken:
            with contextlib.suppress(psycopg.Error):
                await self.raw.close()
            self.raw = await connect(self.url)
        return self.raw

    async def _failed(self) -> None:
        """After a failed statement: PostgreSQL refuses the rest of the transaction, so end it now."""
        conn = self.raw
        if not conn.closed and not conn.broken and conn.info.transaction_status == TransactionStatus.INERROR:
            with contextlib.suppress(psycopg.Error):
                await conn.rollback()

    def execute(self, sql: str, params: Params = ()) -> Statement:
        async def run() -> Cursor:
            query = to_postgresql(sql)
            async with self._lock:
                conn = await self._ready()
                cur = conn.cursor()
                if query is None:
                    return _PgCursor(cur)
                try:
                    with translated():
                        await self._statement(conn, lambda: cur.execute(query, tuple(params)))
                except DatabaseError:
                    await cur.close()
                    await self._failed()
                    raise
                return _PgCursor(cur)
        return Statement(run)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        query = to_postgresql(sql)
        if query is None:
            return
        args = [tuple(r) for r in rows]
        async with self._lock:
            conn = await self._ready()
            try:
                async with conn.cursor() as cur:
                    with translated():
                        await self._statement(conn, lambda: cur.executemany(query, args))
            except DatabaseError:
                await self._failed()
                raise

    @staticmethod
    async def _statement(conn: psycopg.AsyncConnection[Row], run: Callable[[], Awaitable[object]]) -> None:
        """Run one statement. Inside an open transaction it runs under a savepoint: a failed statement
        then undoes itself only, as in SQLite, not the transaction's earlier statements (which may be
        another task's uncommitted writes on this shared connection)."""
        if conn.info.transaction_status == TransactionStatus.INTRANS:
            async with conn.transaction():
                await run()
        else:
            await run()

    async def insert(self, sql: str, params: Params = ()) -> int:
        async with self.execute(f"{sql.rstrip().rstrip(';')} RETURNING id", params) as cur:
            row = await cur.fetchone()
        if row is None:
            raise DatabaseError(f"PostgreSQL gave no id for {sql[:60]}")
        return int(row[0])

    async def commit(self) -> None:
        async with self._lock:
            if self.raw.closed:
                raise OperationalError(f"the connection to {self.url} was lost before the commit")
            try:
                with translated():
                    await self.raw.commit()
            except DatabaseError:
                await self._failed()
                raise

    async def rollback(self) -> None:
        async with self._lock:
            if self.raw.closed or self.raw.broken:
                return  # the server already dropped the transaction with the connection
            with translated():
                await self.raw.rollback()

    async def close(self) -> None:
        self._closed = True
        with contextlib.suppress(psycopg.Error):
            await self.raw.close()

    async def tables(self, prefix: str = "") -> list[str]:
        async with self.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                "current_schema() AND substr(table_name, 1, ?) = ? ORDER BY table_name",
                                (len(prefix), prefix)) as cur:
            return [str(r[0]) for r in await cur.fetchall()]

    async def columns(self, table: str) -> list[str]:
        async with self.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                "current_schema() AND table_name = ? ORDER BY ordinal_position",
                                (table,)) as cur:
            return [str(r[0]) for r in await cur.fetchall()]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


async def open_postgresql(url: PostgresUrl, schemas: Sequence[Schema] = ()) -> PostgresDatabase:
    """Connect and apply missing migrations (one opener at a time: an advisory lock). A database that
    holds other tables but not siaga112's ``schema_version`` belongs to another application: refused."""
    try:
        conn = await connect(url)
    except OperationalError as exc:
        raise StoreError(f"cannot reach the PostgreSQL store {url}: {exc}. Start PostgreSQL or fix the "
                         "URL (--database, SIAGA112_DATABASE or 'database' in the settings)") from exc
    db = PostgresDatabase(conn, url)
    try:
        await _prepare(db, schemas)
    except DatabaseError as exc:
        await db.close()
        raise StoreError(f"{url}: {exc}") from exc
    except BaseException:
        await db.close()
        raise
    return db


async def _prepare(db: PostgresDatabase, schemas: Sequence[Schema]) -> None:
    await db.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    tables = await db.tables()
    if tables and "schema_version" not in tables:
        raise StoreError(f"{db.url} holds tables of another application ({', '.join(tables[:5])}); "
                         "siaga112 will not touch it. Give siaga112 a database of its own")
    await db.execute(CREATE_NOCASE)
    await db.execute("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, "
                     "version INTEGER NOT NULL)")
    for schema in schemas:
        await _migrate(db, schema)
    await db.commit()


async def migrate_postgresql(db: PostgresDatabase, schema: Schema) -> None:
    """Bring one schema to its last version, in one transaction under the migration lock."""
    if db.in_transaction:
        await db.commit()
    try:
        await db.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        await _migrate(db, schema)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise


async def _migrate(db: PostgresDatabase, schema: Schema) -> None:
    async with db.execute("SELECT version FROM schema_version WHERE component = ?", (schema.name,)) as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    if current > len(schema.steps):
        raise StoreError(f"the database's {schema.name!r} tables are at version {current}, newer than "
                         f"this siaga112 knows ({len(schema.steps)}); upgrade siaga112")
    for version in range(current, len(schema.steps)):
        for statement in statements(schema.step(version, Dialect.POSTGRESQL)):
            await db.execute(statement)
        await db.execute("INSERT INTO schema_version (component, version) VALUES (?, ?) "
                         "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                         (schema.name, version + 1))


def store_exists(url: PostgresUrl) -> bool:
    """Whether the URL reaches a siaga112 store (its ``schema_version`` table); never creates anything.
    Raises StoreError when PostgreSQL cannot be reached at all."""
    try:
        with psycopg.connect(url.url, connect_timeout=CONNECT_TIMEOUT_S, application_name=APPLICATION_NAME,
                             autocommit=True) as conn:
            row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc):
            return False
        raise StoreError(f"cannot reach the PostgreSQL store {url}: {str(exc).strip()}. Start PostgreSQL "
                         "or fix the URL") from exc
    return bool(row and row[0])
