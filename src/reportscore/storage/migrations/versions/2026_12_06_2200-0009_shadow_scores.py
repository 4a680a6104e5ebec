"""Shadow challengers: the shadow set and the scores shadows gave reports.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 22:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reportscore.storage.models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = reportscore.storage.models.base.UTCDateTime
REPORT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_shadows",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("fraction", sa.Float(), nullable=False),
        sa.Column("started_at", UTC(), nullable=False),
        sa.Column("started_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_model_shadows")),
    )
    op.create_table(
        "shadow_scores",
        sa.Column("report_id", REPORT_ID, nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("scored_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_shadow_scores_report_id_reports"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("report_id", "model_version", name=op.f("pk_shadow_scores")),
    )
    op.create_index(
        "ix_shadow_scores_model_version_report_id", "shadow_scores", ["model_version", "report_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_shadow_scores_model_version_report_id", table_name="shadow_scores")
    op.drop_table("shadow_scores")
    op.drop_table("model_shadows")
