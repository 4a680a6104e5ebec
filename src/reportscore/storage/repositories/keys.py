"""API keys: all SQL of authentication."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, insert, select, update
from sqlalchemy.orm import Session

from reportscore.storage.models import ApiKey


def insert_key(
    session: Session,
    *,
    tenant: str,
    name: str,
    prefix: str,
    key_hash: str,
    scopes: list[str],
    rate: float | None,
    burst: int | None,
    at: datetime,
) -> None:
    session.execute(
        insert(ApiKey).values(
            tenant=tenant,
            name=name,
            prefix=prefix,
            hash=key_hash,
            scopes=scopes,
            rate=rate,
            burst=burst,
            created_at=at,
        )
    )


def get_by_prefix(session: Session, *, prefix: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()


def list_keys(session: Session, *, tenant: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if tenant is not None:
        query = query.where(ApiKey.tenant == tenant)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def any_key(session: Session) -> bool:
    """Whether the api_keys table holds any row (revoked keys included)."""
    return bool(session.scalar(select(exists().select_from(ApiKey))))


def revoke(session: Session, *, prefix: str, at: datetime) -> bool:
    """Mark the key revoked; False when no such active key."""
    result = session.execute(
        update(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None)).values(revoked_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
