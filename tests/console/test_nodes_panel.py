"""The wallboard's nodes panel: GET /api/nodes reads the cluster component (each node alive or lost, the
leader, the last heartbeat); a single engine shows none."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callflow.cluster import store as cluster_store
from callflow.cluster.rules import Heartbeat, LeaseTiming
from callflow.cluster.service import ClusterNode
from callflow.store import open_database
from tests.console.conftest import Console


async def test_a_single_engine_shows_no_nodes(console: Console) -> None:
    async with console.client() as client:
        await console.login(client, "sup")
        r = await client.get("/api/nodes")
    assert r.status_code == 200, r.text
    assert r.json() == []


async def test_each_node_alive_or_lost_with_the_leader(console: Console, tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    node = ClusterNode(database, "b", timing=LeaseTiming(ttl_s=1.0, renew_s=0.05, margin_s=0.2),
                       lost_after_s=1.0, require_asterisk=False)
    runner = asyncio.create_task(node.run(None))
    try:
        async with asyncio.timeout(5):
            await node.settled()
        conn = await open_database(database, (cluster_store.CLUSTER_SCHEMA,))
        try:  # node a's last heartbeat was 20 s ago
            stale = datetime.now(UTC) - timedelta(seconds=20)
            await cluster_store.beat(conn, Heartbeat("a", stale, stale, asterisk_up=True))
        finally:
            await conn.close()
        console.ctx.providers.nodes = node
        async with console.client() as client:
            await console.login(client, "sup")
            r = await client.get("/api/nodes")
            await console.login(client, "op1")
            refused = await client.get("/api/nodes")
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert r.status_code == 200, r.text
    rows = {n["node"]: n for n in r.json()}
    assert (rows["a"]["state"], rows["a"]["leader"]) == ("lost", False)
    assert rows["a"]["heartbeat_at"] == stale.isoformat().replace("+00:00", "Z")
    assert rows["a"]["heartbeat_age_s"] >= 20
    # a's engine is silent: its last word (Asterisk up) is not shown as current
    assert (rows["a"]["engine_up"], rows["a"]["asterisk"], rows["a"]["here"]) == (False, "unknown", False)
    assert (rows["b"]["state"], rows["b"]["leader"], rows["b"]["asterisk_up"]) == ("alive", True, True)
    assert (rows["b"]["engine_up"], rows["b"]["asterisk"], rows["b"]["here"]) == (True, "up", True)
    assert refused.status_code == 403  # the wallboard's watchers only
