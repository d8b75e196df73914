"""What reaches the console before anyone logs in (issue 17): Host names, body sizes, connections that
never finish a request. The console runs as the engine runs it (its own uvicorn settings); the memory
test runs it in a process of its own and reads that process's memory from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from callflow.ami import AmiEndpoint
from callflow.ami.client import utc_now
from callflow.app import EnginePaths, build_engine
from callflow.console import CONSOLE_SCHEMA, AccountStore, ConsoleComponent, HttpAddress, Role
from callflow.console_settings import ConsoleSettings
from callflow.settings import load_settings
from callflow.store import open_database
from tests.conftest import REPO
from tests.console.conftest import PASSWORD, Console
from tests.console.test_stream import StubEngine

MB = 1024 * 1024


# -- in the app ------------------------------------------------------------------------------------------
async def test_a_foreign_host_name_is_refused(console: Console) -> None:
    """DNS rebinding: a page of evil.example whose name now points here reached the API before."""
    for base in ("http://evil.example", "http://console.test.evil.example:8112"):
        async with console.client(base) as c:
            r = await c.post("/api/auth/login", json={"name": "sup", "password": PASSWORD})
            assert r.status_code == 421, base
            assert "allowed_hosts" in r.json()["message"]
            assert (await c.get("/console")).status_code == 421
    for base in ("http://console.test", "http://localhost:8112", "http://127.0.0.1:8112", "http://[::1]:8112",
                 "http://CONSOLE.TEST."):
        async with console.client(base) as c:
            await console.login(c, "sup")


async def test_an_oversized_login_body_is_refused_before_parsing(console: Console) -> None:
    big = b'{"name": "sup", "password": "' + b"x" * (70 * 1024) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    async with console.client() as c:
        r = await c.post("/api/auth/login", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413  # before: read whole, then 422
        assert "larger than 65536 bytes" in r.json()["message"]
        assert r.headers["connection"] == "close"
        r = await c.post("/api/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413  # chunked: no Content-Length, counted as it arrives
        await console.login(c, "sup")  # a normal body still passes
        r = await c.post("/api/incidents", content=b"[" + b"0," * (200 * 1024) + b"0]",
                         headers={"Content-Type": "application/json"})
        assert r.status_code == 413  # every route has a limit (256 KiB), signed in or not


# -- the real server --------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _served(tmp_path: Path, settings: ConsoleSettings) -> AsyncIterator[int]:
    db_path = tmp_path / "engine.db"
    db = await open_database(db_path, [CONSOLE_SCHEMA])
    await AccountStore(db, utc_now).add_user("sup", Role.SUPERVISOR, PASSWORD)
    await db.close()
    component = ConsoleComponent(HttpAddress("127.0.0.1", 0), db_path, settings=settings)
    component.bind()
    engine = StubEngine()
    task = asyncio.create_task(component.run(engine))  # type: ignore[arg-type]
    async with asyncio.timeout(10):
        await component.started.wait()
    try:
        yield component.address.port
    finally:
        engine.stopping.set()
        async with asyncio.timeout(10):
            await task


async def _closed_by_server(port: int, sent: bytes, within: float) -> float:
    """Seconds until the server closed a connection on which we sent only ``sent``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        if sent:
            writer.write(sent)
            await writer.drain()
        async with asyncio.timeout(within):
            while await reader.read(4096):
                pass
        return time.monotonic() - started
    finally:
        writer.close()


async def test_connections_that_never_finish_a_request_are_closed(tmp_path: Path) -> None:
    """Before: idle and half-sent connections stayed open for ever (uvicorn has no header timeout)."""
    settings = ConsoleSettings(request_timeout_s=1.0)
    async with _served(tmp_path, settings) as port:
        head = f"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        body_head = head + "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        cases = {"silent": b"", "half headers": head.encode(), "half body": body_head.encode()}
        waited = await asyncio.gather(*(_closed_by_server(port, sent, within=8) for sent in cases.values()))
        assert all(0.9 <= w < 5 for w in waited), dict(zip(cases, waited, strict=True))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((head + "X-Pad: " + "a" * 20_000 + "\r\n").encode())  # headers past 16 KiB
        async with asyncio.timeout(5):
            assert (await reader.readline()).startswith(b"HTTP/1.1 400")
        writer.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            r = await client.post("/api/auth/login", json={"name": "sup", "password": PASSWORD})
            assert r.status_code == 200  # a whole request is served as usual
            r = await client.get("/api/auth/me", headers={"Host": "evil.example"})
            assert r.status_code == 421


# -- the console's process under a 100 MB body ---------------------------------------------------------
def _memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _post_huge(port: int, size: int, *, chunked: bool) -> bytes:
    """POST ``size`` bytes to the login; the server's status line (read while we send)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    head = (f"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            + ("Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {size}\r\n\r\n"))
    answer = bytearray()

    def read() -> None:
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                answer.extend(data)

    reader = threading.Thread(target=read)
    reader.start()
    piece = b"x" * MB
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
    try:
        sock.sendall(head.encode())
        for _ in range(size // MB):
            sock.sendall(frame)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server refused and closed: the rest is never sent
    reader.join(30)
    sock.close()
    return bytes(answer).partition(b"\r\n")[0]


@pytest.fixture
def console_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.console_process", str(tmp_path / "c.db")],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc, int(proc.stdout.readline())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(15)


def test_a_100_mb_body_gets_413_and_leaves_the_process_memory_alone(
        console_process: tuple[subprocess.Popen[str], int]) -> None:
    """Before: a 100 MB login body took the engine from 105 MB to 461 MB (chunked: +202 MB that stayed)."""
    proc, port = console_process
    warm = httpx.post(f"http://127.0.0.1:{port}/api/auth/login", json={"name": "x1", "password": "y"})
    assert warm.status_code == 401  # the route ran once: what it loads is in the baseline
    # VmHWM is the highest RSS so far (the warm-up's password hash took 32 MiB): it must not move
    before = {f: _memory_kb(proc.pid, f) for f in ("VmRSS", "VmHWM")}
    for chunked in (False, True):
        assert _post_huge(port, 100 * MB, chunked=chunked) == b"HTTP/1.1 413 Request Entity Too Large"
    after = {f: _memory_kb(proc.pid, f) for f in ("VmRSS", "VmHWM")}
    print(f"RESULT rss_before_kb={before['VmRSS']} rss_after_kb={after['VmRSS']} "
          f"peak_before_kb={before['VmHWM']} peak_after_kb={after['VmHWM']}")
    assert after["VmHWM"] - before["VmHWM"] < 16 * 1024, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < 16 * 1024, (before, after)


def test_the_settings_files_console_section_reaches_the_engines_console(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('[console]\ntrusted_proxies = ["10.0.0.2/32"]\n'
                      'allowed_hosts = ["console.centre.example"]\nmax_body_bytes = 4096\n')
    settings = load_settings(config, ivr={"enabled": False})
    paths = EnginePaths(database=tmp_path / "siaga112.db", recordings=tmp_path / "rec")
    engine = build_engine(settings, None, paths, endpoint=AmiEndpoint("127.0.0.1", 1, "siaga112", "x"),
                          http=HttpAddress("127.0.0.1", 0))
    (console,) = (c for c in engine.components if isinstance(c, ConsoleComponent))
    try:
        assert console.settings.max_body_bytes == 4096
        assert [str(n) for n in console.settings.trusted_proxies] == ["10.0.0.2/32"]
        assert console.settings.allowed_hosts == ("console.centre.example",)
    finally:
        assert console._sock is not None
        console._sock.close()  # bound by build_engine (a taken port is a start-up error)
