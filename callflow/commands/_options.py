"""Options shared by the commands that read the engine's database: ``--database``, ``--lab``,
``--config``, and ``--since``/``--until`` times."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from callflow.calls.setup import resolve_database
from callflow.commands.serve import site_of
from callflow.policies import derive_options
from callflow.settings import EngineSettings, load_settings
from callflow.store import StoreError


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """``--database`` / ``--lab`` / ``--config`` for commands that read the engine's database."""
    parser.add_argument("--database", type=Path, metavar="PATH", help="the engine's SQLite database")
    parser.add_argument("--lab", nargs="?", const="default", metavar="INSTANCE",
                        help="use the lab's database (default instance: default)")
    parser.add_argument("--config", type=Path, help="settings TOML file (for settings.database)")


def settings_of(args: argparse.Namespace) -> EngineSettings:
    return load_settings(args.config) if getattr(args, "config", None) else EngineSettings()


def short_abandon_of(args: argparse.Namespace) -> float:
    """The short-abandon threshold records are derived with: the site file's ``[calls] short_abandon_s``
    (the site file the engine runs by, as ``serve`` finds it). Raises SiteConfigError for a bad file."""
    site = site_of(settings_of(args), getattr(args, "lab", None))
    return derive_options(site.calls if site is not None else None).short_abandon_s


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
