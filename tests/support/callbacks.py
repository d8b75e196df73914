"""Helpers for callback tests: call records as the tracker finishes them, and a stub engine whose session
answers Originate (only for faults the lab cannot produce on demand; the happy path runs on the lab)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from callflow.ami import AmiMessage
from callflow.calls.model import CallClass, CallRecord, Leg, Outcome

T0 = datetime(2026, 11, 30, 8, 0, 0, 250_000, tzinfo=UTC)


def record(outcome: Outcome = Outcome.ABANDONED_IN_QUEUE, call_class: CallClass = CallClass.EMERGENCY, *,
           number: str = "081234567890", linkedid: str = "1796000000.1",
           channel: str = "PJSIP/citizen-ingress-00000001", answered: datetime | None = None,
           operator: str = "") -> CallRecord:
    return CallRecord(linkedid=linkedid, caller_number=number, caller_name="", dialed="112",
                      call_class=call_class, outcome=outcome, arrival=T0, ended=T0 + timedelta(seconds=9),
                      answered=answered, operator=operator,
                      legs=(Leg(linkedid, channel, "caller", T0, T0, T0 + timedelta(seconds=9)),))


class StubSession:
    """Answers Originate as told (``fail_with``); records every action sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], Mapping[str, str] | None]] = []
        self.fail_with: Exception | None = None

    async def action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                     timeout: float | None = None, variables: Mapping[str, str] | None = None) -> AmiMessage:
        self.sent.append((name, dict(headers or {}), variables))
        if self.fail_with is not None:
            raise self.fail_with
        return AmiMessage((("Response", "Success"), ("ActionID", f"a{len(self.sent)}")))

    async def list_action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                          timeout: float | None = None) -> tuple[AmiMessage, list[Any]]:
        return AmiMessage((("Response", "Success"),)), []


class StubEngine:
    def __init__(self) -> None:
        self.session = StubSession()
