"""Hostile input at the PBX's edges, on the real lab Asterisk (issue 17): the SIP ingress, the AMI login,
the FastAGI port and caller text."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from callflow.ami import ActionFailed, AmiConnection, AmiEndpoint, ConnectionLost, EventItem, LoginFailed
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from callflow.lease import LEASE_S, RENEW_S
from tests.support.ami_waits import named, next_event
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration


async def test_citizen_endpoints_are_identified_by_address_only(lab: LabStatus) -> None:
    """The lab's ingress network is 127.0.0.1/32: an INVITE from 127.0.0.2 naming a citizen endpoint as its
    From user is a stranger's (challenged, never answered); a citizen from 127.0.0.1 is answered."""
    host, port = lab.sip["host"], lab.sip["port"]
    for user in ("citizen-ingress", "citizen-callback"):
        script = CallerScript(number=user, hold_ms=200, answer_timeout_ms=5000)
        stranger = await place_call(host, port, script, local_ip="127.0.0.2", timeout=20)
        assert not stranger.ok, f"an INVITE from 127.0.0.2 as {user} was answered"
        assert "401" in stranger.output or "403" in stranger.output, stranger.output
    citizen = await place_call(host, port, CallerScript(number="081200001111", hold_ms=300), timeout=30)
    assert citizen.ok, citizen.output


async def _recording_proxy(target: tuple[str, int], sent: bytearray) -> asyncio.Server:
    """A TCP relay to the lab's AMI that keeps every byte the client sends."""
    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   keep: bytearray | None) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if keep is not None:
                    keep.extend(data)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pump(reader, up_writer, sent), pump(up_reader, writer, None))

    return await asyncio.start_server(relay, "127.0.0.1", 0)


async def test_ami_login_keeps_the_secret_off_the_wire(lab: LabStatus) -> None:
    """MD5 challenge login: the lab accepts it, the secret never crosses the socket, and a wrong secret is
    refused with a message that says what to check."""
    real = lab.ami_endpoint()
    sent = bytearray()
    proxy = await _recording_proxy((real.host, real.port), sent)
    port = proxy.sockets[0].getsockname()[1]
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    try:
        conn = AmiConnection(AmiEndpoint("127.0.0.1", port, real.username, real.secret), events)
        await conn.connect()
        pong = await conn.action("Ping")
        await conn.close()
    finally:
        proxy.close()
        await proxy.wait_closed()
    assert pong.get("Ping") == "Pong"
    assert b"Action: Challenge" in sent
    assert b"AuthType: MD5" in sent
    assert b"Key: " in sent
    assert real.secret.encode() not in sent
    assert b"Secret:" not in sent

    wrong = AmiConnection(AmiEndpoint(real.host, real.port, real.username, real.secret + "x"), events)
    with pytest.raises(LoginFailed, match=r"refused for user 'siaga112'.*check the AMI user and secret"):
        await wrong.connect()


class FakeFastAgi:
    """A hostile FastAGI server: takes every call it is given and routes it to the non-emergency queue."""

    def __init__(self) -> None:
        self.calls = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.calls += 1
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with asyncio.timeout(5):
                while (await reader.readline()).strip():
                    pass  # agi_* environment, caller number included
                writer.write(b"SET VARIABLE SIAGA_IVR_ACTION nonemergency\n")
                await writer.drain()
                await reader.readline()
        writer.close()


async def test_a_fake_fastagi_server_bound_first_gets_no_call(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> None:
    """Another process holds the FastAGI port before the engine: the engine says so, closes the dial plan's
    gate, and a 112 call reaches the emergency queue by the fail-safe route; the fake never sees it."""
    _, events = ami
    fake = FakeFastAgi()
    server = await asyncio.start_server(fake.serve, "127.0.0.1", lab.fastagi["port"])
    engine = EngineProcess(lab.instance)
    try:
        await engine.start(wait_ivr=False)
        await engine.wait_for(lambda r: r.get("event") == "ivr.listen_failed", timeout=60)
        closed = await engine.wait_for(lambda r: r.get("event") == "ivr.gate_closed", timeout=20)
        assert "calls go to the emergency queue" in closed["hint"]
        call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                              CallerScript(number="081200002222", hold_ms=1500), timeout=30))
        entry = await next_event(events, named("UserEvent", UserEvent="SiagaQueueEntry"), timeout=20)
        result = await call
    finally:
        await engine.stop()
        server.close()
        await server.wait_closed()
    assert result.ok, result.output
    assert (entry.message.get("Queue"), entry.message.get("Route")) == ("emergency", "failsafe")
    assert fake.calls == 0
    assert not any(r.get("event") == "ivr.listening" for r in engine.records)


async def test_a_line_break_in_the_callers_number_loses_no_record(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]], tmp_path: Path) -> None:
    """The From user carries CR LF CR LF (percent-escaped, as a SIP URI allows) and a forged event: the
    answered emergency call still gets its record (caller number filtered, name as sent) and recording."""
    conn, _ = ami
    db = tmp_path / "siaga112.db"
    engine = EngineProcess(lab.instance, env={"SIAGA112_DATABASE": str(db)})
    await engine.start()
    number = "0812%0D%0A%0D%0AEvent%3A%20Hangup%0D%0AUniqueid%3A%20forged%0D%0A%0D%0A3456"
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            result = await place_call(lab.sip["host"], lab.sip["port"],
                                      CallerScript(number=number, name="D'Souza", dtmf=PRESS_EMERGENCY,
                                                   hold_ms=4000), timeout=40)
        assert result.ok, result.output
        connect = await engine.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                        and r.get("member_name") == "op1")
        linkedid = connect["linkedid"]
        record = await engine.wait_for(lambda r: r.get("event") == "call.record"
                                       and r.get("linkedid") == linkedid, timeout=30)
        await engine.wait_for(lambda r: r.get("event") == "recording.indexed"
                              and r.get("linkedid") == linkedid, timeout=20)
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})
        await engine.stop()
    assert record["outcome"] == "answered"
    assert any(r.get("event") == "ami.split_event" for r in engine.records)
    assert not any(r.get("event") == "engine.handler_failed" for r in engine.records)
    with contextlib.closing(sqlite3.connect(db)) as sql:
        (row,) = sql.execute("SELECT record FROM calls_records WHERE linkedid = ?", (linkedid,)).fetchall()
    stored = json.loads(row[0])
    assert stored["caller_number"] == "08123456"
    assert stored["caller_name"] == "D'Souza"


async def test_ami_over_tls_on_the_labs_asterisk(lab: LabStatus) -> None:
    """The lab's Asterisk listens for AMI over TLS with a certificate made at `lab up`: the engine's client
    verifies it, logs in and works; a client that does not trust it never gets as far as logging in; the
    engine itself connects over TLS when its settings say so."""
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    endpoint = lab.ami_endpoint(tls=True)
    assert endpoint.port != lab.ami["port"]
    conn = AmiConnection(endpoint, events)
    await conn.connect()
    try:
        assert (await conn.action("Ping")).get("Ping") == "Pong"
        assert conn.tls_version in {"TLSv1.2", "TLSv1.3"}
    finally:
        await conn.close()
    untrusting = AmiConnection(dataclasses.replace(endpoint, tls_ca_file=None, tls=True), events)
    with pytest.raises(ConnectionLost, match=r"TLS handshake .* failed"):
        await untrusting.connect()

    engine = EngineProcess(lab.instance, env={"SIAGA112_AMI__TLS": "true", "SIAGA112_IVR__ENABLED": "false"})
    try:
        await engine.start()
    finally:
        await engine.stop()
    connected = next(r for r in engine.records if r.get("event") == "ami.connected")
    assert connected["where"] == f"tls://siaga112@127.0.0.1:{endpoint.port}"


async def test_the_engines_ami_user_reads_no_secret_and_runs_no_command(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> None:
    """Issue 17 item 2: with `system`, the engine's user read pjsip.conf (every operator's SIP secret) and
    manager.conf, and loaded app_system to run a shell through Originate. Now each is refused by
    Asterisk; `config apply`'s own user can reload and read, the engine's cannot."""
    conn, _ = ami
    refused: dict[str, str] = {}
    attempts: list[tuple[str, dict[str, str]]] = [
        ("GetConfig", {"Filename": "pjsip.conf"}),
        ("GetConfig", {"Filename": "manager.conf"}),
        ("ModuleLoad", {"Module": "app_system.so", "LoadType": "load"}),
        ("Originate", {"Channel": "Local/s@siaga-arrival", "Application": "System",
                       "Data": "touch /tmp/siaga112-pwned", "Async": "false", "Timeout": "2000"}),
        ("Reload", {"Module": "manager"}),
    ]
    for name, headers in attempts:
        try:
            reply = await conn.action(name, headers)
        except ActionFailed as exc:
            refused[f"{name} {next(iter(headers.values()))}"] = str(exc)
        else:  # never the reply itself: it would hold the secrets it read
            pytest.fail(f"the engine's AMI user may {name} {headers}: {reply.get('Response')}")
    assert all("Permission denied" in why or "Forbidden" in why for why in refused.values()), refused
    assert len(refused) == len(attempts)
    # the engine's own work still goes through: Setvar/Getvar (leases, policy) are class `call`
    assert ((await conn.action("Getvar", {"Variable": "EPOCH"})).get("Value") or "").isdigit()

    apply_conn = AmiConnection(lab.apply_endpoint(), asyncio.Queue())
    await apply_conn.connect()
    try:
        await apply_conn.action("Reload", {"Module": "app_queue.so"})
        _, endpoints = await apply_conn.list_action("PJSIPShowEndpoints")
    finally:
        await apply_conn.close()
    assert any(e.message.get("ObjectName") == "op1" for e in endpoints)
    assert lab.apply_endpoint().secret != lab.ami_endpoint().secret


async def _gate_closed(conn: AmiConnection, timeout: float) -> float:
    """Seconds until the dial plan's IVR gate is closed by Asterisk's own clock (the lease ran out)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(timeout):
        while True:
            gate = (await conn.action("Getvar", {"Variable": "SIAGA_IVR_GATE"})).get("Value") or ""
            epoch = int((await conn.action("Getvar", {"Variable": "EPOCH"})).get("Value") or "0")
            if gate.isdigit() and int(gate) <= epoch:
                return loop.time() - start
            await asyncio.sleep(0.2)  # Asterisk's clock is the event here: no AMI event marks an expiry


async def test_after_kill_9_the_gate_closes_by_itself(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> None:
    """The engine is killed (-9: it closes nothing). Within the lease the dial plan stops trusting the
    FastAGI port by itself: a process that binds it next gets no call, which reaches the emergency queue
    by the fail-safe route."""
    conn, events = ami
    engine = EngineProcess(lab.instance)
    await engine.start()  # ivr.listening: the gate's lease is held
    await engine.kill()
    fake = FakeFastAgi()
    async with asyncio.timeout(10):  # the IVR (the engine's child) lets go of the port as it dies
        while True:
            try:
                server = await asyncio.start_server(fake.serve, "127.0.0.1", lab.fastagi["port"])
                break
            except OSError:
                await asyncio.sleep(0.1)
    try:
        waited = await _gate_closed(conn, timeout=LEASE_S + RENEW_S + 2)
        call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                              CallerScript(number="081200003333", hold_ms=1500), timeout=30))
        entry = await next_event(events, named("UserEvent", UserEvent="SiagaQueueEntry"), timeout=20)
        result = await call
    finally:
        server.close()
        await server.wait_closed()
    print(f"gate closed {waited:.1f} s after kill -9 (lease {LEASE_S} s)")
    assert waited <= LEASE_S + 1
    assert result.ok, result.output
    assert (entry.message.get("Queue"), entry.message.get("Route")) == ("emergency", "failsafe")
    assert fake.calls == 0
