"""Which database, site file and time zone a command works on: one rule, for every command.

Every command that touches the store or reads the site takes ``--lab [INSTANCE]``, ``--database PATH``,
``--config FILE`` and ``--site FILE``, before or after its action (``incidents --lab X list`` and
``incidents list --lab X`` are the same). The rule, first match wins:

database (a SQLite file, or a ``postgresql://`` URL wherever a path is taken: see README "The store")
    1. ``--database PATH|URL``
    2. ``SIAGA112_DATABASE``, or ``database`` in the settings file (``--config FILE`` / ``SIAGA112_CONFIG``)
    3. ``--lab [INSTANCE]``: that lab's database (``siaga112 lab status --json`` prints it)
    4. ``var/siaga112.db`` under the current directory (the settings' default)

site file
    1. ``--site FILE``
    2. ``SIAGA112_SITE_FILE``, or ``site_file`` in the settings file
    3. the site last applied (``config apply``) to the lab (``--lab``), else to the production state
       directory (``/var/lib/siaga112/config``), when there is one
    4. the shipped ``pbx-config/site.toml``

time zone
    the site file's ``[centre] timezone`` (default Asia/Makassar, WITA). A time given without an offset
    is the centre's local time, in every command.

A command that reads never creates a database: it refuses one that does not exist (no file; a
PostgreSQL database without siaga112's tables), naming what it looked for, why that one, and how to point
at the right one. ``serve`` creates its database; any other
command that writes creates it only when it was named (not the bare default) and says so.

Exit codes (README "Exit codes"): 0 done; 1 the command ran and found problems or refused (a check
failed, nothing with that id, a change the rules forbid); 2 usage or environment (a bad option or value,
no database, an unreadable settings or site file, Asterisk or a lab not reachable, a store error).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from callflow.lab import LabError, lab_database, lab_dir, status
from callflow.settings import EngineSettings, load_settings
from callflow.site_watch import SiteSource
from callflow.siteconfig import (
    DEFAULT_STATE_DIR,
    LoadedSite,
    SiteConfigError,
    applied_site_path,
    load_site,
    pbx_config_dir,
)
from callflow.store import StoreError, StoreLocation, parse_location, store_exists

Where = TypeVar("Where", Path, StoreLocation)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

PRODUCTION_STATE_DIR = DEFAULT_STATE_DIR  # where `config apply --etc` keeps the applied site
LOCAL_TIME_HELP = "ISO 8601; without an offset: the centre's local time (the site's [centre] timezone)"
WHERE_HELP = ("first match wins. Database: --database, SIAGA112_DATABASE or the settings file's, the lab's "
              "(--lab), var/siaga112.db. Site: --site, SIAGA112_SITE_FILE or the settings file's, the site "
              "last applied (config apply), pbx-config/site.toml. Times without an offset: the centre's "
              "local time (the site's [centre] timezone)")


class LocateError(Exception):
    """A usage or environment error (exit 2); the message says what was wrong and what to do."""


def add_location_options(parser: argparse.ArgumentParser, *, after_action: bool = False,
                         database: bool = True, site: bool = True) -> None:
    """``--lab``, ``--database``, ``--config``, ``--site``. Add them to the command's parser and, with
    ``after_action=True``, to each action's: there they default to SUPPRESS, so a value given before the
    action is never hidden by the action's default."""
    extra: dict[str, Any] = {"default": argparse.SUPPRESS} if after_action else {"default": None}
    group = parser.add_argument_group("where (one rule for every command)", WHERE_HELP)
    group.add_argument("--lab", nargs="?", const="default", metavar="INSTANCE",
                       help="a lab's database and site (default instance: default)", **extra)
    if database:
        group.add_argument("--database", "--db", dest="database", type=database_option, metavar="PATH|URL",
                           help="the engine's store: a SQLite file or a postgresql:// URL (wins over "
                                "everything else)", **extra)
    group.add_argument("--config", type=Path, metavar="FILE",
                       help="settings TOML file (also SIAGA112_CONFIG): its database and site_file", **extra)
    if site:
        group.add_argument("--site", type=Path, metavar="FILE",
                           help="the site file (also SIAGA112_SITE_FILE; default: the last applied site, "
                                "else pbx-config/site.toml)", **extra)


def database_option(text: str) -> StoreLocation:
    """``--database``: a file path or a ``postgresql://`` URL (refused with a password in it)."""
    try:
        return parse_location(text)
    except StoreError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_location_everywhere(parser: argparse.ArgumentParser, actions: Any, **kinds: bool) -> None:
    """The options on ``parser`` and on every action already added to the subparsers ``actions``."""
    add_location_options(parser, **kinds)
    for action_parser in dict.fromkeys(actions.choices.values()):
        add_location_options(action_parser, after_action=True, **kinds)


@dataclass(frozen=True)
class Choice(Generic[Where]):
    """A file or a PostgreSQL store, and why that one (said in messages: "database X (--lab demo)")."""

    path: Where
    how: str

    def __str__(self) -> str:
        return f"{self.path} ({self.how})"


class Location:
    """The database, site file and time zone of one command run (see the module's rule)."""

    def __init__(self, *, lab: str | None = None, database: StoreLocation | None = None,
                 config: Path | None = None,
                 site: Path | None = None, environ: dict[str, str] | None = None) -> None:
        self.lab = lab
        self.database_option = database
        self.config = config
        self.site_option = site
        self.environ = dict(os.environ) if environ is None else environ

    @classmethod
    def of(cls, args: argparse.Namespace) -> Location:
        return cls(lab=getattr(args, "lab", None), database=getattr(args, "database", None),
                   config=getattr(args, "config", None), site=getattr(args, "site", None))

    # -- settings ------------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> EngineSettings:
        try:
            settings = load_settings(self.config)
        except (ValidationError, FileNotFoundError, ValueError) as exc:
            where = self.config or self.environ.get("SIAGA112_CONFIG") or "SIAGA112_* environment"
            raise LocateError(f"invalid settings ({where}): {exc}") from None
        return self._lab_node(settings)

    def _lab_node(self, settings: EngineSettings) -> EngineSettings:
        """``--lab`` on a node of a two-node lab (``lab up --nodes 2``): the command runs as that node
        (its ``[node] name``, the node's Asterisk systemname), unless the settings name it already."""
        node = status(self.lab).node if self.lab is not None else None
        if node is None:
            return settings
        if settings.node.name and settings.node.name != node:
            raise LocateError(f"the settings name this engine's node {settings.node.name!r}, but lab "
                              f"{self.lab!r} is node {node!r} (its Asterisk's systemname): unset "
                              f"SIAGA112_NODE__NAME / [node] name, or use the matching lab")
        return settings.model_copy(update={"node": settings.node.model_copy(update={"name": node})})

    def _settings_file(self) -> str:
        return str(self.config or self.environ.get("SIAGA112_CONFIG") or "")

    # -- database ------------------------------------------------------------------------------------
    @cached_property
    def database(self) -> Choice[StoreLocation]:
        return choose_database(self.database_option, self.settings, self.lab, environ=self.environ,
                               settings_file=self._settings_file())

    def existing_database(self) -> StoreLocation:
        """The database, which must exist: raises LocateError (naming it) when it does not (StoreError when
        a PostgreSQL server cannot be reached)."""
        choice = self.database
        if not store_exists(choice.path):
            raise LocateError(
                f"no database at {choice}. It is created by the engine (`siaga112 serve` with the same "
                "--lab/--database/--config); to read another one, give --lab INSTANCE, --database PATH|URL "
                "or --config FILE (`siaga112 lab status --json` prints a lab's database)")
        return choice.path

    def database_for_writing(self) -> tuple[StoreLocation, bool]:
        """(database, created): a missing database is created only when it was named (not the bare
        default, which is how accounts ended up in a ``./var`` nobody reads). A PostgreSQL database itself
        is made by its administrator (``createdb``); siaga112 creates only its tables in it."""
        choice = self.database
        if store_exists(choice.path):
            return choice.path, False
        if choice.how.startswith("the default"):
            self.existing_database()  # raises, saying how to name it
        return choice.path, True

    # -- site ----------------------------------------------------------------------------------------
    @cached_property
    def site_file(self) -> Choice[Path]:
        if self.site_option is not None:
            return Choice(self.site_option, "--site")
        settings = self.settings
        if settings.site_file is not None:
            how = ("SIAGA112_SITE_FILE" if "SIAGA112_SITE_FILE" in self.environ
                   else f"'site_file' in settings file {self._settings_file()}")
            return Choice(settings.site_file, how)
        applied, shipped = self._site_candidates()
        label = f"lab {self.lab}" if self.lab is not None else str(PRODUCTION_STATE_DIR)
        if applied.is_file():
            return Choice(applied, f"the site last applied to {label}")
        return Choice(shipped, f"the shipped site file: nothing applied to {label} yet")

    def _site_candidates(self) -> tuple[Path, Path]:
        state_dir = lab_dir(self.lab) / "config" if self.lab is not None else PRODUCTION_STATE_DIR
        return applied_site_path(state_dir), pbx_config_dir() / "site.toml"

    def site_source(self) -> SiteSource:
        """What a running engine follows: the file named (--site, SIAGA112_SITE_FILE, settings), else the
        site last applied, else the shipped one (an apply made later is picked up)."""
        choice = self.site_file
        if choice.how == "--site" or choice.how.startswith(("SIAGA112_SITE_FILE", "'site_file'")):
            return SiteSource([choice.path])
        return SiteSource(list(self._site_candidates()))

    @cached_property
    def site(self) -> LoadedSite:
        """The loaded site file; raises SiteConfigError (file:line) for a bad one."""
        return load_site(self.site_file.path)

    # -- time ----------------------------------------------------------------------------------------
    @cached_property
    def timezone(self) -> str:
        """The site's ``[centre] timezone``. The settings' old ``[incidents] timezone`` is refused, not
        ignored: two places for one fact disagreed."""
        if "timezone" in self.settings.incidents.model_fields_set:
            raise LocateError(
                f"'[incidents] timezone' in the settings ({self._settings_file() or 'environment'}) is no "
                f"longer read: the centre's time zone is the site file's [centre] timezone "
                f"({self.site_file.path}); move it there and remove it from the settings")
        return self.site.site.centre.timezone

    def when(self, text: str | None, option: str = "time") -> datetime | None:
        """An instant from the command line: ISO 8601; without an offset, the centre's local time."""
        if text is None:
            return None
        return parse_local(text, self.timezone, option)


def choose_database(option: StoreLocation | None, settings: EngineSettings, lab: str | None, *,
                    environ: dict[str, str] | None = None, settings_file: str = "") -> Choice[StoreLocation]:
    """The database rule (module docstring), for a command's options and its loaded settings."""
    if option is not None:
        return Choice(option, "--database")
    if "database" in settings.model_fields_set:
        env = os.environ if environ is None else environ
        how = ("SIAGA112_DATABASE" if "SIAGA112_DATABASE" in env
               else f"'database' in settings file {settings_file or env.get('SIAGA112_CONFIG', '')}")
        return Choice(settings.database, how)
    if lab is not None:
        return Choice(lab_database(lab), f"--lab {lab}")  # a two-node lab's node: the shared one
    return Choice(settings.database, "the default: no --lab, --database or --config given")


def parse_local(text: str, timezone: str, option: str = "time") -> datetime:
    """``text`` (ISO 8601 date or date-time) as a UTC instant; without an offset it is local time in
    ``timezone``. Raises LocateError saying what to give."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise LocateError(f"{option} {text!r} is not an ISO 8601 date or time; give e.g. 2026-11-22, "
                          f"2026-11-22T08:00 (local time in {timezone}) or 2026-11-22T08:00+08:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    return value.astimezone(UTC)


def run(command: str, work: Callable[[], int]) -> int:
    """Run a command's work; every environment error it raises becomes one line on stderr and exit 2."""
    try:
        return work()
    except (LocateError, StoreError, LabError) as exc:
        print(f"siaga112 {command}: {exc}", file=sys.stderr)
    except SiteConfigError as exc:
        print(f"siaga112 {command}: the site file cannot be used:\n{exc}", file=sys.stderr)
    return EXIT_USAGE
