"""Drift kept incrementally as jobs are scored: stored counts, PSI against a NumPy computation, the alert threshold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from reportscore.drift import service as drift
from reportscore.drift.psi import EPSILON, psi
from reportscore.jobs import submission as jobs_submission
from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.scoring import synthetic
from reportscore.scoring.features import REPORT_FIELDS
from reportscore.scoring.service import score_jobs
from reportscore.storage.db import Database
from reportscore.storage.models import DriftCount
from reportscore.storage.repositories import models as models_repo
from tests.fakes import FakeModel, fake_serving_model

REFERENCE: dict[str, Any] = json.loads((REFERENCE_MODEL_DIR / "reference.json").read_text())
THRESHOLDS = drift.Thresholds(warn=0.1, alert=0.25, min_reports=100)
WHOLE_TEST_S = 10_000 * 3600
"""A window (aligned to the epoch like every window) long enough that a test does not straddle two of them."""


def _register(db: Database, version: str = "fake-1") -> None:
    with db.write() as s:
        models_repo.insert_version(
            s,
            name="fake",
            version=version,
            format="fake",
            artifact_uri="file:///nowhere",
            sha256="0" * 64,
            size_bytes=1,
            feature_schema={},
            metadata_doc={},
            reference=REFERENCE,
            reference_source="synthetic",
            registered_at=datetime.now(UTC),
            registered_by="test",
        )


def _rows(n: int, *, seed: int, rating_shift: float = 0.0) -> list[dict[str, Any]]:
    cols = synthetic.generate_reports(n, seed=seed)
    cols["profile_rating"] = cols["profile_rating"] + rating_shift
    lists = {name: cols[name].tolist() for name in REPORT_FIELDS}
    return [{name: lists[name][i] for name in REPORT_FIELDS} for i in range(n)]


def _score_in_batches(db: Database, rows: list[dict[str, Any]], *, jobs_per_batch: int, job_size: int) -> None:
    model = fake_serving_model(FakeModel())
    job_ids = [
        jobs_submission.submit_job(
            db=db, reports=rows[i : i + job_size], owner="t", idempotency_key=None, idempotency_ttl_s=60
        ).job_id
        for i in range(0, len(rows), job_size)
    ]
    for i in range(0, len(job_ids), jobs_per_batch):
        outcome = score_jobs(db=db, model=model, job_ids=job_ids[i : i + jobs_per_batch])
        assert len(outcome.succeeded) == len(job_ids[i : i + jobs_per_batch])


def _numpy_psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / expected.sum(), EPSILON)
    a = np.maximum(actual / actual.sum(), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def _expected_by_numpy(rows: list[dict[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reference counts, observed counts) per feature, computed the way the reference documents its bins."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    fields = REFERENCE["fields"]
    for name in REPORT_FIELDS:
        values = np.asarray([r[name] for r in rows])
        doc = fields[name]
        if doc["kind"] == "categorical":
            cats = sorted(doc["counts"])
            out[name] = (
                np.asarray([doc["counts"][c] for c in cats], dtype=float),
                np.asarray([(values == c).sum() for c in cats], dtype=float),
            )
        else:
            cuts = np.asarray(doc["cut_points"])
            observed = np.bincount(np.searchsorted(cuts, values, side="right"), minlength=len(cuts) + 1)
            out[name] = (np.asarray(doc["counts"], dtype=float), observed.astype(float))
    scores = np.asarray([r["popularity"] / 5 for r in rows])  # FakeModel's score
    observed, _ = np.histogram(scores, bins=np.asarray(REFERENCE["scores"]["bin_edges"]))
    out["score"] = (np.asarray(REFERENCE["scores"]["counts"], dtype=float), observed.astype(float))
    return out


def _report(db: Database) -> drift.DriftReport:
    now = datetime.now(UTC)
    return drift.drift_report(
        db,
        model_name="fake",
        model_version="fake-1",
        window_s=WHOLE_TEST_S,
        since=now - timedelta(hours=2),
        until=now + timedelta(hours=1),
        thresholds=THRESHOLDS,
    )


def test_counts_after_several_batches_equal_a_count_of_all_rows(db: Database) -> None:
    _register(db)
    rows = _rows(900, seed=1)
    _score_in_batches(db, rows, jobs_per_batch=4, job_size=50)  # 18 jobs in 5 batches
    with db.read() as s:
        stored = s.execute(select(DriftCount.feature, DriftCount.bin, DriftCount.count)).all()
    got: dict[str, dict[str, int]] = {}
    for feature, label, count in stored:
        got.setdefault(feature, {})[label] = count
    for name, (_, observed) in _expected_by_numpy(rows).items():
        if name == "abuse_type":
            cats = sorted(REFERENCE["fields"]["abuse_type"]["counts"])
            want = {c: int(n) for c, n in zip(cats, observed, strict=True) if n}
        else:
            want = {str(i): int(n) for i, n in enumerate(observed) if n}
        assert got[name] == want, name


def test_psi_per_feature_and_score_equals_numpy_on_the_same_rows(db: Database) -> None:
    _register(db)
    rows = _rows(1500, seed=2)
    _score_in_batches(db, rows, jobs_per_batch=3, job_size=100)
    (window,) = _report(db).windows
    assert window.n_reports == 1500
    for name, (expected, observed) in _expected_by_numpy(rows).items():
        assert window.psi[name] == pytest.approx(_numpy_psi(expected, observed), rel=1e-9, abs=1e-12), name


def test_a_shifted_feature_crosses_the_alert_threshold_and_the_others_stay_ok(db: Database) -> None:
    _register(db)
    _score_in_batches(db, _rows(2000, seed=3), jobs_per_batch=5, job_size=100)
    (before,) = _report(db).windows
    assert before.status["profile_rating"] == "ok"
    assert (before.psi["profile_rating"] or 0.0) < 0.1
    _score_in_batches(db, _rows(3000, seed=4, rating_shift=2.5), jobs_per_batch=5, job_size=100)
    (after,) = _report(db).windows
    assert after.n_reports == 5000
    assert (after.psi["profile_rating"] or 0.0) >= 0.25
    assert after.status["profile_rating"] == "alert"
    assert after.worst == "alert"
    for name in ("abuse_type", "report_text_len", "popularity", "lifetime_matches_created"):
        assert after.status[name] == "ok", name


def test_a_version_without_a_reference_is_scored_and_counts_nothing(db: Database) -> None:
    _score_in_batches(db, _rows(50, seed=5), jobs_per_batch=1, job_size=50)
    with db.read() as s:
        assert s.execute(select(DriftCount)).first() is None


def test_psi_of_an_empty_bin_uses_the_documented_epsilon() -> None:
    value = psi({"MSG": 50, "PRF": 50}, {"MSG": 10})
    assert value == pytest.approx((1 - 0.5) * np.log(1 / 0.5) + (EPSILON - 0.5) * np.log(EPSILON / 0.5))
    assert psi({"a": 1}, {}) is None
