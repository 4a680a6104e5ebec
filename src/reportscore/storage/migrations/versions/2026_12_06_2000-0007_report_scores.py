"""Scores in their own narrow table: moved out of ``reports``, with the moderation queue's index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 20:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reportscore.storage.models.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = reportscore.storage.models.base.UTCDateTime
REPORT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# as the model renders ``reviewed IS false`` on each database, so the queue query matches the partial index
QUEUED_SQLITE = sa.text("reviewed IS 0")
QUEUED_PG = sa.text("reviewed IS false")
UNREVIEWED = sa.text("review_outcome IS NULL AND score IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "report_scores",
        sa.Column("report_id", REPORT_ID, nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("scored_at", UTC(), nullable=True),
        sa.Column("reviewed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_report_scores_report_id_reports"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("report_id", name=op.f("pk_report_scores")),
    )
    op.execute(
        "INSERT INTO report_scores (report_id, owner, score, model_version, scored_at, reviewed) "
        "SELECT id, owner, score, model_version, scored_at, review_outcome IS NOT NULL FROM reports "
        "WHERE score IS NOT NULL"
    )
    op.create_index(
        "ix_report_scores_queue",
        "report_scores",
        ["owner", sa.text("score DESC"), "report_id"],
        unique=False,
        sqlite_where=QUEUED_SQLITE,
        postgresql_where=QUEUED_PG,
    )
    op.drop_index("ix_reports_queue", table_name="reports")
    # In place, never a table copy: on SQLite (3.35+ drops columns natively) a copy of ``reports`` would drop the
    # old table, and with foreign keys on that deletes every row referencing it, the scores just moved included.
    for column in ("scored_at", "model_version", "score"):
        op.drop_column("reports", column)


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("model_version", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("scored_at", UTC(), nullable=True))
    op.execute(
        "UPDATE reports SET score = s.score, model_version = s.model_version, scored_at = s.scored_at "
        "FROM report_scores AS s WHERE s.report_id = reports.id"
    )
    op.create_index(
        "ix_reports_queue",
        "reports",
        ["owner", sa.text("score DESC"), "id"],
        unique=False,
        sqlite_where=UNREVIEWED,
        postgresql_where=UNREVIEWED,
    )
    op.drop_index("ix_report_scores_queue", table_name="report_scores")
    op.drop_table("report_scores")
