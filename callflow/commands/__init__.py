"""Sub-commands of ``siaga112``. Each module defines ``register(subparsers)`` and sets ``handler``."""

COMMAND_MODULES = [
    "callflow.commands.lab",
    "callflow.commands.serve",
    "callflow.commands.demo",
    "callflow.commands.recordings",
    "callflow.commands.incidents",
    "callflow.commands.report",
    "callflow.commands.config",
    "callflow.commands.calls",
    "callflow.commands.callbacks",
    "callflow.commands.abuse",
    "callflow.commands.ami",
    "callflow.commands.console",
    "callflow.commands.ivr",
    "callflow.commands.operator",
]
