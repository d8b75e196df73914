"""The listen-in sessions' table: who listened to whom, on which call, in which modes, from when to when."""

from __future__ import annotations

from dataclasses import replace

from callflow.console.listen.rules import ListenMode, Session, SessionState
from callflow.console.schema import iso, parse_iso
from callflow.store import Database, Row, Schema

LISTEN_SCHEMA = Schema(
    name="console_listen",
    steps=(
        """
        CREATE TABLE console_listen (
            id INTEGER PRIMARY KEY,
            supervisor TEXT NOT NULL,
            operator TEXT NOT NULL,
            linkedid TEXT NOT NULL,
            spyee TEXT NOT NULL,
            mode TEXT NOT NULL,
            modes TEXT NOT NULL,
            phone_uniqueid TEXT NOT NULL UNIQUE,
            phone_channel TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            started_at TEXT,
            ended_at TEXT,
            end_reason TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX console_listen_linkedid ON console_listen(linkedid);
        """,
    ),
)

_COLUMNS = ("id, supervisor, operator, linkedid, spyee, mode, phone_uniqueid, requested_at, state, "
            "phone_channel, started_at, ended_at, end_reason")


def _session(r: Row) -> Session:
    return Session(id=int(str(r[0])), supervisor=str(r[1]), operator=str(r[2]), linkedid=str(r[3]),
                   spyee=str(r[4]), mode=ListenMode(str(r[5])), phone_uniqueid=str(r[6]),
                   requested_at=parse_iso(str(r[7])), state=SessionState(str(r[8])), phone_channel=str(r[9]),
                   started_at=parse_iso(str(r[10])) if r[10] else None,
                   ended_at=parse_iso(str(r[11])) if r[11] else None, end_reason=str(r[12]))


async def insert(conn: Database, s: Session) -> Session:
    session_id = await conn.insert(
        "INSERT INTO console_listen (supervisor, operator, linkedid, spyee, mode, modes, phone_uniqueid, "
        "state, requested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (s.supervisor, s.operator, s.linkedid, s.spyee, s.mode.value, s.mode.value, s.phone_uniqueid,
         s.state.value, iso(s.requested_at)))
    await conn.commit()
    return replace(s, id=session_id)


async def save(conn: Database, s: Session) -> None:
    """Each mode the session was in is kept, in order (``modes``: "listen,whisper,barge")."""
    await conn.execute(
        "UPDATE console_listen SET mode = ?, "
        "modes = CASE WHEN mode = ? THEN modes ELSE modes || ',' || ? END, phone_channel = ?, state = ?, "
        "started_at = ?, ended_at = ?, end_reason = ? WHERE id = ?",
        (s.mode.value, s.mode.value, s.mode.value, s.phone_channel, s.state.value,
         iso(s.started_at) if s.started_at else None, iso(s.ended_at) if s.ended_at else None, s.end_reason,
         s.id))
    await conn.commit()


async def open_sessions(conn: Database) -> list[Session]:
    async with conn.execute(f"SELECT {_COLUMNS} FROM console_listen WHERE state != 'ended' "  # noqa: S608 -- constant columns
                            "ORDER BY id") as cur:
        return [_session(r) for r in await cur.fetchall()]


async def recent(conn: Database, limit: int = 20) -> list[tuple[Session, str]]:
    """The newest sessions, with the modes each went through."""
    async with conn.execute(f"SELECT {_COLUMNS}, modes FROM console_listen ORDER BY id DESC LIMIT ?",  # noqa: S608 -- constant columns
                            (limit,)) as cur:
        return [(_session(r), str(r[13])) for r in await cur.fetchall()]
