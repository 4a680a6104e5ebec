"""Exports: the watermark of each incremental export, and an index to read reports in creation order.

Revision ID: 0008_export_watermarks
Revises: 0006
Create Date: 2026-12-06 20:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reportscore.storage.models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = reportscore.storage.models.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "export_watermarks",
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("last_created_at", UTC(), nullable=True),
        sa.Column("last_report_id", sa.BigInteger(), nullable=True),
        sa.Column("pending_run_id", sa.String(length=64), nullable=True),
        sa.Column("pending_until", UTC(), nullable=True),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_export_watermarks")),
    )
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_created_at", table_name="jobs")
    op.drop_table("export_watermarks")
