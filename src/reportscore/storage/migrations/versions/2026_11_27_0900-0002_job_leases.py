"""Job leases and publish times, for the distributed reconciler.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reportscore.storage.models.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = reportscore.storage.models.base.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("leased_until", UTC(), nullable=True))
        batch.add_column(sa.Column("enqueued_at", UTC(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("enqueued_at")
        batch.drop_column("leased_until")
