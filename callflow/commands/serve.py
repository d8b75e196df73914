"""``siaga112 serve``: run the engine against Asterisk's AMI."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callflow.ami import AmiEndpoint
from callflow.lab import LabError, status
from callflow.logs import configure_logging
from callflow.service import CallEventLogger, Component, Engine, serve
from callflow.settings import EngineSettings, load_settings
from ivr import IvrServer, IvrSettings
from ivr.process import IvrProcess


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the engine: attach to Asterisk over AMI and handle calls")
    p.add_argument("--config", type=Path, help="settings TOML file (also SIAGA112_CONFIG)")
    p.add_argument("--lab", nargs="?", const="default", metavar="INSTANCE",
                   help="take AMI address and secret from a running lab (default instance: default)")
    p.add_argument("--log-format", choices=["auto", "json", "console"], help="default: auto")
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
    components: list[Component] = [CallEventLogger()]
    if settings.ivr.enabled:
        if settings.ivr.isolation == "process":
            components.append(IvrProcess(lab=args.lab, log_format=args.log_format or settings.log_format))
        else:
            components.append(ivr_server(settings.ivr, args.lab))
    return components


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
    engine = Engine(endpoint, build_components(settings, args), ping_interval=ami.ping_interval_s,
                    ping_timeout=ami.ping_timeout_s, action_timeout=ami.action_timeout_s)
    asyncio.run(serve(engine))
    return 0
