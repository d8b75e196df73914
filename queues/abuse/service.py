"""The repeat-abuse service: keeps the dial plan's globals ``SIAGA_ABUSE_<number>`` (= expiry) in step with
the flags in force, so the dial plan queues a flagged caller behind the other callers of the same queue (a
lower ``QUEUE_PRIO``; pbx-config/extensions.conf). Never a block: the call is answered and queued as any
other. Globals (AMI Setvar, class ``call``) rather than AstDB (DBPut needs ``system``).

Supervisors set and lift flags with ``siaga112 abuse`` (callflow/commands/abuse.py), straight into the
shared database; this service looks every ``interval_s``, and at every AMI link-up and dial plan reload
(which clears globals) it sets every flag in force again and clears every number ever flagged that is not
(Asterisk may hold a flag lifted while the link was down, or set by an engine that died)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog

from callflow.ami import AmiError, EventItem, LinkEvent
from callflow.ami.client import Clock, utc_now
from callflow.logs import mask_number
from callflow.store import Database, DatabaseError, StoreLocation, open_database
from queues.abuse.rules import abuse_variable, sync_plan
from queues.abuse.store import ABUSE_SCHEMA, all_flags

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("queues.abuse")


class AbuseFlags:
    """Engine component: the flags in force, mirrored into AstDB for the dial plan."""

    name = "abuse"

    def __init__(self, database: StoreLocation, *, clock: Clock = utc_now, interval_s: float = 2.0) -> None:
        self.database = database
        self.clock = clock
        self.interval_s = interval_s
        self._engine: Engine | None = None
        self._link = asyncio.Event()
        self._fresh_link = False
        self._present: dict[str, int] = {}
        self.syncs = 0

    async def run(self, engine: Engine) -> None:
        self._engine = engine
        conn = await open_database(self.database, (ABUSE_SCHEMA,))
        try:
            while True:
                await self._link.wait()
                try:
                    await self._sync(conn)
                except (AmiError, DatabaseError) as exc:
                    log.warning("abuse.sync_failed", error=str(exc), action="tried again shortly")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval_s):
                        await asyncio.Event().wait()
        finally:
            await conn.close()

    async def handle(self, item: EventItem) -> None:
        if isinstance(item, LinkEvent):
            if item.state == "up":
                self._fresh_link = True
                self._link.set()
            else:
                self._link.clear()
        elif item.name == "Reload":  # a dial plan reload resets the globals (clearglobalvars)
            self._fresh_link = True

    async def _sync(self, conn: Database) -> None:
        assert self._engine is not None  # noqa: S101 - set in run()
        session = self._engine.session
        flags = await all_flags(conn)
        if self._fresh_link:
            # unknown what Asterisk holds: every number ever flagged is set again or cleared
            self._present = {f.number: -1 for f in flags}
            self._fresh_link = False
        plan = sync_plan(flags, self._present, self.clock())
        for number, expires in plan.put.items():
            variable = abuse_variable(number)
            if variable is None:
                log.warning("abuse.number_unusable", caller=mask_number(number),
                            hint="no caller id can be this number (digits and + * # only): not applied")
                self._present[number] = expires
                continue
            await session.action("Setvar", {"Variable": variable, "Value": str(expires)})
            self._present[number] = expires
            log.info("abuse.flag_applied", caller=mask_number(number), until=expires)
        for number in plan.delete:
            variable = abuse_variable(number)
            if variable is not None:
                await session.action("Setvar", {"Variable": variable, "Value": "0"})
            self._present.pop(number, None)
            log.info("abuse.flag_removed", caller=mask_number(number))
        self.syncs += 1
        if plan.put or plan.delete:
            log.info("abuse.synced", flagged=len(self._present))
