"""The store every component shares: one interface (:class:`Database`), two engines.

* SQLite (the embedded default): one file, WAL, synchronous=FULL. A file that is not SQLite, or a SQLite
  file of another application, is refused with a clear error and never overwritten.
* PostgreSQL: a ``postgresql://`` URL (``--database``, ``SIAGA112_DATABASE`` or ``database`` in the
  settings). The password comes from libpq's own sources, never from the URL.

Each component owns its tables and declares them as a :class:`Schema` (name plus ordered migration
steps); :func:`open_database` applies what is missing, one opener at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from callflow.store._interface import (
    URL_SCHEMES,
    Cursor,
    Database,
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
    StoreLocation,
    parse_location,
)
from callflow.store._sqlite import APPLICATION_ID, SqliteDatabase, create_private, open_sqlite
from callflow.store._sqlite import migrate as migrate_sqlite

__all__ = [
    "APPLICATION_ID",
    "URL_SCHEMES",
    "Cursor",
    "Database",
    "DatabaseError",
    "Dialect",
    "IntegrityError",
    "OperationalError",
    "Params",
    "PostgresUrl",
    "Row",
    "Schema",
    "SqliteDatabase",
    "Statement",
    "StoreError",
    "StoreLocation",
    "create_private",
    "migrate",
    "open_database",
    "parse_location",
    "store_exists",
]

_DRIVER_MISSING = ("the PostgreSQL store needs the driver psycopg (a dependency of siaga112): reinstall "
                   "siaga112 (`make setup`)")


async def open_database(location: StoreLocation | str, schemas: Sequence[Schema] = ()) -> Database:
    """Open (creating if needed) the store and apply missing migrations. Always ``await db.close()``
    (aiosqlite's worker thread is not a daemon: an unclosed SQLite connection hangs the process at exit).
    Raises StoreError (what is wrong, which store, what to do)."""
    where = parse_location(location)
    if isinstance(where, Path):
        return await open_sqlite(where, schemas)
    try:
        from callflow.store._postgres import open_postgresql  # noqa: PLC0415 - SQLite-only runs never load the driver
    except ImportError as exc:
        raise StoreError(_DRIVER_MISSING) from exc
    return await open_postgresql(where, schemas)


async def migrate(db: Database, schema: Schema) -> None:
    """Bring ``schema``'s tables to its last version on an open store (one transaction, one migrator at a
    time)."""
    if isinstance(db, SqliteDatabase):
        await migrate_sqlite(db.raw, schema)
        return
    from callflow.store._postgres import PostgresDatabase, migrate_postgresql  # noqa: PLC0415

    if not isinstance(db, PostgresDatabase):
        raise TypeError(f"not a store connection: {db!r}")
    await migrate_postgresql(db, schema)


def store_exists(location: StoreLocation) -> bool:
    """Whether a siaga112 store is there, without creating anything: the file exists, or the PostgreSQL
    database holds siaga112's tables. Raises StoreError when PostgreSQL cannot be reached."""
    if isinstance(location, Path):
        return location.is_file()
    try:
        from callflow.store._postgres import store_exists as postgres_store_exists  # noqa: PLC0415
    except ImportError as exc:
        raise StoreError(_DRIVER_MISSING) from exc
    return postgres_store_exists(location)
