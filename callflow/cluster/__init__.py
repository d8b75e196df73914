"""Two engines on one store: node identity, heartbeats, the leader lease with its fencing number, and
what the leader does when a node is lost. Rules in :mod:`~callflow.cluster.rules` (pure), tables in
:mod:`~callflow.cluster.store`, the engine component in :mod:`~callflow.cluster.service`."""

from callflow.cluster.rules import Fence, Leadership, LeaseTiming, NodeState
from callflow.cluster.store import CLUSTER_SCHEMA, Fenced

__all__ = ["CLUSTER_SCHEMA", "Fence", "Fenced", "Leadership", "LeaseTiming", "NodeState"]
