"""Moderation: the review queue's partial index, feedback history and stored reasons.

``reports`` gains its job's owner (filled in from ``jobs``) and its current outcome (``review_outcome``,
``reviewed_at``), so the queue index can start with the tenant and be partial on unreviewed, scored rows;
``report_feedback`` keeps every outcome ever recorded (corrections included) with the model that scored the
report; ``report_reasons`` stores a report's top feature contributions once computed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 12:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reportscore.storage.models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = reportscore.storage.models.base.UTCDateTime
REPORT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNREVIEWED = sa.text("review_outcome IS NULL AND score IS NOT NULL")


def upgrade() -> None:
    # added in place (no table copy on SQLite): NOT NULL with a default, then filled in from the jobs
    with op.batch_alter_table("reports", recreate="never") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=128), server_default="", nullable=False))
        batch.add_column(sa.Column("review_outcome", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("reviewed_at", UTC(), nullable=True))
    op.execute("UPDATE reports SET owner = (SELECT jobs.owner FROM jobs WHERE jobs.id = reports.job_id)")
    op.create_index(
        "ix_reports_queue",
        "reports",
        ["owner", sa.text("score DESC"), "id"],
        unique=False,
        sqlite_where=UNREVIEWED,
        postgresql_where=UNREVIEWED,
    )
    op.create_index("ix_reports_owner_client_report_id", "reports", ["owner", "client_report_id"], unique=False)
    op.create_table(
        "report_feedback",
        sa.Column("id", REPORT_ID, autoincrement=True, nullable=False),
        sa.Column("report_id", REPORT_ID, nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("previous_outcome", sa.String(length=16), nullable=True),
        sa.Column("reviewer", sa.String(length=128), nullable=False),
        sa.Column("reviewed_at", UTC(), nullable=False),
        sa.Column("recorded_at", UTC(), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.CheckConstraint("outcome IN ('actioned', 'dismissed')", name=op.f("ck_report_feedback_outcome")),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_report_feedback_report_id_reports"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_feedback")),
    )
    op.create_index("ix_report_feedback_report_id_id", "report_feedback", ["report_id", "id"], unique=False)
    op.create_index(
        "ix_report_feedback_model_version_recorded_at",
        "report_feedback",
        ["model_version", "recorded_at"],
        unique=False,
    )
    op.create_table(
        "report_reasons",
        sa.Column("report_id", REPORT_ID, nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=True),
        sa.Column("computed_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_report_reasons_report_id_reports"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("report_id", name=op.f("pk_report_reasons")),
    )


def downgrade() -> None:
    op.drop_table("report_reasons")
    op.drop_index("ix_report_feedback_model_version_recorded_at", table_name="report_feedback")
    op.drop_index("ix_report_feedback_report_id_id", table_name="report_feedback")
    op.drop_table("report_feedback")
    op.drop_index("ix_reports_owner_client_report_id", table_name="reports")
    op.drop_index("ix_reports_queue", table_name="reports")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("reviewed_at")
        batch.drop_column("review_outcome")
        batch.drop_column("owner")
