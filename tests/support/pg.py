"""A private PostgreSQL for tests: ``initdb`` + ``pg_ctl`` in a temporary directory, listening on a free
loopback port (and a Unix socket in that directory), stopped and removed at the end.

Run as root, PostgreSQL refuses to start: the cluster is then made and run as the unprivileged ``postgres``
system user (the Debian package creates it), which owns the temporary directory. Nothing touches the
host's own clusters. A test makes one database per test (:meth:`PrivatePostgres.create_database`) and
gets a ``postgresql://`` URL with no password: the cluster trusts only its own socket and loopback.

``stop()``/``start()`` keep the data directory, so a test can take the database away for a while and
bring it back (the journal's spill-and-replay test).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "postgres"  # the unprivileged account the cluster runs as when the tests run as root


class PostgresUnavailable(Exception):
    """PostgreSQL's server programs are not installed (or the cluster would not start)."""


def find_bin_dir() -> Path:
    """The directory of ``initdb``/``pg_ctl``: $PG_BIN, then the newest /usr/lib/postgresql/<ver>/bin
    (Debian keeps them off PATH), then PATH."""
    if env := os.environ.get("PG_BIN"):
        return Path(env)
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.glob("*/bin") if (p / "initdb").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable("PostgreSQL's initdb is not installed: install the Debian package postgresql "
                              "(`make setup`), or set PG_BIN to the directory holding initdb and pg_ctl")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivatePostgres:
    bin_dir: Path
    root: Path  # temporary directory: data/, the socket, the server log
    port: int
    run_as: str | None  # system user the server programs run as (None: ourselves)
    durable: bool = False  # fsync on (benchmarks measure real commits); tests throw the cluster away

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
        """A libpq URL over loopback TCP (no password: trust authentication on loopback only)."""
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{dbname}"

    # -- running the server programs --------------------------------------------------------------
    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60,
                              cwd=self.root)

    def init(self) -> None:
        try:
            self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", self.superuser,
                      "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        except subprocess.CalledProcessError as exc:
            raise PostgresUnavailable(f"initdb failed: {exc.stderr.strip()}") from exc
        conf = self.data_dir / "postgresql.conf"
        sync = "on" if self.durable else "off"
        with conf.open("a", encoding="utf-8") as fh:
            # loopback only; fsync off for tests: the cluster is thrown away (speed matters, not a crash)
            fh.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                     f"unix_socket_directories = '{self.root}'\nfsync = {sync}\nfull_page_writes = {sync}\n"
                     "synchronous_commit = on\nmax_connections = 200\nshared_buffers = 32MB\n")

    def start(self) -> None:
        result = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "30",
                           "start", check=False)
        if result.returncode != 0:
            log = self.log_file.read_text(encoding="utf-8", errors="replace")[-2000:] \
                if self.log_file.exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {result.stderr.strip()} {log}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

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

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[-1]
        with contextlib.suppress(subprocess.CalledProcessError):
            self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_private_postgres(*, durable: bool = False) -> PrivatePostgres:
    """Make and start a throw-away cluster. Raises PostgresUnavailable (the caller skips or, in CI, fails)."""
    bin_dir = find_bin_dir()
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError as exc:
            raise PostgresUnavailable(f"running as root, the cluster needs the unprivileged user "
                                      f"{SERVICE_USER!r} (the Debian package postgresql creates it)") from exc
        run_as = SERVICE_USER
    root = Path(tempfile.mkdtemp(prefix="siaga112-pg-"))
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    root.chmod(0o700)
    server = PrivatePostgres(bin_dir, root, _free_port(), run_as, durable)
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
