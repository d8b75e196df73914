"""``siaga112 console user add | list | disable``: the console's accounts.

Passwords never come from the command line (they would sit in shell history and ``ps``): from a prompt,
from ``--password-stdin``, or from the ``SIAGA112_CONSOLE_PASSWORD`` environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callflow.ami.client import utc_now
from callflow.calls.setup import resolve_database
from callflow.console import (
    CONSOLE_SCHEMA,
    AccountError,
    AccountStore,
    AuditAction,
    AuditLog,
    AuditOutcome,
    Role,
)
from callflow.console.passwords import PasswordPolicyError, check_policy
from callflow.incidents import RegistryError, load_registry
from callflow.settings import load_settings
from callflow.store import StoreError, open_database

PASSWORD_ENV = "SIAGA112_CONSOLE_PASSWORD"  # noqa: S105 -- the variable's name, not a password


def register(sub: Any) -> None:
    p = sub.add_parser("console", help="the operator console and wallboard: accounts")
    p.add_argument("--config", type=Path,
                   help="settings TOML file (also SIAGA112_CONFIG); gives the database")
    p.add_argument("--lab", nargs="?", const="default", metavar="INSTANCE",
                   help="the database `serve --lab INSTANCE` uses (default instance: default)")
    p.add_argument("--database", type=Path,
                   help="database file (default: the lab's with --lab, else the settings' database)")
    csub = p.add_subparsers(dest="console_command", metavar="WHAT", required=True)
    user = csub.add_parser("user", help="console accounts")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="create an account (password from a prompt, stdin or "
                                       f"{PASSWORD_ENV})")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--operator-id", help="queue member name of an operator account (default: the name)")
    add.add_argument("--agency", metavar="ID",
                     help="the agency an agency account works for (an id of the agency file)")
    add.add_argument("--agencies", type=Path, metavar="FILE",
                     help="the agency file (default: the settings' incidents.agencies_file)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(handler=_add)
    lst = usub.add_parser("list", help="list accounts")
    lst.set_defaults(handler=_list)
    dis = usub.add_parser("disable", help="disable an account and end its sessions")
    dis.add_argument("name")
    dis.set_defaults(handler=_disable)


def _database(args: argparse.Namespace) -> Path:
    """The engine's database, found as ``serve`` finds it: an account disabled in another file would
    leave the running console's sessions alive."""
    if args.database is not None or args.lab is not None:
        return resolve_database(args.database, args.lab, Path())
    return load_settings(args.config).database


def _check_agency(args: argparse.Namespace) -> None:
    """An agency account's agency must be one of the registry's (the file the engine dispatches from)."""
    if args.agency is None:
        return
    path = args.agencies if args.agencies is not None else load_settings(args.config).incidents.agencies_file
    if path is None:
        raise AccountError("no agency file to check --agency against: give --agencies FILE or set "
                           "incidents.agencies_file in the settings")
    registry = load_registry(Path(path))
    known = [a.id for a in registry.agencies]
    if args.agency not in known:
        raise AccountError(f"unknown agency {args.agency!r}: {path} has no such [[agency]] id; use one of: "
                           f"{', '.join(known)}")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise AccountError(f"no password: use --password-stdin, set {PASSWORD_ENV}, or run on a terminal")
    first = getpass.getpass("password: ")
    check_policy(first)
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


async def _with_store(database: Path, work: Any) -> int:
    db = await open_database(database, [CONSOLE_SCHEMA])
    try:
        code: int = await work(AccountStore(db, utc_now), AuditLog(db, utc_now))
        return code
    finally:
        await db.close()


def _run(args: argparse.Namespace, work: Any) -> int:
    try:
        return asyncio.run(_with_store(_database(args), work))
    except (AccountError, PasswordPolicyError, StoreError, ValidationError, FileNotFoundError) as exc:
        print(f"siaga112 console: {exc}", file=sys.stderr)
        return 2


def _add(args: argparse.Namespace) -> int:
    try:
        _check_agency(args)
        password = _read_password(args)
    except (AccountError, PasswordPolicyError, RegistryError, ValidationError, FileNotFoundError) as exc:
        print(f"siaga112 console: {exc}", file=sys.stderr)
        return 2

    async def work(store: AccountStore, audit: AuditLog) -> int:
        user = await store.add_user(args.name, Role(args.role), password, args.operator_id,
                                    agency_id=args.agency)
        bound = f" agency={user.agency_id}" if user.agency_id else ""
        await audit.record(f"cli:{getpass.getuser()}", AuditAction.USER_ADD, AuditOutcome.OK,
                           target=user.name, address="local", detail=f"role={user.role.value}{bound}")
        extra = f", operator {user.operator_id}" if user.operator_id else ""
        extra += f", agency {user.agency_id}" if user.agency_id else ""
        print(f"account {user.name!r} created (role {user.role.value}{extra})")
        return 0

    return _run(args, work)


def _list(args: argparse.Namespace) -> int:
    async def work(store: AccountStore, audit: AuditLog) -> int:
        users = await store.users()
        if not users:
            print("no accounts yet: create the first with `siaga112 console user add NAME --role admin`")
        for u in users:
            state = "disabled" if u.disabled else "active"
            print(f"{u.name:<20} {u.role.value:<10} {u.operator_id or u.agency_id or '-':<8} {state:<8} "
                  f"created {u.created_at.isoformat(timespec='seconds')}")
        return 0

    return _run(args, work)


def _disable(args: argparse.Namespace) -> int:
    async def work(store: AccountStore, audit: AuditLog) -> int:
        user = await store.disable(args.name)
        await audit.record(f"cli:{getpass.getuser()}", AuditAction.USER_DISABLE, AuditOutcome.OK,
                           target=user.name, address="local")
        print(f"account {user.name!r} disabled; its sessions ended")
        return 0

    return _run(args, work)
