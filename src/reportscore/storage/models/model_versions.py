"""Registered model versions and the promotion history that says which one is the champion."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reportscore.storage.models.base import Base, UTCDateTime


class ModelVersion(Base):
    """One registered version of the served model: artifact location, checksum, schema and reference data."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    format: Mapped[str] = mapped_column(String(32), nullable=False)
    artifact_uri: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    feature_schema: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    metadata_doc: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    reference: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    reference_source: Mapped[str] = mapped_column(String(16), nullable=False)
    """``sample``: from the data the team supplied; ``synthetic``: from the built-in generator."""
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    registered_by: Mapped[str] = mapped_column(String(128), nullable=False)

    __table_args__ = (UniqueConstraint("name", "version"),)


class ModelPromotion(Base):
    """An append-only history: the latest row for a model name names its champion."""

    __tablename__ = "model_promotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    previous_version: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    promoted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    promoted_by: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    """Why an automatic change was made (the policy, in words, with its numbers); null for a person's command."""
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The numbers behind ``reason`` (metric, values, labelled counts, margin), for tools."""

    __table_args__ = (Index("ix_model_promotions_name_id", "name", "id"),)
