"""The nature of a call, as the operator who took it tags it (issue 19): genuine emergency, non-emergency,
information, prank, silent / no contact, accidental, test. Kept beside the call records, not in them: the
record is a pure function of Asterisk's journal, the tag is an operator's judgement made after it. Every
tag is a row (who, when); the latest row of a call is its nature, so a correction never loses the first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from callflow.store import Database, Schema


class Nature(StrEnum):
    GENUINE_EMERGENCY = "genuine_emergency"
    NON_EMERGENCY = "non_emergency"
    INFORMATION = "information"
    PRANK = "prank"
    SILENT = "silent"  # silent / no contact
    ACCIDENTAL = "accidental"
    TEST = "test"


# Calls that are not a citizen asking for help: left out of the "genuine" service levels (issue 19 item 5;
# the measures are in callflow/reports/measures.py).
NUISANCE = frozenset({Nature.PRANK, Nature.SILENT, Nature.ACCIDENTAL})


NATURE_SCHEMA = Schema("calls_nature", (
    """
    CREATE TABLE calls_nature (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        linkedid TEXT NOT NULL,
        caller_number TEXT NOT NULL,
        nature TEXT NOT NULL,
        tagged_by TEXT NOT NULL,
        tagged_at TEXT NOT NULL
    );
    CREATE INDEX calls_nature_call ON calls_nature(linkedid, id);
    CREATE INDEX calls_nature_number ON calls_nature(caller_number, tagged_at);
    """,
))


@dataclass(frozen=True, slots=True)
class NatureTag:
    linkedid: str
    caller_number: str
    nature: Nature
    tagged_by: str
    tagged_at: datetime


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


async def tag_call(conn: Database, *, linkedid: str, caller_number: str, nature: Nature, by: str,
                   at: datetime) -> NatureTag:
    # a stale read of another request on the shared connection is waited out by the store itself
    await conn.execute("INSERT INTO calls_nature (linkedid, caller_number, nature, tagged_by, "
                       "tagged_at) VALUES (?, ?, ?, ?, ?)",
                       (linkedid, caller_number, str(nature), by, _iso(at)))
    await conn.commit()
    return NatureTag(linkedid, caller_number, nature, by, at)


async def natures_of(conn: Database, linkedids: Iterable[str]) -> dict[str, NatureTag]:
    """The current tag (latest row) of each of ``linkedids`` that has one."""
    wanted = list(dict.fromkeys(linkedids))
    found: dict[str, NatureTag] = {}
    for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
        chunk = wanted[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        async with conn.execute(
                "SELECT linkedid, caller_number, nature, tagged_by, tagged_at FROM calls_nature "  # noqa: S608
                f"WHERE linkedid IN ({marks}) ORDER BY id", chunk) as cur:
            for row in await cur.fetchall():
                found[str(row[0])] = NatureTag(str(row[0]), str(row[1]), Nature(str(row[2])), str(row[3]),
                                               datetime.fromisoformat(str(row[4])))
    return found


@dataclass(frozen=True, slots=True)
class PrankCounts:
    """Calls from one number whose current tag is prank: in the last 24 hours and the last 30 days."""

    day: int
    month: int


async def prank_counts(conn: Database, number: str, at: datetime) -> PrankCounts:
    async with conn.execute(
            "SELECT n.linkedid, n.nature, n.tagged_at FROM calls_nature n WHERE n.caller_number = ? "
            "AND n.tagged_at >= ? ORDER BY n.id", (number, _iso(at - timedelta(days=30)))) as cur:
        rows = await cur.fetchall()
    latest: dict[str, tuple[str, datetime]] = {}
    for row in rows:
        latest[str(row[0])] = (str(row[1]), datetime.fromisoformat(str(row[2])))
    pranks = [when for nature, when in latest.values() if nature == Nature.PRANK and when <= at]
    return PrankCounts(day=sum(1 for w in pranks if w >= at - timedelta(hours=24)), month=len(pranks))
