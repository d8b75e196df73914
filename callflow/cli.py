"""The ``siaga112`` command. Each sub-command lives in a module of :mod:`callflow.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from callflow.commands import COMMAND_MODULES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siaga112",
        description="siaga112: call-handling engine for 112 emergency call centres (Asterisk over AMI)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
