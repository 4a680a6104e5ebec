"""Export reports: read them page by page in ``(created_at, id)`` order, write one file per day and run, and, for
an incremental export, move its watermark only once the files are durably written.

Memory stays bounded by one page (``page_size`` rows) plus the open file's writer, however many reports there are.

Exactly once, for an incremental export named ``name``:

* its range ends before the oldest job still being scored and ``settle_s`` seconds ago, so no report that can
  still be inserted into it or change its score is left behind;
* the run records its id and range before writing; its files are named after the run
  (``date=YYYY-MM-DD/part-<run id>.<ext>``), so runs never overwrite each other;
* the watermark moves, and the pending run is cleared, in one transaction after every file is published. A run
  that dies before that leaves its range pending; the next run writes that same range again under the same names
  (replacing what the dead run left) before it starts a new one. A run that starts while another is still writing
  also writes that range under the same names; whichever finishes second fails with :class:`RunSupersededError`
  and duplicates nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from reportscore.export.schema import SCHEMA, to_batch
from reportscore.export.sinks import FORMATS, PartFile, Target
from reportscore.storage.db import Database
from reportscore.storage.repositories import exports as repo
from reportscore.storage.repositories.exports import ExportKey, ExportRange, RunSupersededError

__all__ = ["ExportResult", "RunSupersededError", "export_reports"]

_CREATED_AT = SCHEMA.names.index("created_at")
_REPORT_ID = SCHEMA.names.index("report_id")


@dataclass
class ExportResult:
    run_id: str
    rows: int = 0
    files: list[str] = field(default_factory=list)
    until: datetime | None = None
    last: ExportKey | None = None
    resumed: bool = False
    """An incremental run that wrote again the range of a run that had died."""


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _settled_until(session: Session, *, now: datetime, until: datetime | None, settle_s: float) -> datetime:
    """The end of a new incremental range: nothing still being scored or possibly not yet committed is inside."""
    oldest_unfinished = repo.oldest_unfinished_created_at(session)
    bounds = [now - timedelta(seconds=settle_s)]
    bounds += [b for b in (until, oldest_unfinished) if b is not None]
    return min(bounds)


def export_reports(
    *,
    db: Database,
    target: Target,
    fmt: str,
    since: datetime | None = None,
    until: datetime | None = None,
    incremental_name: str | None = None,
    settle_s: float = 60.0,
    page_size: int = 10_000,
    now: datetime | None = None,
    on_total: Callable[[int], None] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> ExportResult:
    """Export the reports whose job was created in ``[since, until)``; with ``incremental_name``, only those after
    that export's watermark (``since`` then applies to its first run only)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    now = now or datetime.now(UTC)
    after: ExportKey | None = None
    if incremental_name is None:
        result = ExportResult(run_id=new_run_id(now), until=until or now)
    else:
        # Deciding between resuming the pending range and starting a new one happens under the watermark's lock,
        # so two runs that start at once cannot both start a new range.
        with db.write() as session:
            watermark = repo.read_watermark(session, incremental_name, for_update=True)
            if watermark is not None:
                after = watermark.last
                since = since if after is None else None
            if watermark is not None and watermark.pending_run_id and watermark.pending_until:
                result = ExportResult(run_id=watermark.pending_run_id, until=watermark.pending_until, resumed=True)
            else:
                settled = _settled_until(session, now=now, until=until, settle_s=settle_s)
                result = ExportResult(run_id=new_run_id(now), until=settled)
                repo.begin_run(session, incremental_name, run_id=result.run_id, until=settled, now=now)
    assert result.until is not None
    rng = ExportRange(since=since, until=result.until, after=after)
    if on_total is not None:
        with db.read() as session:
            on_total(repo.count_reports(session, rng))

    _write_pages(db, target, fmt, rng, page_size, result, on_rows)

    if incremental_name is not None:
        with db.write() as session:
            repo.complete_run(session, incremental_name, run_id=result.run_id, last=result.last, now=datetime.now(UTC))
    return result


def _write_pages(
    db: Database,
    target: Target,
    fmt: str,
    rng: ExportRange,
    page_size: int,
    result: ExportResult,
    on_rows: Callable[[int], None] | None,
) -> None:
    """Stream ``rng`` into one file per day, each page in a read transaction of its own."""
    current: PartFile | None = None
    current_day: date | None = None
    try:
        while True:
            with db.read() as session:
                rows = repo.export_page(session, rng, limit=page_size)
            if not rows:
                break
            start = 0
            while start < len(rows):
                day = rows[start][_CREATED_AT].date()
                end = start
                while end < len(rows) and rows[end][_CREATED_AT].date() == day:
                    end += 1
                if day != current_day:
                    if current is not None:
                        current.commit()
                        result.files.append(current.relative)
                    current_day = day
                    current = PartFile(
                        target, f"date={day.isoformat()}/part-{result.run_id}.{fmt}", fmt=fmt, schema=SCHEMA
                    )
                assert current is not None
                current.write(to_batch(rows[start:end]))
                start = end
            last = rows[-1]
            result.last = ExportKey(created_at=last[_CREATED_AT], report_id=last[_REPORT_ID])
            result.rows += len(rows)
            rng = ExportRange(since=rng.since, until=rng.until, after=result.last)
            if on_rows is not None:
                on_rows(len(rows))
        if current is not None:
            current.commit()
            result.files.append(current.relative)
            current = None
    finally:
        if current is not None:
            current.abort()
