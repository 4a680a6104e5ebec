"""Model registry responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reportscore.api.schemas.tasks import UTCTimestamp
from reportscore.scoring.registration import VERSION_PATTERN, ModelVersionView

_EXAMPLE: dict[str, Any] = {
    "name": "reportscore-reference",
    "version": "1.1.0",
    "format": "xgboost",
    "sha256": "39d8903bd8d6cbe7af0c5f35bf40fba2911657b714594b7a9bf4d5ed96506cbc",
    "size_bytes": 895012,
    "registered_at": "2026-11-27T10:00:00+00:00",
    "registered_by": "http",
    "reference_source": "synthetic",
    "is_champion": False,
}


class ModelVersionOut(BaseModel):
    """A registered model version."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]}, protected_namespaces=())

    name: str
    version: str
    format: str
    sha256: str
    size_bytes: int
    registered_at: UTCTimestamp
    registered_by: str
    reference_source: str = Field(description="sample (from the uploaded data), synthetic, or training")
    is_champion: bool

    @classmethod
    def of(cls, view: ModelVersionView) -> ModelVersionOut:
        return cls(
            name=view.name,
            version=view.version,
            format=view.format,
            sha256=view.sha256,
            size_bytes=view.size_bytes,
            registered_at=view.registered_at,
            registered_by=view.registered_by,
            reference_source=view.reference_source,
            is_champion=view.is_champion,
        )


class ModelVersionDetail(ModelVersionOut):
    """A registered model version with its metadata, feature schema and reference distribution."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**_EXAMPLE, "metadata": {"format": "xgboost"}, "feature_schema": {}, "reference": {}}]
        },
        protected_namespaces=(),
    )

    metadata: dict[str, Any]
    feature_schema: dict[str, Any]
    reference: dict[str, Any]

    @classmethod
    def of_detail(cls, view: ModelVersionView) -> ModelVersionDetail:
        base = ModelVersionOut.of(view).model_dump()
        return cls(**base, metadata=view.metadata, feature_schema=view.feature_schema, reference=view.reference)


class ModelList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"champion": "1.0.0", "versions": [_EXAMPLE]}]}, protected_namespaces=()
    )

    champion: str | None
    versions: list[ModelVersionOut]


class RemoteModelIn(BaseModel):
    """A model served by a V2 (Open Inference Protocol) endpoint, to register as a new version."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "version": "2.0.0-remote",
                    "url": "http://mlserver:8080/v2/models/reportscore-reference",
                    "output": "predict_proba",
                }
            ]
        },
    )

    version: str = Field(pattern=VERSION_PATTERN.pattern, description="The new version's name")
    url: str = Field(
        min_length=1, max_length=2000, description="http(s)://host:port[/prefix]/v2/models/NAME[/versions/V]"
    )
    output: str | None = Field(default=None, description="The output holding the score (default: the first one)")
    output_column: int | None = Field(
        default=None, ge=0, description="The output's column holding the score (default: 1 of [N, 2], else 0)"
    )
    input_name: str | None = Field(default=None, description="The input tensor's name (default: input-0)")
