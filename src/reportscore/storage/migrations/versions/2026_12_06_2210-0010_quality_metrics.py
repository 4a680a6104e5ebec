"""Online quality: outcome counts per model version, hour and score bin, label delays, and the reason of an
automatic rollback in the promotion history.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-06 22:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reportscore.storage.models.base

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = reportscore.storage.models.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "quality_bins",
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("window_start", UTC(), nullable=False),
        sa.Column("bin", sa.SmallInteger(), nullable=False),
        sa.Column("positives", sa.BigInteger(), nullable=False),
        sa.Column("negatives", sa.BigInteger(), nullable=False),
        sa.Column("score_sum", sa.Float(), nullable=False),
        sa.Column("score_sq_sum", sa.Float(), nullable=False),
        sa.Column("positive_score_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "model_version", "window_start", "bin", name=op.f("pk_quality_bins")),
    )
    op.create_table(
        "quality_label_delays",
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("window_start", UTC(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("reports", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "model_name", "model_version", "window_start", "bucket", name=op.f("pk_quality_label_delays")
        ),
    )
    with op.batch_alter_table("model_promotions") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("details", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_promotions") as batch:
        batch.drop_column("details")
        batch.drop_column("reason")
    op.drop_table("quality_label_delays")
    op.drop_table("quality_bins")
