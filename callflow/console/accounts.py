"""Console accounts and their server-side sessions.

Passwords are stored as scrypt hashes only. A session is a random token in an HttpOnly cookie; the table
keeps only its SHA-256 (a copy of the database gives no live session), with an absolute expiry and the
session's CSRF token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from callflow.ami.client import Clock
from callflow.console.passwords import check_policy, hash_password_async, verify_password_async
from callflow.console.roles import Role
from callflow.console.schema import iso, parse_iso
from callflow.store import Database, Row

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,31}$")
OPERATOR_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class AccountError(ValueError):
    """An account operation was refused; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: Role
    operator_id: str | None  # the queue member name (e.g. ``op1``) of an operator account
    disabled: bool
    created_at: datetime
    agency_id: str | None = None  # the agency an agency account works for


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: Row) -> User:
    uid, name, role, operator_id, disabled, created, agency_id = row
    return User(int(str(uid)), str(name), Role(str(role)), None if operator_id is None else str(operator_id),
                bool(disabled), parse_iso(str(created)), None if agency_id is None else str(agency_id))


_USER_COLUMNS = "id, name, role, operator_id, disabled, created_at, agency_id"


class AccountStore:
    def __init__(self, db: Database, clock: Clock,
                 session_ttl: timedelta = timedelta(hours=12)) -> None:
        self._db = db
        self._clock = clock
        self.session_ttl = session_ttl

    # -- accounts -----------------------------------------------------------------------------------
    async def add_user(self, name: str, role: Role, password: str, operator_id: str | None = None, *,
                       agency_id: str | None = None) -> User:
        """``agency_id``: the agency an agency account works for; the caller checks it against the
        registry (the account store does not read the agency file)."""
        if not NAME_RE.match(name):
            raise AccountError(f"invalid name {name!r}: 2-32 letters, digits, '.', '_' or '-', "
                               "starting with a letter or digit")
        if operator_id is not None and not OPERATOR_ID_RE.match(operator_id):
            raise AccountError(f"invalid operator id {operator_id!r}: the queue member name, e.g. op1")
        if role is Role.OPERATOR and operator_id is None:
            operator_id = name
        if role is Role.ADMIN and operator_id is not None:
            # a supervisor's operator id is their own phone (the endpoint they listen in with)
            raise AccountError("only operator and supervisor accounts have an operator id (phone)")
        if role is Role.AGENCY and operator_id is not None:
            raise AccountError("agency accounts have no operator id (phone)")
        if role is Role.AGENCY and not agency_id:
            raise AccountError("an agency account needs its agency: --agency ID (an id of the agency file)")
        if role is not Role.AGENCY and agency_id is not None:
            raise AccountError("only agency accounts are bound to an agency (--agency)")
        check_policy(password)
        if await self.find(name) is not None:
            raise AccountError(f"an account named {name!r} already exists")
        stored = await hash_password_async(password)
        await self._db.execute(
            "INSERT INTO console_users (name, role, password_hash, operator_id, created_at, agency_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (name, role.value, stored, operator_id, iso(self._clock()), agency_id))
        await self._db.commit()
        user = await self.find(name)
        assert user is not None  # noqa: S101 -- just inserted in this transaction
        return user

    async def find(self, name: str) -> User | None:
        async with self._db.execute(f"SELECT {_USER_COLUMNS} FROM console_users WHERE name = ?",  # noqa: S608
                                    (name,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _user(row)

    async def users(self) -> list[User]:
        async with self._db.execute(f"SELECT {_USER_COLUMNS} FROM console_users ORDER BY name") as cur:  # noqa: S608
            return [_user(r) for r in await cur.fetchall()]

    async def disable(self, name: str) -> User:
        user = await self.find(name)
        if user is None:
            raise AccountError(f"no account named {name!r} (see `siaga112 console user list`)")
        await self._db.execute("UPDATE console_users SET disabled = 1 WHERE id = ?", (user.id,))
        await self._db.execute("DELETE FROM console_sessions WHERE user_id = ?", (user.id,))
        await self._db.commit()
        return await self.find(name) or user

    async def authenticate(self, name: str, password: str) -> tuple[User | None, str]:
        """``(user, "")`` on success, ``(None, reason)`` otherwise; the reason is for the audit trail
        only (the client always hears the same answer)."""
        async with self._db.execute(
                f"SELECT {_USER_COLUMNS}, password_hash FROM console_users WHERE name = ?",  # noqa: S608
                (name,)) as cur:
            row = await cur.fetchone()
        stored = None if row is None else str(row[-1])
        ok = await verify_password_async(password, stored)
        if row is None:
            return None, "unknown account"
        user = _user(tuple(row)[:-1])
        if not ok:
            return None, "wrong password"
        if user.disabled:
            return None, "account disabled"
        return user, ""

    # -- sessions -----------------------------------------------------------------------------------
    async def open_session(self, user: User, address: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(user, secrets.token_urlsafe(32), now + self.session_ttl)
        await self._db.execute("DELETE FROM console_sessions WHERE expires_at < ?", (iso(now),))
        await self._db.execute(
            "INSERT INTO console_sessions (token_hash, user_id, csrf_token, created_at, expires_at, address) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (_token_hash(token), user.id, session.csrf_token, iso(now), iso(session.expires_at), address))
        await self._db.commit()
        return token, session

    async def session(self, token: str) -> Session | None:
        """The live session for a cookie token; None when unknown, expired or its account disabled."""
        columns = ", ".join("u." + c for c in _USER_COLUMNS.split(", "))
        async with self._db.execute(
                f"SELECT s.csrf_token, s.expires_at, {columns} "  # noqa: S608 -- fixed column names
                "FROM console_sessions s JOIN console_users u ON u.id = s.user_id "
                "WHERE s.token_hash = ?", (_token_hash(token),)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        expires = parse_iso(str(row[1]))
        user = _user(tuple(row)[2:])
        if expires <= self._clock() or user.disabled:
            return None
        return Session(user, str(row[0]), expires)

    async def close_session(self, token: str) -> None:
        await self._db.execute("DELETE FROM console_sessions WHERE token_hash = ?", (_token_hash(token),))
        await self._db.commit()
