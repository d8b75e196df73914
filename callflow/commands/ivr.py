"""``siaga112 ivr check [FILE]``, ``siaga112 ivr prompts [--lab INSTANCE]``, ``siaga112 ivr serve``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callflow.app import ivr_server
from callflow.commands.serve import engine_paths
from callflow.lab import LabError, status
from callflow.logs import configure_logging
from callflow.settings import load_settings
from ivr import IvrServer, TreeError, default_tree_path, load_tree, parse_tree
from ivr.process import die_with_parent
from ivr.prompts import PromptError, install, measured_durations


def register(sub: Any) -> None:
    p = sub.add_parser("ivr", help="the IVR tree: check it against the safety rules, generate its prompts")
    ivr_sub = p.add_subparsers(dest="ivr_command", metavar="ACTION", required=True)
    p_check = ivr_sub.add_parser("check", help="validate an IVR tree (default pbx-config/ivr.toml)")
    p_check.add_argument("file", nargs="?", type=Path, help="tree TOML file")
    p_check.set_defaults(handler=_check)
    p_prompts = ivr_sub.add_parser("prompts", help="generate the prompts' audio (espeak-ng + sox, 8 kHz) "
                                   "and install it where Asterisk plays it")
    p_prompts.add_argument("--tree", type=Path, help="tree TOML file (default pbx-config/ivr.toml)")
    where = p_prompts.add_mutually_exclusive_group(required=True)
    where.add_argument("--lab", nargs="?", const="default", metavar="INSTANCE",
                       help="install into a lab's sounds directory (default instance: default)")
    where.add_argument("--sounds-dir", type=Path, help="Asterisk's sounds directory (host path)")
    p_prompts.set_defaults(handler=_prompts)
    p_serve = ivr_sub.add_parser("serve", help="run only the FastAGI IVR server (`siaga112 serve` starts "
                                 "it as its child; use this to run it alone)")
    p_serve.add_argument("--config", type=Path,
                         help="settings TOML file ([ivr] section; also SIAGA112_CONFIG)")
    p_serve.add_argument("--lab", nargs="?", const="default", metavar="INSTANCE",
                         help="listen on a lab's FastAGI port and install prompts into its sounds dir")
    p_serve.add_argument("--log-format", choices=["auto", "json", "console"])
    p_serve.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # set by the engine
    p_serve.add_argument("--status-fd", type=int, help=argparse.SUPPRESS)  # the engine's gate reads it
    p_serve.set_defaults(handler=_serve)


def _check(args: argparse.Namespace) -> int:
    path: Path = args.file or default_tree_path()
    try:
        first = load_tree(path)
        checked = parse_tree(path.read_text(encoding="utf-8"), str(path), measured_durations(first.tree))
    except TreeError as exc:
        print(f"siaga112 ivr check: REFUSED {exc}", file=sys.stderr)
        return 1
    tree = checked.tree
    print(f"{path}: tree {tree.name!r} OK ({len(tree.nodes)} menus, {len(tree.prompts)} prompts)")
    for name, node in tree.nodes.items():
        keys = ", ".join(f"{d}->{c.goto or c.action}{'/' + c.category if c.category else ''}"
                         for d, c in sorted(node.choices.items()))
        print(f"  menu {name:<16} depth {checked.depth[name]}  timeout {node.timeout_s:g} s, retries "
              f"{node.retries}  no input->{node.no_input.action}, invalid->{node.invalid.action}  [{keys}]")
    worst = checked.worst_path
    print(f"  longest path: {' -> '.join(worst.nodes)} ({worst.ending}) {worst.seconds:.1f} s "
          f"<= {tree.limits.max_path_seconds:g} s")
    if checked.estimated:
        print(f"  prompt lengths estimated from text (run `siaga112 ivr prompts` to measure): "
              f"{', '.join(sorted(checked.estimated))}")
    return 0


def _prompts(args: argparse.Namespace) -> int:
    path: Path = args.tree or default_tree_path()
    try:
        sounds = args.sounds_dir
        if sounds is None:
            st = status(args.lab)
            if not st.sounds_dir:
                raise LabError(f"lab {args.lab!r} has never been started: `siaga112 lab up` first")
            sounds = Path(st.sounds_dir)
        checked = load_tree(path)
        installed = install(checked.tree, sounds)
        parse_tree(path.read_text(encoding="utf-8"), str(path), {p.prompt_id: p.seconds for p in installed})
    except (TreeError, PromptError, LabError, OSError) as exc:
        print(f"siaga112 ivr prompts: {exc}", file=sys.stderr)
        return 1
    for p in installed:
        state = "generated" if p.generated else "cached"
        print(f"  {p.prompt_id:<16} {p.seconds:5.1f} s  {state:<9}  {p.path}")
    print(f"{len(installed)} prompts of tree {checked.tree.name!r} installed under {sounds}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    if args.parent_pid is not None and not die_with_parent(args.parent_pid):
        return 0  # the engine that started us is already gone
    try:
        settings = load_settings(args.config)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"siaga112 ivr serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_format or settings.log_format, settings.log_level, stream=sys.stdout)
    try:
        inline = settings.model_copy(update={"ivr": settings.ivr.model_copy(update={"isolation": "inline"})})
        server = ivr_server(inline, engine_paths(settings, args.lab))
    except (LabError, OSError) as exc:
        print(f"siaga112 ivr serve: {exc}", file=sys.stderr)
        return 2
    if args.status_fd is not None:
        status_fd = args.status_fd

        def tell(state: str, port: int | None) -> None:
            os.write(status_fd, f"{state} {port or ''}\n".encode())

        server.on_state = tell
    asyncio.run(_run_until_signal(server))
    return 3 if server.refused else 0


async def _run_until_signal(server: IvrServer) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(server.run())
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
