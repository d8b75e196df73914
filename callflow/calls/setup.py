"""Checking the engine's database before the engine starts (which database: the one rule of
callflow/commands/_locate.py)."""

from __future__ import annotations

import asyncio

from callflow.calls.tracker import SCHEMAS
from callflow.store import StoreLocation, open_database


def check_database(path: StoreLocation) -> None:
    """Open (creating or migrating) and close the database: raises StoreError for a foreign or corrupt
    file before the engine starts, so ``serve`` fails with a clear message and never overwrites it."""

    async def probe() -> None:
        conn = await open_database(path, SCHEMAS)
        await conn.close()

    asyncio.run(probe())
