"""``siaga112 operator``: where-options (--lab, --config, --database) work before and after the action."""

from __future__ import annotations

from pathlib import Path

import pytest

from callflow.cli import build_parser


@pytest.mark.parametrize("argv", [
    ["operator", "--lab", "x", "login", "op1"],
    ["operator", "login", "op1", "--lab", "x"],
])
def test_lab_before_or_after_the_action(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.lab == "x"
    assert args.name == "op1"
    assert args.operator_command == "login"


def test_bare_lab_after_the_action_means_the_default_lab() -> None:
    args = build_parser().parse_args(["operator", "pause", "op2", "--reason", "break", "--lab"])
    assert args.lab == "default"
    assert args.reason == "break"


def test_a_value_before_the_action_is_not_hidden_by_the_action_defaults(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    args = build_parser().parse_args(["operator", "--database", str(db), "list", "--json"])
    assert args.database == db
    assert args.lab is None
    assert args.config is None
