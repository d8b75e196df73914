"""``siaga112 serve``: run the engine against Asterisk's AMI.

This command only reads its options, resolves where things are (settings, database, lab, site file) and
hands them to the composition root, :func:`callflow.app.build_engine`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from callflow.ami import AmiEndpoint
from callflow.app import EnginePaths, build_engine
from callflow.commands._locate import LocateError, Location, add_location_options, choose_database
from callflow.console import DEFAULT_ADDRESS, ConsoleError, HttpAddress
from callflow.incidents import RegistryError
from callflow.lab import LabError, lab_dir, status
from callflow.logs import configure_logging
from callflow.service import serve
from callflow.settings import EngineSettings, data_dir, recordings_root
from callflow.siteconfig import SiteConfigError
from callflow.store import StoreError, StoreLocation


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the engine: attach to Asterisk over AMI and handle calls",
                       description="Run the engine. --lab also takes the AMI address and secret from a "
                                   "running lab; an AMI host/port set explicitly (SIAGA112_AMI__PORT, the "
                                   "settings file) still wins. The engine creates its database, says which "
                                   "database and site file it uses, and follows the site as it is applied.")
    add_location_options(p)
    p.add_argument("--log-format", choices=["auto", "json", "console"], help="default: auto")
    p.add_argument("--http", default=DEFAULT_ADDRESS, metavar="HOST:PORT",
                   help=f"operator console and wallboard (default {DEFAULT_ADDRESS}; 'off' for none)")
    p.set_defaults(handler=_serve)


def endpoint_for(settings: EngineSettings, lab: str | None) -> AmiEndpoint:
    if lab is not None:
        st = status(lab)
        if not st.running:
            raise LabError(f"lab {lab!r} is not running: start it with `siaga112 lab up`")
        return explicit_address(settings, st.ami_endpoint(tls=settings.ami.tls))
    ami = settings.ami
    return AmiEndpoint(ami.host, ami.port, ami.username, ami.resolved_secret(), tls=ami.tls,
                       tls_ca_file=str(ami.tls_ca_file) if ami.tls_ca_file else None)


def explicit_address(settings: EngineSettings, endpoint: AmiEndpoint) -> AmiEndpoint:
    """``endpoint`` (the lab's) with the AMI host and port the settings set explicitly, if any (a proxy or
    tunnel in front of the lab's AMI, e.g. ``bench/faults.py --scenario ami-blackhole``); the user and
    secret stay the lab's."""
    explicit = settings.ami.model_fields_set if "ami" in settings.model_fields_set else set()
    return dataclasses.replace(endpoint, host=settings.ami.host if "host" in explicit else endpoint.host,
                               port=settings.ami.port if "port" in explicit else endpoint.port)


def engine_paths(settings: EngineSettings, lab: str | None,
                 database: StoreLocation | None = None) -> EnginePaths:
    """Where the engine's files are. Database: the one rule of :mod:`callflow.commands._locate`
    (``database``: --database, else SIAGA112_DATABASE or the settings file's, else the lab's, else the
    default). With ``--lab`` the recordings folder, Asterisk's CDR and queue_log, the FastAGI port and
    the prompt folder are the lab's (settings that name a CDR/queue_log file still win). Raises LabError
    for a lab not running."""
    resolved = choose_database(database, settings, lab).path
    located = settings.model_copy(update={"database": resolved})
    paths = EnginePaths(database=resolved,  # recordings default to beside the resolved database
                        recordings=recordings_root(located), data_dir=data_dir(located),
                        cdr_file=settings.calls.cdr_file,
                        queue_log_file=settings.calls.queue_log_file,
                        agencies_file=settings.incidents.agencies_file)
    if lab is None:
        return paths
    st = status(lab)
    if not st.running:
        raise LabError(f"lab {lab!r} is not running: start it with `siaga112 lab up`")
    return replace(
        paths, recordings=Path(st.recordings_dir), recordings_in_asterisk=st.recordings_dir_in_root,
        cdr_file=paths.cdr_file or (Path(st.cdr_file) if st.cdr_file else None),
        queue_log_file=paths.queue_log_file or (Path(st.queue_log_file) if st.queue_log_file else None),
        # with --lab and no registry configured: the example registry (units marked as example data)
        agencies_file=paths.agencies_file or (EXAMPLE_AGENCIES if EXAMPLE_AGENCIES.exists() else None),
        fastagi_port=int(st.fastagi["port"]), sounds_dir=Path(st.sounds_dir), lab=lab,
        # a lab on a PostgreSQL store keeps its spill file in the lab's own folder
        data_dir=paths.data_dir if settings.data_dir or isinstance(resolved, Path) else lab_dir(lab))


EXAMPLE_AGENCIES = Path(__file__).resolve().parents[2] / "examples" / "agencies-manado.example.toml"


def _serve(args: argparse.Namespace) -> int:
    where = Location.of(args)
    try:
        settings = where.settings
        timezone = where.timezone  # loads the site: a bad site file is a start-up error (file:line)
    except (LocateError, SiteConfigError) as exc:
        print(f"siaga112 serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_format or settings.log_format, settings.log_level, stream=sys.stdout)
    try:
        endpoint = endpoint_for(settings, args.lab)
    except (LabError, ValueError, OSError) as exc:
        print(f"siaga112 serve: {exc}", file=sys.stderr)
        return 2
    settings = settings.model_copy(update={
        "site_file": where.site_file.path,
        "incidents": settings.incidents.model_copy(update={"timezone": timezone}),
        **({"log_format": args.log_format} if args.log_format else {})})
    structlog.get_logger("callflow.serve").info(
        "engine.where", database=str(where.database.path), database_from=where.database.how,
        site_file=str(where.site_file.path), site_from=where.site_file.how, timezone=timezone)
    try:
        paths = engine_paths(settings, args.lab, where.database.path)
        http = None if args.http == "off" else HttpAddress.parse(args.http)
        engine = build_engine(settings, where.site.site, paths, endpoint=endpoint, http=http,
                              follow=where.site_source())
    except (StoreError, SiteConfigError, ConsoleError, RegistryError, LabError) as exc:
        print(f"siaga112 serve: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(engine))
    return 0
