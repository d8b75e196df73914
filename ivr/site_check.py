"""The IVR's rules inside ``siaga112 config check``: the tree a site file names must pass the loader's
safety rules, and its complaint categories must be ones the site knows. Registered on import."""

from __future__ import annotations

from collections.abc import Iterable

from callflow.siteconfig import CheckContext, LoadedSite, Problem, register_check
from ivr.rules import TreeError, load_tree


@register_check
def check_ivr_tree(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    del ctx
    ivr = loaded.site.ivr
    path = loaded.resolve(ivr.tree)
    if not ivr.enabled or not path.is_file():
        return  # a missing tree is reported by the site's own IVR check
    try:
        checked = load_tree(path)
    except TreeError as exc:
        text = str(exc).split(": ", 1)[1] if ": " in str(exc) else str(exc)
        yield Problem(exc.source, exc.line or 1, f"IVR tree refused: {text}",
                      f"fix the tree, then run `siaga112 ivr check {path}`")
        return
    known = set(loaded.site.categories.nonemergency)
    missing: dict[str, list[str]] = {}  # category -> "node key N" places that send callers there
    for name, node in checked.tree.nodes.items():
        for digit, choice in node.choices.items():
            category = choice.category
            if category is not None and category.value not in known:
                missing.setdefault(category.value, []).append(f"{name!r} key {digit}")
    if missing:  # one problem, not one per key: a wrong category list is one mistake
        listed = "; ".join(f"{cat!r} (from {', '.join(where)})" for cat, where in sorted(missing.items()))
        yield loaded.problem(("ivr", "tree"),
                             f"the IVR tree sends callers to categories this site does not list as "
                             f"non-emergency: {listed}",
                             "add them to [categories] nonemergency or change the tree")
