"""``siaga112 lab up --nodes 2``: Kamailio (the SIP front) and two lab Asterisk nodes on loopback.

Each node is an ordinary lab instance (``<instance>-<node>``: its own Asterisk, ports, directories,
``systemname``), started with the site as that node runs it; the SIP front runs the host's Kamailio with
the site's ``kamailio.cfg`` and ``dispatcher.list`` rendered into the two-node lab's directory. The nodes
and the front share one set of secrets (the operators' SIP passwords are the same everywhere). The
engines and their store are :mod:`callflow.lab._whole`'s (``--engines``); without it, one ``siaga112 serve
--lab <instance>-<node>`` per node, started by hand (both write into the two-node lab's database).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callflow.lab._control import (
    AMI_USER,
    LabStatus,
    _check_port_free,
    _secrets_for,
    down,
    free_ports,
    lab_dir,
    lab_site_file,
    load_secrets,
    status,
    up,
)
from callflow.lab._render import LabCluster, LabPorts, load_lab_site
from callflow.lab.errors import LabError
from callflow.siteconfig import SiteConfigError, load_site, render_front, write_files

NODE_NAMES = ("a", "b")
DEFAULT_FRONT_PORT = 15080
NODE_B_SHIFT = 200  # node b's ports when not --free-ports: node a's + 200 (RTP: a range of its own)
FRONT_START_TIMEOUT_S = 10.0
KAMAILIO_MEMORY = ("-m", "32", "-M", "4")  # MB shared, MB per process: a lab proxy needs little


@dataclass
class ClusterStatus:
    """A two-node lab: the SIP front and the nodes (each a :class:`LabStatus`)."""

    instance: str
    running: bool = False
    front: dict[str, Any] = field(default_factory=dict)  # pid, host, port, config_dir, log_file, running
    node_instances: dict[str, str] = field(default_factory=dict)  # node name -> lab instance
    started_at: str = ""

    def nodes(self) -> dict[str, LabStatus]:
        return {name: status(inst) for name, inst in self.node_instances.items()}

    @property
    def front_running(self) -> bool:
        return bool(self.front.get("running"))

    def as_json(self) -> str:
        data = asdict(self)
        data["nodes"] = {name: json.loads(st.as_json()) for name, st in self.nodes().items()}
        data["front_view"] = front_view(self)
        return json.dumps(data, indent=2, sort_keys=True)


_STATES = {"A": "active", "I": "inactive", "D": "disabled", "T": "trying"}


def front_view(st: ClusterStatus) -> dict[str, str]:
    """How the front sees each node (its dispatcher's state: active, inactive, disabled; "probing" when
    it sends OPTIONS), by node name, read with ``kamcmd`` over the lab's control socket; {} when the front
    is down or ``kamcmd`` is missing."""
    kamcmd = shutil.which("kamcmd")
    if kamcmd is None or not st.front_running:
        return {}
    sock = Path(st.front["config_dir"]) / "run" / "kamailio_ctl"
    try:
        out = subprocess.run([kamcmd, "-s", f"unix:{sock}", "dispatcher.list"], capture_output=True,
                             text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    view: dict[str, str] = {}
    flags = ""
    for line in out.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "FLAGS":
            flags = value
        elif key == "DUID" and flags:
            state = _STATES.get(flags[:1], flags)
            view[value] = f"{state}, probing" if "P" in flags[1:] else state
    return view


def _cluster_state(instance: str) -> Path:
    return lab_dir(instance) / "cluster.json"


def is_cluster(instance: str) -> bool:
    return _cluster_state(instance).is_file()


def lab_database(instance: str) -> Path:
    """The database of a lab: a node's is its two-node lab's, which both engines share (each journals
    under its node's name, :func:`callflow.commands.serve.lab_node`)."""
    st = status(instance)
    if st.cluster:
        return lab_dir(str(st.cluster["instance"])) / "siaga112.db"
    return lab_dir(instance) / "siaga112.db"


def _front_pid_is_ours(pid: int | None, cfg: str) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "kamailio" in cmdline and cfg in cmdline


def cluster_status(instance: str) -> ClusterStatus:
    path = _cluster_state(instance)
    if not path.is_file():
        return ClusterStatus(instance=instance)
    data = json.loads(path.read_text())
    st = ClusterStatus(instance=instance, front=data.get("front", {}),
                       node_instances=data.get("node_instances", {}), started_at=data.get("started_at", ""))
    st.front["running"] = _front_pid_is_ours(st.front.get("pid"), st.front.get("config_file", "?"))
    st.running = st.front_running or any(node.running for node in st.nodes().values())
    return st


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _node_ports(free: bool, base: LabPorts) -> list[LabPorts]:
    if free:
        first = free_ports()
        while True:  # two blocks that do not overlap (free_ports checks only what is bound now)
            second = free_ports()
            if abs(second.ami - first.ami) > 1000:
                return [first, second]
    shift = NODE_B_SHIFT
    return [base, LabPorts(ami=base.ami + shift, ami_tls=base.ami_tls + shift, sip=base.sip + shift,
                                     agi=base.agi + shift, rtp_start=base.rtp_end + 1,
                                     rtp_end=base.rtp_end + 1 + (base.rtp_end - base.rtp_start))]


def up_cluster(instance: str, *, free: bool = False, ports: LabPorts | None = None,
               front_port: int | None = None, site_file: Path | None = None) -> ClusterStatus:
    """Start Kamailio and two Asterisk nodes (idempotent: a running two-node lab is reported). When some
    parts still run (a node was killed or stopped), only the missing parts are started again, on their
    ports: calls up on the running node are not touched."""
    current = cluster_status(instance)
    if current.running and current.front_running and all(n.running for n in current.nodes().values()):
        return current
    if current.running:
        return _start_missing(current)
    kamailio = check_can_start(instance)
    down_cluster(instance)  # parts left behind by an interrupted start
    chosen = site_file
    site_file = lab_site_file(instance, site_file)
    blocks = _node_ports(free, ports or LabPorts())
    port = front_port or (_free_udp_port() if free else DEFAULT_FRONT_PORT)
    _check_port_free("SIP front (Kamailio)", "udp", port)
    front_dir = lab_dir(instance) / "front"
    cluster, node_ports = _lab_cluster(site_file, blocks, port, front_dir)
    secrets_path, lab_secrets = _secrets_for(instance)
    node_instances = {name: f"{instance}-{name}" for name, _, _ in cluster.nodes}
    for node_instance in node_instances.values():  # one set of secrets for the front and both nodes
        target = lab_dir(node_instance) / "secrets.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o700)
        shutil.copyfile(secrets_path, target)
        target.chmod(0o600)
    state = ClusterStatus(instance=instance, node_instances=node_instances,
                          started_at=datetime.now(UTC).isoformat(timespec="microseconds"))
    try:
        for name, node_instance in node_instances.items():
            up(node_instance, node_ports[name], site_file=site_file, cluster=cluster, node=name,
               cluster_instance=instance)
        state.front = _start_front(kamailio, instance, site_file, ports=blocks[0], cluster=cluster,
                                   secrets=lab_secrets)
    except BaseException:
        for node_instance in node_instances.values():
            down(node_instance)
        raise
    if chosen is not None:
        from callflow.siteconfig import store_applied  # noqa: PLC0415 - as the one-node lab does

        try:
            store_applied(lab_dir(instance) / "config", load_site(chosen))
        except SiteConfigError as exc:
            raise LabError(str(exc)) from None
    _cluster_state(instance).write_text(json.dumps(
        {"front": state.front, "node_instances": node_instances, "started_at": state.started_at},
        indent=2, sort_keys=True))
    return cluster_status(instance)


def check_can_start(instance: str) -> str:
    """Refuse a two-node lab where a one-node lab runs, or without Kamailio (its path otherwise)."""
    if status(instance).running:
        raise LabError(f"lab {instance!r} runs one Asterisk (a one-node lab): stop it first (`siaga112 lab "
                       f"down --instance {instance}`) or choose another --instance for two nodes")
    kamailio = shutil.which("kamailio")
    if kamailio is None:
        raise LabError("the two-node lab's SIP front is Kamailio and it is not installed: run `make setup` "
                       "(or `apt-get install kamailio`), then `siaga112 lab up --nodes 2` again")
    return kamailio


def _start_missing(current: ClusterStatus) -> ClusterStatus:
    for name, node in current.nodes().items():
        if not node.running:
            up(node.instance, node.ports(), cluster=node.lab_cluster(), node=name,
               cluster_instance=current.instance, engine_may_run=True)
    if not current.front_running:
        path = _cluster_state(current.instance)
        data = json.loads(path.read_text())
        cfg = Path(current.front["config_file"])
        data["front"] = _launch_front(str(current.front.get("kamailio") or "kamailio"), current.instance,
                                      cfg, int(current.front["port"]))
        path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return cluster_status(current.instance)


def _lab_cluster(site_file: Path, blocks: list[LabPorts], front_port: int, front_dir: Path
                 ) -> tuple[LabCluster, dict[str, LabPorts]]:
    """Node names and priorities from the site's [cluster] if it has one (its first two nodes), else
    ``a`` (priority 10) and ``b`` (5); the first node's port block is where its SIPp operators answer."""
    try:
        site = load_site(site_file).site
    except SiteConfigError as exc:
        raise LabError(f"the site file cannot be rendered for the lab:\n{exc}") from None
    names: list[tuple[str, int]] = [(NODE_NAMES[0], 10), (NODE_NAMES[1], 5)]
    if site.cluster is not None:
        names = [(node.name, node.priority) for node in site.cluster.nodes[:2]]
    by_name = {name: blocks[i] for i, (name, _) in enumerate(names)}
    cluster = LabCluster(front_port=front_port,
                         nodes=tuple((name, by_name[name].sip, priority) for name, priority in names),
                         operators_sip=blocks[0].sip, front_etc=str(front_dir))
    return cluster, by_name


def _start_front(kamailio: str, instance: str, site_file: Path, *, ports: LabPorts, cluster: LabCluster,
                 secrets: dict[str, str]) -> dict[str, Any]:
    front_dir = Path(cluster.front_etc)
    front_dir.mkdir(parents=True, exist_ok=True)
    front_dir.chmod(0o700)  # kamailio.cfg holds the operators' SIP passwords
    loaded, resolved = load_lab_site(site_file, ports=ports, inner=str(lab_dir(instance)), ami_user=AMI_USER,
                                     secrets=secrets, cluster=cluster)
    try:
        write_files(render_front(loaded, resolved), front_dir)
    except SiteConfigError as exc:
        raise LabError(str(exc)) from None
    return _launch_front(kamailio, instance, front_dir / "kamailio.cfg", cluster.front_port)


def check_front_config(kamailio: str, cfg: Path) -> None:
    """``kamailio -c``: Kamailio's own syntax check of a rendered configuration (LabError if refused)."""
    check = subprocess.run([kamailio, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30,
                           check=False)
    if check.returncode != 0:
        raise LabError(f"Kamailio refused the rendered configuration {cfg}:\n{check.stderr[-2000:]}")


def _launch_front(kamailio: str, instance: str, cfg: Path, port: int) -> dict[str, Any]:
    check_front_config(kamailio, cfg)
    front_dir = cfg.parent
    log_path = lab_dir(instance) / "kamailio.out"
    run_dir = front_dir / "run"
    run_dir.mkdir(exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [kamailio, "-f", str(cfg), "-DD", "-E", "-Y", str(run_dir), "-w", str(front_dir),
             *KAMAILIO_MEMORY],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + FRONT_START_TIMEOUT_S
    while not _udp_bound(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_pid(proc.pid, str(cfg))
            tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-10:])
            raise LabError(f"Kamailio did not start (see {log_path}):\n{tail}")
        time.sleep(0.05)
    return {"pid": proc.pid, "host": "127.0.0.1", "port": port, "config_dir": str(front_dir),
            "config_file": str(cfg), "log_file": str(log_path), "kamailio": kamailio}


def front_files(instance: str, site_file: Path) -> tuple[dict[str, str], dict[str, str], Path]:
    """(the SIP front's files as the two-node lab ``instance`` renders ``site_file``, secrets, its
    configuration directory)."""
    cst = cluster_status(instance)
    first = next(iter(cst.nodes().values()), None)
    cluster = first.lab_cluster() if first is not None else None
    if first is None or cluster is None:
        raise LabError(f"lab {instance!r} has no nodes: start it with `siaga112 lab up --nodes 2 --instance "
                       f"{instance}`")
    secrets = load_secrets(Path(first.secrets_file))
    loaded, resolved = load_lab_site(site_file, ports=first.ports(), inner=str(lab_dir(instance)),
                                     ami_user=AMI_USER, secrets=secrets, cluster=cluster)
    try:
        return render_front(loaded, resolved), resolved, Path(cluster.front_etc)
    except SiteConfigError as exc:
        raise LabError(str(exc)) from None


def restart_front(instance: str) -> ClusterStatus:
    """Restart the lab's Kamailio on the files in its directory (what ``config apply`` wrote). Phones
    registered at it register again within their expiry (registrations are kept in memory)."""
    cst = cluster_status(instance)
    cfg = Path(cst.front["config_file"])
    _stop_pid(int(cst.front.get("pid") or 0), str(cfg))
    front = _launch_front(str(cst.front.get("kamailio") or "kamailio"), instance, cfg, int(cst.front["port"]))
    path = _cluster_state(instance)
    data = json.loads(path.read_text())
    data["front"] = front
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return cluster_status(instance)


def _udp_bound(port: int) -> bool:
    wanted = f":{port:04X}"
    with contextlib.suppress(OSError), open("/proc/net/udp") as fh:
        return any(line.split()[1].endswith(wanted) for line in fh.readlines()[1:])
    return False


def _stop_pid(pid: int, cfg: str) -> None:
    """Stop the Kamailio this lab started (its process group: Kamailio's children with it)."""
    if not _front_pid_is_ours(pid, cfg):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while _front_pid_is_ours(pid, cfg) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _front_pid_is_ours(pid, cfg):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def down_cluster(instance: str) -> tuple[bool, ClusterStatus]:
    """Stop both nodes, then the front. Returns (anything was running, status)."""
    st = cluster_status(instance)
    was = st.running
    for node_instance in st.node_instances.values():
        down(node_instance)
    if st.front.get("pid"):
        _stop_pid(int(st.front["pid"]), st.front.get("config_file", "?"))
    if _cluster_state(instance).is_file():
        return was, cluster_status(instance)
    return was, st
