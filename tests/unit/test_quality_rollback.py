"""The automatic rollback policy on a real store: when it rolls back, with what record, and when it must not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from reportscore.drift import service as drift
from reportscore.quality import rollback
from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.scoring import synthetic
from reportscore.scoring.features import REPORT_FIELDS
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import models as models_repo
from tests.conftest import make_settings
from tests.unit.test_quality_metrics import _feed, _store_scored

NAME = "m"


def _policy(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "model_name": NAME,
        "auto_rollback": True,
        "auto_rollback_min_labelled": 100,
        "auto_rollback_margin": 0.1,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


def _promote(db: Database, version: str, previous: str | None, at: datetime, action: str = "promote") -> None:
    with db.write() as session:
        models_repo.insert_promotion(
            session, name=NAME, version=version, previous_version=previous, action=action, at=at, by="test"
        )


def _history(db: Database) -> list[tuple[str, str, str | None]]:
    with db.read() as session:
        return [(p.action, p.version, p.promoted_by) for p in models_repo.history(session, name=NAME)]


def _labelled(db: Database, version: str, *, n: int, good: bool, at: datetime, seed: int) -> None:
    """``n`` reports scored by ``version`` at ``at`` with outcomes; a good version ranks them, a bad one inverts."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    signal = labels if good else 1 - labels
    scores = np.clip(0.5 * rng.random(n) + 0.4 * signal, 0, 1)
    ids = _store_scored(db, scores, version=version, at=at)
    _feed(db, ids, labels, at=at + timedelta(minutes=1))


def test_a_worse_champion_is_rolled_back_once_with_its_reason_and_numbers(db: Database, tmp_path: Path) -> None:
    settings = _policy(tmp_path)
    now = datetime.now(UTC)
    promoted_at = now - timedelta(minutes=10)
    _promote(db, "v1", None, now - timedelta(days=3))
    _labelled(db, "v1", n=150, good=True, at=promoted_at - timedelta(hours=2), seed=1)
    _promote(db, "v2", "v1", promoted_at)
    _labelled(db, "v2", n=99, good=False, at=now - timedelta(minutes=5), seed=2)
    assert rollback.check_once(db=db, settings=settings) is None  # 99 < 100 labelled: not yet
    verdict = rollback.judge(db=db, settings=settings)
    assert verdict is not None
    assert verdict.champion_labelled == 99
    assert not verdict.roll_back

    _labelled(db, "v2", n=1, good=False, at=now - timedelta(minutes=5), seed=3)
    done = rollback.check_once(db=db, settings=settings)
    assert done is not None
    assert (done.champion, done.previous, done.champion_labelled, done.previous_labelled) == ("v2", "v1", 100, 150)
    assert done.previous_value is not None
    assert done.champion_value is not None
    assert done.previous_value - done.champion_value > 0.1
    assert _history(db)[-1] == ("rollback", "v1", "auto-rollback")
    with db.read() as session:
        latest = models_repo.latest_promotion(session, name=NAME)
        assert latest is not None
        assert latest.previous_version == "v2"
        assert latest.reason == done.reason
        assert latest.details is not None
        assert latest.details["champion_value"] == done.champion_value
    assert rollback.check_once(db=db, settings=settings) is None  # the latest row is a rollback: nothing to judge
    assert len(_history(db)) == 3


def test_no_rollback_within_the_margin_after_the_guard_or_when_turned_to_another_metric(
    db: Database, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    promoted_at = now - timedelta(minutes=10)
    _promote(db, "v1", None, now - timedelta(days=3))
    _labelled(db, "v1", n=150, good=True, at=promoted_at - timedelta(hours=2), seed=1)
    _promote(db, "v2", "v1", promoted_at)
    _labelled(db, "v2", n=150, good=True, at=now - timedelta(minutes=5), seed=4)  # as good: within the margin
    assert rollback.check_once(db=db, settings=_policy(tmp_path)) is None
    _labelled(db, "v2", n=600, good=False, at=now - timedelta(minutes=5), seed=5)  # now much worse...
    assert rollback.check_once(db=db, settings=_policy(tmp_path, auto_rollback_guard_s=300)) is None  # ...too late
    # precision@k needs k labelled reports of each version
    assert (
        rollback.check_once(
            db=db, settings=_policy(tmp_path, auto_rollback_metric="precision_at_k", quality_precision_k=1000)
        )
        is None
    )
    assert [a for a, _, _ in _history(db)] == ["promote", "promote"]
    assert rollback.check_once(db=db, settings=_policy(tmp_path, auto_rollback_metric="pr_auc")) is not None


def test_a_persons_rollback_is_not_judged(db: Database, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    _promote(db, "v1", None, now - timedelta(days=3))
    _labelled(db, "v1", n=150, good=True, at=now - timedelta(hours=2), seed=1)
    _promote(db, "v2", "v1", now - timedelta(minutes=30))
    _labelled(db, "v2", n=150, good=False, at=now - timedelta(minutes=5), seed=2)
    _promote(db, "v1", "v2", now - timedelta(minutes=1), action="rollback")
    assert rollback.judge(db=db, settings=_policy(tmp_path)) is None


def test_a_champion_whose_scores_drift_past_the_alert_threshold_is_rolled_back_without_labels(
    db: Database, tmp_path: Path
) -> None:
    """The drift trigger: no outcome at all, but every report the new champion scored lands in its reference's top
    score bins, so its score PSI passes the alert threshold in its first hour with enough reports."""
    settings = _policy(tmp_path, drift_min_reports=100)
    now = datetime.now(UTC)
    _register(db, "v2")
    _promote(db, "v1", None, now - timedelta(days=3))
    _promote(db, "v2", "v1", now - timedelta(minutes=1))
    columns = synthetic.generate_reports(150, seed=4)
    for scores in (np.full(99, 0.99), np.full(51, 0.99)):
        counts = drift.batch_counts(
            db,
            model_name=NAME,
            model_version="v2",
            columns={name: columns[name][: len(scores)] for name in REPORT_FIELDS},
            scores=scores,
            scored_at=now,
        )
        with db.write() as session:
            drift.record(session, counts)
        verdict = rollback.judge(db=db, settings=settings)
        assert verdict is not None
        if len(scores) == 99:  # 99 < 100 reports in the hour: not judged yet
            assert (verdict.score_psi, verdict.roll_back) == (None, False)

    done = rollback.check_once(db=db, settings=settings)
    assert done is not None
    assert done.trigger == "score_drift"
    assert done.champion_labelled == 0
    assert done.score_psi is not None
    assert done.score_psi >= settings.drift_psi_alert
    assert done.score_psi_reports == 150
    assert _history(db)[-1] == ("rollback", "v1", "auto-rollback")
    with db.read() as session:
        latest = models_repo.latest_promotion(session, name=NAME)
        assert latest is not None
        assert latest.reason == done.reason
        assert "score PSI of v2" in done.reason


def test_the_drift_trigger_can_be_turned_off(db: Database, tmp_path: Path) -> None:
    settings = _policy(tmp_path, drift_min_reports=100, auto_rollback_on_drift=False)
    now = datetime.now(UTC)
    _register(db, "v2")
    _promote(db, "v1", None, now - timedelta(days=3))
    _promote(db, "v2", "v1", now - timedelta(minutes=1))
    columns = synthetic.generate_reports(150, seed=5)
    counts = drift.batch_counts(
        db,
        model_name=NAME,
        model_version="v2",
        columns={name: columns[name] for name in REPORT_FIELDS},
        scores=np.full(150, 0.99),
        scored_at=now,
    )
    with db.write() as session:
        drift.record(session, counts)
    assert rollback.check_once(db=db, settings=settings) is None
    assert _history(db)[-1] == ("promote", "v2", "test")


def _register(db: Database, version: str) -> None:
    """``version`` of the policy's model, with the bundled model's reference distribution."""
    with db.write() as session:
        models_repo.insert_version(
            session,
            name=NAME,
            version=version,
            format="fake",
            artifact_uri="file:///nowhere",
            sha256="0" * 64,
            size_bytes=1,
            feature_schema={},
            metadata_doc={},
            reference=json.loads((REFERENCE_MODEL_DIR / "reference.json").read_text()),
            reference_source="synthetic",
            registered_at=datetime.now(UTC),
            registered_by="test",
        )
