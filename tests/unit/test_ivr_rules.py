"""The IVR tree loader: shape checks and the safety rules, each refused with rule, node and file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from callflow.incidents.categories import CATEGORIES, CategoryClass
from ivr.rules import TreeError, estimate_seconds, load_tree, parse_tree
from ivr.tree import ActionKind, Category

REPO = Path(__file__).resolve().parents[2]

BASE = """\
name = "t"
first = "root"

[limits]
max_path_seconds = 60

[prompts.root]
language = "id"
text = "Darurat tekan satu. Pengaduan tekan dua."

[prompts.sub]
language = "id"
text = "Lampu jalan tekan satu."

[prompts.bye]
language = "id"
text = "Terima kasih."

[nodes.root]
prompt = "root"
timeout_s = 2
retries = 1

[nodes.root.choices]
"1" = { action = "emergency" }
"2" = { goto = "sub" }

[nodes.sub]
prompt = "sub"
timeout_s = 2
retries = 0

[nodes.sub.choices]
"1" = { action = "nonemergency", category = "street_lighting" }
"""


def refused(text: str) -> TreeError:
    with pytest.raises(TreeError) as info:
        parse_tree(text, "ivr.toml", {"root": 3.0, "sub": 2.0, "bye": 1.0})
    return info.value


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_default_tree_passes_every_rule() -> None:
    checked = load_tree(REPO / "pbx-config" / "ivr.toml")
    tree = checked.tree
    root = tree.nodes[tree.first]
    assert root.choices["1"].action is ActionKind.EMERGENCY
    assert checked.depth["root_en"] == 1  # the English first menu is a language version of the first
    assert tree.nodes["root_en"].choices["1"].action is ActionKind.EMERGENCY
    categories = {c.category for c in tree.nodes["complaints"].choices.values()}
    assert categories == set(Category)
    # the IVR's categories are the centre's 7 non-emergency ones, as the incident store knows them
    assert {c.value for c in Category} == {c.value for c, info in CATEGORIES.items()
                                           if info.category_class is CategoryClass.NONEMERGENCY}
    assert checked.max_seconds <= tree.limits.max_path_seconds


def test_valid_tree_computes_worst_path() -> None:
    checked = parse_tree(BASE, "ivr.toml", {"root": 3.0, "sub": 2.0, "bye": 1.0})
    # root: 2 attempts x (3 s prompt + 2 s timeout) = 10; sub: 1 x (2 + 2) = 4
    assert checked.worst_path.seconds == pytest.approx(14.0)
    assert checked.worst_path.nodes == ("root", "sub")
    assert checked.estimated == frozenset()


def test_estimated_durations_are_flagged() -> None:
    checked = parse_tree(BASE, "ivr.toml")
    assert checked.estimated == {"root", "sub", "bye"}
    assert checked.durations["bye"] == pytest.approx(estimate_seconds("Terima kasih."))


def test_no_input_must_be_emergency_on_an_emergency_path() -> None:
    text = BASE.replace('timeout_s = 2\nretries = 0\n',
                        'timeout_s = 2\nretries = 0\nno_input = { action = "message", message = "bye" }\n')
    err = refused(text)
    assert err.rule == "failsafe-inputs"
    assert err.node == "sub"
    assert err.line == line_of(text, "no_input =")
    assert f"ivr.toml:{err.line}" in str(err)


def test_invalid_input_must_be_emergency_on_an_emergency_path() -> None:
    text = BASE.replace('retries = 1\n', 'retries = 1\ninvalid = { action = "nonemergency", '
                        'category = "garbage" }\n', 1)
    err = refused(text)
    assert (err.rule, err.node) == ("failsafe-inputs", "root")
    assert err.line == line_of(text, "invalid =")


def test_tree_without_emergency_on_first_menu_is_refused() -> None:
    text = BASE.replace('"1" = { action = "emergency" }', '"1" = { action = "message", message = "bye" }')
    text = text.replace("retries = 1\n", 'retries = 1\nno_input = { action = "message", message = "bye" }\n')
    with pytest.raises(TreeError) as info:
        parse_tree(text, "ivr.toml", {})
    assert info.value.rule == "emergency-first-menu"


def test_emergency_must_be_on_the_first_menu() -> None:
    text = BASE.replace('"1" = { action = "emergency" }', '"1" = { goto = "deep" }') + """
[prompts.deep]
language = "id"
text = "x"

[nodes.deep]
prompt = "deep"
[nodes.deep.choices]
"1" = { action = "emergency" }
"""
    err = refused(text)
    assert err.rule == "emergency-first-menu"
    assert err.node == "root"


def test_emergency_choice_deeper_than_one_menu_is_refused() -> None:
    text = BASE + '"9" = { action = "emergency" }\n'
    err = refused(text)
    assert (err.rule, err.node) == ("emergency-depth", "sub")
    assert err.line == line_of(text, "[nodes.sub.choices]")


def test_language_version_of_first_menu_counts_as_first_level() -> None:
    text = BASE.replace('"2" = { goto = "sub" }', '"2" = { goto = "sub" }\n"9" = { goto = "root_en" }') + """
[nodes.root_en]
variant_of = "root"
prompt = "root"
[nodes.root_en.choices]
"1" = { action = "emergency" }
"""
    checked = parse_tree(text, "ivr.toml", {"root": 3.0, "sub": 2.0, "bye": 1.0})
    assert checked.depth["root_en"] == 1


def test_language_version_must_offer_emergency() -> None:
    text = BASE.replace('"2" = { goto = "sub" }', '"2" = { goto = "sub" }\n"9" = { goto = "root_en" }') + """
[nodes.root_en]
variant_of = "root"
prompt = "root"
[nodes.root_en.choices]
"2" = { goto = "sub" }
"""
    err = refused(text)
    assert (err.rule, err.node) == ("emergency-first-menu", "root_en")


def test_path_over_the_maximum_is_refused_naming_the_path() -> None:
    text = BASE.replace("max_path_seconds = 60", "max_path_seconds = 12")
    err = refused(text)
    assert err.rule == "bounded-duration"
    assert err.node == "sub"
    assert "root -> sub" in str(err)
    assert "14.0 s" in str(err)


def test_retries_count_in_the_duration() -> None:
    text = BASE.replace("retries = 0", "retries = 5")
    text = text.replace("max_path_seconds = 60", "max_path_seconds = 30")
    err = refused(text)  # root 10 + sub 6 x 4 = 34 s
    assert err.rule == "bounded-duration"
    assert "34.0 s" in str(err)


def test_cycle_is_refused() -> None:
    text = BASE + '"9" = { goto = "root" }\n'
    err = refused(text)
    assert err.rule == "no-cycles"
    assert "root -> sub -> root" in str(err)


def test_unreachable_node_is_refused() -> None:
    text = BASE + """
[nodes.orphan]
prompt = "sub"
[nodes.orphan.choices]
"1" = { action = "emergency" }
"""
    err = refused(text)
    assert (err.rule, err.node) == ("unreachable", "orphan")
    assert err.line == line_of(text, "[nodes.orphan]")


def test_unknown_goto_and_prompt_are_refused() -> None:
    err = refused(BASE.replace('{ goto = "sub" }', '{ goto = "nowhere" }'))
    assert (err.rule, err.node) == ("unknown-node", "root")
    err = refused(BASE.replace('prompt = "sub"', 'prompt = "missing"'))
    assert (err.rule, err.node) == ("unknown-prompt", "sub")


@pytest.mark.parametrize(("change", "message"), [
    ('category = "street_lighting"', "category"),  # nonemergency without a category
    ('category = "street_lights"', "category"),  # not one of the 7 types
])
def test_category_is_checked(change: str, message: str) -> None:
    replacement = "" if change.endswith('lighting"') else change
    text = BASE.replace(', category = "street_lighting"', f", {replacement}" if replacement else "")
    err = refused(text)
    assert err.rule == "schema"
    assert message in str(err)
    assert err.node == "sub"


def test_bad_digit_and_toml_syntax() -> None:
    err = refused(BASE.replace('"2" = { goto', '"22" = { goto'))
    assert err.rule == "schema"
    assert "0-9" in str(err)
    err = refused(BASE.replace("[nodes.sub]", "[nodes.sub"))
    assert err.rule == "toml"
    assert err.line == line_of(BASE, "[nodes.sub]")


def test_unreadable_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(TreeError) as info:
        load_tree(tmp_path / "absent.toml")
    assert info.value.rule == "read"


def test_message_choice_is_allowed_beside_emergency() -> None:
    text = BASE.replace('"2" = { goto = "sub" }',
                        '"2" = { goto = "sub" }\n"8" = { action = "message", message = "bye" }')
    checked = parse_tree(text, "ivr.toml", {"root": 3.0, "sub": 2.0, "bye": 1.0})
    assert checked.tree.nodes["root"].choices["8"].as_action() is not None


def test_node_names_must_be_simple() -> None:
    err = refused(BASE.replace("[nodes.sub]", '[nodes."sub,x"]').replace('goto = "sub"', 'goto = "sub,x"'))
    assert err.rule == "schema"
