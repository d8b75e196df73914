"""Where the engine's database is, and building the call tracker for ``serve``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from callflow.calls.derive import DeriveOptions
from callflow.calls.recovery import RecoverySources
from callflow.calls.tracker import SCHEMAS, CallTracker
from callflow.lab import lab_dir, status
from callflow.settings import EngineSettings
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


def call_tracker(settings: EngineSettings, args: argparse.Namespace) -> CallTracker:
    """The tracker for ``serve``; raises StoreError (clear message, file untouched) for a bad database."""
    lab = getattr(args, "lab", None)
    database = resolve_database(getattr(args, "database", None), lab, settings.database)
    check_database(database)
    calls = settings.calls
    cdr_file, queue_log = calls.cdr_file, calls.queue_log_file
    if lab is not None and (cdr_file is None or queue_log is None):
        st = status(lab)
        cdr_file = cdr_file or (Path(st.cdr_file) if st.cdr_file else None)
        queue_log = queue_log or (Path(st.queue_log_file) if st.queue_log_file else None)
    return CallTracker(database, sources=RecoverySources(cdr_file, queue_log),
                       options=DeriveOptions(short_abandon_s=calls.short_abandon_s),
                       max_buffer=calls.buffer_rows)
