"""A version's reference distribution as bins, and a scored batch as counts in those bins.

Numeric fields use the reference's decile cut points: bin ``i`` holds ``cut_points[i-1] <= v < cut_points[i]``, the
first unbounded below and the last above (``np.searchsorted(cut_points, v, side="right")``). Scores use the
reference's fixed bin edges on 0..1 like ``np.histogram`` (``[e_i, e_i+1)``, the last bin closed). The categorical
``abuse_type`` is counted per category."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

SCORE = "score"
"""The feature name under which the score distribution is kept."""


@dataclass(frozen=True)
class FieldBins:
    """One feature's reference bins: ``edges`` (numeric: interior cut points; score: all edges) or ``categories``."""

    kind: str
    """``numeric``, ``categorical`` or ``score``."""
    expected: dict[str, int]
    """Reference count per bin label."""
    edges: tuple[float, ...] = ()

    def labels(self, values: Sequence[Any] | np.ndarray) -> list[str] | np.ndarray:
        """The bin label of each value."""
        if self.kind == "categorical":
            return [str(v) for v in values]
        arr = np.asarray(values, dtype=np.float64)
        edges = np.asarray(self.edges, dtype=np.float64)
        if self.kind == "score":
            idx = np.clip(np.searchsorted(edges, arr, side="right") - 1, 0, len(edges) - 2)
        else:
            idx = np.searchsorted(edges, arr, side="right")
        return idx

    def count(self, values: Sequence[Any] | np.ndarray) -> dict[str, int]:
        """Counts per bin label of ``values`` (bins with no value left out)."""
        if len(values) == 0:
            return {}
        if self.kind == "categorical":
            labels, counts = np.unique(np.asarray([str(v) for v in values]), return_counts=True)
            return {str(k): int(n) for k, n in zip(labels, counts, strict=True)}
        idx = self.labels(values)
        counts = np.bincount(np.asarray(idx), minlength=len(self.expected))
        return {str(i): int(n) for i, n in enumerate(counts) if n}


@dataclass(frozen=True)
class ReferenceBins:
    """Every binned feature of a version's reference, and the score's."""

    fields: dict[str, FieldBins]

    @classmethod
    def from_reference(cls, reference: Mapping[str, Any]) -> ReferenceBins:
        """Read a ``reference.json`` document (see ``scoring.training``); features it does not bin are left out."""
        fields: dict[str, FieldBins] = {}
        for name, doc in (reference.get("fields") or {}).items():
            kind = doc.get("kind")
            if kind == "categorical" and isinstance(doc.get("counts"), dict):
                fields[name] = FieldBins("categorical", {str(k): int(v) for k, v in doc["counts"].items()})
            elif kind == "numeric" and "cut_points" in doc and "counts" in doc:
                counts = [int(c) for c in doc["counts"]]
                if len(counts) != len(doc["cut_points"]) + 1:
                    continue
                fields[name] = FieldBins(
                    "numeric",
                    {str(i): c for i, c in enumerate(counts)},
                    tuple(float(c) for c in doc["cut_points"]),
                )
        scores = reference.get("scores")
        if isinstance(scores, dict) and "bin_edges" in scores and "counts" in scores:
            counts = [int(c) for c in scores["counts"]]
            if len(counts) == len(scores["bin_edges"]) - 1:
                fields[SCORE] = FieldBins(
                    "score", {str(i): c for i, c in enumerate(counts)}, tuple(float(e) for e in scores["bin_edges"])
                )
        return cls(fields)

    def batch_counts(
        self, *, columns: Mapping[str, Sequence[Any] | np.ndarray], scores: Sequence[float] | np.ndarray
    ) -> dict[tuple[str, str], int]:
        """Counts of a scored batch, by ``(feature, bin)``."""
        out: dict[tuple[str, str], int] = {}
        for name, field in self.fields.items():
            values: Sequence[Any] | np.ndarray | None = scores if name == SCORE else columns.get(name)
            if values is None:
                continue
            for label, n in field.count(values).items():
                out[(name, label)] = n
        return out


def window_start(at: datetime, window_s: int) -> datetime:
    """Start of the window (aligned to the epoch) that contains ``at``."""
    ts = int(at.timestamp())
    return datetime.fromtimestamp(ts - ts % window_s, UTC)
