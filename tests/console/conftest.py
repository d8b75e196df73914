"""Fixtures for the console's API tests: a real store in a temporary file, the real app, httpx over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from callflow.console import CONSOLE_SCHEMA, AccountStore, AuditLog, ConsoleContext, EventHub, Providers, Role
from callflow.console.app import create_app
from callflow.console.limits import host_names
from callflow.console.throttle import LoginThrottle
from callflow.console.wiring import StoreWiring, store_providers
from callflow.incidents import load_registry
from callflow.store import Database, StoreLocation, open_database
from tests.conftest import REPO

PASSWORD = "correct horse battery"
AGENCIES = REPO / "examples" / "agencies-manado.example.toml"


@dataclass
class ManualClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 22, 8, 0, 0, 123456, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Console:
    db: Database
    ctx: ConsoleContext
    clock: ManualClock
    client: Callable[..., httpx.AsyncClient]

    async def login(self, client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
        r = await client.post("/api/auth/login", json={"name": name, "password": password})
        assert r.status_code == 200, r.text
        token: str = r.json()["csrf_token"]
        client.headers["X-CSRF-Token"] = token
        return token

    async def audit_rows(self) -> list[tuple[str, ...]]:
        async with self.db.execute("SELECT actor, action, outcome, target, address, detail "
                                   "FROM console_audit ORDER BY id") as cur:
            return [tuple(r) for r in await cur.fetchall()]


@pytest.fixture
async def console(store_location: StoreLocation) -> AsyncIterator[Console]:
    db = await open_database(store_location, [CONSOLE_SCHEMA])
    clock = ManualClock()
    ctx = ConsoleContext(accounts=AccountStore(db, clock), audit=AuditLog(db, clock), hub=EventHub(16),
                         providers=Providers(), throttle=LoginThrottle(clock), clock=clock,
                         host_names=host_names("127.0.0.1", ["console.test"]))
    for name, role in (("op1", Role.OPERATOR), ("sup", Role.SUPERVISOR), ("adm", Role.ADMIN)):
        await ctx.accounts.add_user(name, role, PASSWORD)
    app = create_app(ctx)

    def client(base_url: str = "http://console.test", address: str = "192.0.2.7") -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 50000)),
                                 base_url=base_url)

    try:
        yield Console(db, ctx, clock, client)
    finally:
        await db.close()


@pytest.fixture
async def wired(console: Console, tmp_path: Path, store_location: StoreLocation
                ) -> AsyncIterator[tuple[Console, StoreWiring, StoreLocation]]:
    """The console over the real providers (wiring.py) on the test's store, the Manado example units."""
    database = store_location
    root = tmp_path / "recordings"
    root.mkdir()
    wiring = store_providers(database, recordings_root=root, clock=console.clock,
                             registry=load_registry(AGENCIES))
    for resource in wiring.resources:
        await resource.start()
    console.ctx.providers.calls = wiring.providers.calls
    console.ctx.providers.incidents = wiring.providers.incidents
    console.ctx.providers.reports = wiring.providers.reports
    console.ctx.providers.recordings = wiring.providers.recordings
    try:
        yield console, wiring, database
    finally:
        for resource in reversed(wiring.resources):
            await resource.stop()
