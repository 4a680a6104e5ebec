"""The feature schema: which model columns exist, in which order, and how each report field is encoded.

Encoding is fixed by the schema and never inferred from a batch: a batch of only ``MSG`` reports gets the same
``abuse_type_*`` columns as a mixed one (the proof of concept's per-batch ``get_dummies`` got this wrong).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

INT32_MAX = 2**31 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest finite float32: models take float32 input, so a larger rating would reach them as infinity."""
ABUSE_TYPES: tuple[str, ...] = ("MSG", "PRF")
REPORT_FIELDS: tuple[str, ...] = (
    "abuse_type",
    "report_text_len",
    "profile_rating",
    "popularity",
    "lifetime_matches_created",
)

Encoding = Literal["numeric", "one_hot"]
FloatMatrix = npt.NDArray[np.float32]


class SchemaError(ValueError):
    """A feature schema is malformed or does not fit the service's report fields."""


@dataclass(frozen=True)
class Feature:
    """One model input column."""

    name: str
    source: str
    encoding: Encoding
    category: str | None = None
    min: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source, "encoding": self.encoding}
        if self.category is not None:
            out["category"] = self.category
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out


@dataclass(frozen=True)
class FeatureSchema:
    """The ordered model columns; ``encode`` turns columnar report fields into the model's float matrix."""

    features: tuple[Feature, ...]
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @classmethod
    def default(cls) -> FeatureSchema:
        """The schema of the reference model and of the service's report fields."""
        return cls(
            features=(
                Feature("abuse_type_MSG", "abuse_type", "one_hot", category="MSG"),
                Feature("abuse_type_PRF", "abuse_type", "one_hot", category="PRF"),
                Feature("report_text_len", "report_text_len", "numeric", min=0, max=INT32_MAX),
                Feature("profile_rating", "profile_rating", "numeric"),
                Feature("popularity", "popularity", "numeric", min=0, max=5),
                Feature("lifetime_matches_created", "lifetime_matches_created", "numeric", min=0, max=INT32_MAX),
            )
        )

    # --- (de)serialisation -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "features": [f.to_dict() for f in self.features]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        try:
            raw = data["features"]
            feats = tuple(
                Feature(
                    name=str(f["name"]),
                    source=str(f["source"]),
                    encoding=f["encoding"],
                    category=f.get("category"),
                    min=f.get("min"),
                    max=f.get("max"),
                )
                for f in raw
            )
        except (KeyError, TypeError) as exc:
            raise SchemaError(f"feature schema is malformed: missing or wrong key {exc}") from exc
        schema = cls(features=feats, version=int(data.get("version", 1)))
        schema.validate()
        return schema

    @classmethod
    def load(cls, path: Path) -> FeatureSchema:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path}: not valid JSON ({exc})") from exc

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def validate(self) -> None:
        """Check that every column comes from a known report field with a known encoding."""
        if not self.features:
            raise SchemaError("feature schema has no features")
        seen: set[str] = set()
        for f in self.features:
            if f.name in seen:
                raise SchemaError(f"feature {f.name!r} appears twice")
            seen.add(f.name)
            if f.source not in REPORT_FIELDS:
                raise SchemaError(f"feature {f.name!r} reads unknown report field {f.source!r}")
            if f.encoding == "one_hot":
                if f.source != "abuse_type" or f.category not in ABUSE_TYPES:
                    raise SchemaError(
                        f"one-hot feature {f.name!r} needs source abuse_type and a category in {ABUSE_TYPES}"
                    )
            elif f.encoding == "numeric":
                if f.source == "abuse_type":
                    raise SchemaError(f"feature {f.name!r}: abuse_type can only be one-hot encoded")
            else:
                raise SchemaError(f"feature {f.name!r} has unknown encoding {f.encoding!r}")

    # --- encoding ----------------------------------------------------------------------------------------------
    def encode(self, columns: Mapping[str, Sequence[Any] | npt.NDArray[Any]]) -> FloatMatrix:
        """Encode columnar report fields (one sequence per field, equal lengths) into a float32 matrix."""
        n = len(columns["abuse_type"])
        out = np.empty((n, len(self.features)), dtype=np.float32)
        abuse = None
        for j, f in enumerate(self.features):
            if f.encoding == "one_hot":
                if abuse is None:
                    abuse = np.asarray(columns["abuse_type"], dtype=object)
                out[:, j] = abuse == f.category
            else:
                out[:, j] = np.asarray(columns[f.source], dtype=np.float64)
        return out

    def encode_reports(self, reports: Sequence[Mapping[str, Any]]) -> FloatMatrix:
        """Encode a list of report dicts (convenience for tests and files)."""
        return self.encode({name: [r[name] for r in reports] for name in REPORT_FIELDS})
