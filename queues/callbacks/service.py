"""The callback service: an engine component and a call-record listener.

A finished call record that needs a callback (:func:`callback_reason`) becomes a task in the shared
database, once per call. The service originates each due task to the citizen's number over the
``citizen-callback`` trunk into ``siaga-callback,s,1``, which puts the answering citizen in the emergency
queue with the ORIGINAL call's arrival (``SIAGA_ARRIVAL``), so a free operator takes them ahead of later
arrivals. Each attempt's outcome comes from ``OriginateResponse`` (or, if that was lost, from the callback
call's own record). An Originate whose outcome is unknown (the AMI link dropped with it in flight) is
re-checked against the live channels and the call records, never replayed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from callflow.ami import ActionFailed, AmiError, ConnectionLost, EventItem, LinkEvent
from callflow.ami.client import Clock, utc_now
from callflow.ami.events import AmiEvent
from callflow.calls.model import CallRecord, Outcome
from callflow.calls.records import load_records, record_from_dict
from callflow.cluster.rules import Leadership
from callflow.console.models import Callback
from callflow.logs import mask_number
from callflow.store import Database, DatabaseError, OperationalError, StoreLocation, open_database
from queues.abuse import ABUSE_SCHEMA
from queues.abuse.store import flag_at
from queues.callbacks import store
from queues.callbacks.rules import (
    CALLBACK_ID_PREFIX,
    CAP_WINDOW,
    OPEN_STATUSES,
    AttemptOutcome,
    CallbackPolicy,
    NuisanceDecision,
    NumberHistory,
    TaskStatus,
    after_attempt,
    callback_reason,
    channel_id,
    from_citizen,
    is_callback_call,
    may_still_ring,
    nuisance_decision,
    number_problem,
    originate_outcome,
)
from queues.callbacks.store import CALLBACKS_SCHEMA, Attempt, CallbackTask

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("queues.callbacks")

CALLBACK_CONTEXT = "siaga-callback"  # contract with extensions.conf
CATCH_UP_WINDOW_S = 3600.0  # finished calls this recent without a task get one (listener missed them)
CATCH_UP_EVERY_S = 60.0
RECHECK_GRACE_S = 15.0  # after the ring timeout, how long an attempt may stay silent before a re-check
DISABLED_FLAG = ("callbacks are disabled ([callbacks] enabled = false in the site file): call the citizen "
                 "back by hand")


class CallbackService:
    """Component (``run``/``handle``), :class:`CallRecordListener` and the console's CallbacksProvider."""

    name = "callbacks"

    def __init__(self, database: StoreLocation, policy: CallbackPolicy, *, clock: Clock = utc_now,
                 interval_s: float = 0.5, leadership: Leadership | None = None) -> None:
        self.database = database
        # Two engines on one store: only the leader dials, re-checks and catches up, and each claim of an
        # attempt carries its fence (refused in the store once another node took over). None: one engine.
        self.leadership = leadership
        self.policy = policy
        self.clock = clock
        self.interval_s = interval_s
        self._conn: Database | None = None
        self._engine: Engine | None = None
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._inbox: asyncio.Queue[EventItem] = asyncio.Queue()
        self._link_up = False
        self._since: datetime | None = None
        self.passes = 0  # scheduler passes completed: a caller can wait for "it looked and did nothing"
        self._passed = asyncio.Condition()
        self.notify: Callable[[dict[str, Any]], None] | None = None  # the console's live stream

    # -- component protocol ------------------------------------------------------------------------
    async def run(self, engine: Engine) -> None:
        self._engine = engine
        self._conn = await open_database(self.database, (CALLBACKS_SCHEMA, ABUSE_SCHEMA))
        try:
            self._since = await store.service_since(self._conn, self.clock())
            if self.leadership is None:  # in a cluster the leader's watchdog re-checks attempts in flight
                await self._restore()
            self._ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._scheduler(), name="callback-scheduler")
                tg.create_task(self._worker(), name="callback-events")
        finally:
            await self._conn.close()

    async def handle(self, item: EventItem) -> None:
        # The single consumer only hands items over; database work happens in run()'s worker.
        if isinstance(item, LinkEvent) or item.name == "OriginateResponse":
            self._inbox.put_nowait(item)

    # -- call records (listener of the call tracker) -------------------------------------------------
    async def on_call_record(self, record: CallRecord) -> None:
        await self._ready.wait()
        if is_callback_call(record):
            await self._callback_call_ended(record)
            return
        reason = callback_reason(record)
        if reason is None:
            if record.answered is not None and from_citizen(record):
                await self._supersede(record)
            return
        now = self.clock()
        problem = (number_problem(record.caller_number, self.policy.numbering_plan) if self.policy.enabled
                   else DISABLED_FLAG)
        async with self._lock:
            decision = await self._nuisance(record, now) if problem is None else None
            limit = decision.max_attempts if decision is not None else None
            if decision is not None and not decision.call_back:
                status, due, flag = TaskStatus.SKIPPED, None, ""
            elif problem is None:
                base = record.ended or record.arrival
                status, due, flag = (TaskStatus.PENDING,
                                     max(now, base + timedelta(seconds=self.policy.first_attempt_s)), "")
            else:
                status, due, flag = TaskStatus.SUPERVISOR, None, problem
            task = await store.create_task(self._db, linkedid=record.linkedid, number=record.caller_number,
                                           reason=reason, call_class=str(record.call_class),
                                           arrival=record.arrival, now=now, status=status,
                                           next_attempt_at=due, flag=flag,
                                           decision=decision.decision if decision else problem or "",
                                           max_attempts=limit)
        if task is None:
            return  # this call already has its task (record derived again)
        self._changed(task.id, status)
        log.info("callback.task_created", task=task.id, linkedid=record.linkedid, reason=reason,
                 caller=mask_number(record.caller_number), status=str(status), flag=flag,
                 decision=task.decision,
                 first_attempt_at=due.isoformat() if due else None)
        self._wake.set()

    async def _nuisance(self, record: CallRecord, now: datetime) -> NuisanceDecision:
        """The flood rules' decision for this call, from the number's recent tasks and abuse flag."""
        flag = await flag_at(self._db, record.caller_number, record.arrival)
        history = NumberHistory(
            recent_tasks=await store.recent_callbacks(self._db, record.caller_number, now - CAP_WINDOW),
            abuse_flag=flag.describe() if flag is not None else "")
        return nuisance_decision(record, history, self.policy)

    # -- console provider -----------------------------------------------------------------------------
    async def callbacks(self, *, open_only: bool) -> Sequence[Callback]:
        await self._ready.wait()
        tasks = await store.list_tasks(self._db, statuses=OPEN_STATUSES if open_only else None)
        return [to_console(t) for t in tasks]

    # -- internals ----------------------------------------------------------------------------------
    @property
    def _db(self) -> Database:
        assert self._conn is not None  # noqa: S101 - set in run() before _ready
        return self._conn

    async def _update_task(self, task_id: int, *, now: datetime, status: TaskStatus,
                           **changes: Any) -> None:
        await store.update_task(self._db, task_id, now=now, status=status, **changes)
        self._changed(task_id, status)

    def _changed(self, task_id: int, status: TaskStatus) -> None:
        """Pages showing callbacks re-read them now (the console's live stream), not at their next poll."""
        if self.notify is not None:
            self.notify({"type": "callback.changed", "at": self.clock().isoformat(), "id": str(task_id),
                         "status": str(status)})

    async def _restore(self) -> None:
        """Attempts the previous run left in flight: their outcome is unknown until re-checked."""
        for attempt in await store.attempts_in(self._db, frozenset({AttemptOutcome.DIALLING})):
            await self._update_task(attempt.task_id, now=self.clock(), status=TaskStatus.CHECKING)
            log.warning("callback.attempt_outcome_unknown", task=attempt.task_id, attempt=attempt.n,
                        channel_id=attempt.channel_id, action="re-checked against Asterisk at link-up")

    async def _worker(self) -> None:
        while True:
            item = await self._inbox.get()
            try:
                if isinstance(item, LinkEvent):
                    self._link_up = item.state == "up"
                    if self._link_up and self._leading():
                        live = {c.chan.uniqueid for c in item.channels if c.chan is not None}
                        await self._recheck_all(live, patient=True)
                    self._wake.set()
                elif isinstance(item, AmiEvent):
                    await self._originate_response(item)
            except (DatabaseError, AmiError, ValueError):
                log.exception("callback.event_failed", item=item.name)
            finally:
                self._inbox.task_done()

    async def _catch_up(self) -> None:
        """Records of the last hour that need a callback but have no task (finished while this service
        was not running, or its insert failed): give them one. Exactly once per call either way."""
        since = self.clock() - timedelta(seconds=CATCH_UP_WINDOW_S)
        if self._since is not None:  # calls from before callbacks ran on this database are not called back
            since = max(since, self._since)
        try:
            async with self._db.execute(
                    "SELECT r.record FROM calls_records r "
                    "LEFT JOIN callbacks_tasks t ON t.linkedid = r.linkedid WHERE t.id IS NULL "
                    "AND (r.answered IS NULL OR r.outcome = ?) AND r.arrival >= ? AND r.linkedid NOT LIKE ?",
                    (str(Outcome.NODE_LOST), store.iso(since), CALLBACK_ID_PREFIX + "%")) as cur:
                rows = await cur.fetchall()
        except OperationalError:  # no calls_records table yet (a new database)
            return
        for row in rows:
            record = record_from_dict(json.loads(row[0]))
            if callback_reason(record) is not None:
                log.warning("callback.catch_up", linkedid=record.linkedid,
                            action="task created from the stored call record")
                await self.on_call_record(record)

    async def _scheduler(self) -> None:
        next_catch_up = self.clock()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            self._wake.clear()
            if not self._leading():  # another node leads: it dials; this one only keeps its own tasks
                await self._count_pass()
                continue
            try:
                if self.clock() >= next_catch_up:
                    next_catch_up = self.clock() + timedelta(seconds=CATCH_UP_EVERY_S)
                    await self._catch_up()
            except (DatabaseError, ValueError, KeyError):
                log.exception("callback.catch_up_failed")
            if not self._link_up or not self.policy.enabled:
                await self._count_pass()
                continue  # disabled: tasks stay listed (open) for a supervisor; nothing is dialled
            try:
                await self._dial_due()
                await self._watchdog()
            except (DatabaseError, AmiError):
                log.exception("callback.scheduler_failed")
            finally:
                await self._count_pass()

    def _leading(self) -> bool:
        return self.leadership is None or self.leadership.fence() is not None

    async def _count_pass(self) -> None:
        async with self._passed:
            self.passes += 1
            self._passed.notify_all()

    async def settled(self, passes: int = 3) -> None:
        """Wait until every event handed over has been applied and the scheduler has then looked at the
        tasks ``passes`` more times: after that, something it did not do is something it will not do."""
        await self._inbox.join()
        async with self._passed:
            start = self.passes
            await self._passed.wait_for(lambda: self.passes >= start + passes)

    async def _dial_due(self) -> None:
        now = self.clock()
        tasks = await store.list_tasks(self._db, statuses=frozenset(
            {TaskStatus.PENDING, TaskStatus.DIALLING, TaskStatus.CHECKING}))
        busy_numbers = {t.number for t in tasks if t.status is not TaskStatus.PENDING}
        room = self.policy.max_parallel - len(busy_numbers)
        due = sorted((t for t in tasks if t.status is TaskStatus.PENDING and t.next_attempt_at is not None
                      and t.next_attempt_at <= now and t.number not in busy_numbers),
                     key=lambda t: t.arrival)
        for task in due:
            if room <= 0 or task.number in busy_numbers:
                continue
            busy_numbers.add(task.number)
            room -= 1
            await self._dial(task)

    async def _dial(self, task: CallbackTask) -> None:
        assert self._engine is not None  # noqa: S101 - set in run()
        n = task.attempts + 1
        started = self.clock()
        chan = channel_id(task.id, n, started)
        fence = self.leadership.fence() if self.leadership is not None else None
        if self.leadership is not None and fence is None:
            return  # lost the lease since the pass began
        async with self._lock:
            claimed = await store.add_attempt(self._db, task.id, n, chan, started, fence=fence)
        if not claimed:
            log.warning("callback.claim_refused", task=task.id, attempt=n,
                        fencing=fence.fencing if fence is not None else None,
                        action="not dialled: another node leads now, or claimed this attempt first")
            return
        p = self.policy
        headers: dict[str, str | int] = {
            "Channel": f"PJSIP/{task.number}@{p.trunk}", "Context": CALLBACK_CONTEXT, "Exten": "s",
            "Priority": 1, "Timeout": int(p.ring_timeout_s * 1000), "CallerID": f'"112" <{p.caller_id}>',
            "Async": "true", "ChannelId": chan}
        original = await self._record_of(task.linkedid)
        ended = original[0].ended if original else None
        waited = f"{(ended - task.arrival).total_seconds():.1f}" if ended is not None else ""
        variables = {"SIAGA_ARRIVAL": f"{task.arrival.timestamp():.6f}", "SIAGA_ROUTE": "callback",
                     "SIAGA_CALLBACK": str(task.id), "SIAGA_CALLBACK_OF": task.linkedid,
                     "SIAGA_CALLBACK_NUMBER": task.number,  # diallable digits only (number_problem)
                     # how long the citizen waited on the call before hanging up (the operator's pop)
                     "SIAGA_CALLBACK_WAITED": waited,
                     # the citizen's name from the call followed up, for the callback's record: caller
                     # text, so base64 (no comma, CR or LF can reach the Variable header or the UserEvent)
                     "SIAGA_CALLBACK_NAME64": base64.b64encode(
                         (original[0].caller_name if original else "").encode()).decode()}
        if self.leadership is not None and self.leadership.fence() != fence:
            # Paused between the claim and here (SIGSTOP, a stalled VM) while the lease moved on: the
            # store took the claim, but the new leader settles this attempt (its watchdog: unknown, then
            # a new attempt), so sending it now could ring the citizen twice. No await from this check to
            # the Originate's write: nothing can pause in between but the process itself.
            log.warning("callback.not_sent_lease_lost", task=task.id, attempt=n, channel_id=chan,
                        fencing=fence.fencing if fence is not None else None,
                        action="not dialled: the leader settles the claimed attempt and dials the next")
            return
        log.info("callback.dialling", task=task.id, attempt=n, channel_id=chan,
                 caller=mask_number(task.number), original_arrival=task.arrival.isoformat())
        try:
            response = await self._engine.session.action("Originate", headers, variables=variables)
        except ConnectionLost as exc:  # never sent: the task waits for the link, no attempt is spent
            async with self._lock:
                await self._db.execute("DELETE FROM callbacks_attempts WHERE channel_id = ?", (chan,))
                await self._update_task(task.id, now=self.clock(), status=TaskStatus.PENDING,
                                        next_attempt_at=task.next_attempt_at, attempts=task.attempts)
            log.warning("callback.not_sent", task=task.id, error=str(exc), action="dialled when AMI is back")
        except ActionFailed as exc:
            await self._finish(chan, AttemptOutcome.FAILED, self.clock(), f"Asterisk refused: {exc.message}")
        except AmiError as exc:  # OutcomeUnknown, ActionTimeout: the Originate may have run
            async with self._lock:
                await self._update_task(task.id, now=self.clock(), status=TaskStatus.CHECKING)
            log.warning("callback.attempt_outcome_unknown", task=task.id, attempt=n, channel_id=chan,
                        error=str(exc), action="re-checked against Asterisk, never redialled blind")
        else:
            async with self._lock:
                await store.set_attempt(self._db, chan, outcome=AttemptOutcome.DIALLING, ended_at=None,
                                        action_id=response.action_id or "")

    async def _originate_response(self, event: AmiEvent) -> None:
        msg = event.message
        chan = msg.get("Uniqueid") or ""
        attempt = await store.attempt_by_channel(self._db, chan) if chan.startswith(CALLBACK_ID_PREFIX) \
            else None
        if attempt is None:
            action_id = msg.get("ActionID") or ""
            if not action_id:
                return
            async with self._db.execute("SELECT channel_id FROM callbacks_attempts WHERE action_id = ?",
                                        (action_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                return  # someone else's Originate
            attempt = await store.attempt_by_channel(self._db, str(row[0]))
            if attempt is None:
                return
        ok = (msg.get("Response") or "").lower() == "success"
        outcome = AttemptOutcome.ANSWERED if ok else originate_outcome(msg.get("Reason") or "0")
        await self._finish(attempt.channel_id, outcome, event.time,
                           f"OriginateResponse {msg.get('Response')} reason {msg.get('Reason')}")

    async def _finish(self, chan: str, outcome: AttemptOutcome, at: datetime, detail: str, *,
                      lost_node: bool = False) -> None:
        """Attempt ``chan`` ended with ``outcome`` at ``at``: record it and move its task on
        (``lost_node``: settled from a lost node's record, it may still ring: :func:`may_still_ring`)."""
        async with self._lock:
            attempt = await store.attempt_by_channel(self._db, chan)
            if attempt is None or attempt.outcome not in (AttemptOutcome.DIALLING,):
                return  # already settled (response and record both tell)
            await store.set_attempt(self._db, chan, outcome=outcome, ended_at=at, detail=detail)
            task = await store.get_task(self._db, attempt.task_id)
            if task is None or task.status not in (TaskStatus.DIALLING, TaskStatus.CHECKING):
                return
            step = after_attempt(outcome, attempt.n, at, self.policy, task.max_attempts,
                                 may_ring_until=may_still_ring(attempt.started_at, self.policy)
                                 if lost_node else None)
            await self._update_task(task.id, now=self.clock(), status=step.status,
                                    next_attempt_at=step.next_attempt_at, flag=step.flag or None)
            if step.status is TaskStatus.ANSWERED:
                await self._close_same_number(task, f"citizen reached by callback task {task.id}")
        log.info("callback.attempt", task=attempt.task_id, attempt=attempt.n, channel_id=chan,
                 outcome=str(outcome), at=at.isoformat(), task_status=str(step.status), flag=step.flag,
                 next_attempt_at=step.next_attempt_at.isoformat() if step.next_attempt_at else None)
        if step.status is TaskStatus.SUPERVISOR:
            log.warning("callback.flagged_for_supervisor", task=attempt.task_id, flag=step.flag)
        self._wake.set()

    async def _close_same_number(self, task: CallbackTask, why: str) -> None:
        """The citizen is reached: the other waiting tasks for the same number are done too."""
        for other in await store.list_tasks(self._db, statuses=frozenset({TaskStatus.PENDING})):
            if other.number == task.number and other.id != task.id:
                await self._update_task(other.id, now=self.clock(), status=TaskStatus.SUPERSEDED,
                                        flag=why)

    async def _supersede(self, record: CallRecord) -> None:
        """The citizen called again and an operator answered: their waiting callbacks are done."""
        async with self._lock:
            who = record.operator or "an operator"
            for task in await store.list_tasks(self._db, statuses=frozenset({TaskStatus.PENDING})):
                if task.number != record.caller_number or record.arrival < task.arrival:
                    continue
                await self._update_task(task.id, now=self.clock(), status=TaskStatus.SUPERSEDED,
                                        flag=f"called again; answered by {who} (call {record.linkedid})")
                log.info("callback.superseded", task=task.id, by_call=record.linkedid)

    async def _callback_call_ended(self, record: CallRecord) -> None:
        """The record of a callback call: settles a lost OriginateResponse and tells who took the citizen."""
        caller = next((leg for leg in record.legs if leg.role == "caller"), None)
        answered_at = caller.answered if caller is not None else None
        if answered_at is not None:
            await self._finish(record.linkedid, AttemptOutcome.ANSWERED, answered_at,
                               "from the callback call's record")
        elif record.outcome is Outcome.NODE_LOST:  # its node stopped: it may ring on, unseen
            await self._finish(record.linkedid, AttemptOutcome.UNKNOWN, record.ended or record.arrival,
                               f"its node {record.node or '?'} stopped while it rang: outcome unknown; the "
                               "next attempt waits until this one's ring timeout is over", lost_node=True)
        else:
            await self._finish(record.linkedid, AttemptOutcome.NO_ANSWER, record.ended or record.arrival,
                               "from the callback call's record")
        attempt = await store.attempt_by_channel(self._db, record.linkedid)
        if attempt is None or attempt.outcome is not AttemptOutcome.ANSWERED:
            return
        async with self._lock:
            task = await store.get_task(self._db, attempt.task_id)
            if task is None or task.status is not TaskStatus.ANSWERED:
                return
            if record.operator and record.answered is not None:
                await self._update_task(task.id, now=self.clock(), status=TaskStatus.ANSWERED,
                                        operator=record.operator)
                log.info("callback.connected", task=task.id, operator=record.operator,
                         channel_id=record.linkedid, answered=record.answered.isoformat())
            else:
                flag = ("the citizen answered the callback but the call ended before an operator took it "
                        f"(outcome {record.outcome})")
                await self._update_task(task.id, now=self.clock(), status=TaskStatus.SUPERVISOR,
                                        flag=flag)
                log.warning("callback.flagged_for_supervisor", task=task.id, flag=flag)

    async def _watchdog(self) -> None:
        """Attempts silent past their ring timeout (response lost in a gap): re-check them."""
        now = self.clock()
        limit = timedelta(seconds=self.policy.ring_timeout_s + RECHECK_GRACE_S)
        stale = [a for a in await store.attempts_in(self._db, frozenset({AttemptOutcome.DIALLING}))
                 if now - a.started_at > limit]
        if stale:
            assert self._engine is not None  # noqa: S101
            _, items = await self._engine.session.list_action("CoreShowChannels")
            live = {c.uniqueid for i in items if (c := getattr(i, "chan", None)) is not None}
            await self._recheck(stale, live, patient=False)

    async def _recheck_all(self, live: set[str], *, patient: bool) -> None:
        await self._recheck(await store.attempts_in(self._db, frozenset({AttemptOutcome.DIALLING})), live,
                            patient=patient)

    async def _recheck(self, attempts: list[Attempt], live: set[str], *, patient: bool) -> None:
        """An attempt whose channel is up is still in progress (its record will settle it). Otherwise its
        call record says what happened; with no record either, the attempt ended unknown (a retry is then
        a new attempt, not a replay) once it is past its ring timeout."""
        now = self.clock()
        for attempt in attempts:
            if attempt.channel_id in live:
                continue
            records = await self._record_of(attempt.channel_id)
            if records:
                await self._callback_call_ended(records[0])
                continue
            age = (now - attempt.started_at).total_seconds()
            if patient and age < self.policy.ring_timeout_s + RECHECK_GRACE_S:
                continue  # may still be ringing: the watchdog looks again later
            await self._finish(attempt.channel_id, AttemptOutcome.UNKNOWN, now,
                               "no response, no live channel and no call record: outcome unknown")

    async def _record_of(self, linkedid: str) -> list[CallRecord]:
        try:
            return await load_records(self._db, linkedid=linkedid)
        except OperationalError:  # no calls_records table yet (tracker not started)
            return []


def to_console(task: CallbackTask) -> Callback:
    status = str(task.status) + (f" ({task.flag})" if task.flag and task.status is TaskStatus.SUPERVISOR
                                 else "")
    return Callback(id=str(task.id), number=task.number, reason=task.reason, created_at=task.created_at,
                    status=status, linkedid=task.linkedid)
