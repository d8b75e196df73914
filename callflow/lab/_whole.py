"""``siaga112 lab up --nodes 2 --engines``: the whole two-node set for developers.

Besides the SIP front and the two Asterisk nodes (:mod:`callflow.lab._cluster`): the store (a private
PostgreSQL kept with the lab, :mod:`callflow.lab._postgres`, or the two-node lab's SQLite file) and one
engine per node (:mod:`callflow.lab._engines`). What runs is recorded in ``<lab folder>/set.json``. Up
starts what is down, in order (store, nodes and front, engines); down stops engines first, then the
nodes, the front and PostgreSQL (its data stays for the next ``up``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callflow.lab import _engines
from callflow.lab._cluster import ClusterStatus, check_can_start, cluster_status, down_cluster, up_cluster
from callflow.lab._control import _check_port_free, lab_dir
from callflow.lab._engines import EngineState
from callflow.lab._postgres import PrivatePostgres, free_tcp_port, make_kept_cluster
from callflow.lab._render import LabPorts
from callflow.lab.errors import LabError

STORES = ("postgresql", "sqlite")
DEFAULT_STORE = "postgresql"
DATABASE_NAME = "siaga112"
DEFAULT_POSTGRES_PORT = 15432


@dataclass
class SetStatus:
    """The two-node lab and, when started with ``--engines``, its store and engines."""

    cluster: ClusterStatus
    with_engines: bool = False  # up with --engines (until `lab down`): the store and engines are the lab's
    store: str = ""  # "postgresql" or "sqlite": the store chosen last
    database: str = ""  # what both engines were given as --database
    postgres: dict[str, Any] = field(default_factory=dict)  # running, pid, port, url, data_dir, log_file
    engines: dict[str, EngineState] = field(default_factory=dict)
    leader: str | None = None  # the node holding the leader lease now (from the store's lease row)

    @property
    def everything_running(self) -> bool:
        cst = self.cluster
        parts = [cst.front_running, *(n.running for n in cst.nodes().values())]
        if self.with_engines:
            parts += [e.running for e in self.engines.values()]
            parts.append(self.store != "postgresql" or bool(self.postgres.get("running")))
        return all(parts) and bool(cst.node_instances)

    def as_json(self) -> str:
        data = json.loads(self.cluster.as_json())
        data.update(store=self.store, database=self.database, postgres=self.postgres, leader=self.leader,
                    engines={name: e.as_dict() for name, e in self.engines.items()},
                    everything_running=self.everything_running)
        return json.dumps(data, indent=2, sort_keys=True)


def _set_file(instance: str) -> Path:
    return lab_dir(instance) / "set.json"


def has_set(instance: str) -> bool:
    """``lab up --nodes 2 --engines`` was run for this lab (its store may be kept, even if all is down)."""
    return _set_file(instance).is_file()


def _read_set(instance: str) -> dict[str, Any]:
    path = _set_file(instance)
    data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return data


def _write_set(instance: str, data: dict[str, Any]) -> None:
    folder = lab_dir(instance)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # the lab's folder holds its secrets and its database
    _set_file(instance).write_text(json.dumps(data, indent=2, sort_keys=True))


def set_status(instance: str) -> SetStatus:
    data = _read_set(instance)
    st = SetStatus(cluster_status(instance), with_engines=bool(data.get("with_engines")),
                   store=data.get("store", ""), database=data.get("database", ""))
    if "postgres" in data:
        server = PrivatePostgres.from_dict(data["postgres"])
        pid = server.pid()
        st.postgres = {"running": pid is not None, "pid": pid, "port": server.port,
                       "url": server.url(DATABASE_NAME), "data_dir": str(server.data_dir),
                       "log_file": str(server.log_file)}
    for node, e in data.get("engines", {}).items():
        state = EngineState(node, e["instance"], e.get("pid"), int(e["http_port"]), e["log_file"])
        state.running = _engines.engine_is_ours(state.pid, state.instance)
        if not state.running:
            state.pid = None
        st.engines[node] = state
    if st.with_engines:
        st.leader = _leader(st, data)
    return st


def _leader(st: SetStatus, data: dict[str, Any]) -> str | None:
    """The holder of the unexpired leader lease (``cluster_lease``), or None; cheap reads only (psql on the
    lab's own cluster, SQLite read-only), None if the store cannot say."""
    row = ""
    if st.store == "postgresql" and st.postgres.get("running"):
        server = PrivatePostgres.from_dict(data["postgres"])
        with contextlib.suppress(subprocess.SubprocessError, OSError, LabError):
            row = server.psql("SELECT holder || '|' || expires_at FROM cluster_lease WHERE name = 'leader'",
                              DATABASE_NAME)
    elif st.store == "sqlite" and Path(st.database).is_file():
        with contextlib.suppress(sqlite3.Error), contextlib.closing(
                sqlite3.connect(f"file:{st.database}?mode=ro", uri=True, timeout=1)) as conn:
            got = conn.execute("SELECT holder || '|' || expires_at FROM cluster_lease WHERE name = 'leader'"
                               ).fetchone()
            row = str(got[0]) if got else ""
    holder, _, expires = row.partition("|")
    with contextlib.suppress(ValueError):
        if holder and datetime.fromisoformat(expires) > datetime.now(UTC):
            return holder
    return None


def _port_for_postgres(port: int, what_to_do: str) -> None:
    try:
        _check_port_free("the lab's PostgreSQL", "tcp", port)
    except LabError:
        raise LabError(f"port {port}/tcp on 127.0.0.1, for the lab's PostgreSQL, is already in use: "
                       f"{what_to_do} (`ss -lntp sport = :{port}` shows who)") from None


def _ensure_postgres(instance: str, data: dict[str, Any], *, free: bool) -> str:
    """The lab's PostgreSQL running (made once, then kept); the URL of its ``siaga112`` database."""
    if "postgres" in data:
        server = PrivatePostgres.from_dict(data["postgres"])
    else:
        port = free_tcp_port() if free else DEFAULT_POSTGRES_PORT
        _port_for_postgres(port, "use --free-ports for a free one, or stop what holds it")
        server = make_kept_cluster(lab_dir(instance), instance, port)
        data["postgres"] = server.as_dict()
        _write_set(instance, data)  # made: a later up or down finds it even if this up fails
    if server.pid() is None:
        _port_for_postgres(server.port, f"stop what holds it, or start this lab on a new store: "
                                         f"`siaga112 lab down --wipe-store --instance {instance}`")
        server.start()
    return server.ensure_database(DATABASE_NAME)


def up_set(instance: str, *, store: str | None = None, free: bool = False, ports: LabPorts | None = None,
           front_port: int | None = None, site_file: Path | None = None,
           ivr_enabled: bool = True) -> SetStatus:
    """Start what is down of the whole set: the store, the front and nodes, then one engine per node.
    Idempotent; parts that run are left alone (their calls go on). ``ivr_enabled``: whether the engines'
    settings run the IVR (the command layer reads them), so its readiness is waited for too."""
    if not cluster_status(instance).running:
        check_can_start(instance)  # before the store starts: nothing to undo
    data = _read_set(instance)
    engines_running = any(_engines.engine_is_ours(e.get("pid"), e["instance"])
                          for e in data.get("engines", {}).values())
    chosen = store or data.get("store") or DEFAULT_STORE
    if chosen not in STORES:
        raise LabError(f"--store {chosen!r}: choose one of {', '.join(STORES)}")
    if data.get("store") and chosen != data["store"] and engines_running:
        raise LabError(f"the engines of lab {instance!r} run on its {data['store']} store: stop the set "
                       f"(`siaga112 lab down --instance {instance}`) before changing --store to {chosen}")
    data.update(store=chosen, with_engines=True)
    _write_set(instance, data)
    database = (_ensure_postgres(instance, data, free=free) if chosen == "postgresql"
                else str(lab_dir(instance) / "siaga112.db"))
    data["database"] = database
    cst = up_cluster(instance, free=free, ports=ports, front_port=front_port, site_file=site_file)
    engines: dict[str, Any] = data.setdefault("engines", {})
    started: list[tuple[EngineState, int]] = []
    for node, node_instance in cst.node_instances.items():
        known = engines.get(node, {})
        if known.get("instance") == node_instance and _engines.engine_is_ours(known.get("pid"),
                                                                              node_instance):
            continue
        http_port = int(known["http_port"]) if known.get("http_port") else _engines.console_port(node, free)
        if free and not _engines.port_free(http_port):  # its last port was taken meanwhile: another one
            http_port = _engines.console_port(node, free)
        log = lab_dir(instance) / f"engine-{node}.log"
        offset = log.stat().st_size if log.exists() else 0
        state = _engines.launch(instance, node, node_instance, database, http_port)
        engines[node] = {"instance": node_instance, "pid": state.pid, "http_port": http_port,
                         "log_file": state.log_file}
        _write_set(instance, data)
        started.append((state, offset))
    _engines.wait_ready(started, _engines.ready_events(ivr_enabled=ivr_enabled))
    return set_status(instance)


def down_set(instance: str, *, wipe_store: bool = False) -> tuple[bool, SetStatus]:
    """Stop the engines, then the nodes and the front, then PostgreSQL. Returns (anything ran, status).
    ``wipe_store``: then remove the store's data (the private cluster, or the lab's SQLite file), so the
    next ``up --engines`` starts on an empty store."""
    before = set_status(instance)
    was = before.cluster.running or any(e.running for e in before.engines.values()) \
        or bool(before.postgres.get("running"))
    for state in before.engines.values():
        _engines.stop(state)
    down_cluster(instance)
    data = _read_set(instance)
    if data:
        data["with_engines"] = False  # the next `lab up --nodes 2` chooses again (--engines or not)
        _write_set(instance, data)
    if "postgres" in data:
        server = PrivatePostgres.from_dict(data["postgres"])
        server.stop()
        if wipe_store:
            if server.pid() is not None:
                raise LabError(f"the lab's PostgreSQL (pid {server.pid()}, {server.data_dir}) did not stop: "
                               f"its data is kept; see {server.log_file}")
            shutil.rmtree(server.root)
            if server.passfile is not None:
                server.passfile.unlink(missing_ok=True)
            del data["postgres"]
            _write_set(instance, data)
    if wipe_store and before.store == "sqlite":
        for suffix in ("", "-wal", "-shm"):  # nothing holds the file now: its engines are stopped
            (lab_dir(instance) / f"siaga112.db{suffix}").unlink(missing_ok=True)
    return was, set_status(instance)
