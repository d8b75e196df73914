"""The centre's numbers: measures over incidents and call records, the summary report and its charts."""

from callflow.reports.measures import (
    AnswerTimeStats,
    DurationStats,
    GroupMeasures,
    answer_time_stats,
    duration_stats,
    group_measures,
    percentile,
    whole_percent,
)
from callflow.reports.sources import CallRecordSource, InMemoryCallRecords
from callflow.reports.summary import Period, SummaryConfig, SummaryReport, build_summary, summarize

__all__ = [
    "AnswerTimeStats",
    "CallRecordSource",
    "DurationStats",
    "GroupMeasures",
    "InMemoryCallRecords",
    "Period",
    "SummaryConfig",
    "SummaryReport",
    "answer_time_stats",
    "build_summary",
    "duration_stats",
    "group_measures",
    "percentile",
    "summarize",
    "whole_percent",
]
