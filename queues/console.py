"""The console's view of operators: :class:`OperatorsProvider` over the engine's operator manager."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from callflow.console.models import OperatorState, OperatorStatus
from callflow.console.providers import OPERATORS, NotFound, ProviderUnavailable
from queues.actions import OperatorActionError, set_paused
from queues.operators import OperatorManager
from queues.policy import UnknownOperator
from queues.states import OperatorView


class ManagedOperators:
    """``operators()`` reads the manager's table; ``set_state()`` asks Asterisk (QueuePause) and returns
    the state once Asterisk's event confirmed it (or the unchanged state after ``confirm_timeout``)."""

    def __init__(self, manager: OperatorManager, *, confirm_timeout: float = 3.0) -> None:
        self.manager = manager
        self.confirm_timeout = confirm_timeout

    async def operators(self) -> Sequence[OperatorStatus]:
        now = self.manager.clock()
        return [self._status(v, now) for v in self.manager.views()]

    async def set_state(self, operator: str, state: OperatorState, reason: str) -> OperatorStatus:
        engine = self.manager._engine  # the manager's AMI session
        if engine is None:
            raise ProviderUnavailable(OPERATORS, "the operator manager is not attached to Asterisk yet")
        if state is OperatorState.READY:
            paused, why = False, ""
        elif state is OperatorState.PAUSED:
            paused, why = True, reason
        elif state is OperatorState.WRAPUP:  # an operator asking for more wrap-up time: a pause named so
            paused, why = True, f"wrap-up {reason}".strip()
        else:
            raise ProviderUnavailable(OPERATORS, f"state {state.value} cannot be set by hand")
        try:
            await set_paused(engine.session, self.manager.policy, operator, paused, why)
        except UnknownOperator as exc:
            raise NotFound(str(exc)) from exc
        except OperatorActionError as exc:
            raise ProviderUnavailable(OPERATORS, str(exc)) from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout
        while loop.time() < deadline:
            view = self.manager.table.view(operator)
            if (view.state.value == "paused" or view.pause_pending) == paused:
                break
            await asyncio.sleep(0.05)
        return self._status(self.manager.table.view(operator), self.manager.clock())

    @staticmethod
    def _status(view: OperatorView, now: datetime) -> OperatorStatus:
        reason = view.reason or ("pause pending (after this call)" if view.pause_pending else "")
        return OperatorStatus(operator=view.operator, state=OperatorState(view.state.value), reason=reason,
                              since=view.since, seconds_in_state=max(0.0, (now - view.since).total_seconds()))
