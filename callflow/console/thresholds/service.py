"""The thresholds' shell: reads the figures every ``interval_s``, applies :mod:`.rules`, stores the
changes, audits acknowledgements and tells the pages (``threshold.changed`` on the live stream)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

import structlog

from callflow.ami.client import Clock
from callflow.console.audit import AuditAction, AuditLog, AuditOutcome
from callflow.console.context import start_of_day
from callflow.console.providers import Providers, ProviderUnavailable, Refused
from callflow.console.thresholds import store
from callflow.console.thresholds.rules import (
    AckRefused,
    Alert,
    Clear,
    Condition,
    Figures,
    Raise,
    ThresholdKind,
    ThresholdPolicy,
    Update,
    acknowledge,
    conditions,
    reconcile,
)
from callflow.store import Database, DatabaseError

log = structlog.get_logger("callflow.console.thresholds")


class ThresholdWatch:
    def __init__(self, conn: Database, providers: Providers, audit: AuditLog, *, clock: Clock,
                 timezone: tzinfo, policy: ThresholdPolicy | None = None,
                 publish: Callable[[dict[str, Any]], None] | None = None, interval_s: float = 1.0) -> None:
        self.conn = conn
        self.providers = providers
        self.audit = audit
        self.clock = clock
        self.timezone = timezone
        self.policy = policy or ThresholdPolicy()
        self.publish = publish
        self.interval_s = interval_s
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        while True:
            try:
                await self.evaluate()
            except (DatabaseError, ProviderUnavailable) as exc:
                log.warning("thresholds.evaluate_failed", error=str(exc))
            await asyncio.sleep(self.interval_s)

    async def _figures(self, now: datetime) -> tuple[Figures, set[ThresholdKind]]:
        """The figures, and the kinds whose figures could not be read (their alerts stay as they are)."""
        unknown: set[ThresholdKind] = set()
        offered = within = 0
        try:
            stats = await self.providers.calls.answer_stats(start_of_day(now, self.timezone))
            offered = stats.offered
            within = {10: stats.within_10s, 15: stats.within_15s, 20: stats.within_20s}.get(
                self.policy.service_level_s, stats.within_10s)
        except ProviderUnavailable:
            unknown.add(ThresholdKind.SERVICE_LEVEL)
        waits: list[float] = []
        try:
            board = await self.providers.queues.board()
            waits = [float(c.wait_s) for q in board.queues if q.call_class == "emergency" for c in q.callers]
        except ProviderUnavailable:
            unknown.add(ThresholdKind.EMERGENCY_WAIT)
        ages: list[float] = []
        try:
            ages = [(now - c.created_at).total_seconds()
                    for c in await self.providers.callbacks.callbacks(open_only=True)]
        except ProviderUnavailable:
            unknown.add(ThresholdKind.CALLBACK_OVERDUE)
        return Figures(offered, within, waits, ages), unknown

    async def evaluate(self) -> None:
        now = self.clock()
        figures, unknown = await self._figures(now)
        async with self._lock:
            active = {a.kind: a for a in await store.active(self.conn)}
            holding = conditions(figures, self.policy)
            for kind in unknown:  # no figure: neither raise nor clear
                holding.pop(kind, None)
                if kind in active:
                    holding[kind] = Condition(kind, active[kind].detail)
            changes = reconcile(active, holding, now)
            for change in changes:
                if isinstance(change, Raise):
                    alert = await store.insert(self.conn, Alert(0, change.kind, now, change.detail))
                    log.warning("thresholds.raised", kind=str(change.kind), alert=alert.id,
                                detail=change.detail)
                elif isinstance(change, Update):
                    await store.save(self.conn, change.alert)
                elif isinstance(change, Clear):
                    await store.save(self.conn, change.alert)
                    log.info("thresholds.cleared", kind=str(change.alert.kind), alert=change.alert.id)
        if changes:
            self._tell("evaluated")

    async def alerts(self) -> list[Alert]:
        """The active alerts, then those cleared in the last hour (newest first)."""
        recent = await store.recent(self.conn)
        now = self.clock()
        lately = [a for a in recent
                  if a.cleared_at is not None and (now - a.cleared_at).total_seconds() < 3600]
        return [a for a in recent if a.active][::-1] + lately

    async def acknowledge(self, alert_id: int, by: str, address: str) -> Alert:
        async with self._lock:
            current = next((a for a in await store.active(self.conn) if a.id == alert_id), None)
            try:
                acked = acknowledge(current, alert_id, by, self.clock())
            except AckRefused as exc:
                await self.audit.record(by, AuditAction.THRESHOLD_ACK, AuditOutcome.FAILED,
                                        target=f"alert {alert_id}", address=address, detail=str(exc))
                raise Refused("alert_id", str(exc)) from exc
            await store.save(self.conn, acked)
            await self.audit.record(by, AuditAction.THRESHOLD_ACK, AuditOutcome.OK,
                                    target=f"alert {alert_id}", address=address,
                                    detail=f"{acked.kind.value}: {acked.detail}")
        self._tell("acknowledged")
        return acked

    def _tell(self, change: str) -> None:
        if self.publish is not None:
            self.publish({"type": "threshold.changed", "at": self.clock().isoformat(), "change": change})
