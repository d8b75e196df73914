"""``siaga112 serve``: run the engine against Asterisk's AMI."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callflow.ami import AmiEndpoint
from callflow.calls.setup import call_tracker, resolve_database
from callflow.console import DEFAULT_ADDRESS, ConsoleComponent, ConsoleError, HttpAddress
from callflow.console.wiring import prepare_store, store_providers
from callflow.incidents import AgencyRegistry, RegistryError, load_registry
from callflow.lab import LabError, status
from callflow.logs import configure_logging
from callflow.service import CallEventLogger, Component, Engine, serve
from callflow.settings import EngineSettings, load_settings, recordings_root
from callflow.siteconfig import SiteConfigError, load_site, pbx_config_dir
from callflow.store import StoreError
from ivr import IvrServer, IvrSettings
from ivr.keys import MissedKeys
from ivr.process import IvrProcess
from queues import ManagedOperators, OperatorManager, QueuePolicy
from queues.callbacks import CallbackPolicy, CallbackService
from recordings import Recorder, RecordingPolicy


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the engine: attach to Asterisk over AMI and handle calls")
    p.add_argument("--config", type=Path, help="settings TOML file (also SIAGA112_CONFIG)")
    p.add_argument("--lab", nargs="?", const="default", metavar="INSTANCE",
                   help="take AMI address and secret from a running lab (default instance: default); "
                        "an AMI host/port set explicitly (SIAGA112_AMI__PORT, the settings file) still wins")
    p.add_argument("--log-format", choices=["auto", "json", "console"], help="default: auto")
    p.add_argument("--database", type=Path, metavar="PATH",
                   help="SQLite database (default: the lab's with --lab, else settings.database)")
    p.add_argument("--http", default=DEFAULT_ADDRESS, metavar="HOST:PORT",
                   help=f"operator console and wallboard (default {DEFAULT_ADDRESS}; 'off' for none)")
    p.set_defaults(handler=_serve)


def endpoint_for(settings: EngineSettings, lab: str | None) -> AmiEndpoint:
    if lab is not None:
        st = status(lab)
        if not st.running:
            raise LabError(f"lab {lab!r} is not running: start it with `siaga112 lab up`")
        return explicit_address(settings, st.ami_endpoint())
    ami = settings.ami
    return AmiEndpoint(ami.host, ami.port, ami.username, ami.resolved_secret())


def explicit_address(settings: EngineSettings, endpoint: AmiEndpoint) -> AmiEndpoint:
    """``endpoint`` (the lab's) with the AMI host and port the settings set explicitly, if any (a proxy or
    tunnel in front of the lab's AMI, e.g. ``bench/faults.py --scenario ami-blackhole``); the user and
    secret stay the lab's."""
    explicit = settings.ami.model_fields_set if "ami" in settings.model_fields_set else set()
    return AmiEndpoint(settings.ami.host if "host" in explicit else endpoint.host,
                       settings.ami.port if "port" in explicit else endpoint.port,
                       endpoint.username, endpoint.secret)


def build_components(settings: EngineSettings, args: argparse.Namespace) -> list[Component]:
    """The engine's parts, in the order each event reaches them. ``settings.database`` is already
    resolved (``--database``, the lab's, or the settings file's): every component shares that one file."""
    tracker = call_tracker(settings, args)
    operators = OperatorManager(database=settings.database, policy=queue_policy(settings, args.lab))
    callbacks = CallbackService(settings.database, callback_policy(settings, args.lab))
    tracker.listeners.append(callbacks)
    components: list[Component] = [CallEventLogger(), tracker, _recorder(settings, args.lab), operators,
                                   callbacks]
    if settings.ivr.enabled:
        if settings.ivr.isolation == "process":
            components.append(IvrProcess(lab=args.lab, log_format=args.log_format or settings.log_format))
        else:
            components.append(ivr_server(settings.ivr, args.lab))
        if settings.ivr.missed_keys:
            # first: a menu waiting for a key Asterisk dropped is a caller waiting (ivr/keys.py)
            components.insert(0, MissedKeys())
    http = getattr(args, "http", "off")
    if http != "off":
        # The console's data sources, all over the one shared database. Queue status comes from the
        # AMI session (wired by the console itself).
        asyncio.run(prepare_store(settings.database))
        wiring = store_providers(
            settings.database, recordings_root=recordings_location(settings, args.lab),
            timezone_name=settings.incidents.timezone, registry=agency_registry(settings, args.lab))
        wiring.providers.operators = ManagedOperators(operators)
        wiring.providers.callbacks = callbacks
        console = ConsoleComponent(HttpAddress.parse(http), settings.database, providers=wiring.providers,
                                   resources=wiring.resources)
        wiring.incidents.notify = console.hub.publish  # incident changes reach every page live
        tracker.listeners.append(console)  # finished calls refresh the wallboard and the screen pop
        console.bind()  # a taken port is a start-up error, before the engine attaches
        components.append(console)
    return components


def agency_registry(settings: EngineSettings, lab: str | None) -> AgencyRegistry | None:
    """The agency/unit registry dispatch sends to: settings ``incidents.agencies_file``; with ``--lab``
    and none configured, the example registry (units marked as example data). Raises RegistryError."""
    path = settings.incidents.agencies_file
    if path is None and lab is not None:
        path = EXAMPLE_AGENCIES if EXAMPLE_AGENCIES.exists() else None
    return load_registry(path) if path is not None else None


EXAMPLE_AGENCIES = Path(__file__).resolve().parents[2] / "examples" / "agencies-manado.example.toml"


def recordings_location(settings: EngineSettings, lab: str | None) -> Path:
    """Where recordings are written (host side): the lab's folder with ``--lab``, else the settings'."""
    return Path(status(lab).recordings_dir) if lab is not None else recordings_root(settings)


def _recorder(settings: EngineSettings, lab: str | None) -> Recorder:
    """The lab's recordings directory is one folder seen from both sides (host path, path in the root)."""
    root, asterisk_root = recordings_root(settings), None
    if lab is not None:
        st = status(lab)
        root, asterisk_root = Path(st.recordings_dir), st.recordings_dir_in_root
    return Recorder(database=settings.database, root=root, asterisk_root=asterisk_root,
                    policy=recording_policy(settings, lab))


def recording_policy(settings: EngineSettings, lab: str | None) -> RecordingPolicy:
    """The site file's ``[recording]`` section (the lab renders pbx-config/site.toml); the built-in
    policy only when no site file is configured. Raises SiteConfigError (file:line) for a bad file."""
    site_file = settings.site_file or (pbx_config_dir() / "site.toml" if lab is not None else None)
    if site_file is None:
        return RecordingPolicy()
    return RecordingPolicy.from_site(load_site(site_file).site.recording)


def queue_policy(settings: EngineSettings, lab: str | None) -> QueuePolicy:
    """Operators and their queues from the site file (as for the recording policy); none without one."""
    site_file = settings.site_file or (pbx_config_dir() / "site.toml" if lab is not None else None)
    if site_file is None:
        return QueuePolicy(operators=())
    return QueuePolicy.from_site(load_site(site_file).site)


def callback_policy(settings: EngineSettings, lab: str | None) -> CallbackPolicy:
    """The site file's ``[callbacks]`` section (as :func:`recording_policy` finds the file)."""
    site_file = settings.site_file or (pbx_config_dir() / "site.toml" if lab is not None else None)
    if site_file is None:
        return CallbackPolicy(enabled=settings.callbacks.dial)
    cb = load_site(site_file).site.callbacks
    return CallbackPolicy(enabled=cb.enabled and settings.callbacks.dial,
                          first_attempt_s=cb.first_attempt_s, retry_s=cb.retry_s,
                          max_attempts=cb.max_attempts, ring_timeout_s=cb.ring_timeout_s,
                          max_parallel=cb.max_parallel, caller_id=cb.caller_id)


def ivr_server(settings: IvrSettings, lab: str | None) -> IvrServer:
    """The FastAGI IVR; with --lab it listens on the lab's FastAGI port and installs prompts there."""
    if lab is None:
        return IvrServer(settings)
    st = status(lab)
    return IvrServer(settings, port=int(st.fastagi["port"]), sounds_dir=Path(st.sounds_dir))


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"siaga112 serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_format or settings.log_format, settings.log_level, stream=sys.stdout)
    try:
        endpoint = endpoint_for(settings, args.lab)
    except (LabError, ValueError, OSError) as exc:
        print(f"siaga112 serve: {exc}", file=sys.stderr)
        return 2
    ami = settings.ami
    # --database, else a database set explicitly (settings file or SIAGA112_DATABASE), else the lab's,
    # else the default.
    explicit = args.database or (settings.database if "database" in settings.model_fields_set else None)
    settings = settings.model_copy(update={
        "database": resolve_database(explicit, args.lab, settings.database)})
    try:
        components = build_components(settings, args)
    except (StoreError, SiteConfigError, ConsoleError, RegistryError) as exc:
        print(f"siaga112 serve: {exc}", file=sys.stderr)
        return 2
    engine = Engine(endpoint, components, ping_interval=ami.ping_interval_s,
                    ping_timeout=ami.ping_timeout_s, action_timeout=ami.action_timeout_s)
    asyncio.run(serve(engine))
    return 0
