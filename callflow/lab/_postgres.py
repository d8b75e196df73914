"""A private PostgreSQL: ``initdb`` + ``pg_ctl`` on a free loopback port, nobody else's cluster touched.

The two-node lab keeps one in its folder (``siaga112 lab up --nodes 2 --engines``: the engines' shared
store); the tests and benchmarks make throw-away ones in a temporary directory. Both are this one
definition.

Run as root, PostgreSQL refuses to start: the cluster is then made and run as the unprivileged ``postgres``
system user (the Debian package creates it), which owns the cluster's directory. Root's home is closed to
that user, so a lab's cluster then lives in ``/var/tmp/siaga112-pg-<lab>-<hash>`` (the lab's folder records
where). A cluster listens on 127.0.0.1 only and trusts its own socket directory (0700); over TCP a
throw-away cluster trusts loopback, a lab's asks for a password kept only in the lab's 0600 ``pgpass``
(its URL names that file, never the password). ``stop()``/``start()`` keep the data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callflow.lab.errors import LabError

SERVICE_USER = "postgres"  # the unprivileged account the cluster runs as when we are root
INSTALL_HELP = ("install the Debian package postgresql (`make setup`), or set PG_BIN to the directory "
                "holding initdb and pg_ctl")


class PostgresUnavailable(LabError):
    """PostgreSQL's server programs are not installed, or the cluster would not start."""


def find_bin_dir() -> Path:
    """The directory of ``initdb``/``pg_ctl``: $PG_BIN, then the newest /usr/lib/postgresql/<ver>/bin
    (Debian keeps them off PATH), then PATH."""
    if env := os.environ.get("PG_BIN"):
        if not (Path(env) / "initdb").exists():
            raise PostgresUnavailable(f"PG_BIN={env} holds no initdb: {INSTALL_HELP}")
        return Path(env)
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.glob("*/bin") if (p / "initdb").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable(f"PostgreSQL's initdb is not installed (not in /usr/lib/postgresql/*/bin nor "
                              f"on PATH): {INSTALL_HELP}")


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_user() -> str | None:
    """The system user the server programs run as: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresUnavailable(f"running as root, a private PostgreSQL needs the unprivileged user "
                                  f"{SERVICE_USER!r}: {INSTALL_HELP} (the package creates it)") from None
    return SERVICE_USER


@dataclass
class PrivatePostgres:
    bin_dir: Path
    root: Path  # the cluster's directory: data/, the socket, the server log
    port: int
    run_as: str | None  # system user the server programs run as (None: ourselves)
    durable: bool = False  # fsync on (a lab's store, benchmarks); tests throw the cluster away
    passfile: Path | None = None  # a lab's cluster: TCP logins need the password in this 0600 file

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def superuser(self) -> str:
        return self.run_as or pwd.getpwuid(os.getuid()).pw_name

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL over loopback TCP. A throw-away cluster trusts loopback; a lab's names its 0600
        password file (libpq's ``passfile``: a path, never the password)."""
        query = f"?passfile={self.passfile}" if self.passfile is not None else ""
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{dbname}{query}"

    def as_dict(self) -> dict[str, Any]:
        return {"bin_dir": str(self.bin_dir), "root": str(self.root), "port": self.port,
                "run_as": self.run_as, "durable": self.durable,
                "passfile": str(self.passfile) if self.passfile is not None else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrivatePostgres:
        return cls(Path(data["bin_dir"]), Path(data["root"]), int(data["port"]), data.get("run_as"),
                   bool(data.get("durable", False)),
                   Path(data["passfile"]) if data.get("passfile") else None)

    # -- running the server programs --------------------------------------------------------------
    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        try:
            return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60,
                                  cwd=self.root)
        except FileNotFoundError as exc:
            raise PostgresUnavailable(f"{exc.filename} is missing: {INSTALL_HELP}") from None

    def init(self, pwfile: Path | None = None) -> None:
        """``initdb``. ``pwfile``: the superuser's password, then required over TCP (SCRAM); without
        it loopback TCP is trusted. The socket directory (the cluster's own, 0700) is always trusted."""
        host_auth = "scram-sha-256" if pwfile is not None else "trust"
        password = ("--pwfile", str(pwfile)) if pwfile is not None else ()
        try:
            self._run("initdb", "-D", str(self.data_dir), "--auth-local=trust", f"--auth-host={host_auth}",
                      *password, "-U", self.superuser, "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        except subprocess.CalledProcessError as exc:
            raise PostgresUnavailable(f"initdb in {self.data_dir} failed: {exc.stderr.strip()}") from exc
        sync = "on" if self.durable else "off"
        (self.data_dir / "pg_hba.conf").write_text(  # this cluster's socket directory and loopback only
            f"local all all trust\nhost all all 127.0.0.1/32 {host_auth}\n", encoding="utf-8")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as fh:
            # loopback only; fsync off for throw-away clusters (speed matters, not a crash)
            fh.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                     f"unix_socket_directories = '{self.root}'\nfsync = {sync}\nfull_page_writes = {sync}\n"
                     "synchronous_commit = on\nmax_connections = 200\nshared_buffers = 32MB\n")

    def start(self) -> None:
        result = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "30",
                           "start", check=False)
        if result.returncode != 0:
            log = self.log_file.read_text(encoding="utf-8", errors="replace")[-2000:] \
                if self.log_file.exists() else ""
            raise PostgresUnavailable(f"pg_ctl start of {self.data_dir} (port {self.port}) failed: "
                                      f"{result.stderr.strip()}\n{log}\nsee {self.log_file}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def pid(self) -> int | None:
        """The postmaster's pid if it runs on this data directory (postmaster.pid, checked in /proc)."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0]
            cmdline = Path(f"/proc/{int(first)}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            return None
        return int(first) if "postgres" in cmdline and str(self.data_dir) in cmdline else None

    def require_password(self, role: str) -> None:
        """Make ``role`` log in over loopback TCP with its password (SCRAM) instead of being trusted."""
        hba = self.data_dir / "pg_hba.conf"
        rule = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
        text = hba.read_text(encoding="utf-8")
        if rule not in text:
            hba.write_text(rule + text, encoding="utf-8")  # first match wins: before the trust lines
        self._run("pg_ctl", "-D", str(self.data_dir), "reload")

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        result = self._run("psql", "-X", "-q", "-A", "-t", "-h", str(self.root), "-p", str(self.port),
                           "-U", self.superuser, "-d", dbname, "-v", "ON_ERROR_STOP=1", "-c", sql)
        return result.stdout.strip()

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def ensure_database(self, name: str) -> str:
        """The database ``name`` (created if missing); its URL."""
        try:
            if self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":  # noqa: S608 - our own name
                self.psql(f'CREATE DATABASE "{name}"')
        except subprocess.CalledProcessError as exc:
            raise PostgresUnavailable(f"the private PostgreSQL on 127.0.0.1:{self.port} ({self.data_dir}) "
                                      f"did not create database {name!r}: {exc.stderr.strip()}; see "
                                      f"{self.log_file}") from None
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[-1].split("?", 1)[0]
        with contextlib.suppress(subprocess.CalledProcessError):
            self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _own_dir(path: Path, run_as: str | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)


def start_private_postgres(*, durable: bool = False) -> PrivatePostgres:
    """Make and start a throw-away cluster in a temporary directory. Raises PostgresUnavailable."""
    bin_dir = find_bin_dir()
    run_as = service_user()
    root = Path(tempfile.mkdtemp(prefix="siaga112-pg-"))
    _own_dir(root, run_as)
    server = PrivatePostgres(bin_dir, root, free_tcp_port(), run_as, durable)
    try:
        server.init()
        server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def remove_private_postgres(server: PrivatePostgres) -> None:
    server.stop("immediate")
    shutil.rmtree(server.root, ignore_errors=True)


def kept_cluster_dir(lab_folder: Path, name: str, run_as: str | None) -> Path:
    """Where a lab's cluster lives: ``<lab folder>/postgres``, or, when it runs as ``postgres`` (we are
    root, and root's home is closed to that user), ``/var/tmp/siaga112-pg-<name>-<hash of the folder>``."""
    if run_as is None:
        return lab_folder / "postgres"
    digest = hashlib.sha256(str(lab_folder.resolve()).encode()).hexdigest()[:8]
    return Path("/var/tmp") / f"siaga112-pg-{name}-{digest}"  # noqa: S108 - a fixed, owner-only (0700) folder


def make_kept_cluster(lab_folder: Path, name: str, port: int) -> PrivatePostgres:
    """A new durable cluster for a lab (initialised, not started). Its superuser's password is made here
    and kept only in ``<lab folder>/pgpass`` (0600, libpq's format), which the cluster's URL names."""
    bin_dir = find_bin_dir()  # before anything is made: a missing PostgreSQL leaves nothing behind
    run_as = service_user()
    root = kept_cluster_dir(lab_folder, name, run_as)
    if (root / "data" / "PG_VERSION").exists():
        raise PostgresUnavailable(f"{root} already holds a PostgreSQL cluster the lab does not know: remove "
                                  f"it (`rm -r {root}`) or move it away, then `lab up` again")
    _own_dir(root, run_as)
    passfile = lab_folder / "pgpass"
    server = PrivatePostgres(bin_dir, root, port, run_as, durable=True, passfile=passfile)
    password = secrets.token_urlsafe(24)
    pwfile = root / "initdb.pw"  # initdb reads it as the server's user; removed at once
    try:
        _write_private(passfile, f"127.0.0.1:{port}:*:{server.superuser}:{password}\n", None)
        _write_private(pwfile, password + "\n", run_as)
        server.init(pwfile)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        passfile.unlink(missing_ok=True)
        raise
    finally:
        pwfile.unlink(missing_ok=True)
    return server


def _write_private(path: Path, text: str, owner: str | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
