"""Model versions and promotions: all SQL of the registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from reportscore.storage.models import ModelPromotion, ModelVersion


def get_version(session: Session, *, name: str, version: str) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    ).one_or_none()


def list_versions(session: Session, *, name: str) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).where(ModelVersion.name == name).order_by(ModelVersion.id)))


def insert_version(session: Session, **values: Any) -> None:
    session.execute(insert(ModelVersion).values(**values))


def champion(session: Session, *, name: str) -> ModelVersion | None:
    """The version named by the latest promotion (or rollback) of ``name``."""
    latest = session.scalars(
        select(ModelPromotion.version).where(ModelPromotion.name == name).order_by(ModelPromotion.id.desc()).limit(1)
    ).first()
    return None if latest is None else get_version(session, name=name, version=latest)


def history(session: Session, *, name: str) -> list[ModelPromotion]:
    return list(session.scalars(select(ModelPromotion).where(ModelPromotion.name == name).order_by(ModelPromotion.id)))


def insert_promotion(
    session: Session,
    *,
    name: str,
    version: str,
    previous_version: str | None,
    action: str,
    at: datetime,
    by: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.execute(
        insert(ModelPromotion).values(
            name=name,
            version=version,
            previous_version=previous_version,
            action=action,
            promoted_at=at,
            promoted_by=by,
            reason=reason,
            details=details,
        )
    )


def latest_promotion(session: Session, *, name: str) -> ModelPromotion | None:
    """The latest row of ``name``'s promotion history (it names the champion)."""
    return session.scalars(
        select(ModelPromotion).where(ModelPromotion.name == name).order_by(ModelPromotion.id.desc()).limit(1)
    ).first()
