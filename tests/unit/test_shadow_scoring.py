"""Shadow scoring off the answer's path, against a real SQLite store: a failing shadow never touches the
champion's answer, a working one stores its scores beside it, and a shadow that falls behind skips and counts."""

from __future__ import annotations

import itertools
import queue
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from reportscore.jobs import submission as jobs_submission
from reportscore.jobs import views as task_views
from reportscore.scoring.formats.base import FloatMatrix, Scores
from reportscore.scoring.registration import UnknownVersionError
from reportscore.scoring.service import score_jobs
from reportscore.settings import Settings
from reportscore.shadow import admin
from reportscore.shadow.scorer import PendingBatch, ShadowScorer, chosen
from reportscore.storage.db import Database
from reportscore.storage.models import JobStatus, ModelVersion, ShadowScore
from tests.fakes import FakeModel, fake_serving_model


class RaisingModel:
    format = "fake"
    feature_names: list[str] | None = None

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, matrix: FloatMatrix) -> Scores:
        self.calls += 1
        raise RuntimeError("shadow model is broken")


class HalfModel(FakeModel):
    """Half the fake model's score: a challenger that disagrees with the champion in a known way."""

    def predict(self, matrix: FloatMatrix) -> Scores:
        return super().predict(matrix) / 2


def _report(popularity: int) -> dict[str, Any]:
    return {
        "abuse_type": "MSG",
        "report_text_len": 10,
        "profile_rating": 1.5,
        "popularity": popularity,
        "lifetime_matches_created": 7,
    }


def _submit(db: Database, pops: list[int]) -> str:
    reports = [_report(p) for p in pops]
    submitted = jobs_submission.submit_job(
        db=db, reports=reports, owner="t", idempotency_key=None, idempotency_ttl_s=60
    )
    return submitted.job_id


def _register(db: Database, version: str) -> None:
    with db.write() as s:
        s.add(
            ModelVersion(
                name="fake",
                version=version,
                format="fake",
                artifact_uri=f"file:///nowhere/{version}",
                sha256="0" * 64,
                size_bytes=0,
                feature_schema={},
                metadata_doc={},
                reference={},
                reference_source="synthetic",
                registered_at=datetime.now(UTC),
                registered_by="test",
            )
        )


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _scorer(db: Database, models: dict[str, Any], *, max_pending: int = 8) -> ShadowScorer:
    return ShadowScorer(
        db=db,
        name="fake",
        loader=lambda version: fake_serving_model(models[version], version=version),
        refresh_s=3600,
        max_pending_batches=max_pending,
    )


@pytest.fixture
def fake_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"model_name": "fake"})


def test_a_shadow_that_raises_on_every_call_leaves_every_job_success_with_the_champions_scores(
    db: Database, fake_settings: Settings
) -> None:
    _register(db, "broken")
    admin.start_shadow(db=db, settings=fake_settings, version="broken")
    broken = RaisingModel()
    scorer = _scorer(db, {"broken": broken})
    scorer.refresh()
    assert scorer.versions == {"broken": 1.0}
    failed_before = _counter("reportscore_shadow_reports_total", model_version="broken", outcome="failed")
    pops = [[1, 2], [5], [0, 4, 3]]
    jobs = [_submit(db, p) for p in pops]
    outcome = score_jobs(db=db, model=fake_serving_model(version="champ"), job_ids=jobs)
    scorer.offer(job_ids=outcome.succeeded, rows=outcome.rows)
    assert scorer.run_pending() == 1
    assert broken.calls == 1  # one model call for the whole batch
    for job_id, p in zip(jobs, pops, strict=True):
        view = task_views.get_task(db=db, task_id=job_id, owner="t")
        assert view is not None
        assert view.status == JobStatus.SUCCESS
        assert view.model_version == "champ"
        assert [r.score for r in view.reports or []] == [x / 5 for x in p]
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ShadowScore)) == 0
    failed = _counter("reportscore_shadow_reports_total", model_version="broken", outcome="failed") - failed_before
    assert failed == 6


def test_a_working_shadow_stores_its_scores_beside_the_champions_and_not_in_the_answer(
    db: Database, fake_settings: Settings
) -> None:
    _register(db, "half")
    admin.start_shadow(db=db, settings=fake_settings, version="half")
    scorer = _scorer(db, {"half": HalfModel()})
    scorer.refresh()
    job = _submit(db, [2, 4])
    outcome = score_jobs(db=db, model=fake_serving_model(version="champ"), job_ids=[job])
    scorer.offer(job_ids=outcome.succeeded, rows=outcome.rows)
    scorer.run_pending()
    view = task_views.get_task(db=db, task_id=job, owner="t")
    assert view is not None
    assert [r.score for r in view.reports or []] == [0.4, 0.8]
    with db.read() as s:
        stored = s.execute(select(ShadowScore.model_version, ShadowScore.score).order_by(ShadowScore.report_id)).all()
    assert [(v, round(x, 6)) for v, x in stored] == [("half", 0.2), ("half", 0.4)]
    # the scores of a job read back from the store (a /score job) are the same
    scorer.offer(job_ids=[job], n_reports=2)
    scorer.run_pending()
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ShadowScore)) == 2


def test_a_shadow_that_falls_behind_skips_batches_and_counts_the_reports(db: Database, fake_settings: Settings) -> None:
    _register(db, "slow")
    admin.start_shadow(db=db, settings=fake_settings, version="slow", fraction=0.5)
    scorer = _scorer(db, {"slow": FakeModel()}, max_pending=1)
    scorer.refresh()
    assert scorer.versions == {"slow": 0.5}
    before = _counter("reportscore_shadow_skipped_reports_total")
    jobs = [_submit(db, [1, 2, 3]) for _ in range(3)]
    outcome = score_jobs(db=db, model=fake_serving_model(version="champ"), job_ids=jobs)
    assert outcome.rows is not None
    for job in jobs:  # the backlog holds one batch: the next two are skipped, never queued
        scorer.offer(job_ids=[job], rows=outcome.rows)
    assert _counter("reportscore_shadow_skipped_reports_total") - before == 6
    assert scorer.run_pending() == 1


class SpinningModel(FakeModel):
    """The fake model with a known cost per call (it spins for ``cost_s``), reporting each call's span."""

    def __init__(self, cost_s: float) -> None:
        super().__init__()
        self.cost_s = cost_s
        self.spans: queue.Queue[tuple[float, float]] = queue.Queue()

    def predict(self, matrix: FloatMatrix) -> Scores:
        start = time.monotonic()
        while time.monotonic() - start < self.cost_s:  # the model's CPU cost, simulated
            pass
        self.spans.put((start, time.monotonic()))
        return super().predict(matrix)


def test_the_shadow_thread_rests_after_each_pass_so_it_is_busy_at_most_its_share(
    db: Database, fake_settings: Settings
) -> None:
    _register(db, "spinning")
    admin.start_shadow(db=db, settings=fake_settings, version="spinning")
    model = SpinningModel(cost_s=0.03)
    scorer = ShadowScorer(
        db=db,
        name="fake",
        loader=lambda version: fake_serving_model(model, version=version),
        refresh_s=3600,
        max_pending_batches=8,
        max_busy_share=0.25,  # rests 3x the time a pass took
    )
    scorer.refresh()
    jobs = [_submit(db, [1, 2]) for _ in range(3)]
    outcomes = [score_jobs(db=db, model=fake_serving_model(version="champ"), job_ids=[job]) for job in jobs]
    spans = []
    scorer.start()
    try:
        for outcome in outcomes:  # the next batch waits while the thread rests after the previous one
            scorer.offer(job_ids=outcome.succeeded, rows=outcome.rows)
            spans.append(model.spans.get(timeout=30))
    finally:
        scorer.stop()
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert next_start - end >= 3 * (end - start) * 0.95, spans  # the model's time alone, rested 3x


def test_batches_waiting_together_are_scored_with_one_model_call(db: Database, fake_settings: Settings) -> None:
    _register(db, "half")
    admin.start_shadow(db=db, settings=fake_settings, version="half")
    model = HalfModel()
    scorer = _scorer(db, {"half": model})
    scorer.refresh()
    jobs = [_submit(db, [p, 5 - p]) for p in range(3)]
    outcomes = [score_jobs(db=db, model=fake_serving_model(version="champ"), job_ids=[job]) for job in jobs]
    scorer.score_batches([PendingBatch(o.succeeded, o.rows, 0) for o in outcomes])
    with db.read() as s:
        stored = s.execute(select(ShadowScore.report_id, ShadowScore.score)).all()
    assert len(stored) == 6
    assert model.calls == [6]  # one call for the three batches


def test_the_shadow_set_is_limited_follows_stops_and_refuses_unknown_versions(
    db: Database, fake_settings: Settings
) -> None:
    limited = fake_settings.model_copy(update={"max_shadows": 1})
    _register(db, "a")
    _register(db, "b")
    admin.start_shadow(db=db, settings=limited, version="a")
    with pytest.raises(admin.ShadowLimitError, match="REPORTSCORE_MAX_SHADOWS=1"):
        admin.start_shadow(db=db, settings=limited, version="b")
    with pytest.raises(UnknownVersionError):
        admin.start_shadow(db=db, settings=limited, version="nope")
    admin.start_shadow(db=db, settings=limited, version="a", fraction=0.25)  # a change, not a new shadow
    scorer = _scorer(db, {"a": FakeModel()})
    scorer.refresh()
    assert scorer.versions == {"a": 0.25}
    assert admin.stop_shadow(db=db, settings=limited, version="a")
    assert not admin.stop_shadow(db=db, settings=limited, version="a")
    scorer.refresh()
    assert scorer.versions == {}


def test_the_fraction_picks_the_same_reports_everywhere_and_about_the_right_share() -> None:
    ids = list(range(1, 20001))
    picked = chosen(ids, 0.1)
    assert abs(len(picked) / len(ids) - 0.1) < 0.01
    assert np.array_equal(picked, chosen(ids, 0.1))
    assert len(chosen(ids, 1.0)) == len(ids)
