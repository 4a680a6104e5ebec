"""API key administration bodies (``/keys``, admin scope)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reportscore.api.schemas.tasks import UTCTimestamp
from reportscore.security.keys import KeyView

ScopeName = Literal["submit", "read", "feedback", "admin", "metrics"]

_EXAMPLE: dict[str, Any] = {
    "prefix": "3f9a0c1d2e4b",
    "tenant": "moderation",
    "name": "moderation-prod",
    "scopes": ["submit", "read", "feedback"],
    "rate": 50.0,
    "burst": 100,
    "created_at": "2026-11-27T11:00:00+00:00",
    "revoked_at": None,
}


class KeyCreate(BaseModel):
    """A key to create; the answer shows it once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"tenant": "moderation", "name": "moderation-prod", "scopes": ["submit", "read"], "rate": 50}]
        },
    )

    tenant: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    scopes: list[ScopeName] = Field(min_length=1)
    rate: float | None = Field(default=None, gt=0, description="Requests per second (unset: unlimited).")
    burst: int | None = Field(default=None, ge=1, description="Requests at once above the rate (default: rate).")


class KeyOut(BaseModel):
    """A stored key: never its secret."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    prefix: str = Field(description="The key's public id (rsk_<prefix>_…); revoke it by this.")
    tenant: str
    name: str
    scopes: list[str]
    rate: float | None
    burst: int | None
    created_at: UTCTimestamp
    revoked_at: UTCTimestamp | None

    @classmethod
    def of(cls, view: KeyView) -> KeyOut:
        return cls(
            prefix=view.prefix,
            tenant=view.tenant,
            name=view.name,
            scopes=list(view.scopes),
            rate=view.rate,
            burst=view.burst,
            created_at=view.created_at,
            revoked_at=view.revoked_at,
        )


class KeyCreated(KeyOut):
    """A new key: ``key`` appears in this answer only; the service keeps only its hash."""

    model_config = ConfigDict(json_schema_extra={"examples": [{**_EXAMPLE, "key": "rsk_3f9a0c1d2e4b_…"}]})

    key: str = Field(description="Send it as the X-API-Key header. Shown once.")


class KeyList(BaseModel):
    """Keys, oldest first."""

    keys: list[KeyOut]
