"""Reasons (the models' own contributions, with the version that scored each report), cursors, and the queue's
repository on SQLite."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from reportscore.jobs import submission as jobs_submission
from reportscore.moderation import service as moderation_service
from reportscore.moderation.reasons import ReasonExplainer, top_reasons
from reportscore.scoring.formats.base import contributions_of
from reportscore.scoring.formats.skops_format import sklearn_classifier
from reportscore.scoring.registration import ensure_champion, register_model
from reportscore.scoring.registry import ModelRegistry, ServingModel, formats_with, load_model_dir
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import moderation as moderation_repo
from tests.fakes import FakeModel
from tests.model_helpers import save_skops, tiny_xgboost, training_data
from tests.moderation_scenarios import random_reports


@pytest.fixture(scope="module")
def reference() -> ServingModel:
    return load_model_dir(Settings().model_path)


def _pred_contribs(booster: Any, matrix: np.ndarray) -> np.ndarray:
    return np.asarray(booster.predict(xgboost.DMatrix(matrix, feature_names=booster.feature_names), pred_contribs=True))


def test_xgboost_contributions_are_its_pred_contribs_without_bias(reference: ServingModel) -> None:
    reports = random_reports(200, seed=5, prefix="r")
    matrix = reference.schema.encode_reports(reports)
    got = contributions_of(reference.model, matrix)
    full = _pred_contribs(reference.model.booster, matrix)  # type: ignore[attr-defined]
    assert got is not None
    assert got.shape == matrix.shape
    assert full.shape == (200, matrix.shape[1] + 1)
    np.testing.assert_allclose(got, full[:, :-1], atol=1e-6)
    # contributions plus bias are the model's margin: the score is their logistic
    margin = full.sum(axis=1)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), reference.model.predict(matrix), atol=1e-5)


def test_top_reasons_by_absolute_value_zeros_left_out() -> None:
    names = ["a", "b", "c", "d", "e"]
    assert top_reasons(names, np.array([0.1, -2.0, 0.0, 1.5, -0.2])) == [
        {"feature": "b", "contribution": -2.0},
        {"feature": "d", "contribution": 1.5},
        {"feature": "e", "contribution": -0.2},
    ]
    assert top_reasons(names, np.array([0.0, 0.3, 0.0, 0.0, 0.0])) == [{"feature": "b", "contribution": 0.3}]


def test_formats_without_contributions_give_none(tmp_path: Path) -> None:
    x, _ = training_data(n=5)
    logistic = sklearn_classifier(save_skops(tmp_path / "m.skops"), name="m", format_name="skops", threads=1)
    assert contributions_of(logistic, x) is None
    assert contributions_of(FakeModel(), x) is None


def test_sklearn_pipeline_ending_in_xgboost_gives_the_boosters_contributions() -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = training_data()
    pipe = Pipeline([("scale", StandardScaler()), ("xgb", xgboost.XGBClassifier(n_estimators=5, max_depth=2))])
    model = sklearn_classifier(pipe.fit(x, y), name="p", format_name="pickle", threads=1)
    got = contributions_of(model, x[:20])
    expected = _pred_contribs(pipe[-1].get_booster(), pipe[:-1].transform(x[:20]))[:, :-1]
    assert got is not None
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_cursor_round_trip_and_rejections() -> None:
    cursor = moderation_service.encode_cursor(score=0.9019927382469177, report_id=2)
    assert cursor == "0.9019927382469177_2"
    assert moderation_service.decode_cursor(cursor) == (0.9019927382469177, 2)
    for bad in ("", "!!!", "0.5", "_2", "0.5_0", "0.5_-2", "nan_1", "inf_1", "0.5_1e3", "1._2", "0.5_2\n", " 0.5_2"):
        with pytest.raises(moderation_service.InvalidCursor, match="invalid cursor"):
            moderation_service.decode_cursor(bad)


SCORES = st.one_of(
    st.floats(min_value=0, max_value=1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 5e-324, 1e-100, 1.401298464324817e-45, 1e16, 1.7976931348623157e308]),
)


@given(score=SCORES, report_id=st.integers(min_value=1, max_value=10**18 - 1))
def test_every_finite_score_and_id_make_a_cursor_that_matches_the_pattern(score: float, report_id: int) -> None:
    cursor = moderation_service.encode_cursor(score=score, report_id=report_id)
    assert re.fullmatch(moderation_service.CURSOR_PATTERN, cursor), cursor
    assert moderation_service.decode_cursor(cursor) == (score, report_id)


@settings(max_examples=500)
@given(cursor=st.from_regex(moderation_service.CURSOR_PATTERN, fullmatch=True))
def test_every_string_the_pattern_admits_is_a_position(cursor: str) -> None:
    """The API's pattern is the whole rule: whatever matches parses to a float and an id inside BIGINT."""
    score, report_id = moderation_service.decode_cursor(cursor)
    assert isinstance(score, float)
    assert not math.isnan(score)
    assert 1 <= report_id < 2**63


def _scored_job(db: Database, model: ServingModel, reports: list[dict[str, Any]], *, owner: str = "anonymous") -> str:
    scores = model.score({k: [r[k] for r in reports] for k in reports[0] if k != "report_id"}).tolist()
    work = jobs_submission.scored_submission(
        reports=reports,
        scores=scores,
        owner=owner,
        model_name=model.name,
        model_version=model.version,
        predict_ms=0.0,
        received_at=datetime.now(UTC),
    )
    with db.write() as session:
        return work(session)


def test_reasons_use_the_version_that_scored_the_report(db: Database, settings: Settings, tmp_path: Path) -> None:
    ensure_champion(db=db, settings=settings)
    registry = ModelRegistry.from_settings(settings, db)
    explainer = ReasonExplainer(registry=registry, db=db, formats=formats_with([]))
    tiny_xgboost(tmp_path / "v2.ubj")
    register_model(db=db, settings=settings, artifact=tmp_path / "v2.ubj", version="2.0.0")
    save_skops(tmp_path / "v3.skops")
    register_model(db=db, settings=settings, artifact=tmp_path / "v3.skops", version="3.0.0")

    reports = random_reports(5, seed=9, prefix="x")
    v2 = explainer.model_for(settings.model_name, "2.0.0")
    v3 = explainer.model_for(settings.model_name, "3.0.0")
    assert v2 is not None
    assert v3 is not None
    assert registry.current.version == "1.0.0"
    job_v1 = _scored_job(db, registry.current, reports)
    job_v2 = _scored_job(db, v2, reports)
    job_v3 = _scored_job(db, v3, reports)

    by_job = {
        job: moderation_service.task_reasons(db=db, explainer=explainer, task_id=job)
        for job in (job_v1, job_v2, job_v3)
    }
    for job, model in ((job_v1, registry.current), (job_v2, v2)):
        matrix = model.schema.encode_reports(reports)
        full = _pred_contribs(model.model.booster, matrix)  # type: ignore[attr-defined]
        with db.read() as session:
            rows = moderation_repo.job_review_rows(session, job_id=job)
        for row, contribs in zip(rows, full, strict=True):
            want = top_reasons(model.schema.names, contribs[:-1])
            got = by_job[job][row.id]
            assert [r["feature"] for r in got] == [r["feature"] for r in want]
            np.testing.assert_allclose([r["contribution"] for r in got], [r["contribution"] for r in want], atol=1e-6)
            assert row.reasons_stored
            assert row.reasons == got
    assert by_job[job_v1] != by_job[job_v2]
    # a format without contributions: null, stored as null (not computed again)
    assert set(by_job[job_v3].values()) == {None}
    with db.read() as session:
        assert all(r.reasons_stored for r in moderation_repo.job_review_rows(session, job_id=job_v3))


def test_reasons_are_null_and_not_stored_when_the_version_is_unavailable(db: Database, settings: Settings) -> None:
    ensure_champion(db=db, settings=settings)
    registry = ModelRegistry.from_settings(settings, db)
    explainer = ReasonExplainer(registry=registry, db=db, formats=formats_with([]))
    gone = registry.current
    gone = ServingModel(**{**gone.__dict__, "version": "0.9.0"})  # a version the registry never had
    job = _scored_job(db, gone, random_reports(2, seed=1, prefix="g"))
    reasons = moderation_service.task_reasons(db=db, explainer=explainer, task_id=job)
    assert set(reasons.values()) == {None}
    with db.read() as session:
        assert not any(r.reasons_stored for r in moderation_repo.job_review_rows(session, job_id=job))


def test_queue_is_per_tenant_ordered_and_served_by_the_partial_index(db: Database, settings: Settings) -> None:
    model = load_model_dir(settings.model_path)
    _scored_job(db, model, random_reports(10, seed=2, prefix="a"))
    _scored_job(db, model, random_reports(10, seed=3, prefix="b"), owner="tenant-b")
    with db.read() as session:
        rows = moderation_repo.queue_page(session, owner="anonymous", limit=100)
        assert len(rows) == 10
        assert all((r.client_report_id or "").startswith("a-") for r in rows)
        assert [(-r.score, r.id) for r in rows] == sorted((-r.score, r.id) for r in rows)
        assert moderation_repo.queue_page(session, owner="nobody", limit=100) == []
        for query in (
            moderation_repo.queue_query(owner="anonymous", limit=51),
            moderation_repo.queue_query(owner="anonymous", limit=51, abuse_type="MSG", after=(0.5, 3)),
        ):
            sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(row) for row in session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            assert "ix_report_scores_queue" in plan, plan
            assert "TEMP B-TREE" not in plan, plan


def test_migration_fills_in_the_owner_of_existing_reports(settings: Settings) -> None:
    from alembic import command
    from sqlalchemy import text

    from reportscore.storage import migrate

    database = Database.from_settings(settings)
    cfg = migrate.alembic_config(database.url)
    try:
        with database.write_engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0003")
            conn.commit()
            conn.execute(
                text(
                    "INSERT INTO jobs (id, status, owner, n_reports, created_at, attempts) "
                    "VALUES ('j1', 'SUCCESS', 'tenant-x', 1, '2026-11-27 08:00:00', 1)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO reports (job_id, position, abuse_type, report_text_len, profile_rating, popularity, "
                    "lifetime_matches_created, score) VALUES ('j1', 0, 'MSG', 1, 0.5, 1, 1, 0.7)"
                )
            )
            conn.commit()
        migrate.upgrade_to_head(database)
        with database.read() as session:
            rows = moderation_repo.queue_page(session, owner="tenant-x", limit=10)
        assert [(r.score, r.features["abuse_type"]) for r in rows] == [(0.7, "MSG")]
    finally:
        database.dispose()
