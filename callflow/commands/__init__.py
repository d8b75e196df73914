"""Sub-commands of ``siaga112``. Each module defines ``register(subparsers)`` and sets ``handler``."""

COMMAND_MODULES = [
    "callflow.commands.lab",
    "callflow.commands.serve",
    "callflow.commands.demo",
    "callflow.commands.ivr",
]
