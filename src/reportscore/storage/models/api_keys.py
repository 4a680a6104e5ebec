"""API keys: who may call the HTTP API, for which tenant, with which scopes and rate."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from reportscore.storage.models.base import Base, UTCDateTime


class ApiKey(Base):
    """One key. Only the public ``prefix`` and the sha256 of the whole key are stored, never the key itself."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    """The key's public id (``rsk_<prefix>_<secret>``): how a request's key is found, and what ``revoke`` takes."""
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    """sha256 (hex) of the whole key."""
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    rate: Mapped[float | None] = mapped_column(Float)
    """Requests per second allowed to this key (None: unlimited)."""
    burst: Mapped[int | None] = mapped_column(Integer)
    """Requests the key may send at once above its rate."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
