"""Shared fixtures. Integration tests get one real lab Asterisk per test session (own instance, free
ports). With ``CI=true`` a missing Asterisk or SIPp is a failure, never a skip."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from callflow.ami import AmiConnection, EventItem
from callflow.lab import LabError, LabStatus, down, free_ports, pbx_config_dir, up
from callflow.store import PostgresUrl, StoreLocation
from tests.support.ami_waits import assert_no_channels_left
from tests.support.engine import EngineProcess
from tests.support.pg import (
    PostgresUnavailable,
    PrivatePostgres,
    remove_private_postgres,
    start_private_postgres,
)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO = Path(__file__).resolve().parents[1]


def _missing(what: str, how: str) -> None:
    message = f"{what} is not available: {how}"
    if IN_CI:
        pytest.fail(f"CI requires the real lab: {message}", pytrace=False)
    pytest.skip(message)


def lab_instance_name(kind: str = "test") -> str:
    """One lab per checkout, so parallel checkouts (and CI beside a developer) never share one."""
    digest = hashlib.sha1(str(REPO).encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{kind}-{digest}"


def start_lab(instance: str, site_file: Path | None = None) -> LabStatus:
    """A fresh lab for tests: skips without Asterisk/SIPp on a developer's machine, fails in CI."""
    if shutil.which("sipp") is None:
        _missing("SIPp", "install the Debian package sip-tester (`make setup`)")
    if shutil.which("asterisk") is None and os.geteuid() != 0:
        _missing("Asterisk", "install Asterisk 22 or run as root so the lab can build its Debian sid root")
    down(instance)  # a lab left behind by an interrupted run
    try:
        # the shipped site unless a test names one: a site applied by an earlier run is not kept
        return up(instance, free_ports(), site_file=site_file or pbx_config_dir() / "site.toml")
    except LabError as exc:
        _missing("the lab Asterisk", str(exc))
        raise  # unreachable: _missing fails or skips


@pytest.fixture(scope="session")
def lab() -> Iterator[LabStatus]:
    status = start_lab(lab_instance_name())
    yield status
    down(status.instance)


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """One throw-away PostgreSQL cluster per test session (loopback, free port, temporary directory):
    skips without PostgreSQL on a developer's machine, fails in CI."""
    try:
        server = start_private_postgres()
    except PostgresUnavailable as exc:
        _missing("PostgreSQL", f"{exc} (install the Debian package postgresql: `make setup`)")
        raise  # unreachable: _missing fails or skips
    yield server
    remove_private_postgres(server)


@pytest.fixture
def postgres_url(private_postgres: PrivatePostgres) -> Iterator[str]:
    """A fresh, empty database on the session's private PostgreSQL; its ``postgresql://`` URL."""
    url = private_postgres.create_database()
    yield url
    private_postgres.drop_database(url)


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """Which store a test runs on: both with ``pytestmark = BOTH_STORES``; else SIAGA112_TEST_STORE
    (``postgresql`` runs every test using ``store_location`` on PostgreSQL), default sqlite."""
    return str(getattr(request, "param", os.environ.get("SIAGA112_TEST_STORE", "sqlite")))


# ``pytestmark = BOTH_STORES``: a module's tests that use a store run on SQLite and on PostgreSQL
BOTH_STORES = pytest.mark.both_stores


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_stores"):
        metafunc.parametrize("store_backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def store_location(store_backend: str, tmp_path: Path,
                   request: pytest.FixtureRequest) -> Iterator[StoreLocation]:
    """The test's store: a new SQLite file, or a new database on the session's private PostgreSQL."""
    if store_backend == "sqlite":
        yield tmp_path / "siaga112.db"
        return
    server: PrivatePostgres = request.getfixturevalue("private_postgres")
    url = server.create_database()
    yield PostgresUrl.parse(url)
    server.drop_database(url)


@pytest.fixture
async def ami(lab: LabStatus) -> AsyncIterator[tuple[AmiConnection, asyncio.Queue[EventItem]]]:
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(lab.ami_endpoint(), events)
    await conn.connect()
    yield conn, events
    await conn.close()


@pytest.fixture
async def engine(lab: LabStatus) -> AsyncIterator[EngineProcess]:
    proc = EngineProcess(lab.instance)
    await proc.start()
    yield proc
    await proc.stop()


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """A command under test may configure structlog with pytest's captured stdout, which pytest closes
    after the test: reset the global configuration so no later test logs into a closed stream."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
async def _no_leaked_channels(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After every integration test: no channel left up on the lab."""
    yield
    if "lab" not in request.fixturenames:
        return
    status: LabStatus = request.getfixturevalue("lab")
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(status.ami_endpoint(), events)
    await conn.connect()
    try:
        await assert_no_channels_left(conn)
    finally:
        await conn.close()
