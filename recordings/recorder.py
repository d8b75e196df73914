"""The recorder: indexes each recording the dial plan makes of a caller's channel.

The dial plan starts MixMonitor itself (pbx-config/extensions.conf ``[siaga-record]``): the AMI MixMonitor
action needs the ``system`` class, which would also let the engine's AMI user read every secret and load
modules. The recorder publishes the policy as dial plan globals (root, format, from arrival, non-emergency
calls) and holds a lease on recording (:mod:`callflow.lease`): while the engine is gone, nothing is
recorded that nothing would index. The dial plan names the file from Asterisk's ids and clock in the shape
of :mod:`recordings.naming` and says so in a ``SiagaRecording`` user event (``started`` at arrival,
``armed`` at queue entry: MixMonitor's ``b``, audio only once an operator answers); the recorder accepts
only the name :func:`~recordings.naming.relative_path` gives for that channel.

When a recording counts: on ``AgentConnect`` (an operator answered) for every call the policy records:
emergency calls always (queue in the policy's emergency queues, or ``SiagaQueueEntry`` said ``Class:
emergency``), and optionally already at arrival. A recording ends with the caller's channel
(``MixMonitorStop`` or ``Hangup``, whichever comes first); the file is then awaited until Asterisk has
closed it, given mode 0640, hashed off the event loop and indexed.

Faults never touch the call: an unusable root (not writable, full: the recorder stops the dial plan's
MixMonitor) or a call the dial plan did not record is logged at error level and stored as a ``failed``
recording row for that call; the call goes on unrecorded.
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
from typing import TYPE_CHECKING, Any, TypeVar

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
from callflow.lease import LEASE_S, RENEW_S, grant, revoke
from callflow.store import DatabaseError, OperationalError, StoreError, StoreLocation, open_database
from recordings.audio import file_facts, wav_closed
from recordings.index import SCHEMA, RecordingIndex, RecordingStatus
from recordings.naming import announced_path, relative_path
from recordings.policy import RecordingPolicy

if TYPE_CHECKING:
    from callflow.service import Engine

_T = TypeVar("_T")
# the recordings index unreachable (PostgreSQL restarting, SQLite locked): a write waits this long at most
STORE_WAIT_S = 300.0
log = structlog.get_logger("recordings.recorder")

FILE_MODE = 0o640
DIR_MODE = 0o750
ARRIVAL_CONTEXTS = frozenset({"from-citizens"})  # pbx-config contract: where citizens' calls arrive
DiskUsage = Callable[[Path], Any]  # shutil.disk_usage's shape: .free in bytes
# pbx-config/extensions.conf contract ([globals], [siaga-record])
LEASE_VARIABLE = "SIAGA_REC_LEASE"
DIAL_PLAN_EVENT = "SiagaRecording"
_MIXMONITOR_UNSAFE = frozenset(",|()[]{}$;\"'\\ \t\r\n")  # would end or bend MixMonitor's file argument


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
class _Armed:
    """A recording the dial plan armed at queue entry (MixMonitor ``b``): it counts once an operator
    answers. ``problem``: why the root cannot take it ('' if it can), once checked."""

    rel: PurePosixPath
    channel: str
    problem: asyncio.Future[str]


@dataclass
class _Call:
    call_class: CallClass = CallClass.UNKNOWN
    active: dict[str, _Active] = field(default_factory=dict)
    armed: dict[str, _Armed] = field(default_factory=dict)
    arrived: dict[str, datetime] = field(default_factory=dict)  # arrival-context Newchannel times


class Recorder:
    name = "recordings"

    def __init__(self, *, database: StoreLocation, root: Path, policy: RecordingPolicy,
                 asterisk_root: PurePosixPath | str | None = None, clock: Clock = utc_now,
                 settle_timeout: float = 10.0, disk_usage: DiskUsage = shutil.disk_usage) -> None:
        self.database = database
        self.root = root
        # MixMonitor needs an absolute path (a relative one lands in Asterisk's own monitor directory)
        self.asterisk_root = PurePosixPath(asterisk_root if asterisk_root is not None else root.absolute())
        self._policy = policy  # built from the site file by callflow.policies
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
        self._published = False  # the policy's globals are in the dial plan as far as known
        self._wake = asyncio.Event()  # publish again now (AMI up, dial plan reloaded)

    @property
    def policy(self) -> RecordingPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: RecordingPolicy) -> None:
        """A changed site file's policy: the dial plan is told at once (its globals are the policy's)."""
        self._policy = policy
        self._published = False
        self._wake.set()

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
        lease = asyncio.create_task(self._hold_lease(engine))
        try:
            while True:
                job = await self._jobs.get()
                task = asyncio.create_task(self._guarded(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease
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

    # -- the dial plan's side: policy globals and the lease ------------------------------------------
    def dial_plan_globals(self) -> dict[str, str]:
        """What ``[siaga-record]`` reads: where Asterisk writes, the format, and whether to record from
        arrival and non-emergency calls (the policy's decisions, not the site file's)."""
        return {
            "SIAGA_REC_ROOT": str(self.asterisk_root),
            "SIAGA_REC_FORMAT": self.policy.format,
            "SIAGA_REC_ARRIVAL": "1" if self.policy.starts_at_arrival else "0",
            "SIAGA_REC_NONEMERGENCY": "1" if self.policy.record_nonemergency else "0",
        }

    async def _hold_lease(self, engine: Engine) -> None:
        """Publish the globals (again after every AMI link-up and dial plan reload) and renew the lease
        every RENEW_S; said once when it cannot, and when it can again."""
        root = str(self.asterisk_root)
        if not self.asterisk_root.is_absolute() or _MIXMONITOR_UNSAFE & set(root):
            log.error("recording.root_unusable_for_asterisk", asterisk_root=root,
                      action="CALLS ARE NOT RECORDED: give an absolute recordings directory without "
                             "spaces, quotes or , | ( ) [ ] { } $ ; (site file [paths] recordings)")
            return
        failing = False
        while True:
            try:
                if not self._published:
                    for variable, value in self.dial_plan_globals().items():
                        await engine.session.action("Setvar", {"Variable": variable, "Value": value})
                    self._published = True
                await grant(engine.session, LEASE_VARIABLE)
            except AmiError as exc:
                if not failing:
                    log.warning("recording.lease_not_renewed", error=str(exc),
                                hint=f"within {LEASE_S} s of the last renewal Asterisk stops starting "
                                     "recordings (nothing would index them); renewed when AMI is back")
                failing = True
            else:
                if failing:
                    log.info("recording.lease_renewed")
                failing = False
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RENEW_S):
                    await self._wake.wait()

    async def before_stop(self) -> None:
        """The engine is stopping: no new recordings (calls in progress keep theirs, and are indexed)."""
        if self._engine is None:
            return
        with contextlib.suppress(AmiError, TimeoutError):
            async with asyncio.timeout(2.0):
                await revoke(self._engine.session, LEASE_VARIABLE)

    async def handle(self, item: EventItem) -> None:
        if isinstance(item, LinkEvent):
            if item.state == "up":
                self._published = False
                self._wake.set()
                if item.gap_started is not None and self._calls:
                    self._enqueue(functools.partial(self._reconcile, item.at))
            return
        if item.name == "Reload":  # a dial plan reload resets the globals (clearglobalvars)
            self._published = False
            self._wake.set()
        if isinstance(item, Newchannel):
            self._on_newchannel(item)
        elif isinstance(item, UserEvent) and item.user_event == "SiagaQueueEntry":
            self._on_queue_entry(item)
        elif isinstance(item, UserEvent) and item.user_event == DIAL_PLAN_EVENT:
            self._on_dial_plan_recording(item)
        elif isinstance(item, AgentConnect):
            self._on_agent_connect(item)
        elif isinstance(item, MixMonitorStop | Hangup):
            self._on_channel_end(item.chan, item.time, caller_gone=isinstance(item, Hangup))

    # -- decisions (no I/O: effects are queued as jobs) ---------------------------------------------
    def _on_newchannel(self, ev: Newchannel) -> None:
        """The caller's arrival: a recording the dial plan starts from arrival is dated from here."""
        chan = ev.chan
        if (chan is None or chan.uniqueid != chan.linkedid or chan.context not in ARRIVAL_CONTEXTS
                or not self.policy.starts_at_arrival):
            return
        self._calls.setdefault(chan.linkedid, _Call()).arrived[chan.uniqueid] = ev.time

    def _on_dial_plan_recording(self, ev: UserEvent) -> None:
        chan = ev.chan
        status = ev.get_field("Status")
        if chan is None or status not in {"started", "armed"}:  # "failed" is the engine's own note
            return
        try:
            rel, _ = announced_path(ev.get_field("File"), chan.linkedid, chan.uniqueid, self.policy.format)
        except ValueError as exc:
            log.error(  # noqa: TRY400 - the dial plan's mistake is said in full; no traceback
                "recording.bad_path", linkedid=chan.linkedid, uniqueid=chan.uniqueid, error=str(exc),
                      action="this recording is stopped and the call is flagged once answered: re-apply the "
                             "shipped dial plan (pbx-config/extensions.conf [siaga-record])")
            self._enqueue(functools.partial(self._stop_channel, chan.channel))
            return
        call = self._calls.setdefault(chan.linkedid, _Call())
        if status == "started":
            made_at = call.arrived.pop(chan.uniqueid, ev.time)
            self._start(call, chan, made_at, "arrival", rel=rel)
            return
        armed = _Armed(rel=rel, channel=chan.channel, problem=asyncio.get_running_loop().create_future())
        call.armed[chan.uniqueid] = armed
        self._enqueue(functools.partial(self._check_armed, armed))

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
        armed = call.armed.pop(chan.uniqueid, None)
        if not self.policy.records(call.call_class):
            if armed is not None:  # the dial plan's view of the policy differs from this engine's
                self._enqueue(functools.partial(self._stop_channel, armed.channel))
            return
        if chan.uniqueid in call.active:  # already recording since arrival
            return
        self._start(call, chan, ev.time, "answer", rel=armed.rel if armed else None,
                    problem=armed.problem if armed else None)

    def _on_channel_end(self, chan: ChannelSnapshot | None, at: datetime, *, caller_gone: bool) -> None:
        if chan is None:
            return
        call = self._calls.get(chan.linkedid)
        if call is None:
            return
        call.armed.pop(chan.uniqueid, None)
        call.arrived.pop(chan.uniqueid, None)
        active = call.active.pop(chan.uniqueid, None)
        if active is not None:
            active.call_class = call.call_class
            self._enqueue(functools.partial(self._finish, active, at))
        if caller_gone and chan.uniqueid == chan.linkedid and not call.active:
            del self._calls[chan.linkedid]

    def _start(self, call: _Call, chan: ChannelSnapshot, at: datetime, trigger: str, *,
               rel: PurePosixPath | None, problem: asyncio.Future[str] | None = None) -> None:
        """A recording that counts from ``at``: ``rel`` is the file the dial plan named (None: the dial
        plan recorded nothing, and the row says so)."""
        if rel is None:
            try:
                row_path = relative_path(chan.linkedid, chan.uniqueid, at, self.policy.format)
            except ValueError as exc:
                log.error(  # noqa: TRY400 - said in full; no traceback
                    "recording.bad_id", linkedid=chan.linkedid, uniqueid=chan.uniqueid, error=str(exc))
                return
        active = _Active(linkedid=chan.linkedid, uniqueid=chan.uniqueid, channel=chan.channel,
                         call_class=call.call_class, path=self.root / (rel or row_path),
                         asterisk_path=self.asterisk_root / (rel or row_path), made_at=at,
                         row=asyncio.get_running_loop().create_future())
        if rel is None:
            self._enqueue(functools.partial(self._not_recorded, active))
            return
        call.active[chan.uniqueid] = active
        self._enqueue(functools.partial(self._begin, active, trigger, problem))

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

    async def _check_armed(self, armed: _Armed) -> None:
        """At queue entry, before any operator answers: a root that cannot take the file stops the
        armed MixMonitor now (Asterisk would write into a full disk); the answer then flags the call."""
        problem = await asyncio.to_thread(self._root_problem, self.root / armed.rel.parent)
        if problem:
            await self._stop_channel(armed.channel)
        armed.problem.set_result(problem)

    async def _begin(self, active: _Active, trigger: str, checked: asyncio.Future[str] | None) -> None:
        await self._ready.wait()
        index = self.index
        if index is None:  # the recorder is shutting down
            active.row.set_result(None)
            return
        bound = log.bind(linkedid=active.linkedid, uniqueid=active.uniqueid)
        if checked is not None:
            problem = await checked
        else:
            problem = await asyncio.to_thread(self._root_problem, active.path.parent)
            if problem:
                await self._stop_channel(active.channel)
        retain = active.made_at + self.policy.retention(active.call_class)
        status = RecordingStatus.FAILED if problem else RecordingStatus.RECORDING
        rid = await self._stored(functools.partial(
            index.add, linkedid=active.linkedid, uniqueid=active.uniqueid, call_class=str(active.call_class),
            path=active.path, fmt=self.policy.format, made_at=active.made_at, retain_until=retain,
            status=status, problem=problem))
        if problem:
            active.row.set_result(None)
            bound.error("recording.root_unusable", recording_id=rid, root=str(self.root), problem=problem,
                        action="THIS CALL IS NOT RECORDED: free space or fix permissions of the "
                               "recordings root")
            await self._flag_call(active, problem)
            return
        active.row.set_result(rid)
        bound.info("recording.started", recording_id=rid, trigger=trigger, call_class=str(active.call_class),
                   path=str(active.path))

    async def _not_recorded(self, active: _Active) -> None:
        """An operator answered a call the policy records, and the dial plan armed no recording of it."""
        await self._ready.wait()
        index = self.index
        if index is None:
            return
        problem = ("the dial plan started no recording (its lease from the engine had run out, or "
                   "extensions.conf lacks [siaga-record])")
        rid = await self._stored(functools.partial(
            index.add, linkedid=active.linkedid, uniqueid=active.uniqueid, call_class=str(active.call_class),
            path=active.path, fmt=self.policy.format, made_at=active.made_at,
            retain_until=active.made_at + self.policy.retention(active.call_class),
            status=RecordingStatus.FAILED, problem=problem))
        log.error("recording.not_started", linkedid=active.linkedid, uniqueid=active.uniqueid,
                  recording_id=rid, problem=problem,
                  action="THIS CALL IS NOT RECORDED: check that the engine's AMI link is up and `siaga112 "
                         "config apply` the shipped dial plan")
        await self._flag_call(active, problem)

    async def _stop_channel(self, channel: str) -> None:
        """Stop the dial plan's MixMonitor on ``channel`` (StopMixMonitor: AMI class ``call``)."""
        if self._engine is None:
            return
        with contextlib.suppress(AmiError):  # the channel may already be gone
            await self._engine.session.action("StopMixMonitor", {"Channel": channel})

    async def _flag_call(self, active: _Active, problem: str) -> None:
        """Put the failure on the call record too: a ``SiagaRecording`` user event naming the call goes
        through Asterisk into the AMI stream, so the tracker journals it and the record carries a note."""
        if self._engine is None:
            return
        text = " ".join(problem.split())  # one line: AMI refuses CR/LF in a value
        with contextlib.suppress(AmiError):
            await self._engine.session.action("UserEvent", {
                "UserEvent": DIAL_PLAN_EVENT, "Status": "failed", "Problem": text,
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
        if rid is None:
            return
        await self._stop_channel(active.channel)  # gone already: _finish discards anyway

    async def _finish(self, active: _Active, ended_at: datetime) -> None:
        rid = await active.row
        index = self.index
        if rid is None or index is None:
            return
        bound = log.bind(linkedid=active.linkedid, uniqueid=active.uniqueid, recording_id=rid)
        closed = await self._settled(active.path)
        if not active.path.exists():
            await self._stored(functools.partial(index.set_status, rid, RecordingStatus.FAILED,
                                                 "Asterisk wrote no file"))
            bound.error("recording.no_file", path=str(active.path),
                        action="check Asterisk's log and that the recordings root is the same directory "
                               "for Asterisk and the engine")
            return
        if active.discard and not self.policy.records(active.call_class):
            await asyncio.to_thread(active.path.unlink, missing_ok=True)
            await self._stored(functools.partial(index.set_status, rid, RecordingStatus.DISCARDED,
                                                 f"class {active.call_class} is not recorded by policy"))
            bound.info("recording.discarded", call_class=str(active.call_class))
            return
        await asyncio.to_thread(os.chmod, active.path, FILE_MODE)
        facts = await asyncio.to_thread(file_facts, active.path)
        await self._stored(functools.partial(
            index.finish, rid, ended_at=ended_at, duration_s=facts.duration_s, size_bytes=facts.size,
            sha256=facts.sha256, call_class=str(active.call_class),
            retain_until=active.made_at + self.policy.retention(active.call_class)))
        if not closed:
            await self._stored(functools.partial(
                index.set_status, rid, RecordingStatus.OK,
                f"file not closed by Asterisk within {self.settle_timeout:.0f} s"))
        bound.info("recording.indexed", path=str(active.path), duration_s=facts.duration_s,
                   size_bytes=facts.size, sha256=facts.sha256, call_class=str(active.call_class),
                   made_at=active.made_at.isoformat(), ended_at=ended_at.isoformat(), closed=closed)

    async def _stored(self, write: Callable[[], Awaitable[_T]]) -> _T:
        """One write to the recordings index. While the store is unreachable (OperationalError) the write
        waits and is tried again (0.2 s, doubling to 5 s, for up to STORE_WAIT_S): a PostgreSQL restart
        leaves no recording unindexed. Any other store error is raised at once."""
        loop = asyncio.get_running_loop()
        deadline, pause, warned = loop.time() + STORE_WAIT_S, 0.2, False
        while True:
            try:
                result = await write()
            except OperationalError as exc:
                if loop.time() + pause > deadline:
                    raise
                if not warned:
                    warned = True
                    log.warning("recording.store_waiting", error=str(exc),
                                action="the recordings index is written when the database is back")
                if self.index is not None:
                    with contextlib.suppress(DatabaseError):
                        await self.index.conn.rollback()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            if warned:
                log.warning("recording.store_back")
            return result

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
