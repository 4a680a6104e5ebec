"""Push callbacks: the job's callback URL and the persisted delivery outbox.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 13:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reportscore.storage.models.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = reportscore.storage.models.base.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("callback_url", sa.String(length=2048), nullable=True))
    op.create_table(
        "callback_deliveries",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "delivered", "failed", name="callbackstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("next_attempt_at", UTC(), nullable=False),
        sa.Column("leased_until", UTC(), nullable=True),
        sa.Column("last_attempt_at", UTC(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", UTC(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_callback_deliveries_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_callback_deliveries")),
    )
    op.create_index(
        "ix_callback_deliveries_status_next_attempt_at",
        "callback_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_callback_deliveries_status_next_attempt_at", table_name="callback_deliveries")
    op.drop_table("callback_deliveries")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("callback_url")
