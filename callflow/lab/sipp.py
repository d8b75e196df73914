"""SIPp callers and operators for integration tests and benchmarks.

Caller scenarios are generated per call: caller number and name, RFC 2833 DTMF digits at chosen moments
(the pcap recordings shipped with Debian's sip-tester), how long to stay, and who ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

DTMF_PCAP_DIR = Path("/usr/share/sip-tester")
SPEECH_PCAP = DTMF_PCAP_DIR / "g711a.pcap"  # about 7 s of G.711 A-law RTP shipped with sip-tester
_DTMF_NAMES = {"*": "star", "#": "pound"}


# An emergency caller: presses 1 (emergency, on the IVR's first menu) 0.6 s into the first prompt
# (barge-in takes the key at once).
PRESS_EMERGENCY: tuple[tuple[int, str], ...] = ((600, "1"),)


def sipp_binary() -> str | None:
    return shutil.which("sipp")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def dtmf_pcap(digit: str, press: int = 0) -> Path:
    """sip-tester's RFC 2833 recording of ``digit``; ``press`` > 0: a copy for the caller's ``press``-th
    repeat of that digit (:func:`shifted_rtp_pcap`), or Asterisk drops the repeat as a duplicate."""
    shipped = DTMF_PCAP_DIR / f"dtmf_2833_{_DTMF_NAMES.get(digit, digit)}.pcap"
    return shifted_rtp_pcap(shipped, press) if press else shipped


_PCAP_LINK_HEADER = {1: 14, 113: 16}  # Ethernet, Linux cooked capture


def _rtp_headers(data: bytes | bytearray, source: Path) -> Iterator[tuple[int, int]]:
    """(offset of the RTP header, offset of the UDP header) of each packet of a pcap's bytes."""
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    link = struct.unpack_from(f"{endian}I", data, 20)[0]
    l2 = _PCAP_LINK_HEADER.get(link)
    if l2 is None:
        raise ValueError(f"{source}: pcap link type {link} is not Ethernet or Linux cooked capture")
    offset = 24
    while offset + 16 <= len(data):
        included = struct.unpack_from(f"{endian}I", data, offset + 8)[0]
        packet = offset + 16
        udp = packet + l2 + (data[packet + l2] & 0x0F) * 4
        yield udp + 8, udp
        offset = packet + included


def rtp_span(source: Path) -> tuple[int, int, int, int]:
    """The first and last RTP sequence number and timestamp of a pcap: (seq0, ts0, seq1, ts1)."""
    data = source.read_bytes()
    stamps = [struct.unpack_from(">HI", data, rtp + 2) for rtp, _ in _rtp_headers(data, source)]
    return stamps[0][0], stamps[0][1], stamps[-1][0], stamps[-1][1]


def shifted_rtp_pcap(source: Path, shift: int) -> Path:
    """A copy of an RTP pcap whose RTP sequence numbers and timestamps are moved on by ``shift`` steps
    (1000 packets, 8000 samples each). sip-tester's DTMF recordings all carry the same timestamp, so a
    second press of the same digit looks like a retransmission of the first and Asterisk drops it; and
    each digit's recording starts at its own sequence number and timestamp, so a key whose timestamp is
    older than the last key's is dropped "out of order". Written once per (recording, shift) under the
    temporary directory; UDP checksums are zeroed (none, for IPv4)."""
    target = Path(tempfile.gettempdir()) / "siaga112-pcap" / f"{source.stem}+{shift}.pcap"
    if target.exists():
        return target
    data = bytearray(source.read_bytes())
    for rtp, udp in list(_rtp_headers(data, source)):
        seq, stamp = struct.unpack_from(">HI", data, rtp + 2)
        struct.pack_into(">HI", data, rtp + 2, (seq + 1000 * shift) & 0xFFFF,
                         (stamp + 8000 * shift) & 0xFFFFFFFF)
        struct.pack_into(">H", data, udp + 6, 0)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(bytes(data))
    partial.replace(target)
    return target


def dtmf_sequence(digits: Sequence[str]) -> list[Path]:
    """The pcaps a caller plays for ``digits`` in order: each key's RTP sequence numbers and timestamps
    later than the key before (as a phone sends them), else Asterisk drops a repeat (5, 5) as a
    retransmission and an older key (1 after 5: sip-tester's recordings start at different timestamps)
    as out of order."""
    out: list[Path] = []
    last: tuple[int, int] | None = None
    for digit in digits:
        shipped = dtmf_pcap(digit)
        seq0, ts0, seq1, ts1 = rtp_span(shipped)
        shift = 0
        if last is not None:
            shift = max(0, -(-(last[0] - seq0 + 1) // 1000), -(-(last[1] - ts0 + 1) // 8000))
        out.append(shifted_rtp_pcap(shipped, shift) if shift else shipped)
        last = (seq1 + 1000 * shift, ts1 + 8000 * shift)
    return out


# SIP message pieces the lab's SIPp scenarios share (here, in bench/loadkit.py and bench/surge_priority.py).
# No braces in them, so they can be joined into templates filled later with str.format or str.replace.


def sdp_pcmu(owner: str) -> str:
    """An SDP offer/answer of one PCMU audio stream on SIPp's media port; ``owner`` names the o= line."""
    return (f"      v=0\n      o={owner} 53655765 2353687637 IN IP[local_ip_type] [local_ip]\n      s=-\n"
            "      c=IN IP[media_ip_type] [media_ip]\n      t=0 0\n      m=audio [media_port] RTP/AVP 0\n"
            "      a=rtpmap:0 PCMU/8000\n")


# The first lines of a UAS's answer to the INVITE just received (180 or 200), with its To tag and Contact.
_RESPONSE_HEAD = """\
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
"""
RINGING_180 = "      SIP/2.0 180 Ringing\n" + _RESPONSE_HEAD + "      Content-Length: 0\n"


def answer_200(owner: str) -> str:
    """``200 OK`` to the INVITE just received, answering with one PCMU stream."""
    return ("      SIP/2.0 200 OK\n" + _RESPONSE_HEAD
            + "      Content-Type: application/sdp\n      Content-Length: [len]\n\n" + sdp_pcmu(owner))


_INVITE = """\
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{name}" <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:{number}@[local_ip]:[local_port]
      Max-Forwards: 70
      Subject: siaga112 test call
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=citizen 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {payloads} 101
{rtpmaps}      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
"""

_ACK = """\
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:{number}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
"""

_BYE = """\
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:{number}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
"""

_CANCEL = """\
      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0
"""

_ACK_487 = """\
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
"""

_OK_TO_BYE = """\
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
"""


def caller_ack(number: str, service: str = "[service]") -> str:
    """The caller's ACK to the 200 answering its INVITE (``number``/``service``: text or SIPp fields)."""
    return _ACK.format(number=number).replace("[service]", service)


def caller_bye(number: str, service: str = "[service]") -> str:
    """The caller hanging up an answered call."""
    return _BYE.format(number=number).replace("[service]", service)


def caller_cancel(service: str = "[service]") -> str:
    """The caller giving up before an answer."""
    return _CANCEL.replace("[service]", service)


def caller_ack_487(service: str = "[service]") -> str:
    """The caller's ACK to the 487 that follows its CANCEL."""
    return _ACK_487.replace("[service]", service)


@dataclass
class CallerScript:
    """What one SIPp citizen does.

    ``dtmf``: (milliseconds after the answer, digit) pairs. ``hold_ms``: time on the line after the last
    digit before the caller hangs up (the IVR answers first, so this includes any wait in the queue).
    ``cancel_after_ms``: give up (abandon) that long after dialling:
    CANCEL while still ringing, or BYE once answered (the IVR answers at once). ``remote_hangup``: stay
    until the far end hangs up (e.g. an information message).
    """

    number: str = "081234567890"
    name: str = "Warga Manado"
    dtmf: Sequence[tuple[int, str]] = ()
    hold_ms: int = 1000
    cancel_after_ms: int | None = None
    remote_hangup: bool = False
    answer_timeout_ms: int = 60_000
    audio_pcap: Path | None = None  # RTP to play from the answer on (e.g. sip-tester's g711a.pcap)
    # follow the answer's Record-Route and Contact in the ACK and BYE (RFC 3261 12.1.2), as a telco trunk
    # does: needed behind a proxy that stays in the dialog (the two-node lab's SIP front)
    route_set: bool = False

    def _in_dialog(self, message: str) -> str:
        if not self.route_set:
            return message
        method = message.split(None, 1)[0]
        first, _, rest = message.partition("\n")
        del first
        return f"      {method} [next_url] SIP/2.0\n      [routes]\n{rest}"

    def _dtmf_parts(self) -> list[str]:
        parts, elapsed = [], 0
        pcaps = dtmf_sequence([digit for _, digit in self.dtmf])
        for (at_ms, _), pcap in zip(self.dtmf, pcaps, strict=True):
            wait = max(0, at_ms - elapsed)
            if wait:
                parts.append(f'<pause milliseconds="{wait}"/>')
            parts.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
            elapsed = at_ms
        return parts

    def scenario_xml(self) -> str:
        # the display name as a SIP quoted-string: " and \ escaped with a backslash (RFC 3261 quoted-pair)
        number, name = escape(self.number), escape(self.name.replace("\\", "\\\\").replace('"', '\\"'))
        # A PCMA recording (the one sip-tester ships) is only understood if PCMA is offered first.
        alaw = self.audio_pcap is not None and "711a" in self.audio_pcap.name
        payloads = "8 0" if alaw else "0"
        rtpmaps = ("      a=rtpmap:8 PCMA/8000\n" if alaw else "") + "      a=rtpmap:0 PCMU/8000\n"
        # SIPp copies the scenario's bytes to the wire: written as UTF-8 (and declared so), a caller name
        # such as "Jérôme Ελένη" reaches Asterisk as UTF-8.
        rrs = ' rrs="true"' if self.route_set else ""
        parts = ['<?xml version="1.0" encoding="UTF-8" ?>', '<scenario name="siaga112 caller">',
                 '<send retrans="500" start_txn="invite"><![CDATA[\n'
                 f'{_INVITE.format(number=number, name=name, payloads=payloads, rtpmaps=rtpmaps)}'
                 ']]></send>',
                 '<recv response="100" optional="true" response_txn="invite"/>']
        if self.cancel_after_ms is not None:
            # The caller gives up after cancel_after_ms: CANCEL if still ringing; if the centre answered
            # first (the IVR answers at once), ACK and hang up (BYE) after the same time on the line.
            wait = self.cancel_after_ms
            parts += ['<recv response="180" optional="true" response_txn="invite"/>',
                      '<recv response="183" optional="true" response_txn="invite"/>',
                      f'<recv response="200" response_txn="invite" timeout="{wait}" ontimeout="giveup"'
                      f'{rrs}/>',
                      f'<send ack_txn="invite"><![CDATA[\n{self._in_dialog(caller_ack(number))}]]></send>',
                      *self._dtmf_parts(),
                      f'<pause milliseconds="{wait}"/>',
                      f'<send retrans="500"><![CDATA[\n{self._in_dialog(caller_bye(number))}]]></send>',
                      '<recv response="200" crlf="true" next="done"/>',
                      '<label id="giveup"/>',
                      f'<send><![CDATA[\n{caller_cancel()}]]></send>',
                      '<recv response="200"/>',
                      '<recv response="487" response_txn="invite"/>',
                      f'<send ack_txn="invite"><![CDATA[\n{caller_ack_487()}]]></send>',
                      '<label id="done"/>',
                      "</scenario>"]
            return "\n".join(parts)
        parts += ['<recv response="180" optional="true" response_txn="invite"/>',
                  '<recv response="183" optional="true" response_txn="invite"/>',
                  '<recv response="200" rtd="true" response_txn="invite" '
                  f'timeout="{self.answer_timeout_ms}"{rrs}/>',
                  f'<send ack_txn="invite"><![CDATA[\n{self._in_dialog(caller_ack(number))}]]></send>']
        if self.audio_pcap is not None:
            audio = escape(str(self.audio_pcap))
            parts.append(f'<nop><action><exec play_pcap_audio="{audio}"/></action></nop>')
        parts += self._dtmf_parts()
        if self.remote_hangup:
            parts += ['<recv request="BYE" timeout="120000"/>',
                      f'<send><![CDATA[\n{_OK_TO_BYE}]]></send>']
        else:
            parts += [f'<pause milliseconds="{self.hold_ms}"/>',
                      f'<send retrans="500"><![CDATA[\n{self._in_dialog(caller_bye(number))}]]></send>',
                      '<recv response="200" crlf="true"/>']
        parts.append("</scenario>")
        return "\n".join(parts)


@dataclass
class CallerResult:
    returncode: int
    output: str
    scenario: Path = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


_BIND_FAILED = ("Unable to bind", "Address already in use")


def free_media_port() -> int:
    """A base port for SIPp's media: SIPp binds it and the next ports (RTCP, video), so all four must be free
    now. Ports can still be taken between this check and SIPp's bind (see :func:`place_call`)."""
    for _ in range(50):
        base = free_udp_port() & ~1  # even, as RTP wants
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        else:
            return base
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no 4 consecutive free UDP ports on 127.0.0.1 for SIPp's media")


async def place_call(sip_host: str, sip_port: int, script: CallerScript, *, number: str = "112",
                     timeout: float = 90.0, workdir: Path | None = None,
                     local_ip: str = "127.0.0.1") -> CallerResult:
    """Place one call with SIPp and wait for it to finish. SIPp exit 0 = the script ran as written.
    ``local_ip``: the caller's address (the lab's ingress network is 127.0.0.1; 127.0.0.2 is a stranger).

    If SIPp could not bind its local ports (another process took them between our check and its bind:
    many callers start at once), it sent nothing; the same call is started again on new ports, at most
    twice. Any other failure is returned as it is."""
    binary = sipp_binary()
    if binary is None:
        raise RuntimeError("sipp not installed: apt-get install sip-tester")
    directory = workdir or Path(tempfile.mkdtemp(prefix="siaga112-sipp-"))
    scenario = directory / f"caller-{free_udp_port()}.xml"
    scenario.write_text(script.scenario_xml(), encoding="utf-8")
    for attempt in range(3):
        sip_local, media = free_udp_port(), free_media_port()
        cmd = [binary, "-sf", str(scenario), "-s", number, f"{sip_host}:{sip_port}", "-i", local_ip,
               "-p", str(sip_local), "-mi", local_ip, "-mp", str(media), "-m", "1", "-nostdin",
               "-timeout", f"{int(timeout)}s", "-timeout_error"]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, cwd=directory)
        try:
            async with asyncio.timeout(timeout + 10):
                out, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        if proc.returncode != 0 and attempt < 2 and any(m in text for m in _BIND_FAILED):
            continue
        break
    return CallerResult(proc.returncode if proc.returncode is not None else -1, text[-4000:], scenario)


_UAS_NO_ANSWER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="siaga112 operator who does not answer">
  <recv request="INVITE"/>
  <send><![CDATA[
""" + RINGING_180 + """\
  ]]></send>
  <recv request="CANCEL"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
  ]]></send>
  <send><![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [cseq] INVITE
      Content-Length: 0
  ]]></send>
  <recv request="ACK"/>
</scenario>
"""


def udp_port_bound(port: int) -> bool:
    """Is something listening on 127.0.0.1:``port``/udp? (Read from /proc: no packets sent.)"""
    wanted = f"{port:04X}"
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            for line in fh.readlines()[1:]:
                local_address = line.split()[1]  # e.g. 0100007F:3AFD
                if local_address.rsplit(":", 1)[1] == wanted:
                    return True
    return False


async def wait_udp_bound(port: int, proc: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
    """Wait until SIPp has bound its SIP port, so Asterisk's first INVITE is not lost to a closed port
    (it would only get through on a retransmission, seconds later). Polls /proc every 10 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not udp_port_bound(port):
        if proc.returncode is not None:
            raise RuntimeError(f"SIPp exited ({proc.returncode}) before binding 127.0.0.1:{port}/udp; "
                               "is the port in use?")
        if loop.time() > deadline:
            raise RuntimeError(f"SIPp did not bind 127.0.0.1:{port}/udp within {timeout:.0f} s")
        await asyncio.sleep(0.01)


class SippOperator:
    """A SIPp operator softphone answering on a static-contact operator's port (lab op1..op4).

    ``answer=False`` rings without answering (a missed ring). Use as an async context manager.
    """

    def __init__(self, port: int, *, answer: bool = True, calls: int = 0, trace: Path | None = None) -> None:
        self.port = port
        self.answer = answer
        self.calls = calls
        self.trace = trace  # SIPp's -trace_msg file: every message in and out, time-stamped in UTC
        self.proc: asyncio.subprocess.Process | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="siaga112-op-"))

    async def __aenter__(self) -> SippOperator:
        binary = sipp_binary()
        if binary is None:
            raise RuntimeError("sipp not installed: apt-get install sip-tester")
        cmd = [binary, *self._scenario_args(), "-i", "127.0.0.1", "-p", str(self.port), "-nostdin",
               "-mi", "127.0.0.1", "-mp", str(free_udp_port())]
        if self.calls:
            cmd += ["-m", str(self.calls)]
        if self.trace is not None:
            cmd += ["-trace_msg", "-message_file", str(self.trace)]
        self.proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                         stderr=asyncio.subprocess.DEVNULL, cwd=self._dir,
                                                         env={**os.environ, "TZ": "UTC"})
        await wait_udp_bound(self.port, self.proc)
        return self

    def _scenario_args(self) -> list[str]:
        if self.answer:
            return ["-sn", "uas"]
        path = self._dir / "no-answer.xml"
        path.write_text(_UAS_NO_ANSWER)
        return ["-sf", str(path)]

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.proc.wait()
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()


_UAS_ANSWER_THEN_HANG_UP = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="siaga112 citizen who answers a callback, talks, then hangs up">
  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp="(.*)" search_in="hdr" header="From:" check_it="true" assign_to="f0,caller"/>
      <ereg regexp="(.*)" search_in="hdr" header="To:" check_it="true" assign_to="t0,callee"/>
    </action>
  </recv>
  <Reference variables="f0,t0"/>
  <send><![CDATA[
""" + RINGING_180 + """\
  ]]></send>
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500"><![CDATA[
""" + answer_200("citizen") + """\
  ]]></send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500"><![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$callee];tag=[pid]SIPpTag01[call_number]
      To: [$caller]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


class SippCitizen(SippOperator):
    """A citizen's phone behind the lab's callback trunk (``lab.callbacks["trunk_port"]``): the engine
    calls it back. ``answer=True`` rings ``ring_ms``, answers, stays ``talk_ms`` and hangs up;
    ``answer=False`` rings until the caller gives up. Use as an async context manager."""

    def __init__(self, port: int, *, answer: bool = True, ring_ms: int = 500, talk_ms: int = 3000,
                 calls: int = 0, trace: Path | None = None) -> None:
        super().__init__(port, answer=answer, calls=calls, trace=trace)
        self.ring_ms = ring_ms
        self.talk_ms = talk_ms

    def _scenario_args(self) -> list[str]:
        if not self.answer:
            return super()._scenario_args()
        path = self._dir / "citizen-answers.xml"
        path.write_text(_UAS_ANSWER_THEN_HANG_UP.replace("{ring_ms}", str(self.ring_ms))
                        .replace("{talk_ms}", str(self.talk_ms)))
        return ["-sf", str(path)]
