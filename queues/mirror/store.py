"""The shared operator roster and each node's view of each operator's phone, in the shared store (portable
SQL: the same statements on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from callflow.store import Database, Schema
from queues.mirror.rules import Busy, Roster

MIRROR_SCHEMA = Schema("operator_mirror", (
    """
    CREATE TABLE operator_roster (
        operator TEXT PRIMARY KEY,
        queues TEXT NOT NULL,         -- JSON {queue: penalty}; {} logged out
        paused INTEGER NOT NULL,
        reason TEXT NOT NULL,
        version INTEGER NOT NULL,     -- raised by one at every change, whichever node made it
        node TEXT NOT NULL,
        changed_at TEXT NOT NULL
    );
    CREATE TABLE operator_devices (
        operator TEXT NOT NULL,
        node TEXT NOT NULL,
        state TEXT NOT NULL,          -- NOT_INUSE | RINGING | INUSE, as that node sees the phone
        at TEXT NOT NULL,
        PRIMARY KEY (operator, node)
    );
    """,
))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


async def write_roster(conn: Database, roster: Roster, now: datetime) -> int:
    """Store an operator's change as the roster's next version (whatever version the writer saw)."""
    try:
        async with conn.execute(
                "INSERT INTO operator_roster (operator, queues, paused, reason, version, node, changed_at) "
                "VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (operator) DO UPDATE SET queues = excluded.queues, "
                "paused = excluded.paused, reason = excluded.reason, node = excluded.node, "
                "changed_at = excluded.changed_at, version = operator_roster.version + 1 RETURNING version",
                (roster.operator, json.dumps(dict(sorted(roster.queues.items()))), int(roster.paused),
                 roster.reason, roster.node, _iso(now))) as cur:
            row = await cur.fetchone()
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
    return int(row[0]) if row else 0


async def rosters(conn: Database) -> list[Roster]:
    async with conn.execute("SELECT operator, queues, paused, reason, version, node, changed_at "
                            "FROM operator_roster ORDER BY operator") as cur:
        rows = await cur.fetchall()
    return [Roster(str(r[0]), {str(k): int(v) for k, v in json.loads(str(r[1])).items()}, bool(r[2]),
                   str(r[3]), int(r[4]), str(r[5]), datetime.fromisoformat(str(r[6]))) for r in rows]


async def set_device(conn: Database, operator: str, node: str, state: Busy,
                     now: datetime) -> None:
    try:
        await conn.execute(
            "INSERT INTO operator_devices (operator, node, state, at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (operator, node) DO UPDATE SET state = excluded.state, at = excluded.at",
            (operator, node, str(state), _iso(now)))
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise


async def devices(conn: Database) -> dict[str, dict[str, Busy]]:
    """operator -> node -> that node's view of the operator's phone."""
    out: dict[str, dict[str, Busy]] = {}
    async with conn.execute("SELECT operator, node, state FROM operator_devices") as cur:
        for operator, node, state in await cur.fetchall():
            out.setdefault(str(operator), {})[str(node)] = Busy(str(state))
    return out
