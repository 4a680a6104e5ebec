"""Drift: per (model version, window, feature, bin) counts of scored reports, kept as reports are scored.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 22:20:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reportscore.storage.models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = reportscore.storage.models.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "drift_counts",
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("window_start", UTC(), nullable=False),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("bin", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("model_version", "window_start", "feature", "bin", name=op.f("pk_drift_counts")),
    )
    # Retention: expired idempotency keys are found without a scan.
    op.create_index("ix_jobs_idempotency_expires_at", "jobs", ["idempotency_expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_idempotency_expires_at", table_name="jobs")
    op.drop_table("drift_counts")
