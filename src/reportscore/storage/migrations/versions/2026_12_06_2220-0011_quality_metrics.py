"""Online quality: outcome counts per model version, hour and score bin, label delays, and the reason of an
automatic rollback in the promotion history. Outcomes recorded before this revision are counted once, here.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 22:20:00+00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import reportscore.storage.models.base
from reportscore.storage.repositories.quality import delay_bucket, score_bin, window_start

revision: str = "0011"
down_revision: str | None = "0010"
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
    _count_existing_outcomes()


def _count_existing_outcomes() -> None:
    """The aggregates of the outcomes already recorded: what recording each of them would have added (its current
    outcome, and the delay of its first)."""
    reports = sa.table("reports", sa.column("id"), sa.column("job_id"), sa.column("review_outcome"))
    scores = sa.table(
        "report_scores",
        sa.column("report_id"),
        sa.column("model_version"),
        sa.column("score", sa.Float()),
        sa.column("scored_at", UTC()),
    )
    jobs = sa.table("jobs", sa.column("id"), sa.column("model_name"), sa.column("created_at", UTC()))
    feedback = sa.table("report_feedback", sa.column("report_id"), sa.column("reviewed_at", UTC()))
    first = (
        sa.select(feedback.c.report_id, sa.func.min(feedback.c.reviewed_at, type_=UTC()).label("first_at"))
        .group_by(feedback.c.report_id)
        .subquery()
    )
    query = (
        sa.select(
            jobs.c.model_name,
            scores.c.model_version,
            scores.c.score,
            scores.c.scored_at,
            jobs.c.created_at,
            reports.c.review_outcome,
            first.c.first_at,
        )
        .select_from(reports)
        .join(scores, scores.c.report_id == reports.c.id)
        .join(jobs, jobs.c.id == reports.c.job_id)
        .join(first, first.c.report_id == reports.c.id)
        .where(reports.c.review_outcome.is_not(None), scores.c.model_version.is_not(None))
    )
    bins: dict[tuple[Any, ...], list[float]] = {}
    delays: dict[tuple[Any, ...], int] = {}
    for name, version, score, scored_at, created_at, outcome, first_at in op.get_bind().execute(query):
        at = scored_at or created_at
        key = (name or "", version, window_start(at))
        y = 1 if outcome == "actioned" else 0
        row = bins.setdefault((*key, score_bin(score)), [0, 0, 0.0, 0.0, 0.0])
        row[0] += y
        row[1] += 1 - y
        row[2] += score
        row[3] += score * score
        row[4] += score * y
        bucket = (*key, delay_bucket(max((first_at - at).total_seconds(), 0.0)))
        delays[bucket] = delays.get(bucket, 0) + 1
    bin_table = sa.table(
        "quality_bins",
        *(sa.column(c) for c in ("model_name", "model_version", "bin", "positives", "negatives")),
        sa.column("window_start", UTC()),
        *(sa.column(c, sa.Float()) for c in ("score_sum", "score_sq_sum", "positive_score_sum")),
    )
    delay_table = sa.table(
        "quality_label_delays",
        *(sa.column(c) for c in ("model_name", "model_version", "bucket", "reports")),
        sa.column("window_start", UTC()),
    )
    if bins:
        op.bulk_insert(
            bin_table,
            [
                dict(
                    zip(
                        (
                            "model_name",
                            "model_version",
                            "window_start",
                            "bin",
                            "positives",
                            "negatives",
                            "score_sum",
                            "score_sq_sum",
                            "positive_score_sum",
                        ),
                        (*k, *v),
                        strict=True,
                    )
                )
                for k, v in bins.items()
            ],
        )
    if delays:
        op.bulk_insert(
            delay_table,
            [
                dict(zip(("model_name", "model_version", "window_start", "bucket", "reports"), (*k, n), strict=True))
                for k, n in delays.items()
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("model_promotions") as batch:
        batch.drop_column("details")
        batch.drop_column("reason")
    op.drop_table("quality_label_delays")
    op.drop_table("quality_bins")
