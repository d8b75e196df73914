"""Every row of a store as text, through the store interface (either engine): tests search it for a
secret that must never be stored."""

from __future__ import annotations

from callflow.store import Database


async def store_text(db: Database) -> str:
    lines: list[str] = []
    for table in await db.tables():
        async with db.execute(f'SELECT * FROM "{table}"') as cur:  # noqa: S608 (names from the catalogue)
            lines.extend(f"{table}: {row!r}" for row in await cur.fetchall())
    return "\n".join(lines)
