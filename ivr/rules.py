"""Load ``ivr.toml`` and enforce the safety rules of a 112 IVR. A refused tree names the rule, the node
and file:line, and says what to do.

Rules (ids appear in error messages and docs):

- ``unknown-node`` / ``unknown-prompt``: every ``goto``, ``first``, ``variant_of``, prompt reference exists.
- ``no-cycles``: a menu never leads back to itself (re-prompting is what ``retries`` is for); a cycle
  would make the time in the IVR unbounded.
- ``unreachable``: every node is reachable from ``first`` (a dead node is an admin's mistake).
- ``emergency-first-menu``: the first menu, and each language version of it (``variant_of``), offers
  the emergency queue on one key: the emergency choice is at most one menu deep.
- ``emergency-depth``: no emergency *choice* deeper than the first menu (a deeper one would teach callers
  that emergencies take two menus); deeper menus still fall back to emergency on no input.
- ``failsafe-inputs``: on every emergency-capable path (a menu with an emergency choice before or after
  it), ``no_input`` and ``invalid`` go to the emergency queue.
- ``bounded-duration``: the worst-case time on every path (all retries, prompts, timeouts, a final
  message) is at most ``limits.max_path_seconds``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ivr.tree import Action, ActionKind, Node, Tree

ESTIMATE_CHARS_PER_S = 12.0  # espeak-ng at ~165 wpm speaks 13-16 chars/s; estimate on the slow side
ESTIMATE_PAD_S = 0.5


class TreeError(ValueError):
    """A refused tree: which rule, where (file:line), which node, what to do."""

    def __init__(self, rule: str, message: str, *, source: str, line: int | None = None,
                 node: str | None = None) -> None:
        self.rule, self.source, self.line, self.node = rule, source, line, node
        where = f"{source}:{line}" if line else source
        on = f" node {node!r}:" if node else ""
        super().__init__(f"{where}: [{rule}]{on} {message}")


@dataclass(frozen=True)
class PathCost:
    nodes: tuple[str, ...]
    ending: str  # "choice 1 -> emergency", "no input -> emergency", ...
    seconds: float


@dataclass(frozen=True)
class CheckedTree:
    """A tree that passed every rule, with what the loader computed about it."""

    tree: Tree
    source: str
    depth: Mapping[str, int]
    worst_path: PathCost
    durations: Mapping[str, float]  # prompt id -> seconds (measured audio, or estimated)
    estimated: frozenset[str]  # prompt ids whose duration is an estimate from the text

    @property
    def max_seconds(self) -> float:
        return self.worst_path.seconds


def estimate_seconds(text: str) -> float:
    return len(text) / ESTIMATE_CHARS_PER_S + ESTIMATE_PAD_S


class _Locator:
    """file:line of a TOML table or key, found in the raw text (tomllib keeps no positions)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def _header(self, parts: Sequence[str]) -> int | None:
        pattern = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(rf'"?{re.escape(p)}"?' for p in parts)
                             + r"\s*\]\s*(#.*)?$")
        for i, line in enumerate(self.lines):
            if pattern.match(line):
                return i
        return None

    def _key(self, start: int, key: str) -> int | None:
        pattern = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=')
        for i in range(start + 1, len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                return None
            if pattern.match(self.lines[i]):
                return i
        return None

    def line(self, loc: Sequence[str | int]) -> int | None:
        parts = [str(p) for p in loc]
        for cut in range(len(parts), 0, -1):
            header = self._header(parts[:cut])
            if header is None:
                continue
            if cut < len(parts):
                key = self._key(header, parts[cut])
                if key is not None:
                    return key + 1
            return header + 1
        if parts:
            key = self._key(-1, parts[0])
            if key is not None:
                return key + 1
        return None


def load_tree(path: Path, durations: Mapping[str, float] | None = None) -> CheckedTree:
    """Read, validate and check ``path``. ``durations``: measured prompt lengths in seconds (from the
    generated audio); prompts without one are estimated from their text."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TreeError("read", f"cannot read the IVR tree ({exc.strerror}); check the path",
                        source=source) from None
    return parse_tree(text, source, durations)


def parse_tree(text: str, source: str, durations: Mapping[str, float] | None = None) -> CheckedTree:
    locate = _Locator(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise TreeError("toml", f"not valid TOML: {exc}; fix the syntax", source=source,
                        line=int(match.group(1)) if match else None) from None
    try:
        tree = Tree.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-after"))]
        node = str(loc[1]) if len(loc) > 1 and loc[0] == "nodes" else None
        field = ".".join(str(p) for p in loc) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TreeError("schema", f"{field}: {first['msg']}{more}", source=source,
                        line=locate.line(loc), node=node) from None
    return _Checker(tree, source, locate, durations or {}).check()


class _Checker:
    def __init__(self, tree: Tree, source: str, locate: _Locator, durations: Mapping[str, float]) -> None:
        self.tree, self.source, self.locate = tree, source, locate
        self.durations = {pid: durations.get(pid, estimate_seconds(p.text))
                          for pid, p in tree.prompts.items()}
        self.estimated = frozenset(pid for pid in tree.prompts if pid not in durations)

    def fail(self, rule: str, message: str, node: str | None, *loc: str) -> TreeError:
        where: list[str] = ["nodes", node, *loc] if node else list(loc)
        return TreeError(rule, message, source=self.source, line=self.locate.line(where), node=node)

    def check(self) -> CheckedTree:
        self._references()
        self._acyclic()
        depth = self._depths()
        self._emergency(depth)
        worst = self._durations()
        return CheckedTree(self.tree, self.source, depth, worst, self.durations, self.estimated)

    def _references(self) -> None:
        t = self.tree
        if t.first not in t.nodes:
            raise self.fail("unknown-node", f"first = {t.first!r} is not a node; known: "
                            f"{', '.join(sorted(t.nodes))}", None, "first")
        for name, node in t.nodes.items():
            prompts = [("prompt", node.prompt), ("invalid_prompt", node.invalid_prompt)]
            fallbacks = (("no_input", node.no_input), ("invalid", node.invalid))
            prompts += [(key, a.message) for key, a in fallbacks]
            prompts += [(f"choices.{d}", c.message) for d, c in node.choices.items()]
            for key, pid in prompts:
                if pid is not None and pid not in t.prompts:
                    raise self.fail("unknown-prompt", f"{key} refers to prompt {pid!r}, which is not in "
                                    "[prompts]; add it or fix the name", name, key.split(".")[0])
            for digit, choice in node.choices.items():
                if choice.goto is not None and choice.goto not in t.nodes:
                    raise self.fail("unknown-node", f"key {digit} goes to {choice.goto!r}, which is not a "
                                    "node", name, "choices")
            if node.variant_of is not None and node.variant_of not in t.nodes:
                raise self.fail("unknown-node", f"variant_of = {node.variant_of!r} is not a node", name,
                                "variant_of")

    def _acyclic(self) -> None:
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            for choice in self.tree.nodes[name].choices.values():
                target = choice.goto
                if target is None:
                    continue
                if state.get(target) == 1:
                    loop = " -> ".join([*path[path.index(target):], target])
                    raise self.fail("no-cycles", f"menus form a loop ({loop}); a loop makes the time in "
                                    "the IVR unbounded: use 'retries' to repeat a menu", name, "choices")
                if target not in state:
                    visit(target, [*path, target])
            state[name] = 2

        visit(self.tree.first, [self.tree.first])
        for name in self.tree.nodes:
            if name not in state:
                raise self.fail("unreachable", "no menu leads here from the first menu "
                                f"({self.tree.first!r}); link it or delete it", name)

    def _depths(self) -> dict[str, int]:
        """Menus counted from the first (1); a language version of a first-level menu counts as 1."""
        t = self.tree
        depth = {t.first: 1}
        order = [t.first]
        for name in order:
            for choice in t.nodes[name].choices.values():
                target = choice.goto
                if target is None or target in depth:
                    continue
                child = t.nodes[target]
                if child.variant_of is not None:
                    if depth.get(child.variant_of) != 1 or depth[name] != 1:
                        raise self.fail("emergency-first-menu", f"a language version (variant_of = "
                                        f"{child.variant_of!r}) must be a version of the first menu and be "
                                        "reached from a first-level menu", target, "variant_of")
                    depth[target] = 1
                else:
                    depth[target] = depth[name] + 1
                order.append(target)
        return depth

    def _emergency(self, depth: Mapping[str, int]) -> None:
        t = self.tree
        offers = {name for name, node in t.nodes.items()
                  if any(c.action is ActionKind.EMERGENCY for c in node.choices.values())}
        for name, node in t.nodes.items():
            must_offer = name == t.first or node.variant_of is not None
            if must_offer and name not in offers:
                raise self.fail("emergency-first-menu", "the first menu (and each language version of it) "
                                "must send one key straight to the emergency queue, e.g. "
                                '"1" = { action = "emergency" }', name, "choices")
            if name in offers and depth[name] > 1:
                raise self.fail("emergency-depth", f"an emergency choice {depth[name]} menus deep: emergency "
                                "belongs on the first menu; deeper menus fall back to it on no input",
                                name, "choices")
        capable = self._emergency_capable(offers)
        for name in sorted(capable):
            node = t.nodes[name]
            for key, action in (("no_input", node.no_input), ("invalid", node.invalid)):
                if action.action is not ActionKind.EMERGENCY:
                    raise self.fail("failsafe-inputs", f"{key} is {action.action.value!r} on a path where a "
                                    f"caller may have an emergency; it must be {{ action = \"emergency\" }}",
                                    name, key)

    def _emergency_capable(self, offers: set[str]) -> set[str]:
        children = {n: {c.goto for c in node.choices.values() if c.goto is not None}
                    for n, node in self.tree.nodes.items()}
        capable: set[str] = set()
        for name in self.tree.nodes:
            if self._reaches(name, offers, children) or any(
                    name in self._below(o, children) for o in offers):
                capable.add(name)
        return capable

    @staticmethod
    def _below(name: str, children: Mapping[str, set[str]]) -> set[str]:
        seen: set[str] = set()
        stack = [name]
        while stack:
            for child in children[stack.pop()]:
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def _reaches(self, name: str, offers: set[str], children: Mapping[str, set[str]]) -> bool:
        return name in offers or bool(self._below(name, children) & offers)

    def visit_seconds(self, node: Node) -> float:
        """Worst-case time in one menu: every attempt plays the prompt and waits the full timeout; each
        retry first plays the invalid-input prompt."""
        attempts = node.retries + 1
        invalid = self.durations[node.invalid_prompt] if node.invalid_prompt else 0.0
        return attempts * (self.durations[node.prompt] + node.timeout_s) + node.retries * invalid

    def action_seconds(self, action: Action) -> float:
        return self.durations[action.message] if action.message else 0.0

    def _durations(self) -> PathCost:
        t = self.tree
        limit = t.limits.max_path_seconds
        paths: list[PathCost] = []

        def walk(name: str, trail: tuple[str, ...], spent: float) -> None:
            node = t.nodes[name]
            here = spent + self.visit_seconds(node)
            for label, action in (("no input", node.no_input), ("invalid", node.invalid)):
                paths.append(PathCost(trail, f"{label} -> {action.action.value}",
                                      here + self.action_seconds(action)))
            for digit, choice in sorted(node.choices.items()):
                if choice.goto is not None:
                    walk(choice.goto, (*trail, choice.goto), here)
                else:
                    chosen = choice.as_action()
                    assert chosen is not None  # noqa: S101 - a Choice is a goto or an action (validated)
                    paths.append(PathCost(trail, f"key {digit} -> {chosen.action.value}",
                                          here + self.action_seconds(chosen)))

        # the silent-caller probe is played at most once per call, on any path: it counts on every one
        probe = (sum(self.durations[p] for p in t.silent.prompts) + t.silent.wait_s) if t.silent else 0.0
        walk(t.first, (t.first,), probe)
        worst = max(paths, key=lambda p: p.seconds)
        if worst.seconds > limit:
            estimated = " (some prompt lengths estimated from their text)" if self.estimated else ""
            raise self.fail("bounded-duration", f"path {' -> '.join(worst.nodes)} ({worst.ending}) can take "
                            f"{worst.seconds:.1f} s{estimated}, over limits.max_path_seconds = {limit:g}; "
                            "shorten prompts or timeouts, or lower retries", worst.nodes[-1])
        return worst
