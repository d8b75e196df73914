"""Where the engine's database is, and building the call tracker for ``serve``."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path

from callflow.calls.derive import DeriveOptions
from callflow.calls.recovery import RecoverySources
from callflow.calls.tracker import SCHEMAS, CallTracker
from callflow.lab import lab_dir, status
from callflow.settings import EngineSettings, load_settings
from callflow.store import StoreError, open_database


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
    database = settings.database  # resolved once by `serve` and shared by every component
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


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """``--database`` / ``--lab`` / ``--config`` for commands that read the engine's database."""
    parser.add_argument("--database", type=Path, metavar="PATH", help="the engine's SQLite database")
    parser.add_argument("--lab", nargs="?", const="default", metavar="INSTANCE",
                        help="use the lab's database (default instance: default)")
    parser.add_argument("--config", type=Path, help="settings TOML file (for settings.database)")


def settings_of(args: argparse.Namespace) -> EngineSettings:
    return load_settings(args.config) if getattr(args, "config", None) else EngineSettings()


def short_abandon_of(args: argparse.Namespace) -> float:
    """``--short-abandon-s`` if given, else the settings' ``calls.short_abandon_s`` (default 3)."""
    given: float | None = getattr(args, "short_abandon_s", None)
    return given if given is not None else settings_of(args).calls.short_abandon_s


def database_of(args: argparse.Namespace) -> Path:
    """The database a command reads; raises StoreError when there is none yet."""
    settings = settings_of(args)
    path = resolve_database(args.database, args.lab, settings.database)
    if not path.exists():
        raise StoreError(f"no database at {path}: start the engine (`siaga112 serve`) first, or give "
                         "--database PATH / --lab INSTANCE")
    return path


def parse_when(text: str) -> datetime:
    """``--since``/``--until``: ISO 8601 date or date-time; without a zone it is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time (e.g. 2026-11-22 or 2026-11-22T08:00:00+08:00)"
        ) from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
