"""Faults under load: a steady stream of SIPp callers (74 % emergency) with four SIPp operators answering,
one fault injected mid-run; then every call Asterisk saw must have exactly one record.

Scenarios (--scenario NAME):
  engine-kill          the engine gets SIGKILL (its IVR child dies with it); restarted --fault-s later
  asterisk-restart     ``core restart now`` on the lab Asterisk (over AMI); operators re-added once it is back
  engine-freeze        the whole engine process is frozen (SIGSTOP) for --fault-s (30 s), then SIGCONT: its
                       AMI socket stays open and Asterisk keeps queueing events into it; the engine's
                       heartbeat is frozen too: a stalled process, not a half-open link (see ami-blackhole)
  ami-blackhole        the engine reaches the lab's AMI through a TCP proxy of the benchmark's (loopback); for
                       --fault-s (20 s) the proxy stops reading both sockets of the engine's connection (no
                       FIN, no RST: the engine sees a silent, half-open link) and accepts new connections but
                       neither reads them nor connects them upstream (reconnects fail the same way); then it
                       closes them all and forwards new connections again. Also reported: detect_s, from the
                       blackhole's start to the engine's ``ami.link_lost`` log line (-1: not detected while
                       the blackhole lasted)
  kill-during-writes   heavier load (--rate 20); the engine's committed journal and records are read by a
                       separate connection, the engine is SIGKILLed at once, then the database is checked
                       (PRAGMA integrity_check, every committed row present and unchanged); restarted after
                       --fault-s
  disk-full            the recordings root is a 300 MiB tmpfs mounted for the run; mid-run it is filled to the
                       last byte (ENOSPC for Asterisk's MixMonitor too) for --fault-s, then freed

Reported: offered (caller channels Asterisk created, from the benchmark's own reconnecting AMI session),
records, lost (offered without a record), duplicated (extra records for one caller), what SIPp counted,
and recover_s: from the fault's end (engine restarted, restart command sent, engine thawed, space freed)
until the engine journals a live AMI event again (Timestamp after the fault's end, received within 1 s of
it); for disk-full, until the first recording made after the space was freed is stored ``ok``; for
ami-blackhole, from the proxy forwarding again.

    .venv/bin/python bench/faults.py --scenario NAME [--lab INSTANCE] [--rate 2] [--seconds 45]
        [--fault-at 12] [--fault-s N] [--hold-ms 2000]

Without --lab it starts its own lab (bench-faults-<checkout digest>) on free ports and stops it afterwards.
Last line:
``RESULT lost=N duplicated=N recover_s=N`` (ami-blackhole: ``... detect_s=N`` too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import loadkit as kit

from callflow.lab import LabStatus

EMERGENCY_SHARE = 0.74
TMPFS_MB = 300  # above the recording policy's 200 MB free-space floor, so recording works until filled
DEFAULT_FAULT_S = {"engine-kill": 5.0, "asterisk-restart": 0.0, "engine-freeze": 30.0,
                   "ami-blackhole": 20.0, "kill-during-writes": 3.0, "disk-full": 20.0}
DEFAULT_RATE = {"kill-during-writes": 20.0}


class _Link:
    """One client connection through :class:`BlackholeProxy` (and its upstream one, once connected)."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.writers = [client]
        self.frozen = False
        self.closed = asyncio.Event()

    def freeze(self) -> None:
        """Stop reading every socket of this link: the sockets stay open (no FIN, no RST); what the peers
        write waits in the kernel's buffers (then the peers' own) and is never delivered."""
        self.frozen = True
        for writer in self.writers:
            transport = writer.transport
            if isinstance(transport, asyncio.ReadTransport):  # a socket transport: it is
                transport.pause_reading()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.closed.set()

    async def pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while not self.frozen:
                data = await src.read(65536)
                if not data:
                    self.close()  # one side closed: close the other (a plain proxy)
                    break
                if self.frozen:
                    break  # read just before the freeze, never forwarded (in flight when the link died)
                dst.write(data)
                await dst.drain()
        await self.closed.wait()


class BlackholeProxy:
    """A TCP proxy on loopback in front of the lab's AMI, for the engine only. ``blackhole()`` freezes every
    connection (see :meth:`_Link.freeze`) and new ones are accepted and frozen at once, never connected
    upstream; ``restore()`` closes them all and forwards new connections again. It never looks at or logs
    the bytes (the AMI login carries the secret)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = 0
        self.blackholed = False
        self.forwarded = 0  # connections forwarded upstream
        self.swallowed = 0  # connections accepted during the blackhole
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> BlackholeProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None  # noqa: S101
        self._server.close()
        for link in list(self._links):
            link.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        self._links.add(link)
        try:
            if self.blackholed:
                self.swallowed += 1
                link.freeze()
                await link.closed.wait()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return  # Asterisk is not there: the client sees the connection close, as without a proxy
            link.writers.append(up_writer)
            self.forwarded += 1
            if self.blackholed:  # began while connecting upstream
                link.freeze()
            await asyncio.gather(link.pump(reader, up_writer), link.pump(up_reader, writer))
        finally:
            link.close()
            self._links.discard(link)

    def blackhole(self) -> None:
        self.blackholed = True
        for link in self._links:
            link.freeze()

    def restore(self) -> int:
        """Close every blackholed connection and forward new ones again; returns how many were closed."""
        self.blackholed = False
        frozen = [link for link in self._links if link.frozen]
        for link in frozen:
            link.close()
        return len(frozen)


@dataclass
class Run:
    lab: LabStatus
    engine: kit.Engine
    watcher: kit.Watcher
    fault_s: float
    work: Path
    notes: list[str] = field(default_factory=list)
    ok: bool = True
    proxy: BlackholeProxy | None = None
    fault_began: datetime | None = None  # when the fault began (ami-blackhole)


async def restart_engine(run: Run) -> datetime:
    run.engine = kit.Engine(run.lab.instance, run.engine.database, run.engine.env)
    end = kit.utc_now()
    took = await run.engine.start()
    run.notes.append(f"engine restarted: IVR listening {took:.1f} s after the restart")
    return end


async def engine_kill(run: Run) -> datetime:
    await run.engine.stop(signal.SIGKILL)
    await asyncio.sleep(run.fault_s)
    return await restart_engine(run)


async def asterisk_restart(run: Run) -> datetime:
    session = run.watcher.session
    before = session.connection
    # the CLI, as an admin would (the engine's AMI user has no "command" permission, on purpose)
    with contextlib.suppress(Exception):
        await asyncio.to_thread(run.lab.cli, "core restart now")
    end = kit.utc_now()
    began = time.monotonic()
    # the watcher's session notices the loss and logs in again once Asterisk is back
    async with asyncio.timeout(120):
        while session.connection is before or not session.connected.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # the session has no "reconnected" event: poll its connection
    run.notes.append(f"Asterisk back (AMI login) {time.monotonic() - began:.1f} s after the restart command")
    for queue in kit.QUEUES:  # queue members are not persistent (persistentmembers = no): log in again
        for name in kit.OPERATORS:
            await session.action("QueueAdd", {"Queue": queue, "Interface": f"PJSIP/{name}",
                                              "MemberName": name})
    return end


async def engine_freeze(run: Run) -> datetime:
    os.kill(run.engine.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(run.fault_s)
    finally:
        os.kill(run.engine.pid, signal.SIGCONT)
    return kit.utc_now()


async def ami_blackhole(run: Run) -> datetime:
    proxy = run.proxy
    assert proxy is not None  # noqa: S101 - bench() starts it for this scenario
    proxy.blackhole()
    run.fault_began = kit.utc_now()
    try:
        await asyncio.sleep(run.fault_s)
    finally:
        closed = proxy.restore()
    end = kit.utc_now()
    run.notes.append(f"blackhole: {closed} connection(s) closed at its end, {proxy.swallowed} accepted "
                     f"during it (engine reconnect attempts)")
    return end


def detect_seconds(run: Run, end: datetime) -> float | None:
    """Seconds from the blackhole's start to the engine's first ``ami.link_lost`` log line after it, if that
    came before the blackhole's end (a loss after it is the proxy closing the link, not a detection)."""
    assert run.fault_began is not None  # noqa: S101
    for line in run.engine.lines:
        if line.get("event") != "ami.link_lost" or "timestamp" not in line:
            continue
        at = datetime.fromisoformat(line["timestamp"])
        if at < run.fault_began:
            continue
        run.notes.append(f"engine's first ami.link_lost after the blackhole began: {at:%H:%M:%S.%f} UTC, "
                         f"reason {line.get('reason')!r}")
        return (at - run.fault_began).total_seconds() if at <= end else None
    run.notes.append("the engine never logged ami.link_lost after the blackhole began")
    return None


def blackhole_notes(run: Run, end: datetime) -> float | None:
    """detect_s (see :func:`detect_seconds`), with the engine's reconnect attempts in the notes."""
    assert run.proxy is not None  # noqa: S101
    if run.proxy.forwarded == 0:  # the engine did not go through the proxy: the blackhole proved nothing
        run.notes.append("NO CONNECTION WENT THROUGH THE PROXY")
        run.ok = False
    assert run.fault_began is not None  # noqa: S101
    steps = []
    for line in run.engine.lines:
        name = str(line.get("event"))
        if name.startswith("ami.") and "timestamp" in line:
            at = (datetime.fromisoformat(line["timestamp"]) - run.fault_began).total_seconds()
            if at >= 0:
                steps.append(f"{name.removeprefix('ami.')} {at:.1f}")
    lasted = (end - run.fault_began).total_seconds()
    run.notes.append(f"proxy: {run.proxy.forwarded} connection(s) forwarded over the run; the engine's AMI "
                     f"link, s after the blackhole began (it lasted {lasted:.1f} s): "
                     f"{', '.join(steps) or 'nothing logged'}")
    return detect_seconds(run, end)


def _snapshot(database: Path) -> tuple[dict[int, str], dict[str, str]]:
    """Committed journal rows (seq -> digest of the row) and records (linkedid -> digest), read by a
    separate connection, as any reader sees them at this instant."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = {r[0]: hashlib.sha256(repr(r).encode()).hexdigest()
                for r in conn.execute("SELECT * FROM calls_journal")}
        records = {r[0]: hashlib.sha256(repr(r).encode()).hexdigest()
                   for r in conn.execute("SELECT * FROM calls_records")}
    finally:
        conn.close()
    return rows, records


def _check_database(database: Path, rows: dict[int, str], records: dict[str, str]) -> list[str]:
    conn = sqlite3.connect(database, timeout=30)  # read-write: recovers the WAL as the engine would
    try:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        after_rows = {r[0]: hashlib.sha256(repr(r).encode()).hexdigest()
                      for r in conn.execute("SELECT * FROM calls_journal")}
        after_records = {r[0]: hashlib.sha256(repr(r).encode()).hexdigest()
                         for r in conn.execute("SELECT * FROM calls_records")}
    finally:
        conn.close()
    missing_rows = sum(1 for seq, digest in rows.items() if after_rows.get(seq) != digest)
    missing_records = sum(1 for lid, digest in records.items() if after_records.get(lid) != digest)
    return [f"integrity_check: {' '.join(integrity)}",
            f"committed journal rows before the kill: {len(rows)}, missing or changed after: {missing_rows} "
            f"(rows after: {len(after_rows)})",
            f"records before the kill: {len(records)}, missing or changed after: {missing_records}",
            *(["DATABASE DAMAGED"] if integrity != ["ok"] or missing_rows or missing_records else [])]


async def kill_during_writes(run: Run) -> datetime:
    rows, records = await asyncio.to_thread(_snapshot, run.engine.database)
    assert run.engine.proc is not None  # noqa: S101
    run.engine.proc.send_signal(signal.SIGKILL)
    await run.engine.stop(signal.SIGKILL)
    lines = await asyncio.to_thread(_check_database, run.engine.database, rows, records)
    run.notes.extend(lines)
    run.ok = run.ok and lines[-1] != "DATABASE DAMAGED"
    await asyncio.sleep(run.fault_s)
    return await restart_engine(run)


def _fill(root: Path) -> Path:
    """Fill the file system under ``root`` to the last byte (the last writes fail with ENOSPC)."""
    filler = root / ".bench-filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while os.write(fd, chunk):
                    pass
    finally:
        os.close(fd)
    return filler


async def disk_full(run: Run) -> datetime:
    root = Path(run.lab.recordings_dir)
    filler = await asyncio.to_thread(_fill, root)
    free = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
    run.notes.append(f"recordings root filled: {free} bytes free")
    await asyncio.sleep(run.fault_s)
    filler.unlink()
    return kit.utc_now()


FAULTS: dict[str, Callable[[Run], Awaitable[datetime]]] = {
    "engine-kill": engine_kill, "asterisk-restart": asterisk_restart, "engine-freeze": engine_freeze,
    "ami-blackhole": ami_blackhole, "kill-during-writes": kill_during_writes, "disk-full": disk_full}


@contextlib.contextmanager
def small_disk(root: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of ``megabytes`` over the lab's recordings root for the run (needs root)."""
    st = root.stat()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode={st.st_mode & 0o7777:o},"
                    f"uid={st.st_uid},gid={st.st_gid}", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def recover_seconds(database: Path, end: datetime) -> float | None:
    """Seconds from ``end`` until the first journaled AMI event stamped after it and received live."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT ts, received_at FROM calls_journal WHERE kind = 'ami' AND ts > ? "
                            "ORDER BY seq", (end.isoformat(),)).fetchall()
    finally:
        conn.close()
    for ts, received in rows:
        t, r = datetime.fromisoformat(ts), datetime.fromisoformat(received)
        if (r - t).total_seconds() < 1.0:
            return (r - end).total_seconds()
    return None


def recordings_after(database: Path, end: datetime) -> tuple[dict[str, int], dict[str, int], float | None]:
    """Recording statuses before and after ``end``, and seconds to the first ``ok`` one made after it."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT made_at, status FROM recordings_files ORDER BY made_at").fetchall()
    finally:
        conn.close()
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    first_ok = None
    for made, state in rows:
        at = datetime.fromisoformat(made)
        side = after if at > end else before
        side[state] = side.get(state, 0) + 1
        if at > end and state == "ok" and first_ok is None:
            first_ok = (at - end).total_seconds()
    return before, after, first_ok


async def load(lab: LabStatus, prefix: str, *, rate: float, seconds: float, hold_ms: int,
               work: Path) -> list[kit.SippRun]:
    total = max(2, round(rate * seconds))
    n_emergency = round(total * EMERGENCY_SHARE)
    emergency = [f"{prefix}5{i:06d}" for i in range(n_emergency)]
    complaint = [f"{prefix}6{i:06d}" for i in range(total - n_emergency)]
    return list(await asyncio.gather(
        kit.rate_callers(lab, emergency, kit.EMERGENCY_KEYS, rate=rate * EMERGENCY_SHARE, hold_ms=hold_ms,
                         workdir=work, timeout_s=seconds + 120),
        kit.rate_callers(lab, complaint, kit.COMPLAINT_KEYS, rate=rate * (1 - EMERGENCY_SHARE),
                         hold_ms=hold_ms, workdir=work, timeout_s=seconds + 120)))


async def bench(lab: LabStatus, scenario: str, *, rate: float, seconds: float, fault_at: float,
                fault_s: float, hold_ms: int) -> int:
    if scenario != "ami-blackhole":
        return await _bench(lab, scenario, None, rate=rate, seconds=seconds, fault_at=fault_at,
                            fault_s=fault_s, hold_ms=hold_ms)
    async with BlackholeProxy(lab.ami["host"], int(lab.ami["port"])) as proxy:
        return await _bench(lab, scenario, proxy, rate=rate, seconds=seconds, fault_at=fault_at,
                            fault_s=fault_s, hold_ms=hold_ms)


async def _bench(lab: LabStatus, scenario: str, proxy: BlackholeProxy | None, *, rate: float, seconds: float,
                 fault_at: float, fault_s: float, hold_ms: int) -> int:
    work = kit.workdir(f"faults-{scenario}")
    # through the proxy: the lab's AMI user and secret, the proxy's address (an explicit port wins over --lab)
    env = {"SIAGA112_AMI__HOST": "127.0.0.1", "SIAGA112_AMI__PORT": str(proxy.port)} if proxy else None
    engine = kit.Engine(lab.instance, work / "siaga112.db", env)
    print(f"faults {scenario}: machine {kit.machine()}", flush=True)
    await engine.start()
    began_at = kit.utc_now()
    print(f"engine ready; {rate:g} calls/s for {seconds:g} s ({EMERGENCY_SHARE:.0%} emergency, callers stay "
          f"{hold_ms} ms after their key), fault at {fault_at:g} s for {fault_s:g} s", flush=True)
    run: Run | None = None
    prefix = f"0899{kit.run_tag()}"  # caller numbers: prefix, 5 (emergency) or 6 (complaint), index
    try:
        async with kit.Watcher(lab, prefix) as watcher, kit.operators(lab, watcher.session):
            run = Run(lab, engine, watcher, fault_s, work, proxy=proxy)
            calls = asyncio.create_task(load(lab, prefix, rate=rate, seconds=seconds, hold_ms=hold_ms,
                                             work=work))
            await asyncio.sleep(fault_at)
            began = time.monotonic()
            end = await FAULTS[scenario](run)
            print(f"fault injected and ended after {time.monotonic() - began:.1f} s", flush=True)
            sipp = await calls
            offered = dict(watcher.offered)
        assert run is not None  # noqa: S101
        records = await kit.wait_records(run.engine.database, prefix, set(offered), timeout=120)
    finally:
        await (run.engine if run is not None else engine).stop()
    t = kit.tally(offered, records)
    database = (run.engine if run is not None else engine).database
    lags = kit.ami_lags_ms(database, began_at, kit.utc_now())
    lost_links = sum(1 for line in run.engine.lines if line.get("event") == "ami.link_lost")
    run.notes.append(f"AMI lag over the run (engine receipt - event Timestamp): p50 "
                     f"{kit.percentile(lags, 50):.1f} ms, p99 {kit.percentile(lags, 99):.1f} ms, max "
                     f"{max(lags, default=0):.0f} ms ({len(lags)} events); the (last) engine lost its AMI "
                     f"link {lost_links} time(s)")
    detect = blackhole_notes(run, end) if proxy is not None else None
    for note in run.notes:
        print(f"  {note}")
    if scenario == "disk-full":
        before, after, recover = recordings_after(database, end)
        print(f"  recordings made before the space was freed: {before}; after: {after}")
    else:
        recover = recover_seconds(database, end)
    from_files = sum(1 for r in records if {"asterisk_cdr", "queue_log"} & set(r.sources))
    print(f"  records completed from Asterisk's CDR file / queue_log (calls the engine did not see live): "
          f"{from_files}")
    integrity = sqlite3.connect(database).execute("PRAGMA integrity_check").fetchone()[0]
    print(f"offered {t.offered} (Asterisk Newchannel), records {t.records}, lost {len(t.lost)}, duplicated "
          f"{t.duplicated}, records of calls the benchmark's AMI session missed {t.stray}; SIPp created "
          f"{sum(s.created for s in sipp)} successful {sum(s.successful for s in sipp)} failed "
          f"{sum(s.failed for s in sipp)}; database integrity_check: {integrity}")
    if t.lost:
        print(f"  lost: {', '.join(t.lost[:10])}")
    recovered = f"{recover:.1f}" if recover is not None else "-1"
    detected = "" if scenario != "ami-blackhole" else f" detect_s={detect:.1f}" if detect is not None else \
        " detect_s=-1"
    print(f"RESULT lost={len(t.lost)} duplicated={t.duplicated} recover_s={recovered}{detected}")
    return 0 if run.ok and integrity == "ok" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", required=True, choices=sorted(FAULTS))
    parser.add_argument("--lab", metavar="INSTANCE", help="a running lab (default: start a temporary one)")
    parser.add_argument("--rate", type=float, help="calls/s (default 2; kill-during-writes 20)")
    parser.add_argument("--seconds", type=float, default=45.0, help="how long callers keep coming")
    parser.add_argument("--fault-at", type=float, default=12.0, help="seconds into the load")
    parser.add_argument("--fault-s", type=float, help="how long the fault lasts (default per scenario)")
    parser.add_argument("--hold-ms", type=int, default=2000, help="each caller stays this long after its key")
    args = parser.parse_args()
    rate = args.rate if args.rate is not None else DEFAULT_RATE.get(args.scenario, 2.0)
    fault_s = args.fault_s if args.fault_s is not None else DEFAULT_FAULT_S[args.scenario]
    seconds = max(args.seconds, args.fault_at + fault_s + 3)  # some calls arrive after the fault
    with kit.lab_for(args.lab, "bench-faults") as lab:
        disk: contextlib.AbstractContextManager[object] = (
            small_disk(Path(lab.recordings_dir), TMPFS_MB) if args.scenario == "disk-full"
            else contextlib.nullcontext())
        with disk:
            return asyncio.run(bench(lab, args.scenario, rate=rate, seconds=seconds,
                                     fault_at=args.fault_at, fault_s=fault_s, hold_ms=args.hold_ms))


if __name__ == "__main__":
    sys.exit(main())
