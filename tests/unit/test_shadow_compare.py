"""The champion-vs-challenger comparison: its metrics equal scikit-learn's and scipy's on the same rows, a planted
better challenger reads "better", a copy of the champion "not distinguishable", over a real SQLite store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pytest
from scipy import stats as scipy_stats  # type: ignore[import-untyped]
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sqlalchemy import select, update

from reportscore.jobs import submission as jobs_submission
from reportscore.scoring.registry import ServingModel
from reportscore.scoring.service import score_jobs
from reportscore.scoring.synthetic import generate_labels, generate_reports, urgency_logit, urgency_probability
from reportscore.shadow import stats
from reportscore.shadow.compare import compare
from reportscore.shadow.evidence import EvidenceError, Requirement
from reportscore.shadow.scorer import ShadowScorer
from reportscore.storage.db import Database
from reportscore.storage.models import ModelShadow, Report, ReportScore, ShadowScore


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float64)
    a = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 2)  # rounded: many ties
    b = np.round(np.clip(0.2 * y + rng.random(n) * 0.8, 0, 1), 3)
    return a, b, y, np.arange(1, n + 1, dtype=np.int64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labelled_metrics_equal_scikit_learns_on_the_same_rows_ties_included(seed: int) -> None:
    a, _, y, ids = _rows(997, seed)
    ranked = stats.Ranked(a, y, ids)
    ones = np.ones(len(y))
    assert ranked.roc_auc(ones) == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert ranked.pr_auc(ones) == pytest.approx(average_precision_score(y, a), abs=1e-12)
    assert ranked.brier(ones) == pytest.approx(brier_score_loss(y, a), abs=1e-12)
    order = np.lexsort((ids, -a))
    k = int(np.ceil(len(a) * 0.05))
    assert ranked.precision_at(ones, 5) == pytest.approx(y[order[:k]].mean(), abs=1e-12)
    # weights are multiplicities: weight 2 is the row twice
    w = np.ones(len(y))
    w[:100] = 2.0
    doubled = np.r_[np.arange(len(y)), np.arange(100)]
    assert ranked.roc_auc(w) == pytest.approx(roc_auc_score(y[doubled], a[doubled]), abs=1e-12)
    assert ranked.pr_auc(w) == pytest.approx(average_precision_score(y[doubled], a[doubled]), abs=1e-12)


def test_correlations_equal_scipys() -> None:
    a, b, _, _ = _rows(500, 7)
    assert stats.pearson(a, b) == pytest.approx(scipy_stats.pearsonr(a, b).statistic, abs=1e-12)
    assert stats.spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic, abs=1e-12)


@dataclass
class RuleModel:
    """Scores reports by the synthetic urgency rule, optionally blurred by a deterministic per-report noise."""

    version: str
    blur: float = 0.0
    name: str = "fake"

    def score(self, columns: dict[str, Any]) -> np.ndarray:
        cols = {k: np.asarray(v) for k, v in columns.items()}
        if not self.blur:
            return urgency_probability(cols)
        noise = np.sin(
            np.asarray(cols["lifetime_matches_created"], dtype=np.float64) * 12.9898 + cols["profile_rating"] * 78.233
        )
        z = urgency_logit(cols) + self.blur * noise * 3.0
        return np.asarray(1.0 / (1.0 + np.exp(-z)))


N_REPORTS = 3000


@pytest.fixture
def scored_store(db: Database) -> Database:
    """3,000 synthetic reports answered by a blurred champion, shadowed by the rule itself and by a copy of the
    champion; 2,000 of them reviewed with outcomes drawn from the same rule."""
    columns = generate_reports(N_REPORTS, seed=11)
    labels = generate_labels(columns, seed=11)
    reports = [
        {
            "abuse_type": str(columns["abuse_type"][i]),
            "report_text_len": int(columns["report_text_len"][i]),
            "profile_rating": float(columns["profile_rating"][i]),
            "popularity": int(columns["popularity"][i]),
            "lifetime_matches_created": int(columns["lifetime_matches_created"][i]),
        }
        for i in range(N_REPORTS)
    ]
    jobs = [
        jobs_submission.submit_job(
            db=db, reports=reports[i : i + 200], owner="t", idempotency_key=None, idempotency_ttl_s=60
        ).job_id
        for i in range(0, N_REPORTS, 200)
    ]
    champion = RuleModel("champ", blur=1.0)
    shadows = {"rule": RuleModel("rule"), "copy": RuleModel("copy", blur=1.0)}
    with db.write() as s:
        for version in shadows:
            s.add(ModelShadow(name="fake", version=version, fraction=1.0, started_at=datetime.now(UTC), started_by="t"))
    scorer = ShadowScorer(
        db=db,
        name="fake",
        loader=lambda v: cast(ServingModel, shadows[v]),
        refresh_s=3600,
        max_pending_batches=100,
    )
    scorer.refresh()
    outcome = score_jobs(db=db, model=cast(ServingModel, champion), job_ids=jobs)
    assert len(outcome.succeeded) == len(jobs)
    scorer.offer(job_ids=outcome.succeeded, rows=outcome.rows)
    scorer.run_pending()
    with db.write() as s:
        ids = s.scalars(select(Report.id).order_by(Report.id)).all()
        for rid, label in list(zip(ids, labels.tolist(), strict=True))[:2000]:
            s.execute(
                update(Report).where(Report.id == rid).values(review_outcome="actioned" if label else "dismissed")
            )
    return db


def test_a_planted_better_challenger_reads_better_and_the_champion_against_it_worse(scored_store: Database) -> None:
    better = compare(db=scored_store, champion="champ", challenger="rule", resamples=300, page=700)
    assert better.n_reports == N_REPORTS
    assert better.n_labelled == 2000
    assert better.verdict == "better", better.as_dict()
    assert better.labelled is not None
    auc = better.labelled["metrics"]["roc_auc"]
    assert auc["ci95"][0] > 0
    worse = compare(db=scored_store, champion="rule", challenger="champ", resamples=300)
    assert worse.verdict == "worse"


def test_a_copy_of_the_champion_is_not_distinguishable(scored_store: Database) -> None:
    same = compare(db=scored_store, champion="champ", challenger="copy", resamples=300)
    assert same.verdict == "not distinguishable with 2000 labelled reports"
    assert same.agreement["pearson"] == pytest.approx(1.0)
    assert same.agreement["max_abs_diff"] == 0.0
    assert same.agreement["top_k_overlap"] == {"1%": 1.0, "5%": 1.0, "10%": 1.0}


def test_the_streamed_comparison_equals_scikit_learn_on_the_rows_in_the_store(scored_store: Database) -> None:
    with scored_store.read() as s:
        served = dict(s.execute(select(ReportScore.report_id, ReportScore.score)).all())
        rule = dict(
            s.execute(select(ShadowScore.report_id, ShadowScore.score).where(ShadowScore.model_version == "rule")).all()
        )
        outcomes = dict(s.execute(select(Report.id, Report.review_outcome)).all())
    ids = sorted(served)
    a = np.array([served[i] for i in ids])
    b = np.array([rule[i] for i in ids])
    result = compare(db=scored_store, champion="champ", challenger="rule", resamples=100, page=333)
    assert result.agreement["pearson"] == pytest.approx(scipy_stats.pearsonr(a, b).statistic, abs=1e-6)
    assert result.agreement["spearman"] == pytest.approx(scipy_stats.spearmanr(a, b).statistic, abs=1e-6)
    assert result.agreement["mean_abs_diff"] == pytest.approx(np.abs(a - b).mean(), abs=1e-6)
    assert result.histograms["champion"] == np.histogram(a, bins=20, range=(0, 1))[0].tolist()
    lab = [i for i in ids if outcomes[i] is not None]
    y = np.array([outcomes[i] == "actioned" for i in lab], dtype=np.float64)
    la, lb = np.array([served[i] for i in lab]), np.array([rule[i] for i in lab])
    assert result.labelled is not None
    metrics = result.labelled["metrics"]
    assert metrics["roc_auc"]["champion"] == pytest.approx(roc_auc_score(y, la), abs=1e-6)
    assert metrics["roc_auc"]["challenger"] == pytest.approx(roc_auc_score(y, lb), abs=1e-6)
    assert metrics["pr_auc"]["challenger"] == pytest.approx(average_precision_score(y, lb), abs=1e-6)
    assert metrics["brier"]["champion"] == pytest.approx(brier_score_loss(y, la), abs=1e-6)
    # a sample smaller than the window keeps the exact sums and a bounded sample
    sampled = compare(db=scored_store, champion="champ", challenger="rule", resamples=100, max_reports=1000)
    assert sampled.n_reports == N_REPORTS
    assert sampled.n_sampled == 1000
    assert sampled.agreement["pearson"] == result.agreement["pearson"]


def test_promotion_evidence_passes_a_real_improvement_and_refuses_with_the_numbers_otherwise(
    scored_store: Database,
) -> None:
    better = compare(db=scored_store, champion="champ", challenger="rule", resamples=300)
    assert "meets the required 0.01" in Requirement.parse("auc:0.01").check(better)
    assert "meets" in Requirement.parse("brier:1%").check(better)
    with pytest.raises(EvidenceError, match=r"roc_auc 0\.\d{4} -> 0\.\d{4} .* below the required improvement of 50%"):
        Requirement.parse("auc:50%").check(better)
    same = compare(db=scored_store, champion="champ", challenger="copy", resamples=300)
    with pytest.raises(EvidenceError, match="not distinguishable from no improvement"):
        Requirement.parse("auc:0.01").check(same)
    with pytest.raises(ValueError, match="METRIC:CHANGE"):
        Requirement.parse("accuracy:0.1")
