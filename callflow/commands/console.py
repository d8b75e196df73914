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
from callflow.commands._locate import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    Location,
    add_location_options,
    run,
)
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
from callflow.store import StoreLocation, open_database

PASSWORD_ENV = "SIAGA112_CONSOLE_PASSWORD"  # noqa: S105 -- the variable's name, not a password


def register(sub: Any) -> None:
    p = sub.add_parser("console", help="the operator console and wallboard: accounts")
    csub = p.add_subparsers(dest="console_command", metavar="WHAT", required=True)
    user = csub.add_parser("user", help="console accounts")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="create an account (password from a prompt, stdin or "
                                       f"{PASSWORD_ENV})")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--operator-id", help="the operator (site file [[operators]] name, e.g. op1) of an "
                                           "operator account (default: the account's name)")
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
    add_location_options(p)
    for action in (add, lst, dis):
        add_location_options(action, after_action=True)


def _check_agency(args: argparse.Namespace) -> None:
    """An agency account's agency must be one of the registry's (the file the engine dispatches from)."""
    if args.agency is None:
        return
    path = args.agencies if args.agencies is not None else Location.of(args).settings.incidents.agencies_file
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


async def _with_store(database: StoreLocation, work: Any) -> int:
    db = await open_database(database, [CONSOLE_SCHEMA])
    try:
        code: int = await work(AccountStore(db, utc_now), AuditLog(db, utc_now))
        return code
    finally:
        await db.close()


def _run(args: argparse.Namespace, work: Any, *, writes: bool = False) -> int:
    def run_work() -> int:
        where = Location.of(args)
        if writes:
            database, created = where.database_for_writing()
            if created:
                print(f"siaga112 console: new database {where.database}", file=sys.stderr)
        else:
            database = where.existing_database()
        try:
            return asyncio.run(_with_store(database, work))
        except (AccountError, PasswordPolicyError) as exc:
            print(f"siaga112 console: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return run("console", run_work)


def _check_operator(args: argparse.Namespace) -> str | None:
    """Why an account cannot be made: its operator id (an operator's queue member, a supervisor's phone)
    is not an operator of the site file. None when it is, or when the account has none."""
    operator_id = args.operator_id or (args.name if args.role == Role.OPERATOR.value else None)
    if operator_id is None:
        return None
    where = Location.of(args)
    site = where.site.site
    if site.operator(operator_id) is not None:
        return None
    known = ", ".join(op.name for op in site.operators) or "(none)"
    return (f"no operator {operator_id!r} in the site file {where.site_file}; it lists {known}. Give "
            "--operator-id NAME of one of them, or add the operator to the site and `siaga112 config "
            "apply` it first")


def _add(args: argparse.Namespace) -> int:
    refused = run("console", lambda: _refuse_unknown_operator(args))
    if refused != EXIT_OK:
        return refused
    try:
        _check_agency(args)
        password = _read_password(args)
    except (AccountError, PasswordPolicyError, RegistryError, ValidationError, FileNotFoundError) as exc:
        print(f"siaga112 console: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def work(store: AccountStore, audit: AuditLog) -> int:
        user = await store.add_user(args.name, Role(args.role), password, args.operator_id,
                                    agency_id=args.agency)
        bound = f" agency={user.agency_id}" if user.agency_id else ""
        await audit.record(f"cli:{getpass.getuser()}", AuditAction.USER_ADD, AuditOutcome.OK,
                           target=user.name, address="local", detail=f"role={user.role.value}{bound}")
        extra = f", operator {user.operator_id}" if user.operator_id else ""
        extra += f", agency {user.agency_id}" if user.agency_id else ""
        where = Location.of(args).database
        print(f"account {user.name!r} created (role {user.role.value}{extra}) in {where}")
        return 0

    return _run(args, work, writes=True)


def _refuse_unknown_operator(args: argparse.Namespace) -> int:
    why = _check_operator(args)
    if why is None:
        return EXIT_OK
    print(f"siaga112 console user add: {why}", file=sys.stderr)
    return EXIT_REFUSED


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

    return _run(args, work)  # an account to disable is in a database that exists
