"""Shadow set and comparison responses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel

from reportscore.storage.repositories.shadow import Shadow


class ShadowOut(BaseModel):
    """A version scored beside the champion on ``fraction`` of the reports."""

    version: str
    fraction: float
    started_at: datetime
    started_by: str


class ShadowList(BaseModel):
    """The shadow set after the change."""

    shadows: list[ShadowOut]

    @classmethod
    def of(cls, shadows: Sequence[Shadow]) -> ShadowList:
        return cls(
            shadows=[
                ShadowOut(version=s.version, fraction=s.fraction, started_at=s.started_at, started_by=s.started_by)
                for s in shadows
            ]
        )
