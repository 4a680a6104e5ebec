"""Who is calling: the principal (tenant, key, scopes) every protected route depends on.

Routes declare the scope they need with ``Principal`` dependencies built by :func:`requires`::

    async def read_task(principal: Annotated[Principal, requires("read")], ...) -> ...

and read or write only rows whose owner is ``principal.tenant``. Until API keys exist (issue 8) every caller is the
anonymous tenant with every scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from fastapi import Depends

Scope = Literal["submit", "read", "feedback", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("submit", "read", "feedback", "admin")

ANONYMOUS_TENANT: Final = "anonymous"
"""The tenant of every request while no API keys are configured (rows written then keep it as their owner)."""


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    key_id: str | None
    scopes: frozenset[str]


_ANONYMOUS: Final = Principal(tenant=ANONYMOUS_TENANT, key_id=None, scopes=frozenset(SCOPES))


def requires(scope: Scope) -> Any:
    """A dependency that answers the calling principal, once it is known to hold ``scope``."""

    async def principal() -> Principal:
        return _ANONYMOUS

    principal.__name__ = f"requires_{scope}"
    return Depends(principal)
