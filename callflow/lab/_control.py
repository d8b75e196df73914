"""``siaga112 lab up | down | status``: one real Asterisk per lab instance, bound to loopback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callflow.ami import AmiConnection, AmiEndpoint, AmiError, EventItem
from callflow.ami.events import FullyBooted
from callflow.lab._render import (
    APPLY_USER,
    REGISTERING_OPERATORS,
    STATIC_OPERATORS,
    LabCluster,
    LabPorts,
    render_config,
)
from callflow.lab._root import AsteriskRuntime, cache_dir, find_runtime
from callflow.lab._tls import TLS_CERT, ensure_certificate
from callflow.lab.errors import LabError
from callflow.siteconfig import (
    APPLY_KEY,
    SiteConfigError,
    applied_site_path,
    load_site,
    pbx_config_dir,
    store_applied,
)

AMI_USER = "siaga112"
BOOT_TIMEOUT_S = 60.0


@dataclass
class LabStatus:
    """What runs where. ``as_json()`` is the machine-readable form scripts and benchmarks read."""

    instance: str
    running: bool
    pid: int | None = None
    mode: str = ""
    asterisk_version: str = ""
    root: str = ""
    config_dir: str = ""
    config_dir_in_root: str = ""
    instance_dir: str = ""
    instance_dir_in_root: str = ""
    log_dir: str = ""
    recordings_dir: str = ""
    recordings_dir_in_root: str = ""
    sounds_dir: str = ""
    sounds_dir_in_root: str = ""
    cdr_file: str = ""
    queue_log_file: str = ""
    started_at: str = ""
    ami: dict[str, Any] = field(default_factory=dict)
    sip: dict[str, Any] = field(default_factory=dict)
    fastagi: dict[str, Any] = field(default_factory=dict)
    rtp: dict[str, Any] = field(default_factory=dict)
    operators: dict[str, dict[str, Any]] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)  # {"trunk_port": SIP port of the callback trunk}
    secrets_file: str = ""
    # a node of a two-node lab: {"instance": the two-node lab, "node": this node's name, **LabCluster}
    cluster: dict[str, Any] = field(default_factory=dict)

    def lab_cluster(self) -> LabCluster | None:
        return LabCluster.from_dict(self.cluster) if self.cluster else None

    @property
    def node(self) -> str | None:
        return str(self.cluster["node"]) if self.cluster else None

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def ami_endpoint(self, *, tls: bool = False) -> AmiEndpoint:
        """The engine's AMI login; ``tls``: over the lab's TLS listener, trusting its certificate."""
        secret = load_secrets(Path(self.secrets_file))["ami"]
        if tls:
            if not self.ami.get("tls_port"):
                raise LabError(f"lab {self.instance!r} has no AMI TLS listener (started by an older "
                               f"siaga112): restart it (`siaga112 lab down/up --instance {self.instance}`)")
            return AmiEndpoint(self.ami["host"], int(self.ami["tls_port"]), self.ami["username"], secret,
                               tls_ca_file=self.ami["tls_ca_file"])
        return AmiEndpoint(self.ami["host"], int(self.ami["port"]), self.ami["username"], secret)

    def apply_endpoint(self) -> AmiEndpoint:
        """``config apply``'s AMI login (reloads and verification), over the plain loopback listener."""
        secret = load_secrets(Path(self.secrets_file)).get(APPLY_KEY)
        if not secret:
            raise LabError(f"lab {self.instance!r} has no AMI user for `config apply` (started by an older "
                           f"siaga112): restart it (`siaga112 lab down/up --instance {self.instance}`)")
        return AmiEndpoint(self.ami["host"], int(self.ami["port"]), APPLY_USER, secret)

    def ports(self) -> LabPorts:
        """The ports this lab was started with (what ``config apply --lab`` renders with)."""
        defaults = LabPorts()
        return LabPorts(ami=int(self.ami["port"]), ami_tls=int(self.ami.get("tls_port", defaults.ami_tls)),
                        sip=int(self.sip["port"]), agi=int(self.fastagi["port"]),
                        rtp_start=int(self.rtp.get("start", defaults.rtp_start)),
                        rtp_end=int(self.rtp.get("end", defaults.rtp_end)))

    def asterisk_command(self, *args: str) -> list[str]:
        conf = f"{self.config_dir_in_root}/asterisk.conf"
        if self.mode == "chroot":
            return ["chroot", self.root, "/usr/sbin/asterisk", "-C", conf, *args]
        return ["asterisk", "-C", conf, *args]

    def cli(self, command: str, timeout: float = 15.0) -> str:
        """Run an Asterisk CLI command (``-rx``) on this lab; returns its output."""
        result = subprocess.run(self.asterisk_command("-rx", command), capture_output=True, text=True,
                                timeout=timeout, check=False)
        if result.returncode != 0:
            raise LabError(f"asterisk -rx {command!r} failed (exit {result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
        return result.stdout


def lab_dir(instance: str) -> Path:
    return cache_dir() / "labs" / instance


def load_secrets(path: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads(path.read_text())
    return data


def _secrets_for(instance: str) -> tuple[Path, dict[str, str]]:
    """Per-lab secrets (AMI and SIP), generated once, mode 0600, never in the repo or logs.
    ``SIAGA112_AMI_SECRET`` and ``SIAGA112_AMI_APPLY_SECRET`` override the AMI ones."""
    path = lab_dir(instance) / "secrets.json"
    data: dict[str, str] = load_secrets(path) if path.exists() else {}
    data.setdefault("ami", secrets.token_urlsafe(24))
    data.setdefault(APPLY_KEY, secrets.token_urlsafe(24))  # `config apply`'s own AMI user
    for i in range(1, STATIC_OPERATORS + REGISTERING_OPERATORS + 1):
        data.setdefault(f"op{i}", secrets.token_urlsafe(18))
    env_secret = os.environ.get("SIAGA112_AMI_SECRET")
    if env_secret:
        data["ami"] = env_secret
    env_apply = os.environ.get("SIAGA112_AMI_APPLY_SECRET")
    if env_apply:
        data[APPLY_KEY] = env_apply
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)  # the lab's directory holds its secrets and the engine's database
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.chmod(path, 0o600)
    return path, data


def _state_path(instance: str) -> Path:
    return lab_dir(instance) / "state.json"


def _pid_is_ours(pid: int | None, conf_marker: str) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return conf_marker in cmdline and "asterisk" in cmdline


def status(instance: str = "default") -> LabStatus:
    path = _state_path(instance)
    if not path.exists():
        return LabStatus(instance=instance, running=False)
    data = json.loads(path.read_text())
    # a state file written by another version of siaga112 may hold keys this one does not know (or lack
    # some): keep what we know, so `lab status`/`down` still find and stop that lab's Asterisk
    known = {f.name for f in dataclasses.fields(LabStatus)}
    st = LabStatus(**{k: v for k, v in data.items() if k in known})
    st.running = _pid_is_ours(st.pid, f"{st.config_dir_in_root}/asterisk.conf")
    if not st.running:
        st.pid = None
    return st


def _check_port_free(label: str, proto: str, port: int) -> None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LabError(
                f"port {port}/{proto} ({label}) on 127.0.0.1 is already in use ({exc.strerror}): choose "
                f"another port (see `siaga112 lab up --help`) or stop what holds it "
                f"(`ss -lnp sport = :{port}`)") from None


def free_ports() -> LabPorts:
    """A set of currently free ports (tests and parallel labs)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 60000 or base < 20000:
            continue
        ports = LabPorts(ami=base, ami_tls=base + 2, sip=base + 10, agi=base + 1, rtp_start=base + 100,
                         rtp_end=base + 999)
        try:
            for label, proto, port in ports.all_checked():
                _check_port_free(label, proto, port)
        except LabError:
            continue
        return ports
    raise LabError("could not find a free block of ports on 127.0.0.1")


def lab_site_file(instance: str, site_file: Path | None = None) -> Path:
    """The site file ``up`` renders: ``site_file`` if given, else the site last applied to the lab
    (``config apply --lab``), else the shipped pbx-config/site.toml."""
    if site_file is not None:
        return site_file
    applied = applied_site_path(lab_dir(instance) / "config")
    return applied if applied.is_file() else pbx_config_dir() / "site.toml"


def up(instance: str = "default", ports: LabPorts | None = None, *,
       site_file: Path | None = None, cluster: LabCluster | None = None, node: str | None = None,
       cluster_instance: str = "", engine_may_run: bool = False) -> LabStatus:
    """Start the lab (building the Asterisk root first if needed). Idempotent: a running lab is reported.
    It renders :func:`lab_site_file`: a ``lab down`` then ``lab up`` keeps the site last applied. A
    ``site_file`` given here becomes the site the lab runs (kept as applied: the engine, ``operator`` and
    ``config diff`` read it). ``cluster``, ``node``: this Asterisk is node ``node`` of the two-node lab
    ``cluster_instance`` (:mod:`callflow.lab._cluster` starts its nodes this way). ``engine_may_run``:
    this Asterisk comes back under a running engine (its FastAGI port is taken, by the engine)."""
    current = status(instance)
    if current.running:
        return current
    chosen = site_file
    site_file = lab_site_file(instance, site_file)
    ports = ports or LabPorts()
    for label, proto, port in ports.all_checked():
        if engine_may_run and port == ports.agi:
            continue  # the engine's own FastAGI listener: it outlived its Asterisk and stays
        _check_port_free(label, proto, port)
    runtime = find_runtime()
    inner, host_inner = _instance_dirs(runtime, instance)
    secrets_path, lab_secrets = _secrets_for(instance)
    ensure_certificate(host_inner / "keys")
    render_config(host_inner=host_inner, inner=inner, module_dir=runtime.module_dir, ports=ports,
                  ami_user=AMI_USER, secrets=lab_secrets, site_file=site_file, cluster=cluster, node=node)
    st = _status_for(instance, runtime=runtime, inner=inner, host_inner=host_inner, ports=ports,
                     secrets_path=secrets_path)
    if cluster is not None and node is not None:
        st.cluster = {"instance": cluster_instance, "node": node, **cluster.as_dict()}
    log_path = lab_dir(instance) / "asterisk.out"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            runtime.command("-C", f"{inner}/etc/asterisk.conf", "-f", "-n"),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    st.pid = proc.pid
    st.running = True
    st.started_at = datetime.now(UTC).isoformat(timespec="microseconds")
    try:
        asyncio.run(_wait_booted(st, proc, log_path))
    except BaseException:
        _kill(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        raise
    if chosen is not None:
        try:
            store_applied(lab_dir(instance) / "config", load_site(chosen))
        except SiteConfigError as exc:  # rendered above, so it loads; kept defensive
            raise LabError(str(exc)) from None
    _state_path(instance).write_text(st.as_json())
    return st


def _instance_dirs(runtime: AsteriskRuntime, instance: str) -> tuple[str, Path]:
    if runtime.mode == "chroot":
        inner = f"/srv/siaga112/{instance}"
        return inner, runtime.host_path(inner)
    host_inner = lab_dir(instance) / "asterisk"
    return str(host_inner), host_inner


def _status_for(instance: str, *, runtime: AsteriskRuntime, inner: str, host_inner: Path,
                ports: LabPorts, secrets_path: Path) -> LabStatus:
    ops = {
        f"op{i}": {"extension": f"2{i:02d}", "registers": i > STATIC_OPERATORS,
                   **({"port": ports.operator_port(i)} if i <= STATIC_OPERATORS else {})}
        for i in range(1, STATIC_OPERATORS + REGISTERING_OPERATORS + 1)
    }
    return LabStatus(
        instance=instance, running=False, mode=runtime.mode, asterisk_version=runtime.version,
        root=str(runtime.root), config_dir=str(host_inner / "etc"), config_dir_in_root=f"{inner}/etc",
        instance_dir=str(host_inner), instance_dir_in_root=inner,
        log_dir=str(host_inner / "log"), recordings_dir=str(host_inner / "recordings"),
        recordings_dir_in_root=f"{inner}/recordings", sounds_dir=str(host_inner / "sounds"),
        sounds_dir_in_root=f"{inner}/sounds",
        cdr_file=str(host_inner / "log" / "cdr-custom" / "siaga112-cdr.csv"),
        queue_log_file=str(host_inner / "log" / "queue_log"),
        ami={"host": "127.0.0.1", "port": ports.ami, "username": AMI_USER, "tls_port": ports.ami_tls,
             "tls_ca_file": str(host_inner / "keys" / TLS_CERT)},
        sip={"host": "127.0.0.1", "port": ports.sip, "transport": "udp"},
        fastagi={"host": "127.0.0.1", "port": ports.agi},
        rtp={"start": ports.rtp_start, "end": ports.rtp_end},
        operators=ops, callbacks={"trunk_port": ports.callback_trunk}, secrets_file=str(secrets_path),
    )


async def _wait_booted(st: LabStatus, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Wait until AMI answers a login and Asterisk reports FullyBooted; fail fast if it exits."""
    endpoint = st.ami_endpoint()
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    last_error = "AMI not answering yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"Asterisk exited during start-up (exit {proc.returncode}). Last lines of "
                           f"{log_path} and {st.log_dir}/messages.log:\n{_tail(log_path)}\n"
                           f"{_tail(Path(st.log_dir) / 'messages.log')}")
        events: asyncio.Queue[EventItem] = asyncio.Queue()
        conn = AmiConnection(endpoint, events, connect_timeout=2.0, ping_interval=30.0)
        try:
            await conn.connect()
        except AmiError as exc:
            last_error = str(exc)
            await asyncio.sleep(0.2)
            continue
        try:
            async with asyncio.timeout(max(0.5, deadline - time.monotonic())):
                while True:
                    item = await events.get()
                    if isinstance(item, FullyBooted):
                        return
        except TimeoutError:
            last_error = "logged in, but Asterisk never reported FullyBooted"
        finally:
            await conn.close()
    raise LabError(f"Asterisk did not finish booting within {BOOT_TIMEOUT_S:.0f} s ({last_error}); "
                   f"see {log_path} and {st.log_dir}/messages.log")


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return f"({path} not readable)"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def down(instance: str = "default") -> tuple[bool, LabStatus]:
    """Stop only the Asterisk that ``up`` started (by its recorded pid). Returns (was_running, status)."""
    st = status(instance)
    if not st.running or st.pid is None:
        return False, st
    pid = st.pid
    with contextlib.suppress(LabError, subprocess.TimeoutExpired, OSError):
        st.cli("core stop now", timeout=10)
    if not _wait_gone(pid, st, 10.0):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, st, 5.0):
            _kill(pid)
            _wait_gone(pid, st, 5.0)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    st.running = False
    st.pid = None
    _state_path(instance).write_text(st.as_json())
    return True, st


def _wait_gone(pid: int, st: LabStatus, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    marker = f"{st.config_dir_in_root}/asterisk.conf"
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        if not _pid_is_ours(pid, marker):
            return True
        time.sleep(0.05)
    return False
