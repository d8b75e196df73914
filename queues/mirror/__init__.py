"""Two nodes' queues agreeing on operator state: the shared roster (log-in, pause) and the operators'
phones as a custom device state (rules, store, the engine component)."""

from queues.mirror.rules import Busy, Roster, combined, roster_actions, state_interface
from queues.mirror.service import OperatorMirror
from queues.mirror.store import MIRROR_SCHEMA

__all__ = ["MIRROR_SCHEMA", "Busy", "OperatorMirror", "Roster", "combined", "roster_actions",
           "state_interface"]
