"""``--persist``: each scored chunk stored as a finished job with its reports, like a synchronously scored request.

Job ids are deterministic (uuid5 of the run's key: input sha256, chunk size, model; and the chunk's index), and a
chunk whose job exists is not stored again: a resumed or repeated run never duplicates a job or a report.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from reportscore.drift import service as drift
from reportscore.storage.db import Database
from reportscore.storage.repositories import jobs as jobs_repo

JOB_NAMESPACE: Final = uuid.UUID("5d0f7a52-3b1e-5c38-9a51-7c1e0b6a2f44")
"""The uuid5 namespace of file-scoring job ids."""


def chunk_job_id(run_key: str, index: int) -> str:
    return str(uuid.uuid5(JOB_NAMESPACE, f"{run_key}:{index}"))


class ChunkJobs:
    """Stores a run's chunks as SUCCESS jobs owned by ``owner``, scored by ``model_name`` ``model_version``."""

    def __init__(self, *, db: Database, owner: str, model_name: str, model_version: str, run_key: str) -> None:
        self.db = db
        self.owner = owner
        self.model_name = model_name
        self.model_version = model_version
        self.run_key = run_key

    def store(
        self,
        *,
        index: int,
        columns: dict[str, npt.NDArray[Any]],
        report_ids: Sequence[str | None],
        scores: npt.NDArray[np.float64],
        predict_ms: float,
    ) -> bool:
        """Store chunk ``index`` as one job in one transaction; False when it was stored before."""
        job_id = chunk_job_id(self.run_key, index)
        names = list(columns)
        values = [columns[name].tolist() for name in names]
        reports = [
            {**dict(zip(names, row, strict=True)), "report_id": rid}
            for row, rid in zip(zip(*values, strict=True), report_ids, strict=True)
        ]
        now = datetime.now(UTC)
        drift_counts = drift.batch_counts(
            self.db,
            model_name=self.model_name,
            model_version=self.model_version,
            columns=columns,
            scores=scores,
            scored_at=now,
        )
        with self.db.write() as session:
            if jobs_repo.get_job(session, job_id) is not None:
                return False
            drift.record(session, drift_counts)
            job = jobs_repo.ScoredJob(
                job_id=job_id,
                owner=self.owner,
                reports=reports,
                scores=scores.tolist(),
                model_name=self.model_name,
                model_version=self.model_version,
                predict_ms=predict_ms,
                created_at=now,
            )
            jobs_repo.insert_scored_jobs(session, jobs=[job], finished_at=now)
        return True
