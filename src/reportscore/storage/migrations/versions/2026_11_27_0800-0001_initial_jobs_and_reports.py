"""Initial schema: jobs and reports with typed columns.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 08:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reportscore.storage.models.base

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = reportscore.storage.models.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "status",
            sa.Enum("PENDING", "STARTED", "SUCCESS", "FAILURE", name="jobstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("n_reports", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("started_at", UTC(), nullable=True),
        sa.Column("finished_at", UTC(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("predict_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=True),
        sa.Column("idempotency_expires_at", UTC(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_status_created_at", "jobs", ["status", "created_at"], unique=False)
    op.create_index("uq_jobs_owner_idempotency_key", "jobs", ["owner", "idempotency_key"], unique=True)
    op.create_table(
        "reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("client_report_id", sa.String(length=128), nullable=True),
        sa.Column("abuse_type", sa.String(length=3), nullable=False),
        sa.Column("report_text_len", sa.Integer(), nullable=False),
        sa.Column("profile_rating", sa.Float(), nullable=False),
        sa.Column("popularity", sa.SmallInteger(), nullable=False),
        sa.Column("lifetime_matches_created", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("scored_at", UTC(), nullable=True),
        sa.CheckConstraint("abuse_type IN ('MSG', 'PRF')", name=op.f("ck_reports_abuse_type")),
        sa.CheckConstraint("lifetime_matches_created >= 0", name=op.f("ck_reports_lifetime_matches_created")),
        sa.CheckConstraint("popularity BETWEEN 0 AND 5", name=op.f("ck_reports_popularity")),
        sa.CheckConstraint("report_text_len >= 0", name=op.f("ck_reports_report_text_len")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_reports_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("job_id", "position", name=op.f("uq_reports_job_id_position")),
    )


def downgrade() -> None:
    op.drop_table("reports")
    op.drop_index("uq_jobs_owner_idempotency_key", table_name="jobs")
    op.drop_index("ix_jobs_status_created_at", table_name="jobs")
    op.drop_table("jobs")
