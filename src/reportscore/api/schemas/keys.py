"""API key administration bodies (``/keys``, admin scope)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from reportscore.api.schemas.tasks import UTCTimestamp
from reportscore.api.schemas.text import Text
from reportscore.security.keys import MAX_BURST, MAX_RATE, KeyView

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


class _KeyCreateBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: Text = Field(min_length=1, max_length=128)
    name: Text = Field(min_length=1, max_length=128)
    scopes: list[ScopeName] = Field(min_length=1)


class KeyCreateUnlimited(_KeyCreateBase):
    """A key without a rate limit (no ``rate``, or ``rate: null``; then no ``burst``). The answer shows it once."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tenant": "moderation", "name": "moderation-batch", "scopes": ["submit"]}]},
    )

    rate: None = Field(default=None, description="Unset: unlimited.")


class KeyCreateLimited(_KeyCreateBase):
    """A key with a rate limit: ``rate`` requests per second, ``burst`` at once. The answer shows it once."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"tenant": "moderation", "name": "moderation-prod", "scopes": ["submit", "read"], "rate": 50}]
        },
    )

    rate: float = Field(gt=0, le=MAX_RATE, allow_inf_nan=False, description="Requests per second.")
    burst: int | None = Field(default=None, ge=1, le=MAX_BURST, description="Requests at once (default: the rate).")


LIMITED = "rate:limited"
UNLIMITED = "rate:unlimited"
"""Union tags (never a field name: they hold a colon), left out of error locations by the route."""


def _key_limit(value: Any) -> str | None:
    """Which form a key request has; None (the error ``burst_without_rate``) for a burst without a rate."""
    if isinstance(value, _KeyCreateBase):
        return LIMITED if isinstance(value, KeyCreateLimited) else UNLIMITED
    if not isinstance(value, dict) or value.get("rate") is None:
        return None if isinstance(value, dict) and "burst" in value else UNLIMITED
    return LIMITED


KeyCreate = Annotated[
    Annotated[KeyCreateLimited, Tag(LIMITED)] | Annotated[KeyCreateUnlimited, Tag(UNLIMITED)],
    Discriminator(
        _key_limit,
        custom_error_type="burst_without_rate",
        custom_error_message="burst needs a rate: give rate (requests per second) too, or leave burst out",
    ),
]
"""A key to create: with a rate (and an optional burst), or without either."""


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
