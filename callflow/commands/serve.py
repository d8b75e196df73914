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
from callflow.console.providers import Providers
from callflow.lab import LabError, status
from callflow.logs import configure_logging
from callflow.service import CallEventLogger, Component, Engine, serve
from callflow.settings import EngineSettings, load_settings, recordings_root
from callflow.siteconfig import SiteConfigError, load_site, pbx_config_dir
from callflow.store import StoreError
from ivr import IvrServer, IvrSettings
from ivr.process import IvrProcess
from queues.callbacks import CallbackPolicy, CallbackService
from recordings import Recorder, RecordingPolicy


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the engine: attach to Asterisk over AMI and handle calls")
    p.add_argument("--config", type=Path, help="settings TOML file (also SIAGA112_CONFIG)")
    p.add_argument("--lab", nargs="?", const="default", metavar="INSTANCE",
                   help="take AMI address and secret from a running lab (default instance: default)")
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
        return st.ami_endpoint()
    ami = settings.ami
    return AmiEndpoint(ami.host, ami.port, ami.username, ami.resolved_secret())


def build_components(settings: EngineSettings, args: argparse.Namespace) -> list[Component]:
    """The engine's parts, in the order each event reaches them. ``settings.database`` is already
    resolved (``--database``, the lab's, or the settings file's): every component shares that one file."""
    tracker = call_tracker(settings, args)
    callbacks = CallbackService(settings.database, callback_policy(settings, args.lab))
    tracker.listeners.append(callbacks)
    components: list[Component] = [CallEventLogger(), tracker, _recorder(settings, args.lab), callbacks]
    if settings.ivr.enabled:
        if settings.ivr.isolation == "process":
            components.append(IvrProcess(lab=args.lab, log_format=args.log_format or settings.log_format))
        else:
            components.append(ivr_server(settings.ivr, args.lab))
    http = getattr(args, "http", "off")
    if http != "off":
        console = ConsoleComponent(HttpAddress.parse(http), settings.database,
                                   providers=Providers(callbacks=callbacks))
        console.bind()  # a taken port is a start-up error, before the engine attaches
        components.append(console)
    return components


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
    except (StoreError, SiteConfigError, ConsoleError) as exc:
        print(f"siaga112 serve: {exc}", file=sys.stderr)
        return 2
    engine = Engine(endpoint, components, ping_interval=ami.ping_interval_s,
                    ping_timeout=ami.ping_timeout_s, action_timeout=ami.action_timeout_s)
    asyncio.run(serve(engine))
    return 0
