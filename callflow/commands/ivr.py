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

from callflow.app import ivr_server
from callflow.commands._locate import LocateError, Location, add_location_options
from callflow.commands.serve import engine_paths
from callflow.lab import LabError, status
from callflow.logs import configure_logging
from callflow.siteconfig import SiteConfigError, tree_path
from ivr import IvrServer, TreeError, load_tree, parse_tree
from ivr.process import die_with_parent
from ivr.prompts import PromptError, install, measured_durations


def register(sub: Any) -> None:
    p = sub.add_parser("ivr", help="the IVR tree: check it against the safety rules, generate its prompts")
    ivr_sub = p.add_subparsers(dest="ivr_command", metavar="ACTION", required=True)
    p_check = ivr_sub.add_parser("check", help="validate an IVR tree (default: the site file's tree)")
    p_check.add_argument("file", nargs="?", type=Path, help="tree TOML file")
    add_location_options(p_check, database=False)
    p_check.set_defaults(handler=_check)
    p_prompts = ivr_sub.add_parser("prompts", help="generate the prompts' audio (espeak-ng + sox, 8 kHz) "
                                   "and install it where Asterisk plays it")
    p_prompts.add_argument("--tree", type=Path, help="tree TOML file (default: the site file's tree: the "
                                                     "site last applied, see --site)")
    p_prompts.add_argument("--sounds-dir", type=Path, help="Asterisk's sounds directory (host path; "
                                                            "default with --lab: the lab's)")
    add_location_options(p_prompts, database=False)
    p_prompts.set_defaults(handler=_prompts)
    p_serve = ivr_sub.add_parser("serve", help="run only the FastAGI IVR server (`siaga112 serve` starts "
                                 "it as its child; use this to run it alone)")
    add_location_options(p_serve, database=False)
    p_serve.add_argument("--log-format", choices=["auto", "json", "console"])
    p_serve.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # set by the engine
    p_serve.add_argument("--status-fd", type=int, help=argparse.SUPPRESS)  # the engine's gate reads it
    p_serve.set_defaults(handler=_serve)


def _tree_of(args: argparse.Namespace, given: Path | None) -> Path:
    """The tree named on the command line, else ``[ivr] tree`` in the settings, else the site's."""
    if given is not None:
        return given
    where = Location.of(args)
    if where.settings.ivr.tree is not None:
        return where.settings.ivr.tree
    path = tree_path(where.site)
    if path is None:
        raise LocateError(f"the site file {where.site_file} has its IVR off ([ivr] enabled = false); "
                          "name a tree file")
    print(f"tree {path} (from the site file {where.site_file})", file=sys.stderr)
    return path


def _check(args: argparse.Namespace) -> int:
    try:
        path = _tree_of(args, args.file)
    except (LocateError, SiteConfigError) as exc:
        print(f"siaga112 ivr check: {exc}", file=sys.stderr)
        return 2
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
    if args.sounds_dir is None and args.lab is None:
        print("siaga112 ivr prompts: say where to install: --lab [INSTANCE] or --sounds-dir DIR",
              file=sys.stderr)
        return 2
    try:
        path = _tree_of(args, args.tree)
    except (LocateError, SiteConfigError) as exc:
        print(f"siaga112 ivr prompts: {exc}", file=sys.stderr)
        return 2
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
    except TreeError as exc:
        print(f"siaga112 ivr prompts: REFUSED {exc}", file=sys.stderr)
        return 1
    except (PromptError, LabError, OSError) as exc:
        print(f"siaga112 ivr prompts: {exc}", file=sys.stderr)
        return 2
    for p in installed:
        state = "generated" if p.generated else "cached"
        print(f"  {p.prompt_id:<16} {p.seconds:5.1f} s  {state:<9}  {p.path}")
    print(f"{len(installed)} prompts of tree {checked.tree.name!r} installed under {sounds}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    if args.parent_pid is not None and not die_with_parent(args.parent_pid):
        return 0  # the engine that started us is already gone
    where = Location.of(args)
    try:
        settings = where.settings
    except LocateError as exc:
        print(f"siaga112 ivr serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_format or settings.log_format, settings.log_level, stream=sys.stdout)
    try:
        inline = settings.model_copy(update={"ivr": settings.ivr.model_copy(update={"isolation": "inline"})})
        server = ivr_server(inline, engine_paths(settings, args.lab), site=where.site_source())
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
