"""Where the engine's database is, and checking it before the engine starts (no command-line parsing
here: the commands' options are in callflow/commands/_options.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from callflow.calls.tracker import SCHEMAS
from callflow.lab import lab_dir
from callflow.store import open_database


def resolve_database(explicit: Path | None, lab: str | None, configured: Path) -> Path:
    """``--database`` wins; with ``--lab`` the lab's own database; otherwise the settings' one."""
    if explicit is not None:
        return explicit
    if lab is not None:
        return lab_dir(lab) / "siaga112.db"
    return configured


def check_database(path: Path) -> None:
    """Open (creating or migrating) and close the database: raises StoreError for a foreign or corrupt
    file before the engine starts, so ``serve`` fails with a clear message and never overwrites it."""

    async def probe() -> None:
        conn = await open_database(path, SCHEMAS)
        await conn.close()

    asyncio.run(probe())
