"""Two engines journaling into one store: no row of either node is overwritten or skipped, each row carries
its node, and a node restarting goes on from its own last number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from callflow.calls.journal import JOURNAL_SCHEMA, Journal, Kind, read_entries
from callflow.store import StoreLocation, open_database
from tests.conftest import BOTH_STORES

pytestmark = BOTH_STORES

T0 = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


async def test_two_nodes_interleaving_rows_lose_none(store_location: StoreLocation, tmp_path: Path) -> None:
    database = store_location
    conns = [await open_database(database, (JOURNAL_SCHEMA,)) for _ in range(2)]
    try:
        journals = {node: Journal(conn, tmp_path / f"{node}.spill", node=node)
                    for node, conn in zip("ab", conns, strict=True)}
        for journal in journals.values():
            await journal.start()
        for i in range(50):
            for node, journal in journals.items():
                at = T0 + timedelta(milliseconds=i)
                journal.append(Kind.MARK, "test", linkedid=f"{node}-1.{i % 3}", ts=at,
                               ts_source="engine_clock", received_at=at, data={"i": i})
            if i % 7 == 0:  # group commits of both nodes interleave in the store
                for journal in journals.values():
                    await journal.drain()
        for journal in journals.values():
            await journal.drain()
        rows = await read_entries(conns[0])
        assert len(rows) == 100
        assert len({r.seq for r in rows}) == 100
        for node in "ab":
            mine = [r for r in rows if r.node == node]
            assert [r.data["i"] for r in mine] == list(range(50))  # in the node's own order
            assert all(r.linkedid.startswith(f"{node}-") for r in mine)

        # a restarts (after b wrote more): it numbers on from its own last row, colliding with nothing
        journals["b"].append(Kind.MARK, "test", linkedid="b-2.0", ts=T0, ts_source="engine_clock",
                             received_at=T0, data={"i": 50})
        await journals["b"].drain()
        restarted = Journal(conns[0], tmp_path / "a.spill", node="a")
        await restarted.start()
        assert restarted.last_seq == 50
        entry = restarted.append(Kind.MARK, "test", linkedid="a-2.0", ts=T0, ts_source="engine_clock",
                                 received_at=T0, data={"i": 50})
        assert entry.seq == 51
        await restarted.drain()
        rows = await read_entries(conns[1])
        assert len(rows) == 102
        assert [r.data["i"] for r in rows[-2:]] == [50, 50]
        assert [r.node for r in rows[-2:]] == ["b", "a"]
    finally:
        for conn in conns:
            await conn.close()
