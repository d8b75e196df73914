"""The whole two-node set from one command: ``siaga112 lab up --nodes 2 --engines`` (a private PostgreSQL,
Kamailio, two Asterisk nodes, one engine per node), one call through Kamailio recorded in the shared
store, then ``lab down`` leaves no process of the set running."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from callflow.lab import cluster_status
from callflow.lab.sipp import CallerScript, SippOperator, place_call
from tests.conftest import IN_CI, lab_instance_name
from tests.integration.test_two_nodes import exported, operator_on_every_node
from tests.support.pg import find_bin_dir

pytestmark = pytest.mark.integration


def lab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callflow.cli", "lab", *args], capture_output=True,
                          text=True, timeout=180, check=check)


def processes_naming(marker: str) -> list[str]:
    """Every process whose command line names ``marker`` (the set's instance: in its engines' --lab, its
    nodes' and Kamailio's configuration paths, its PostgreSQL's data directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{proc.name}: {cmdline[:160]}")
    return found


async def test_one_command_brings_the_whole_set_up_and_down() -> None:
    for program in ("kamailio", "sipp"):
        if shutil.which(program) is None:
            if IN_CI:
                pytest.fail(f"CI requires {program} (`make setup`)", pytrace=False)
            pytest.skip(f"{program} is not installed (`make setup`)")
    find_bin_dir()  # PostgreSQL's server programs (PostgresUnavailable says what to install)
    instance = lab_instance_name("wholeset")
    # a set left behind by an interrupted run; an empty store (the engines' operator roster is kept in it)
    lab("down", "--wipe-store", "--instance", instance)
    started = time.monotonic()
    try:
        up = lab("up", "--nodes", "2", "--engines", "--free-ports", "--instance", instance, check=False)
        assert up.returncode == 0, up.stderr
        print(up.stdout)
        print(f"lab up --nodes 2 --engines: {time.monotonic() - started:.1f} s")
        shown = lab("status", "--instance", instance, "--json", check=False)
        assert shown.returncode == 0, shown.stdout  # exit 0: every part runs
        st: dict[str, Any] = json.loads(shown.stdout)
        assert st["everything_running"] is True
        assert st["store"] == "postgresql"
        assert st["postgres"]["running"]
        assert st["postgres"]["pid"]
        assert st["front"]["running"]
        assert all(node["running"] for node in st["nodes"].values())
        assert sorted(st["engines"]) == ["a", "b"]
        assert all(engine["running"] and engine["pid"] for engine in st["engines"].values())
        assert st["engines"]["a"]["http_port"] != st["engines"]["b"]["http_port"]
        database = st["database"]
        assert database.startswith("postgresql://")
        assert "@127.0.0.1:" in database
        assert "?passfile=" in database  # the lab's 0600 pgpass: a path, never the password

        # one call through Kamailio, answered by op1, recorded in the shared PostgreSQL store
        cluster = cluster_status(instance)
        nodes = cluster.nodes()
        before = {r["linkedid"] for r in exported(database)}
        async with operator_on_every_node(cluster, "op1"), SippOperator(nodes["a"].operators["op1"]["port"]):
            call = await place_call(st["front"]["host"], int(st["front"]["port"]),
                                    CallerScript(number="081200003001", dtmf=[(600, "1")], hold_ms=1500,
                                                 route_set=True))
            assert call.ok, call.output
        print(f"call placed and ended: {time.monotonic() - started:.1f} s")
        new: list[dict[str, object]] = []
        async with asyncio.timeout(30):
            while not new:
                new = [r for r in await asyncio.to_thread(exported, database) if r["linkedid"] not in before]
                await asyncio.sleep(0.3)
        assert [(r["outcome"], r["operator"], r.get("node")) for r in new] == [("answered", "op1", "a")]
        print(f"its record in the shared store: {time.monotonic() - started:.1f} s")
    finally:
        down = lab("down", "--instance", instance, check=False)  # the store's data is kept
    assert down.returncode == 0, down.stderr
    print(f"lab down: {time.monotonic() - started:.1f} s")
    assert "stopped" in down.stdout
    assert processes_naming(instance) == []
    after = lab("status", "--instance", instance, "--json", check=False)
    assert after.returncode == 3
    gone = json.loads(after.stdout)
    assert gone["postgres"]["running"] is False
    assert not any(engine["running"] for engine in gone["engines"].values())
    data_dir = Path(gone["postgres"]["data_dir"])
    assert (data_dir / "PG_VERSION").is_file()
    lab("down", "--wipe-store", "--instance", instance)
    assert not data_dir.exists()
    print(f"whole set up, one call, down: {time.monotonic() - started:.1f} s")

