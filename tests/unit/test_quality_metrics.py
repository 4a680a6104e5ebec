"""Online quality metrics kept from moderators' outcomes, checked against scikit-learn and NumPy on the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sqlalchemy import update

from reportscore.jobs import submission as jobs_submission
from reportscore.moderation import service as moderation_service
from reportscore.moderation.service import FeedbackItem
from reportscore.quality import service as quality_service
from reportscore.quality.metrics import Binned, pr_auc, precision_at_k, roc_auc
from reportscore.storage.db import Database
from reportscore.storage.models import ReportScore
from reportscore.storage.repositories.quality import SCORE_BINS, BinRow, score_bin
from tests.moderation_scenarios import random_reports

K = 50


def _store_scored(db: Database, scores: np.ndarray, *, version: str, at: datetime) -> list[int]:
    reports = random_reports(len(scores), seed=1, prefix=version)
    work = jobs_submission.scored_submission(
        reports=reports,
        scores=scores.tolist(),
        owner="anonymous",
        model_name="m",
        model_version=version,
        predict_ms=0.0,
        received_at=at,
    )
    with db.write() as session:
        job_id = work(session)
    from reportscore.storage.repositories import moderation as moderation_repo

    with db.write() as session:
        ids = [r.id for r in moderation_repo.job_review_rows(session, job_id=job_id)]
        # as if scored at ``at`` (the service stamps the time of the commit)
        session.execute(update(ReportScore).where(ReportScore.report_id.in_(ids)).values(scored_at=at))
    return ids


def _feed(db: Database, ids: list[int], labels: np.ndarray, *, at: datetime) -> list[str]:
    items = [
        FeedbackItem(outcome="actioned" if y else "dismissed", reviewer="r", reviewed_at=at, id=i)
        for i, y in zip(ids, labels, strict=True)
    ]
    return [r.status for r in moderation_service.record_feedback(db=db, owner="anonymous", items=items)]


def _ece(scores: np.ndarray, labels: np.ndarray) -> float:
    bins = np.array([score_bin(s) for s in scores]) // (SCORE_BINS // 10)
    total = 0.0
    for b in range(10):
        m = bins == b
        if m.any():
            total += m.sum() / len(scores) * abs(labels[m].mean() - scores[m].mean())
    return total


def _precision_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    return float(labels[np.argsort(-scores, kind="stable")[:k]].mean())


def _check(got: dict[str, Any], scores: np.ndarray, labels: np.ndarray) -> None:
    assert got["labelled"] == len(scores)
    assert got["positive_rate"] == pytest.approx(labels.mean(), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-3)
    assert got["pr_auc"] == pytest.approx(average_precision_score(labels, scores), abs=2e-3)
    assert got["brier"] == pytest.approx(brier_score_loss(labels, scores), abs=1e-9)
    assert got["ece"] == pytest.approx(_ece(scores, labels), abs=1e-9)
    assert got["precision_at_k"] == pytest.approx(_precision_at_k(scores, labels, K), abs=0.021)
    assert sum(b["reports"] for b in got["reliability"]) == len(scores)


def test_metrics_from_outcomes_match_scikit_learn_and_a_correction_moves_counts(db: Database) -> None:
    rng = np.random.default_rng(3)
    n = 400
    labels = (rng.random(n) < 0.3).astype(int)
    scores = np.clip(rng.beta(2, 5, n) + 0.25 * labels, 0, 1)
    scored_at = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)
    ids = _store_scored(db, scores, version="v1", at=scored_at)
    assert set(_feed(db, ids, labels, at=scored_at + timedelta(minutes=30))) == {"recorded"}
    got = quality_service.version_metrics(db=db, model_name="m", version="v1", k=K)
    assert len(got) == 1
    _check(got[0].metrics, scores, labels)
    delay = got[0].metrics["label_delay"]
    assert delay["reports"] == n
    assert delay["p50_le_s"] == 3600.0

    # moderators correct 40 outcomes and repeat 20 others: counts move, nothing is counted twice
    flipped = labels.copy()
    flipped[:40] = 1 - flipped[:40]
    statuses = _feed(db, ids[:60], flipped[:60], at=scored_at + timedelta(hours=2))
    assert statuses.count("recorded") == 40
    assert statuses.count("unchanged") == 20
    again = quality_service.version_metrics(db=db, model_name="m", version="v1", k=K)[0].metrics
    _check(again, scores, flipped)
    assert again["label_delay"]["reports"] == n  # the delay of a report is that of its first outcome


def test_windows_versions_and_range(db: Database) -> None:
    rng = np.random.default_rng(4)
    t0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    for hour, version in ((0, "v1"), (1, "v1"), (5, "v2")):
        scores = rng.random(30)
        labels = (rng.random(30) < scores).astype(int)
        ids = _store_scored(db, scores, version=version, at=t0 + timedelta(hours=hour, minutes=5))
        _feed(db, ids, labels, at=t0 + timedelta(hours=hour, minutes=6))
    every = quality_service.version_metrics(db=db, model_name="m", k=K)
    assert [(w.model_version, w.metrics["labelled"]) for w in every] == [("v1", 60), ("v2", 30)]
    hourly = quality_service.version_metrics(db=db, model_name="m", version="v1", window_s=3600, k=K)
    assert [(w.start, w.metrics["labelled"]) for w in hourly] == [(t0, 30), (t0 + timedelta(hours=1), 30)]
    ranged = quality_service.version_metrics(db=db, model_name="m", since=t0 + timedelta(hours=1), k=K)
    assert [(w.model_version, w.metrics["labelled"]) for w in ranged] == [("v1", 30), ("v2", 30)]
    with pytest.raises(quality_service.InvalidWindow):
        quality_service.version_metrics(db=db, model_name="m", window_s=600, k=K)


def _binned(scores: np.ndarray, labels: np.ndarray) -> Binned:
    b = Binned()
    t = datetime(2026, 1, 1, tzinfo=UTC)
    b.add(
        BinRow(t, score_bin(s), int(y), 1 - int(y), float(s), float(s * s), float(s * y))
        for s, y in zip(scores, labels, strict=True)
    )
    return b


def test_ranking_metrics_are_exact_for_scores_at_bin_resolution() -> None:
    rng = np.random.default_rng(5)
    scores = np.floor(rng.random(5000) * SCORE_BINS) / SCORE_BINS + 0.5 / SCORE_BINS  # bin centres: many ties
    labels = (rng.random(5000) < scores).astype(int)
    b = _binned(scores, labels)
    assert roc_auc(b) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert pr_auc(b) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    order = np.sort(np.unique(scores))[::-1]
    cut = order[:100]  # k at a bin boundary: exactly the reports in the top bins
    k = int(np.isin(scores, cut).sum())
    assert precision_at_k(b, k) == pytest.approx(labels[np.isin(scores, cut)].mean(), abs=1e-12)


def test_undefined_metrics_are_none() -> None:
    only_negatives = _binned(np.array([0.2, 0.7]), np.array([0, 0]))
    assert roc_auc(only_negatives) is None
    assert pr_auc(only_negatives) is None
    assert precision_at_k(only_negatives, 3) is None


def test_the_migration_counts_outcomes_recorded_before_it_as_recording_them_did(db: Database) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from reportscore.storage import migrate

    rng = np.random.default_rng(6)
    t0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    for hour, version in ((0, "v1"), (2, "v2")):
        scores = rng.random(80)
        ids = _store_scored(db, scores, version=version, at=t0 + timedelta(hours=hour))
        _feed(db, ids, (rng.random(80) < scores).astype(int), at=t0 + timedelta(hours=hour, minutes=20))
        _feed(db, ids[:10], np.ones(10, dtype=int), at=t0 + timedelta(hours=hour + 30))  # some corrections
    live = quality_service.version_metrics(db=db, model_name="m", window_s=3600, k=K)

    cfg = migrate.alembic_config(db.url)
    before = ScriptDirectory.from_config(cfg).get_revision("0011").down_revision
    with db.write_engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, str(before))
        conn.commit()
    migrate.upgrade_to_head(db)
    rebuilt = quality_service.version_metrics(db=db, model_name="m", window_s=3600, k=K)
    assert [(w.model_version, w.start) for w in rebuilt] == [(w.model_version, w.start) for w in live]
    for a, b in zip(rebuilt, live, strict=True):
        assert a.metrics["labelled"] == b.metrics["labelled"] == 80
        assert a.metrics["label_delay"] == b.metrics["label_delay"]
        for name in ("positive_rate", "roc_auc", "pr_auc", "precision_at_k", "brier", "ece"):
            assert a.metrics[name] == pytest.approx(b.metrics[name], abs=1e-12), name
