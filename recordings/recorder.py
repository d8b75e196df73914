"""The recorder: starts MixMonitor over AMI on the caller's channel and indexes each finished file.

When: on ``AgentConnect`` (an operator answered) for every call the policy records: emergency calls
always (queue in the policy's emergency queues, or ``SiagaQueueEntry`` said ``Class: emergency``), and
optionally already at arrival (the caller's ``Newchannel``). A recording ends with the caller's channel
(``MixMonitorStop`` or ``Hangup``, whichever comes first); the file is then awaited until Asterisk has
closed it, given mode 0640, hashed off the event loop and indexed.

Faults never touch the call: an unusable root (not writable, full) or a refused MixMonitor is logged at
error level and stored as a ``failed`` recording row for that call; the call goes on unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import structlog

from callflow.ami import AmiError, EventItem, LinkEvent
from callflow.ami.client import Clock, utc_now
from callflow.ami.events import (
    AgentConnect,
    ChannelEvent,
    ChannelSnapshot,
    Hangup,
    MixMonitorStop,
    Newchannel,
    UserEvent,
)
from callflow.calls.model import CallClass
from callflow.store import StoreError, StoreLocation, open_database
from recordings.audio import file_facts, wav_closed
from recordings.index import SCHEMA, RecordingIndex, RecordingStatus
from recordings.naming import relative_path
from recordings.policy import RecordingPolicy

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("recordings.recorder")

FILE_MODE = 0o640
DIR_MODE = 0o750
ARRIVAL_CONTEXTS = frozenset({"from-citizens"})  # pbx-config contract: where citizens' calls arrive
DiskUsage = Callable[[Path], Any]  # shutil.disk_usage's shape: .free in bytes


def make_private_dirs(root: Path, directory: Path) -> None:
    """Create ``directory`` (``root/YYYY/MM``) with every folder from ``root`` down at :data:`DIR_MODE`.
    ``Path.mkdir(parents=True)`` gives the parents the umask's mode (0755: every local user could list
    the recordings) and the umask trims ``mode`` even on the leaf, so each level is created here and then
    set explicitly; a folder already there (made by Asterisk or an older engine) is tightened when this
    user owns it."""
    levels = [directory, *directory.parents]
    below = levels[:levels.index(root) + 1] if root in levels else [directory]
    for folder in reversed(below):
        created = False
        try:
            folder.mkdir(mode=DIR_MODE)
            created = True
        except FileExistsError:
            pass
        if folder == root and not created:
            continue  # the root is the administrator's; only what the engine creates is set here
        info = folder.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o777 != DIR_MODE:
            folder.chmod(DIR_MODE)


@dataclass
class _Active:
    """One MixMonitor the recorder started (caller's channel)."""

    linkedid: str
    uniqueid: str
    channel: str
    call_class: CallClass
    path: Path
    asterisk_path: PurePosixPath
    made_at: datetime
    row: asyncio.Future[int | None]
    discard: bool = False


@dataclass
class _Call:
    call_class: CallClass = CallClass.UNKNOWN
    active: dict[str, _Active] = field(default_factory=dict)


class Recorder:
    name = "recordings"

    def __init__(self, *, database: StoreLocation, root: Path, policy: RecordingPolicy,
                 asterisk_root: PurePosixPath | str | None = None, clock: Clock = utc_now,
                 settle_timeout: float = 10.0, disk_usage: DiskUsage = shutil.disk_usage) -> None:
        self.database = database
        self.root = root
        self.asterisk_root = PurePosixPath(asterisk_root if asterisk_root is not None else root)
        self.policy = policy  # built from the site file by callflow.policies
        self.clock = clock
        self.settle_timeout = settle_timeout
        self.disk_usage = disk_usage
        self.index: RecordingIndex | None = None
        self._engine: Engine | None = None
        self._calls: dict[str, _Call] = {}
        self._jobs: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- component protocol -------------------------------------------------------------------------
    async def run(self, engine: Engine) -> None:
        self._engine = engine
        try:
            conn = await open_database(self.database, [SCHEMA])
        except (StoreError, OSError) as exc:
            failure = str(exc)
        else:
            failure = ""
        if failure:
            log.error("recording.store_unavailable", database=str(self.database), error=failure,
                      action="calls are NOT being recorded: fix the database and restart the engine")
            return
        self.index = RecordingIndex(conn)
        self._ready.set()
        log.info("recording.ready", root=str(self.root), asterisk_root=str(self.asterisk_root),
                 emergency_from=str(self.policy.emergency_from),
                 record_nonemergency=self.policy.record_nonemergency)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                job = await self._jobs.get()
                task = asyncio.create_task(self._guarded(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            # Stopping: finish what the last events decided (files Asterisk is closing), within bounds.
            while not self._jobs.empty():
                task = asyncio.create_task(self._guarded(self._jobs.get_nowait()))
                tasks.add(task)
            if tasks:
                _done, late = await asyncio.wait(tasks, timeout=self.settle_timeout + 5.0)
                for task in late:
                    task.cancel()
                if late:
                    await asyncio.wait(late)
                    log.error("recording.unfinished_at_stop", count=len(late),
                              action="these recordings stay in status 'recording'; run "
                                     "`siaga112 recordings list --status recording`")
            self.index = None
            await conn.close()

    async def handle(self, item: EventItem) -> None:
        if isinstance(item, LinkEvent):
            if item.state == "up" and item.gap_started is not None and self._calls:
                self._enqueue(functools.partial(self._reconcile, item.at))
            return
        if isinstance(item, Newchannel):
            self._on_newchannel(item)
        elif isinstance(item, UserEvent) and item.user_event == "SiagaQueueEntry":
            self._on_queue_entry(item)
        elif isinstance(item, AgentConnect):
            self._on_agent_connect(item)
        elif isinstance(item, MixMonitorStop | Hangup):
            self._on_channel_end(item.chan, item.time, caller_gone=isinstance(item, Hangup))

    # -- decisions (no I/O: effects are queued as jobs) ---------------------------------------------
    def _on_newchannel(self, ev: Newchannel) -> None:
        chan = ev.chan
        if (chan is None or chan.uniqueid != chan.linkedid or chan.context not in ARRIVAL_CONTEXTS
                or not self.policy.starts_at_arrival):
            return
        self._start(self._calls.setdefault(chan.linkedid, _Call()), chan, ev.time, "arrival")

    def _on_queue_entry(self, ev: UserEvent) -> None:
        if ev.chan is None:
            return
        try:
            call_class = CallClass(ev.get_field("Class").strip().lower())
        except ValueError:
            return
        call = self._calls.setdefault(ev.chan.linkedid, _Call())
        call.call_class = call_class
        for active in call.active.values():
            active.call_class = call_class
            if not self.policy.records(call_class) and not active.discard:
                active.discard = True
                self._enqueue(functools.partial(self._stop_unwanted, active))

    def _on_agent_connect(self, ev: AgentConnect) -> None:
        chan = ev.chan
        if chan is None:
            return
        call = self._calls.setdefault(chan.linkedid, _Call())
        if ev.queue in self.policy.emergency_queues:
            call.call_class = CallClass.EMERGENCY
        elif call.call_class == CallClass.UNKNOWN and ev.queue:
            call.call_class = CallClass.NONEMERGENCY
        if not self.policy.records(call.call_class):
            return
        if chan.uniqueid in call.active:  # already recording since arrival
            return
        self._start(call, chan, ev.time, "answer")

    def _on_channel_end(self, chan: ChannelSnapshot | None, at: datetime, *, caller_gone: bool) -> None:
        if chan is None:
            return
        call = self._calls.get(chan.linkedid)
        if call is None:
            return
        active = call.active.pop(chan.uniqueid, None)
        if active is not None:
            active.call_class = call.call_class
            self._enqueue(functools.partial(self._finish, active, at))
        if caller_gone and chan.uniqueid == chan.linkedid and not call.active:
            del self._calls[chan.linkedid]

    def _start(self, call: _Call, chan: ChannelSnapshot, at: datetime, trigger: str) -> None:
        try:
            rel = relative_path(chan.linkedid, chan.uniqueid, at, self.policy.format)
        except ValueError as exc:
            rel, problem = None, str(exc)
        if rel is None:
            log.error("recording.bad_id", linkedid=chan.linkedid, uniqueid=chan.uniqueid, error=problem)
            return
        active = _Active(linkedid=chan.linkedid, uniqueid=chan.uniqueid, channel=chan.channel,
                         call_class=call.call_class, path=self.root / rel,
                         asterisk_path=self.asterisk_root / rel, made_at=at,
                         row=asyncio.get_running_loop().create_future())
        call.active[chan.uniqueid] = active
        self._enqueue(functools.partial(self._begin, active, trigger))

    # -- effects ------------------------------------------------------------------------------------
    def _enqueue(self, job: Callable[[], Awaitable[None]]) -> None:
        self._pending += 1
        self._idle.clear()
        self._jobs.put_nowait(job)

    async def wait_idle(self) -> None:
        """Until every start and finish decided so far has been carried out (tests, shutdown)."""
        await self._idle.wait()

    async def _guarded(self, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        except Exception:  # one bad recording never stops the recorder
            log.exception("recording.job_failed")
        finally:
            self._pending -= 1
            if not self._pending:
                self._idle.set()

    async def _begin(self, active: _Active, trigger: str) -> None:
        await self._ready.wait()
        index, engine = self.index, self._engine
        if index is None or engine is None:  # the recorder is shutting down
            active.row.set_result(None)
            return
        bound = log.bind(linkedid=active.linkedid, uniqueid=active.uniqueid)
        problem = await asyncio.to_thread(self._root_problem, active.path.parent)
        retain = active.made_at + self.policy.retention(active.call_class)
        status = RecordingStatus.FAILED if problem else RecordingStatus.RECORDING
        rid = await index.add(linkedid=active.linkedid, uniqueid=active.uniqueid,
                              call_class=str(active.call_class), path=active.path, fmt=self.policy.format,
                              made_at=active.made_at, retain_until=retain, status=status, problem=problem)
        if problem:
            active.row.set_result(None)
            bound.error("recording.root_unusable", recording_id=rid, root=str(self.root), problem=problem,
                        action="THIS CALL IS NOT RECORDED: free space or fix permissions of the "
                               "recordings root")
            await self._flag_call(active, problem)
            return
        try:
            await engine.session.action("MixMonitor", {"Channel": active.channel,
                                                             "File": str(active.asterisk_path)})
        except AmiError as exc:
            active.row.set_result(None)
            await index.set_status(rid, RecordingStatus.FAILED, f"MixMonitor refused: {exc}")
            bound.error("recording.start_failed", recording_id=rid, error=str(exc),
                        action="THIS CALL IS NOT RECORDED: check Asterisk's log (app_mixmonitor loaded?)")
            await self._flag_call(active, f"MixMonitor refused: {exc}")
            return
        active.row.set_result(rid)
        bound.info("recording.started", recording_id=rid, trigger=trigger, call_class=str(active.call_class),
                   path=str(active.path))

    async def _flag_call(self, active: _Active, problem: str) -> None:
        """Put the failure on the call record too: a ``SiagaRecording`` user event naming the call goes
        through Asterisk into the AMI stream, so the tracker journals it and the record carries a note."""
        if self._engine is None:
            return
        text = " ".join(problem.split())  # one line: AMI refuses CR/LF in a value
        with contextlib.suppress(AmiError):
            await self._engine.session.action("UserEvent", {
                "UserEvent": "SiagaRecording", "Status": "failed", "Problem": text,
                "Linkedid": active.linkedid, "Uniqueid": active.uniqueid})

    def _root_problem(self, directory: Path) -> str:
        """Why recordings cannot be written under ``directory`` now ('' if they can)."""
        try:
            make_private_dirs(self.root, directory)
            usage = self.disk_usage(directory)
        except OSError as exc:
            return f"recordings directory {directory} unusable: {exc.strerror or exc}"
        free_mb = int(usage.free) // (1024 * 1024)
        if free_mb < self.policy.min_free_mb:
            return (f"recordings root {self.root} is full: {free_mb} MB free, policy needs "
                    f"{self.policy.min_free_mb} MB")
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"recordings directory {directory} is not writable"
        return ""

    async def _reconcile(self, at: datetime) -> None:
        """After an AMI gap: a recorded channel that hung up meanwhile sent its Hangup into the void.
        Finish those (end time = the engine's clock at reconnection, logged as such)."""
        if self._engine is None:
            return
        try:
            _, items = await self._engine.session.list_action("CoreShowChannels")
        except AmiError as exc:
            log.warning("recording.reconcile_failed", error=str(exc))
            return
        alive = {item.uniqueid for item in items if isinstance(item, ChannelEvent)}
        for linkedid, call in list(self._calls.items()):
            for uniqueid in [u for u in call.active if u not in alive]:
                active = call.active.pop(uniqueid)
                active.call_class = call.call_class
                log.warning("recording.ended_during_gap", linkedid=linkedid, uniqueid=uniqueid,
                            ended_at=at.isoformat(), ended_at_source="engine_clock")
                self._enqueue(functools.partial(self._finish, active, at))
            if linkedid not in alive and not call.active:
                del self._calls[linkedid]

    async def _stop_unwanted(self, active: _Active) -> None:
        """Recorded from arrival, then classified as a class the policy does not record."""
        rid = await active.row
        if rid is None or self._engine is None:
            return
        with contextlib.suppress(AmiError):  # the channel may already be gone; _finish discards anyway
            await self._engine.session.action("StopMixMonitor", {"Channel": active.channel})

    async def _finish(self, active: _Active, ended_at: datetime) -> None:
        rid = await active.row
        index = self.index
        if rid is None or index is None:
            return
        bound = log.bind(linkedid=active.linkedid, uniqueid=active.uniqueid, recording_id=rid)
        closed = await self._settled(active.path)
        if not active.path.exists():
            await index.set_status(rid, RecordingStatus.FAILED, "Asterisk wrote no file")
            bound.error("recording.no_file", path=str(active.path),
                        action="check Asterisk's log and that the recordings root is the same directory "
                               "for Asterisk and the engine")
            return
        if active.discard and not self.policy.records(active.call_class):
            await asyncio.to_thread(active.path.unlink, missing_ok=True)
            await index.set_status(rid, RecordingStatus.DISCARDED,
                                   f"class {active.call_class} is not recorded by policy")
            bound.info("recording.discarded", call_class=str(active.call_class))
            return
        await asyncio.to_thread(os.chmod, active.path, FILE_MODE)
        facts = await asyncio.to_thread(file_facts, active.path)
        await index.finish(rid, ended_at=ended_at, duration_s=facts.duration_s, size_bytes=facts.size,
                           sha256=facts.sha256, call_class=str(active.call_class),
                           retain_until=active.made_at + self.policy.retention(active.call_class))
        if not closed:
            await index.set_status(rid, RecordingStatus.OK,
                                   f"file not closed by Asterisk within {self.settle_timeout:.0f} s")
        bound.info("recording.indexed", path=str(active.path), duration_s=facts.duration_s,
                   size_bytes=facts.size, sha256=facts.sha256, call_class=str(active.call_class),
                   made_at=active.made_at.isoformat(), ended_at=ended_at.isoformat(), closed=closed)

    async def _settled(self, path: Path) -> bool:
        """Wait until Asterisk has closed the file: a complete WAV header, or (other formats) a size that
        stays the same for a few polls. Polls the file system; gives up after ``settle_timeout``."""
        last_size, steady = -1, 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout
        while loop.time() < deadline:
            if path.suffix.lower() == ".wav":
                if await asyncio.to_thread(wav_closed, path):
                    return True
            else:
                size = await asyncio.to_thread(_size_or_missing, path)
                steady = steady + 1 if size == last_size and size >= 0 else 0
                if steady >= 3:
                    return True
                last_size = size
            await asyncio.sleep(0.05)
        return False


def _size_or_missing(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1
