"""Automatic rollback: the one policy that rolls a worse new champion back by itself (off by default).

After a promotion, for a guard period (``auto_rollback_guard_s``), the new champion's metric (``auto_rollback_metric``)
on the reports it scored since the promotion is compared with the previous champion's on the reports it scored in
``auto_rollback_baseline_s`` before it. Once both have at least ``auto_rollback_min_labelled`` labelled reports, a
new champion whose metric is lower by more than ``auto_rollback_margin`` is rolled back; so is one whose score
distribution drifted past the alert threshold (``drift_psi_alert``) in its latest hour with enough reports, when
``auto_rollback_on_drift`` is on (no labels needed for that). A rollback is a ``rollback`` row in the
promotion history (by ``auto-rollback``, with the reason and the numbers), a log line and a counter. Every process
follows the champion as after a person's rollback. Aggregates are hourly, so both spans are rounded out to whole
hours (the hour of the promotion counts for both).

Every API process runs the check; the decision is read without locks, and the rollback is written by one process
at a time (``try_exclusive_pass``) after checking that the promotion it judged is still the latest.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from reportscore.drift import service as drift_service
from reportscore.drift.metrics import judged_window
from reportscore.drift.query import thresholds_of
from reportscore.monitoring import metrics
from reportscore.periodic import Periodic
from reportscore.quality.metrics import Binned, pr_auc, precision_at_k, roc_auc
from reportscore.quality.service import binned
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import jobs as jobs_repo
from reportscore.storage.repositories import models as models_repo
from reportscore.storage.repositories.quality import window_start

log = logging.getLogger(__name__)

ROLLED_BACK_BY = "auto-rollback"
LOCK_KEY = 0x5265_7051_6C74  # "RepQlt"


@dataclass(frozen=True)
class Verdict:
    """What the policy found about the latest promotion."""

    promotion_id: int
    champion: str
    previous: str
    metric: str
    champion_value: float | None
    previous_value: float | None
    champion_labelled: int
    previous_labelled: int
    margin: float
    min_labelled: int
    roll_back: bool
    score_psi: float | None = None
    """The new champion's score PSI in its latest hour with enough reports (when the drift trigger is on)."""
    score_psi_reports: int = 0
    psi_alert: float | None = None
    trigger: str | None = None
    """What the rollback is for: ``metric`` (online quality) or ``score_drift``; None when it does not roll back."""

    @property
    def reason(self) -> str:
        if self.trigger == "score_drift":
            return (
                f"score PSI of {self.champion} ({self.score_psi:.4f} on {self.score_psi_reports} reports in an hour)"
                f" passed the alert threshold {self.psi_alert}"
            )
        return (
            f"{self.metric} of {self.champion} ({self.champion_value:.4f} on {self.champion_labelled} labelled reports)"
            f" is below {self.previous}'s ({self.previous_value:.4f} on {self.previous_labelled}) by more than"
            f" {self.margin}"
        )


def _metric(name: str, b: Binned, *, k: int) -> float | None:
    if name == "roc_auc":
        return roc_auc(b)
    if name == "pr_auc":
        return pr_auc(b)
    return precision_at_k(b, k)


def judge(*, db: Database, settings: Settings, now: datetime | None = None) -> Verdict | None:
    """The policy's verdict on the latest promotion, or None when it does not apply (no promotion under guard)."""
    now = now or datetime.now(UTC)
    name = settings.model_name
    with db.read() as session:
        latest = models_repo.latest_promotion(session, name=name)
        if latest is None or latest.action != "promote" or latest.previous_version is None:
            return None
        if now - latest.promoted_at > timedelta(seconds=settings.auto_rollback_guard_s):
            return None
        hour = window_start(latest.promoted_at)
        new = binned(session, model_name=name, version=latest.version, since=hour, until=None)
        old = binned(
            session,
            model_name=name,
            version=latest.previous_version,
            since=window_start(latest.promoted_at - timedelta(seconds=settings.auto_rollback_baseline_s)),
            until=hour + timedelta(hours=1),
        )
        promotion_id, champion, previous = latest.id, latest.version, latest.previous_version
    score_psi, psi_reports = (
        _score_psi(db=db, settings=settings, version=champion, since=hour, now=now)
        if settings.auto_rollback_on_drift
        else (None, 0)
    )
    metric, k = settings.auto_rollback_metric, settings.quality_precision_k
    new_value, old_value = _metric(metric, new, k=k), _metric(metric, old, k=k)
    new_n, old_n = new.labelled, old.labelled
    enough = min(new_n, old_n) >= settings.auto_rollback_min_labelled
    worse = new_value is not None and old_value is not None and old_value - new_value > settings.auto_rollback_margin
    drifted = score_psi is not None and score_psi >= settings.drift_psi_alert
    trigger = "metric" if enough and worse else "score_drift" if drifted else None
    return Verdict(
        promotion_id=promotion_id,
        champion=champion,
        previous=previous,
        metric=metric,
        champion_value=new_value,
        previous_value=old_value,
        champion_labelled=new_n,
        previous_labelled=old_n,
        margin=settings.auto_rollback_margin,
        min_labelled=settings.auto_rollback_min_labelled,
        roll_back=trigger is not None,
        score_psi=score_psi,
        score_psi_reports=psi_reports,
        psi_alert=settings.drift_psi_alert,
        trigger=trigger,
    )


def _score_psi(
    *, db: Database, settings: Settings, version: str, since: datetime, now: datetime
) -> tuple[float | None, int]:
    """The version's score PSI in its latest hour (since ``since``) with enough scored reports, and that count;
    (None, 0) when there is none or the version has no reference."""
    try:
        report = drift_service.drift_report(
            db,
            model_name=settings.model_name,
            model_version=version,
            window_s=3600,
            since=since,
            until=now + timedelta(seconds=1),
            thresholds=thresholds_of(settings),
        )
    except LookupError:
        return None, 0
    window = judged_window(report)
    if window is None:
        return None, 0
    return window.psi.get("score"), window.n_reports


def check_once(*, db: Database, settings: Settings) -> Verdict | None:
    """Judge the latest promotion and roll it back when the policy says so; the verdict when it rolled back."""
    verdict = judge(db=db, settings=settings)
    if verdict is None or not verdict.roll_back:
        return None
    name = settings.model_name
    with db.write() as session:
        if not jobs_repo.try_exclusive_pass(session, key=LOCK_KEY):
            return None
        latest = models_repo.latest_promotion(session, name=name)
        if latest is None or latest.id != verdict.promotion_id:
            return None  # someone promoted or rolled back meanwhile
        models_repo.insert_promotion(
            session,
            name=name,
            version=verdict.previous,
            previous_version=verdict.champion,
            action="rollback",
            at=datetime.now(UTC),
            by=ROLLED_BACK_BY,
            reason=verdict.reason,
            details=asdict(verdict),
        )
    metrics.observe_auto_rollback(
        model_name=name, metric="score_psi" if verdict.trigger == "score_drift" else verdict.metric
    )
    log.warning(
        "champion rolled back automatically: its online quality fell below the previous champion's, or its scores"
        " drifted past the alert threshold",
        extra={"model_version": verdict.champion, "restored_version": verdict.previous, "reason": verdict.reason},
    )
    return verdict


class RollbackGuard(Periodic):
    """A background thread that runs :func:`check_once` every ``auto_rollback_interval_s``."""

    def __init__(self, *, db: Database, settings: Settings) -> None:
        super().__init__(name="auto-rollback", interval_s=settings.auto_rollback_interval_s)
        self._db = db
        self._settings = settings

    def run_once(self) -> Verdict | None:
        return check_once(db=self._db, settings=self._settings)
