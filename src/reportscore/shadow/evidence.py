"""``--require-better``: promotion refused unless the comparison shows the challenger better by a minimum change."""

from __future__ import annotations

import re
from dataclasses import dataclass

from reportscore.shadow.compare import Comparison

METRICS = {
    "auc": "roc_auc",
    "roc_auc": "roc_auc",
    "pr_auc": "pr_auc",
    "precision@10": "precision_at_10",
    "brier": "brier",
}
LOWER_IS_BETTER = {"brier"}
_SPEC = re.compile(r"^(?P<metric>[a-z_@0-9]+):(?P<amount>[0-9]*\.?[0-9]+)(?P<percent>%?)$")


class EvidenceError(ValueError):
    """The comparison does not show the required improvement (the message has the numbers)."""


@dataclass(frozen=True)
class Requirement:
    metric: str
    """The comparison's metric key (``roc_auc``, ``pr_auc``, ``precision_at_10``, ``brier``)."""
    amount: float
    relative: bool

    @classmethod
    def parse(cls, spec: str) -> Requirement:
        """``auc:0.01`` (absolute change) or ``auc:5%`` (relative to the champion)."""
        match = _SPEC.match(spec.strip().lower())
        if match is None or match["metric"] not in METRICS:
            raise ValueError(
                f"--require-better {spec!r}: expected METRIC:CHANGE or METRIC:PERCENT%, METRIC one of "
                f"{', '.join(sorted(METRICS))} (e.g. auc:0.01 or auc:5%)"
            )
        return cls(METRICS[match["metric"]], float(match["amount"]), bool(match["percent"]))

    def check(self, comparison: Comparison) -> str:
        """The evidence as one line when it holds; EvidenceError with the numbers when it does not."""
        head = f"{comparison.challenger} vs champion {comparison.champion}"
        if comparison.labelled is None:
            raise EvidenceError(
                f"{head}: {comparison.n_labelled} labelled reports scored by both (of {comparison.n_reports} paired): "
                "not enough to compare; shadow it longer"
            )
        m = comparison.labelled["metrics"][self.metric]
        champion, challenger, low, high = m["champion"], m["challenger"], m["ci95"][0], m["ci95"][1]
        lower_better = self.metric in LOWER_IS_BETTER
        gain = champion - challenger if lower_better else challenger - champion
        ci_gain = (-high, -low) if lower_better else (low, high)
        needed = self.amount * abs(champion) / 100 if self.relative else self.amount
        want = f"{self.amount:g}%" if self.relative else f"{self.amount:g}"
        numbers = (
            f"{self.metric} {champion:.4f} -> {challenger:.4f} (improvement {gain:+.4f}, 95% CI "
            f"[{ci_gain[0]:+.4f}, {ci_gain[1]:+.4f}], {comparison.n_labelled} labelled reports)"
        )
        if ci_gain[0] <= 0:
            raise EvidenceError(f"{head}: {numbers}: not distinguishable from no improvement; required {want}")
        if gain < needed:
            raise EvidenceError(f"{head}: {numbers}: below the required improvement of {want} ({needed:.4f})")
        return f"{head}: {numbers}: meets the required {want}"
