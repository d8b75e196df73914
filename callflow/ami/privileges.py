"""The engine's AMI user's classes: the one definition, rendered into manager.conf (site file and lab).

Asterisk grants an action if the user holds any one of the classes it lists (``manager show command X``),
so a class is given only when an action or event the engine needs has no narrower one. Not ``system``
(it also grants GetConfig of pjsip.conf and manager.conf, ModuleLoad, and Originate of the System
application: a shell on the PBX), not ``config`` (GetConfig/UpdateConfig), not ``command`` (any CLI
command). The engine therefore starts recordings in the dial plan (MixMonitor needs ``system``) and keeps
repeat-abuse flags in dial plan globals (DBPut needs ``system``). ``config apply`` reloads and verifies
with its own user (:data:`APPLY_WRITE`), logged in only while it applies.
"""

from __future__ import annotations

from collections.abc import Mapping

# class -> why the running engine needs to READ (receive) its events
ENGINE_READ: Mapping[str, str] = {
    "system": "FullyBooted and Reload events (reading events grants no action)",
    "call": "channel and queue caller events; DeviceStateChange (two nodes: each node's view of the "
            "operators' phones)",
    "agent": "queue member events",
    "user": "UserEvents from the dial plan and IVR",
    "dtmf": "DTMFEnd",
    "cdr": "Cdr events",
    "reporting": "list actions' items",
    "agi": "AGIExecStart/End: when an IVR menu listens, so a key Asterisk drops between menus is given back",
}

# class -> the actions the running engine SENDS that need it
ENGINE_WRITE: Mapping[str, str] = {
    "call": "Setvar/Getvar (IVR gate and recording leases, recording policy, repeat-abuse flags; two "
            "nodes: DEVICE_STATE(Custom:siaga-<operator>)), PlayDTMF, StopMixMonitor, Hangup, Redirect",
    "agent": "QueueAdd, QueueRemove, QueuePause",
    "originate": "Originate (callbacks, listen-in); Asterisk refuses it the System/Exec applications "
                 "without `system`",
    "reporting": "CoreShowChannels",
    "user": "UserEvent (a call whose recording failed is marked on its record)",
}

# `config apply`'s own user: Reload needs system or config; PJSIPShowEndpoint(s) need system;
# ShowDialPlan needs config or reporting.
APPLY_READ: Mapping[str, str] = {"system": "Reload events"}
APPLY_WRITE: Mapping[str, str] = {
    "system": "Reload of the changed modules, PJSIPShowEndpoint(s) to verify them",
    "config": "ShowDialPlan to verify the dial plan",
    "reporting": "QueueStatus to verify the queues",
}


def classes(granted: Mapping[str, str]) -> str:
    """``read =``/``write =``'s value."""
    return ",".join(granted)


def reasons(kind: str, granted: Mapping[str, str]) -> str:
    """manager.conf comment lines saying why each class is given."""
    return "\n".join(f"; {kind} {name}: {why}" for name, why in granted.items())
