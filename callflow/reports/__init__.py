"""The centre's numbers: measures over incidents and call records, the summary report and its charts."""

from callflow.reports.measures import (
    ANSWER_TIME_RULE,
    AnswerTimes,
    CallbackMeasures,
    CallbackTaskFacts,
    DurationStats,
    GroupMeasures,
    answer_times,
    answer_times_by,
    callback_measures,
    duration_stats,
    group_measures,
    percentile,
    whole_percent,
)
from callflow.reports.sources import CallRecordSource, InMemoryCallRecords
from callflow.reports.summary import Period, SummaryConfig, SummaryReport, build_summary, summarize

__all__ = [
    "ANSWER_TIME_RULE",
    "AnswerTimes",
    "CallRecordSource",
    "CallbackMeasures",
    "CallbackTaskFacts",
    "DurationStats",
    "GroupMeasures",
    "InMemoryCallRecords",
    "Period",
    "SummaryConfig",
    "SummaryReport",
    "answer_times",
    "answer_times_by",
    "build_summary",
    "callback_measures",
    "duration_stats",
    "group_measures",
    "percentile",
    "summarize",
    "whole_percent",
]
