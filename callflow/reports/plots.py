"""PNG charts of the summary report (matplotlib, Agg canvas: no display, no global pyplot state).

Each chart plots the figures of the report's text (callflow/reports/measures.py), never its own. Counts
get whole-number ticks; a pie leaves zero slices out and names them in its legend. "[EXAMPLE DATA]" marks
only a chart built from example data (units from an example agency registry): none of the four charts
here is, since calls, categories and statuses are the centre's own records."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from callflow.incidents.categories import CATEGORIES, CategoryClass
from callflow.incidents.model import IncidentStatus
from callflow.reports.measures import SERVICE_LEVEL_THRESHOLDS_S
from callflow.reports.render import pct
from callflow.reports.summary import SummaryReport

_COLOURS = {CategoryClass.EMERGENCY: "#c0392b", CategoryClass.NONEMERGENCY: "#2980b9"}
_STATUS_COLOURS = {IncidentStatus.WAIT: "#e67e22", IncidentStatus.HANDLING: "#f1c40f",
                   IncidentStatus.DONE: "#27ae60"}


def _figure(width: float = 8, height: float = 4.5) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _title(r: SummaryReport, what: str, *, example: bool = False) -> str:
    """``example``: the chart's figures come from example data (say so on the chart itself)."""
    mark = "  [EXAMPLE DATA]" if example else ""
    return f"{what}\n{r.period.first} .. {r.period.last}{mark}"


def _counts(axis: Axis) -> None:
    """Whole-number ticks on an axis of counts."""
    axis.set_major_locator(MaxNLocator(integer=True))


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def answer_time_distribution(r: SummaryReport, path: Path) -> Path:
    fig, ax = _figure(10, 4.5)
    values = list(r.answer_seconds)  # the answered offered calls of the text, not every record
    if not values:
        _empty(ax, "no answered calls in the period" if r.answer is not None else "no call records available")
    else:
        top = math.ceil(max(*values, SERVICE_LEVEL_THRESHOLDS_S[-1] + 5))
        width = max(1, math.ceil(top / 40))  # whole seconds per bar, at most 40 bars
        ax.hist(values, bins=range(0, top + 2 * width, width), color="#34495e")  # [a, a + width)
        for t, style in zip(SERVICE_LEVEL_THRESHOLDS_S, ("--", "-.", ":"), strict=True):
            level = r.answer.service_levels.get(t) if r.answer else None
            ax.axvline(t, color="#c0392b", linestyle=style, label=f"{t} s: {pct(level)} of offered")
        ax.set_xlabel(f"answer time (s, from arrival at the PBX; {width} s per bar)")
        ax.set_ylabel("answered calls")
        _counts(ax.yaxis)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)  # never over a bar
    n = f" (answered {r.answer.answered} of {r.answer.offered} offered)" if r.answer is not None else ""
    ax.set_title(_title(r, f"Answer-time distribution{n}"))
    fig.tight_layout()
    fig.savefig(path)
    return path


def service_level_per_hour(r: SummaryReport, path: Path, threshold_s: int = 15) -> Path:
    fig, ax = _figure(11, 4.5)
    if not r.answer_by_hour:
        _empty(ax, "no call records in the period")
    else:
        hours = list(range(24))
        levels = [(r.answer_by_hour[h].service_levels.get(threshold_s) or 0.0) * 100
                  if h in r.answer_by_hour else 0.0 for h in hours]
        bars = ax.bar(hours, levels, color="#16a085")
        # the offered calls of each hour above its bar: a 0 % hour is told apart from an hour without calls
        ax.bar_label(bars, labels=[str(r.answer_by_hour[h].offered) if h in r.answer_by_hour else ""
                                   for h in hours], padding=2, fontsize=8)
        ax.axhline(90, color="#c0392b", linestyle="--", label="NENA goal: 90 %")
        ax.plot([], [], " ", label="number above a bar: offered calls")
        ax.set_xticks(hours)
        ax.set_ylim(0, 110)
        ax.set_xlabel(f"hour of arrival ({r.period.timezone})")
        ax.set_ylabel(f"% of offered calls answered within {threshold_s} s")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(_title(r, f"Service level per hour (answered within {threshold_s} s)"))
    fig.tight_layout()
    fig.savefig(path)
    return path


def reports_per_category(r: SummaryReport, path: Path) -> Path:
    fig, ax = _figure(9, 6)
    counts = list(reversed(r.by_category))
    labels = [CATEGORIES[c.category].label_en for c in counts]
    bars = ax.barh(labels, [c.count for c in counts],
                   color=[_COLOURS[c.category.category_class] for c in counts])
    ax.bar_label(bars, padding=2)
    ax.set_xlabel("reports")
    _counts(ax.xaxis)
    handles = [Patch(color=col, label=f"{cls.value} ({r.by_class[cls]})") for cls, col in _COLOURS.items()]
    ax.legend(handles=handles, loc="lower right")
    ax.set_title(_title(r, f"Reports per category (total {r.total})"))
    fig.tight_layout()
    fig.savefig(path)
    return path


def status_shares(r: SummaryReport, path: Path) -> Path:
    fig, ax = _figure(8, 5)
    if r.total == 0:
        _empty(ax, "no reports in the period")
    else:
        shown = [s for s in IncidentStatus if r.by_status[s] > 0]  # a zero slice has no room for its label
        wedges, _ = ax.pie([r.by_status[s] for s in shown], colors=[_STATUS_COLOURS[s] for s in shown],
                           startangle=90, counterclock=False,
                           labels=[f"{r.by_status[s]}, {pct(r.status_share(s))}" for s in shown])
        handles = [Patch(color=_STATUS_COLOURS[s],
                         label=f"{s.value} ({s.label_id}): {r.by_status[s]}, {pct(r.status_share(s))}")
                   for s in IncidentStatus]
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        del wedges
        ax.set_xlabel(f"completion {pct(r.completion_rate)} (goal: above {pct(r.completion_goal)})")
    ax.set_title(_title(r, "Report status"))
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_plots(r: SummaryReport, directory: Path) -> list[Path]:
    """The four charts, as PNG files in ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        answer_time_distribution(r, directory / "answer-time-distribution.png"),
        service_level_per_hour(r, directory / "service-level-per-hour.png"),
        reports_per_category(r, directory / "reports-per-category.png"),
        status_shares(r, directory / "status-shares.png"),
    ]
