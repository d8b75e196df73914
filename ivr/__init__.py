"""The IVR: a tree as data (``pbx-config/ivr.toml``), checked by safety rules, run live over FastAGI."""

from ivr.agi import AgiHangup, AgiParser, AgiProtocolError, AgiReply, AgiRequest, encode_command
from ivr.rules import CheckedTree, TreeError, load_tree, parse_tree
from ivr.server import IvrServer, default_tree_path, prepare_tree
from ivr.settings import IvrSettings
from ivr.tree import Action, ActionKind, Category, Step, Tree

__all__ = [
    "Action",
    "ActionKind",
    "AgiHangup",
    "AgiParser",
    "AgiProtocolError",
    "AgiReply",
    "AgiRequest",
    "Category",
    "CheckedTree",
    "IvrServer",
    "IvrSettings",
    "Step",
    "Tree",
    "TreeError",
    "default_tree_path",
    "encode_command",
    "load_tree",
    "parse_tree",
    "prepare_tree",
]
