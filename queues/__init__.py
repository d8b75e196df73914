"""Queues and operators: queue policy (site file -> memberships and penalties), the operator state table,
the engine component that owns operator state, operator commands over AMI, the console provider, and
callbacks for abandoned emergency calls (:mod:`queues.callbacks`)."""

from queues.actions import ActionResult, OperatorActionError, login, logout, set_paused
from queues.console import ManagedOperators
from queues.operators import SCHEMA, OperatorManager
from queues.policy import QueuePolicy, UnknownOperator
from queues.states import OperatorTable, OperatorView, State, Transition

__all__ = ["SCHEMA", "ActionResult", "ManagedOperators", "OperatorActionError", "OperatorManager",
           "OperatorTable", "OperatorView", "QueuePolicy", "State", "Transition", "UnknownOperator", "login",
           "logout", "set_paused"]
