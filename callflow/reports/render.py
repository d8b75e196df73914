"""The summary report as text (for people), JSON (for programs) and CSV (for spreadsheets).

Shares of reports are printed as whole percents, rounded half up, as the centre publishes them; JSON
also carries the exact fractions."""

from __future__ import annotations

import json
from typing import Any

from callflow.csvsafe import write_rows
from callflow.incidents.categories import CATEGORIES, CategoryClass
from callflow.incidents.model import IncidentStatus
from callflow.reports.measures import (
    AnswerTimes,
    CallbackMeasures,
    DurationStats,
    GroupMeasures,
    NuisanceMeasures,
    whole_percent,
)
from callflow.reports.summary import SummaryReport

_CLASS_LABEL = {CategoryClass.EMERGENCY: "emergency (kedaruratan)",
                CategoryClass.NONEMERGENCY: "non-emergency (non kedaruratan)"}


def pct(fraction: float | None) -> str:
    value = whole_percent(fraction)
    return "n/a" if value is None else f"{value} %"


def _secs(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _duration_line(d: DurationStats) -> str:
    if d.count == 0:
        return "no data"
    within = f"within {_secs(d.target_s)}: {pct(d.share_within)}  " if d.target_s is not None else ""
    return (f"n={d.count}  {within}mean {_secs(d.mean)}  median {_secs(d.median)}  p90 {_secs(d.p90)}  "
            f"max {_secs(d.max)}")


def _reached(value: float | None) -> str:
    return "-" if value is None else _secs(value)


def answer_lines(a: AnswerTimes) -> list[str]:
    """The answer-time figures as text (``report summary``)."""
    p = a.percentiles_s
    return [
        f"  citizen calls {a.citizen_calls}  short abandons {a.short_abandons} (counted apart)  offered "
        f"{a.offered}  answered {a.answered}  abandoned {a.abandoned}  unanswered {a.unanswered}",
        "  service level: " + "  ".join(f"<= {t} s {pct(v)}" for t, v in a.service_levels.items())
        + "   (NFPA 90 % <= 10 s; NENA 90 % <= 15 s, 95 % <= 20 s)",
        "  over offered calls: " + "  ".join(f"p{k} {_reached(v)}" for k, v in p.items())
        + f"  ('-': not reached);  mean of answered calls {_secs(a.mean_answer_s)}",
        f"  time in the IVR: median {_secs(a.ivr.median)}  mean {_secs(a.ivr.mean)}  (n={a.ivr.count})",
    ]


def nuisance_line(n: NuisanceMeasures) -> str:
    """The nuisance share by local hour: ``08: 2/3 (67 %)``."""
    return ("nuisance share (offered calls tagged prank, silent or accidental) by hour: "
            + (", ".join(f"{h}: {v.nuisance}/{v.calls} ({pct(v.share)})" for h, v in n.by_hour.items())
               or "none"))


def top_numbers_line(n: NuisanceMeasures, *, show_numbers: bool) -> str:
    shown = n.top(show_numbers=show_numbers)
    return ("top repeat numbers (nuisance-tagged calls" + ("" if show_numbers else "; masked") + "): "
            + (", ".join(f"{num} {c}" for num, c in shown) or "none"))


def callback_lines(c: CallbackMeasures) -> list[str]:
    d = c.hangup_to_reached
    return [
        f"  tasks {c.tasks}  attempts {c.attempts} ({c.unanswered_attempts} unanswered)  citizens reached "
        f"{c.citizens_reached} (taken by an operator {c.taken_by_operator})",
        f"  hang-up -> citizen reached: {_duration_line(d)}",
    ]


def call_sections(r: SummaryReport, *, show_numbers: bool) -> list[str]:
    """Answer times over all offered calls and over genuine calls, the nuisance share, callbacks."""
    out = ["Answer time (arrival at the PBX -> answered by an operator; time in the IVR included)"]
    out.extend(["  n/a: no call records available"] if r.answer is None else answer_lines(r.answer))
    if r.nuisance is not None:
        out.append("Answer time over genuine calls (calls tagged prank, silent or accidental left out)")
        out.extend(answer_lines(r.nuisance.genuine))
        out.append(f"  {nuisance_line(r.nuisance)}")
        out.append(f"  {top_numbers_line(r.nuisance, show_numbers=show_numbers)}")
    out.append("Callbacks (placed by the centre; not offered calls)")
    out.extend(["  n/a: no call records available"] if r.callbacks is None else callback_lines(r.callbacks))
    return out


def render_text(r: SummaryReport, *, show_numbers: bool = False) -> str:
    out: list[str] = []
    add = out.append
    add(f"siaga112 summary {r.period.first} .. {r.period.last} ({r.period.timezone})")
    if r.example_units:
        add("*** EXAMPLE DATA: dispatches to units of an example agency registry ***")
    add("")
    add(f"Reports: {r.total}")
    for cls in CategoryClass:
        add(f"  {_CLASS_LABEL[cls]:<34} {r.by_class[cls]:>6}  {pct(r.class_share(cls)):>6}")
    add("")
    add("Top categories")
    for cls in CategoryClass:
        tops = ", ".join(f"{CATEGORIES[c.category].label_en} {c.count} ({pct(c.share_of_class)} of class)"
                         for c in r.top[cls])
        add(f"  {cls.value:<13} {tops or '-'}")
    add("")
    add("Reports per category                              count  of all  of class")
    for cls in CategoryClass:
        for c in (c for c in r.by_category if c.category.category_class is cls):
            info = CATEGORIES[c.category]
            add(f"  {c.category.value:<17} {info.label_id:<29} {c.count:>6}  {pct(c.share_of_total):>6}  "
                f"{pct(c.share_of_class):>8}")
    add("")
    add("Status")
    for s in IncidentStatus:
        label = f"({s.label_id})"
        add(f"  {s.value:<9} {label:<11} {r.by_status[s]:>6}  {pct(r.status_share(s)):>6}")
    verdict = "meets" if r.completion_meets_goal else "below"
    add(f"Completion rate (done): {pct(r.completion_rate)}  ({verdict} the goal of above "
        f"{pct(r.completion_goal)})")
    add("")
    out.extend(call_sections(r, show_numbers=show_numbers))
    add("Answer -> dispatch (NFPA 1225: 90 % within 60 s)")
    add(f"  {_duration_line(r.answer_to_dispatch)}")
    add(f"Dispatch -> on scene (target {r.config.response_target_min:g} min)")
    add(f"  {_duration_line(r.response)}")
    for name, groups in r.groups.items():
        add("")
        add(f"Per {name}: reports  done  completion  answer median  answer->dispatch <=60s  "
            "on scene within target")
        for key, g in groups.items():
            label = key
            if name == "operator" and (names := [a for a in r.operator_accounts.get(key, ()) if a != key]):
                label = f"{key} ({', '.join(names)})"  # the operator's id, the account names beside it
            add(f"  {label:<18} {g.reports:>6} {g.done:>5}  {pct(g.completion_rate):>10}  "
                f"{_secs(g.answer_time.median):>13}  {pct(g.answer_to_dispatch.share_within):>22}  "
                f"{pct(g.response.share_within):>10}")
    if r.notes:
        add("")
        out.extend(f"Note: {n}" for n in r.notes)
    return "\n".join(out) + "\n"


def _duration_dict(d: DurationStats) -> dict[str, Any]:
    return {"count": d.count, "target_s": d.target_s, "within_target": d.within_target,
            "share_within": d.share_within, "percent_within": whole_percent(d.share_within),
            "mean_s": d.mean, "median_s": d.median, "p90_s": d.p90, "max_s": d.max}


def _group_dict(g: GroupMeasures) -> dict[str, Any]:
    return {"reports": g.reports, "done": g.done, "completion_rate": g.completion_rate,
            "answer_time": _duration_dict(g.answer_time),
            "answer_to_dispatch": _duration_dict(g.answer_to_dispatch),
            "response": _duration_dict(g.response)}


def as_dict(r: SummaryReport, *, show_numbers: bool = False) -> dict[str, Any]:
    """``show_numbers``: the top repeat numbers unmasked (supervisors only)."""
    return {
        "period": {"from": r.period.first.isoformat(), "to": r.period.last.isoformat(),
                   "timezone": r.period.timezone, "since_utc": r.period.since.isoformat(),
                   "until_utc": r.period.until.isoformat()},
        "example_data": r.example_units,
        "total": r.total,
        "classes": {cls.value: {"count": r.by_class[cls], "share": r.class_share(cls),
                                "percent": whole_percent(r.class_share(cls))} for cls in CategoryClass},
        "categories": [{"id": c.category.value, "label_id": CATEGORIES[c.category].label_id,
                        "label_en": CATEGORIES[c.category].label_en,
                        "class": c.category.category_class.value, "count": c.count,
                        "share": c.share_of_total, "percent": whole_percent(c.share_of_total),
                        "share_of_class": c.share_of_class,
                        "percent_of_class": whole_percent(c.share_of_class)} for c in r.by_category],
        "top": {cls.value: [c.category.value for c in r.top[cls]] for cls in CategoryClass},
        "status": {s.value: {"count": r.by_status[s], "share": r.status_share(s),
                             "percent": whole_percent(r.status_share(s))} for s in IncidentStatus},
        "completion": {"rate": r.completion_rate, "percent": whole_percent(r.completion_rate),
                       "goal": r.completion_goal, "meets_goal": r.completion_meets_goal},
        "answer_time": r.answer.as_dict() if r.answer is not None else None,
        "answer_time_by_hour": {f"{h:02d}": a.as_dict() for h, a in r.answer_by_hour.items()},
        "callbacks": r.callbacks.as_dict() if r.callbacks is not None else None,
        **(r.nuisance.as_dict(show_numbers=show_numbers) if r.nuisance is not None
           else {"genuine": None, "nuisance_by_hour": {}, "top_repeat_numbers": []}),
        "answer_to_dispatch": _duration_dict(r.answer_to_dispatch),
        "response": {**_duration_dict(r.response), "target_min": r.config.response_target_min},
        "groups": {name: {k: _group_dict(g) for k, g in groups.items()} for name, groups in r.groups.items()},
        "operator_accounts": {k: list(v) for k, v in r.operator_accounts.items()},
        "notes": list(r.notes),
    }


def render_json(r: SummaryReport, *, show_numbers: bool = False) -> str:
    return json.dumps(as_dict(r, show_numbers=show_numbers), indent=2, ensure_ascii=False) + "\n"


def _flatten(prefix: str, value: Any, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, rows)
    elif isinstance(value, list) and value and isinstance(value[0], dict) and "id" in value[0]:
        for item in value:
            _flatten(f"{prefix}.{item['id']}", {k: v for k, v in item.items() if k != "id"}, rows)
    elif isinstance(value, list) and value and isinstance(value[0], dict):  # ranked (top repeat numbers)
        for rank, item in enumerate(value, 1):
            _flatten(f"{prefix}.{rank}", item, rows)
    elif isinstance(value, list):
        rows.append((prefix, ";".join(str(v) for v in value)))
    else:
        rows.append((prefix, "" if value is None else str(value)))


def render_csv(r: SummaryReport, *, show_numbers: bool = False) -> str:
    """Long format: one ``metric,value`` row per figure (``categories.fire.count,123``)."""
    rows: list[tuple[str, str]] = []
    _flatten("", as_dict(r, show_numbers=show_numbers), rows)
    return write_rows(("metric", "value"), rows)
