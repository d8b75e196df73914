"""Supervisors' API: reports, exports and recordings (each export and download is audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import FileResponse

from callflow.console.accounts import Session
from callflow.console.audit import AuditAction, AuditOutcome
from callflow.console.models import RecordingInfo, ReportSummary
from callflow.console.providers import NotFound, ProviderUnavailable, Refused
from callflow.console.roles import SUPERVISORS
from callflow.console.security import client_address, context, require

router = APIRouter(prefix="/api", tags=["supervision"])

Supervisor = Annotated[Session, Depends(require(SUPERVISORS))]
Exporter = Annotated[Session, Depends(require(SUPERVISORS, audited=AuditAction.EXPORT))]
Listener = Annotated[Session, Depends(require(SUPERVISORS, audited=AuditAction.RECORDING_DOWNLOAD))]
RecordingId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z_.\-]+$")]


def _period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "start/end: give a time zone (e.g. 2026-11-22T00:00:00+08:00)")
    if end <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end: must be after start")
    return start, end


@router.get("/reports/summary", response_model=ReportSummary)
async def report_summary(request: Request, _: Supervisor, start: datetime, end: datetime) -> ReportSummary:
    """The centre's figures for incidents created and calls that arrived in ``[start, end)``: reports per
    class/category/status, completion, answer time, answer-to-dispatch and response times."""
    start, end = _period(start, end)
    return await context(request).providers.reports.summary(start, end)


@router.get("/reports/export", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "the period's records as CSV"}})
async def report_export(request: Request, session: Exporter, start: datetime, end: datetime) -> Response:
    """The call records of calls that arrived in ``[start, end)`` as CSV (one row per call; the columns of
    ``siaga112 calls export``). Supervisors only; every export, refused or not, is audited."""
    start, end = _period(start, end)
    ctx = context(request)
    target = f"{start.isoformat()}/{end.isoformat()}"
    audit = {"target": target, "address": client_address(request)}
    try:
        data = await ctx.providers.reports.export_csv(start, end)
    except ProviderUnavailable:
        await ctx.audit.record(session.user.name, AuditAction.EXPORT, AuditOutcome.UNAVAILABLE, **audit)
        raise
    await ctx.audit.record(session.user.name, AuditAction.EXPORT, AuditOutcome.OK, **audit,
                           detail=f"{len(data)} bytes")
    filename = f"siaga112-{start.date().isoformat()}-{end.date().isoformat()}.csv"
    return Response(data, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/recordings", response_model=list[RecordingInfo])
async def recordings(request: Request, _: Supervisor,
                     linkedid: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9A-Za-z.\-]+$")]
                     = None) -> list[RecordingInfo]:
    return list(await context(request).providers.recordings.recordings(linkedid))


@router.get("/recordings/{recording_id}/download", response_class=FileResponse,
            responses={200: {"content": {"audio/wav": {}}}})
async def download_recording(recording_id: RecordingId, request: Request,
                             session: Listener) -> FileResponse:
    """One recording's audio (supervisors only; every download attempt is audited)."""
    ctx = context(request)
    audit = {"target": recording_id, "address": client_address(request)}
    try:
        rec = await ctx.providers.recordings.open(recording_id, session.user.name)
    except ProviderUnavailable:
        await ctx.audit.record(session.user.name, AuditAction.RECORDING_DOWNLOAD, AuditOutcome.UNAVAILABLE,
                               **audit)
        raise
    except NotFound as exc:
        await ctx.audit.record(session.user.name, AuditAction.RECORDING_DOWNLOAD, AuditOutcome.FAILED,
                               **audit, detail="not found")
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"recording_id: no recording {recording_id!r}") from exc
    except Refused as exc:
        await ctx.audit.record(session.user.name, AuditAction.RECORDING_DOWNLOAD, AuditOutcome.FAILED,
                               **audit, detail=exc.message)
        raise
    await ctx.audit.record(session.user.name, AuditAction.RECORDING_DOWNLOAD, AuditOutcome.OK, **audit,
                           detail=rec.filename)
    return FileResponse(rec.path, media_type=rec.media_type, filename=rec.filename)
