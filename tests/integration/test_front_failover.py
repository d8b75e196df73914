"""The SIP front alone: the real Kamailio with the rendered kamailio.cfg and dispatcher.list, a real SIPp
citizen, and two fake nodes (a few lines of UDP) for what a real Asterisk cannot be made to do on demand:
answer a new call with 503, or answer its probes but never the call. The call must end up answered by the
other node, and a node that kept silent must be taken out of the list at once."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from callflow.lab.sipp import CallerScript, place_call
from callflow.siteconfig import load_site, pbx_config_dir, render_front, resolve_secrets, write_files
from tests.conftest import IN_CI

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parents[1] / "unit" / "siteconfig"
SDP = "v=0\r\no=node 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"


class FakeNode(asyncio.DatagramProtocol):
    """Answers OPTIONS with 200 (alive to the probes); a new call with ``invite`` ("503", "200", or "" for
    never); BYE with 200."""

    def __init__(self, invite: str) -> None:
        self.invite = invite
        self.invites = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)  # the loop's datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode(errors="replace")
        method = text.split(" ", 1)[0]
        if method == "INVITE":
            self.invites += 1
            if self.invite == "503":
                self._reply(text, addr, "503 Service Unavailable")
            elif self.invite == "200":
                port = self.transport.get_extra_info("sockname")[1] if self.transport else 0
                self._reply(text, addr, "200 OK", f"Contact: <sip:127.0.0.1:{port}>\r\n"
                                                  "Content-Type: application/sdp\r\n", SDP)
        elif method in {"OPTIONS", "BYE"}:
            self._reply(text, addr, "200 OK")

    def _reply(self, request: str, addr: tuple[str, int], status: str, extra: str = "",
               body: str = "") -> None:
        keep = [line + (";tag=fake" if line.lower().startswith("to:") and "tag=" not in line else "")
                for line in request.split("\r\n")
                if line.split(":", 1)[0].lower() in {"via", "from", "to", "call-id", "cseq", "record-route"}]
        message = (f"SIP/2.0 {status}\r\n" + "\r\n".join(keep) + "\r\n" + extra
                   + f"Content-Length: {len(body)}\r\n\r\n{body}")
        assert self.transport is not None
        self.transport.sendto(message.encode(), addr)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int, int, Path]]:
    """Kamailio on a free port before nodes a (priority 10) and b (5) at two free ports; yields (front
    port, node a's port, node b's port, Kamailio's control socket)."""
    kamailio = shutil.which("kamailio")
    if kamailio is None or shutil.which("sipp") is None:
        message = "Kamailio or SIPp is not installed (`make setup`)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    port, node_a, node_b = _free_port(), _free_port(), _free_port()
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "good").write_text("file-secret-0123456789abc\n")
    os.chmod(tmp_path / "secrets" / "good", 0o600)
    (tmp_path / "ivr.toml").write_text((pbx_config_dir() / "ivr.toml").read_text())
    monkeypatch.setenv("SIAGA_TEST_SECRET", "Zq7-good-secret-4Yp2xW9")
    monkeypatch.setenv("SIAGA112_AMI_APPLY_SECRET", "Apply-user-secret-9Kx2Lm7Q")  # as tests/unit/conftest.py
    site = tmp_path / "site.toml"
    site.write_text((HERE / "valid.toml").read_text() + f"""
[cluster]
front = {{ bind = "127.0.0.1", port = {port}, node_timeout_ms = 500, etc_dir = "{tmp_path}" }}
nodes = [ {{ name = "a", sip_address = "127.0.0.1", sip_port = {node_a}, priority = 10 }},
          {{ name = "b", sip_address = "127.0.0.1", sip_port = {node_b}, priority = 5 }} ]
""")
    loaded = load_site(site)
    write_files(render_front(loaded, resolve_secrets(loaded)), tmp_path)
    (tmp_path / "run").mkdir()
    with (tmp_path / "kamailio.out").open("wb") as out:
        proc = subprocess.Popen([kamailio, "-f", str(tmp_path / "kamailio.cfg"), "-DD", "-E", "-Y",
                                 str(tmp_path / "run"), "-w", str(tmp_path), "-m", "16", "-M", "4"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield port, node_a, node_b, tmp_path / "run" / "kamailio_ctl"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def node_states(control: Path) -> dict[str, str]:
    out = subprocess.run(["kamcmd", "-s", f"unix:{control}", "dispatcher.list"], capture_output=True,
                         text=True, timeout=5, check=False).stdout  # nothing yet while Kamailio starts
    states, flags = {}, ""
    for line in out.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "FLAGS":
            flags = value
        elif key == "DUID":
            states[value] = flags
    return states


@pytest.mark.parametrize("node_a_answers", ["503", ""], ids=["node-a-503", "node-a-silent"])
async def test_new_call_goes_to_the_next_node(front: tuple[int, int, int, Path], node_a_answers: str) -> None:
    port, node_a, node_b, control = front
    loop = asyncio.get_running_loop()
    a, b = FakeNode(node_a_answers), FakeNode("200")
    transports = []
    for node, node_port in ((a, node_a), (b, node_b)):
        transport, _ = await loop.create_datagram_endpoint(lambda node=node: node,
                                                           local_addr=("127.0.0.1", node_port))
        transports.append(transport)
    try:
        async with asyncio.timeout(10):  # both nodes probed alive before the call
            while node_states(control) != {"a": "AP", "b": "AP"}:  # noqa: ASYNC110 - Kamailio's state, polled
                await asyncio.sleep(0.1)
        result = await place_call("127.0.0.1", port, CallerScript(number="081200003003", hold_ms=200,
                                                                  route_set=True), timeout=20)
    finally:
        for transport in transports:
            transport.close()
    assert result.ok, result.output
    assert (a.invites, b.invites) == (1, 1)
    if not node_a_answers:  # a node that let a new call time out is out of the list at once
        assert node_states(control)["a"].startswith("I")
