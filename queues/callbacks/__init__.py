"""Callbacks for abandoned emergency calls: rules, durable tasks, the dialling service."""

from queues.callbacks.rules import (
    AttemptOutcome,
    CallbackPolicy,
    TaskStatus,
    after_attempt,
    callback_reason,
    number_problem,
)
from queues.callbacks.service import CallbackService, to_console
from queues.callbacks.store import CALLBACKS_SCHEMA, Attempt, CallbackTask

__all__ = ["CALLBACKS_SCHEMA", "Attempt", "AttemptOutcome", "CallbackPolicy", "CallbackService",
           "CallbackTask", "TaskStatus", "after_attempt", "callback_reason", "number_problem", "to_console"]
