"""The outbox to agencies' own systems: each hand-off, update and escalation of a report handed to an
agency with an endpoint (site file ``[agencies.endpoints.<id>]``) becomes one stored message, POSTed as
signed EIDO JSON and retried until delivered or failed (callflow/agencies/delivery.py holds the rules).

Messages are written before any attempt, so a restart loses none; every attempt is stored with its
answer. The signing secrets are read once at start (from the environment or a file) and live only in
memory: never stored, never logged.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import structlog

from callflow.agencies.delivery import (
    DELIVERY_HEADER,
    RETRY_DELAYS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    accepted,
    after_attempt,
    signature,
)
from callflow.agencies.eido import eido_document
from callflow.agencies.rules import Endpoint, HandoffPolicy
from callflow.agencies.service import AgencyDesk
from callflow.agencies.store import DeliveryAttempt, HandoffStore, OutboxMessage
from callflow.store import Database

log = structlog.get_logger("callflow.agencies.outbox")

Clock = Callable[[], datetime]


class OutboxError(Exception):
    """An endpoint cannot be used as configured; the message names the agency and what to fix."""


def read_secret(agency_id: str, endpoint: Endpoint) -> bytes:
    """The endpoint's signing secret from its environment variable or file (refused when empty)."""
    where = f"[agencies.endpoints.{agency_id}]"
    if endpoint.secret_env is not None:
        value = os.environ.get(endpoint.secret_env, "")
        if not value:
            raise OutboxError(f"{where}: the environment variable {endpoint.secret_env} is not set or empty; "
                              "set it to the secret shared with the agency's system")
        return value.encode()
    if endpoint.secret_file is not None:
        try:
            value = Path(endpoint.secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise OutboxError(f"{where}: cannot read secret_file {endpoint.secret_file} ({exc.strerror}); "
                              "create it (mode 0600) holding the secret shared with the agency") from exc
        if not value:
            raise OutboxError(f"{where}: secret_file {endpoint.secret_file} is empty")
        return value.encode()
    raise OutboxError(f"{where}: give secret_env or secret_file")


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    secret: bytes
    timeout_s: float


class Outbox:
    def __init__(self, conn: Database, desk: AgencyDesk, policy: HandoffPolicy, *, clock: Clock,
                 delays: tuple[timedelta, ...] = RETRY_DELAYS,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._store = HandoffStore(conn)
        self._desk = desk
        self.policy = policy
        self._clock = clock
        self._delays = delays
        self._targets: dict[str, _Target] = {}
        self._client = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self.wake = asyncio.Event()

    async def start(self) -> None:
        """Read every endpoint's secret; a missing one is a start-up error (nothing would be delivered)."""
        for agency, endpoint in self.policy.endpoints.items():
            secret = await asyncio.to_thread(read_secret, agency, endpoint)
            self._targets[agency] = _Target(endpoint.url, secret, endpoint.timeout_s)
        if self._targets:
            log.info("agencies.outbox_ready", agencies=sorted(self._targets))

    async def stop(self) -> None:
        await self._client.aclose()

    @property
    def targets(self) -> Mapping[str, str]:
        return {agency: t.url for agency, t in self._targets.items()}

    async def publish(self, incident_id: int, reason: str, *, only: str | None = None) -> list[int]:
        """One message per agency with an endpoint that the report is handed to (or ``only`` that one);
        the ids of the messages queued."""
        handoffs = await self._desk.handoffs_of_incident(incident_id)
        wanted = [h for h in handoffs
                  if h.agency_id in self._targets and (only is None or h.agency_id == only)]
        if not wanted:
            return []
        at = self._clock()
        doc = eido_document(handoffs[0].incident, handoffs, centre_id=self.policy.centre_id, at=at,
                            reason=reason, caller_number_visible=self.policy.caller_number_visible)
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        ids = [await self._store.enqueue(h.agency_id, incident_id, reason, body, at) for h in wanted]
        self.wake.set()
        return ids

    async def _attempt(self, message: OutboxMessage) -> tuple[int | None, str, float]:
        target = self._targets.get(message.agency_id)
        if target is None:
            return None, f"no endpoint for agency {message.agency_id!r} in the site file any more", 0.0
        body = message.body.encode()
        stamp = int(self._clock().timestamp())
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(stamp),
                   SIGNATURE_HEADER: signature(target.secret, stamp, body), DELIVERY_HEADER: str(message.id)}
        started = time.monotonic()
        try:
            answer = await self._client.post(target.url, content=body, headers=headers,
                                             timeout=target.timeout_s)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300], (time.monotonic() - started) * 1000
        return answer.status_code, "" if accepted(answer.status_code) else answer.text[:300], \
            (time.monotonic() - started) * 1000

    async def deliver_due(self) -> list[DeliveryAttempt]:
        """Attempt every message due now, in order; a report's later message waits while an earlier one
        to the same agency is refused."""
        made: list[DeliveryAttempt] = []
        blocked: set[tuple[str, int]] = set()
        for message in await self._store.due(self._clock()):
            key = (message.agency_id, message.incident_id)
            if key in blocked:
                continue
            status, error, ms = await self._attempt(message)
            at = self._clock()
            attempt = DeliveryAttempt(message.id, message.attempts + 1, at, status, error, ms)
            outcome = after_attempt(attempt.attempt, accepted(status), at, self._delays)
            await self._store.record_attempt(attempt, outcome.state, outcome.next_attempt_at)
            made.append(attempt)
            if not accepted(status):
                blocked.add(key)
            log.info("agencies.delivery", outbox=message.id, agency=message.agency_id,
                     attempt=attempt.attempt, status=status, state=outcome.state.value, error=error or None)
        return made
